"""Exact integer inference: deterministic tables, float agreement, and bit-identical results
across full vs incremental execution, batch sizes and thread counts."""

import math

import numpy as np
import pytest
import torch

from neuralzip.distributions import MixtureLayout, mixture_log_likelihood
from neuralzip.exact.fixedpoint import ACT_ONE, det_exp
from neuralzip.exact.mixture import ExactMixture, pixel_to_input
from neuralzip.exact.network import ExactNetwork, IncrementalRun
from neuralzip.nets.graph import ConvGeometry, FloatNetwork, Graph, Node, Term
from neuralzip.nets.pixelcnn import PixelCNNConfig, build_pixelcnn, image_input


def test_det_exp_is_accurate():
    x = np.linspace(-40, 40, 100001)
    assert np.max(np.abs(det_exp(x) / np.exp(x) - 1)) < 1e-14


@pytest.fixture(scope="module")
def tiny_network():
    torch.manual_seed(1)
    graph = build_pixelcnn(PixelCNNConfig(filters=6, resnets=1, mixtures=2))
    net = FloatNetwork(graph).double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return net, ExactNetwork.from_float(graph, net.folded_weights())


def _inputs(images: np.ndarray) -> torch.Tensor:
    n, h, w, c = images.shape
    x = pixel_to_input(images).reshape(n, h * w, c).astype(np.float64)
    return torch.from_numpy(np.concatenate([x, np.full((n, h * w, 1), float(ACT_ONE))], axis=2))


def test_exact_network_tracks_the_float_network(tiny_network):
    net, exact = tiny_network
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 12, 3)).astype(np.uint8)
    _, net_input = image_input(torch.from_numpy(images))
    with torch.no_grad():
        reference = net({"x": net_input.double().contiguous()})
    out = exact.run({"x": _inputs(images)}, 8, 12).view(2, 8, 12, -1).permute(0, 3, 1, 2) / ACT_ONE
    assert torch.max(torch.abs(out - reference)) < 5e-3


def test_incremental_equals_full_and_ignores_batch_and_threads(tiny_network):
    _, exact = tiny_network
    images = np.random.default_rng(2).integers(0, 256, (5, 8, 8, 3)).astype(np.uint8)
    x = _inputs(images)
    full = exact.run({"x": x}, 8, 8, chunk=5)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one_at_a_time = exact.run({"x": x}, 8, 8, chunk=1)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(full, one_at_a_time)
    run = IncrementalRun(exact, 3, 8, 8)
    for t in range(64):
        assert torch.equal(run.advance(t), full[:3, t])
        run.set_pixel(t, x[:3, t])


def test_causality_is_checked():
    graph = Graph(inputs={"x": 2})
    graph.add(Node("peek", 2, (Term("x", ConvGeometry(3, 3, pad=(1, 1, 1, 1))),)))
    exact = ExactNetwork.from_float(graph, FloatNetwork(graph).folded_weights())
    with pytest.raises(ValueError, match="causal"):
        exact.schedule(4, 4)


def test_pixelcnn_graph_is_causal():
    graph = build_pixelcnn(PixelCNNConfig(filters=4, resnets=2, mixtures=1))
    exact = ExactNetwork.from_float(graph, FloatNetwork(graph).folded_weights())
    steps = exact.schedule(16, 16)
    assert len(steps) == 256


def test_exact_mixture_matches_float_likelihood_on_likely_values():
    layout = MixtureLayout(3, 4)
    rng = np.random.default_rng(3)
    n = 3000
    head = np.concatenate([
        rng.normal(0, 1, (n, 4)), rng.uniform(-0.9, 0.9, (n, 12)), rng.uniform(-4.5, -1.5, (n, 12)), rng.normal(0, 0.5, (n, 12)),
    ], axis=1)
    head_int = np.rint(head * ACT_ONE).astype(np.int64)
    # values near the first component's (coupled) mean: the regime a trained model codes in
    values = np.zeros((n, 3), dtype=np.int64)
    for c in range(3):
        mean = head_int[:, 4 + 4 * c] / ACT_ONE
        for j in range(c):
            mean = mean + np.tanh(head_int[:, 28 + 4 * (c * (c - 1) // 2 + j)] / ACT_ONE) * (values[:, j] * 2 / 255 - 1)
        values[:, c] = np.clip(np.rint((mean + 1) * 127.5 + rng.normal(0, 4, n)), 0, 255)
    mixture = ExactMixture(layout)
    bits, frequencies = mixture.decisions(head_int, values)
    exact_bits = mixture.code_length_bits(frequencies, bits)
    params = torch.from_numpy(head_int / ACT_ONE).float().T.reshape(1, layout.size, n, 1)
    x = torch.from_numpy(values * 2 / 255 - 1).float().T.reshape(1, 3, n, 1)
    float_bits = -mixture_log_likelihood(params, x, layout)[0, :, 0].numpy() / math.log(2)
    assert abs(exact_bits.mean() - float_bits.mean()) < 0.01
    assert np.median(np.abs(exact_bits - float_bits)) < 0.01
