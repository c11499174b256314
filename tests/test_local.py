"""The local autoregressive codec: causal neighbourhoods, exact integer network, wavefront
decoding that equals the encoder on any size, batch and thread count."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from neuralzip.codecs.base import ImageShape, PayloadError
from neuralzip.exact import wavefront
from neuralzip.exact.local import (
    FakeQuantizer, activation_scales, edge_patterns, image_features, image_patterns, quantize, sampled_features,
    weight_limit,
)
from neuralzip.images import PixelImage
from neuralzip.nets.local import neighbour_offsets

from .conftest import smooth_image, tiny_local_model

ODD_SIZES = [(1, 1), (1, 9), (9, 1), (2, 2), (5, 7), (13, 4), (6, 33)]


def _shape(image: PixelImage) -> ImageShape:
    return ImageShape(image.mode, image.width, image.height)


@pytest.mark.parametrize("h,w,horizon", [(1, 1, 3), (4, 9, 3), (9, 4, 3), (7, 7, 1), (32, 32, 3), (5, 40, 2)])
def test_wavefront_visits_every_pixel_once_after_its_neighbours(h, w, horizon):
    step_of = np.full((h, w), -1)
    for t in range(wavefront.steps(h, w, horizon)):
        rows, cols = wavefront.active(t, h, w, horizon)
        assert np.all(np.diff(rows) == 1) and len(rows) <= wavefront.parallel_rows(h, w, horizon)
        assert np.all(step_of[rows, cols] == -1)
        step_of[rows, cols] = t
        s = wavefront.stream_count(h, w, horizon)
        for members in wavefront.rounds(rows, s):
            streams = rows[members] % s
            assert len(set(streams.tolist())) == len(streams)  # one pop per stream per round
    assert np.all(step_of >= 0)
    for dy, dx in neighbour_offsets(horizon):
        for i in range(h):
            for j in range(w):
                y, x = i + dy, j + dx
                if 0 <= y < h and 0 <= x < w:
                    assert step_of[y, x] < step_of[i, j]


def test_float_model_is_causal_and_local():
    model = tiny_local_model()
    image = torch.from_numpy(smooth_image(9, 11, seed=1))[None]
    base = model.head(image)
    changed = image.clone()
    changed[0, 4, 5] = 255 - changed[0, 4, 5]
    moved = ((model.head(changed) - base).abs().sum(dim=1)[0] > 0).nonzero().tolist()
    expected = {(4 - dy, 5 - dx) for dy, dx in neighbour_offsets(3)}
    assert {tuple(p) for p in moved} == {p for p in expected if 0 <= p[0] < 9 and 0 <= p[1] < 11}


def test_features_of_bands_and_samples_match_the_whole_image():
    image = smooth_image(23, 17, seed=4)
    whole = image_features(image[None], 3)
    assert np.array_equal(image_features(image[None], 3, slice(6, 15)), whole[6 * 17 : 15 * 17])
    rows, cols = np.divmod(np.arange(23 * 17), 17)
    assert np.array_equal(sampled_features(image, rows, cols, 3), whole)


def test_exact_network_sums_exactly_in_float32():
    """The worst case the weight limit allows: every product at its extreme, same sign."""
    model = tiny_local_model(width=256)
    network = quantize(model, activation_scales(model, np.stack([smooth_image(10, 10, seed=s) for s in range(3)])))
    for layer in network.layers.values():
        fan_in = layer.weight.shape[0]
        assert np.abs(layer.weight).max() <= weight_limit(fan_in)
        assert fan_in * 255 * weight_limit(fan_in) < 2**24
    layer = network.layers["hidden"]
    x = np.full((3, layer.weight.shape[0]), 255.0, dtype=np.float32)
    extreme = np.full_like(layer.weight, weight_limit(layer.weight.shape[0]))
    assert np.array_equal((x @ extreme).astype(np.int64), x.astype(np.int64) @ extreme.astype(np.int64))
    features = image_features(smooth_image(8, 8, seed=2)[None], 3)
    acc = features @ network.colour_input.weight
    assert np.array_equal(acc.astype(np.int64), features.astype(np.int64) @ network.colour_input.weight.astype(np.int64))


def test_edge_table_equals_multiplying_the_ones_channels():
    """The exact input layer adds the ones channels' contribution per edge pattern from a
    table: the same integers as the float model's layout (colour and a ones channel of 255
    per neighbour inside the image) multiplied out in full, on every pixel of an odd-sized
    image and on a strip narrower than the neighbourhood."""
    model = tiny_local_model(width=256)
    network = quantize(model, activation_scales(model, np.stack([smooth_image(10, 10, seed=s) for s in range(3)])))
    for h, w in ((9, 11), (5, 2)):
        image = smooth_image(h, w, seed=h)
        rows, cols = np.divmod(np.arange(h * w), w)
        offsets = np.array(neighbour_offsets(3))
        y, x = rows[:, None] + offsets[None, :, 0], cols[:, None] + offsets[None, :, 1]
        inside = (y >= 0) & (x >= 0) & (x < w)
        colour = image_features(image[None], 3).reshape(h * w, -1, 3)
        full = np.concatenate([colour, np.where(inside, 255.0, 0.0)[..., None]], axis=2).reshape(h * w, -1)
        expected = full.astype(np.int64) @ network.layers["input"].weight.astype(np.int64)
        folded = colour.reshape(h * w, -1) @ network.colour_input.weight + network.edge_table[edge_patterns(rows, cols, w, 3)]
        assert np.array_equal(folded.astype(np.int64), expected)


def _kill_channels(model) -> None:
    """Dead channels, as training leaves some: block0.1's input channel 0 (block0.0 never
    fires there) and hidden's input channel 1 (the stream there always negative)."""
    with torch.no_grad():
        weight, bias = model.layer("block0.0")
        weight[0].zero_()
        bias[0] = -5.0
        for name in ("input", "block0.2"):
            weight, bias = model.layer(name)
            weight[1].zero_()
            bias[1] = -5.0


@pytest.mark.parametrize("blocks,dead,activation_bits", [(0, False, 8), (1, False, 8), (1, True, 8), (0, False, 10),
                                                          (1, True, 10)])
def test_exact_network_computes_the_quantisation_aware_head(blocks, dead, activation_bits):
    """The integer network's mixture parameters are the training's simulated rounding of
    them, to within the rounding of the residual stream and the head's 2**-12 units, with
    and without blocks, also when some channels never fire: those once set the stream's
    unit so fine that it saturated everywhere (head errors as large as the head itself);
    8-bit and wide activations."""
    model = tiny_local_model(blocks=blocks, activation_bits=activation_bits)
    if dead:
        _kill_channels(model)
    images = np.stack([smooth_image(12, 12, seed=s) for s in range(4)])
    scales = activation_scales(model, images)
    network = quantize(model, scales)
    exact = network.run(image_features(images, 3), image_patterns(4, 12, 3, slice(0, 12))) / 2.0**12
    model.quantizer = FakeQuantizer(model, scales)
    with torch.no_grad():
        simulated = model.head(torch.from_numpy(images))
    simulated = simulated.permute(0, 2, 3, 1).reshape(-1, simulated.shape[1]).numpy()
    assert np.abs(simulated).max() > 1.0  # a head worth comparing
    assert np.abs(exact - simulated).max() < 0.03


@pytest.mark.parametrize("blocks, activation_bits", [(0, 8), (1, 8), (1, 10)])
def test_quantisation_aware_forward_tracks_the_exact_code_length(blocks, activation_bits):
    """The training's simulated rounding and the exact codec agree on the rate, with and
    without residual blocks, 8-bit or wide, and the exact codec round-trips what it measured."""
    model = tiny_local_model(blocks=blocks, activation_bits=activation_bits)
    images = np.stack([smooth_image(12, 12, seed=s) for s in range(4)])
    scales = activation_scales(model, images)
    from neuralzip.codecs.local import LocalCodec

    codec = LocalCodec.from_float(model, images)
    exact = codec.nll_bits_per_subpixel(images)
    model.quantizer = FakeQuantizer(model, scales)
    with torch.no_grad():
        simulated = float(model.nll_nats(torch.from_numpy(images)).sum()) / (images.size * np.log(2))
    model.quantizer = None
    assert abs(simulated - exact) < 0.02 * exact
    pictures = [PixelImage("RGB", image) for image in images]
    decoded = codec.decode(codec.encode(pictures).payloads, [_shape(p) for p in pictures])
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(pictures, decoded))


@pytest.mark.parametrize("percentile", [99.999, 99.9, 97.0])
def test_activation_scales_are_numpys_percentile_over_every_row(percentile):
    """The scales keep only each channel's largest values, yet equal np.percentile over all
    rows of all calibration images, bit for bit (batches of unequal size included)."""
    import torch

    model = tiny_local_model(blocks=1)
    images = np.stack([smooth_image(12, 12, seed=s) for s in range(23)])
    captured = {}

    class Recorder:
        def activation(self, name, a):
            captured.setdefault(name, []).append(a.detach())
            return torch.relu(a)

        def weight(self, name, w, b):
            return w, b

        def accumulator(self, name, a):
            return a

    model.quantizer = Recorder()
    with torch.no_grad():
        model.head(torch.from_numpy(images))
    model.quantizer = None
    scales = activation_scales(model, images, batch=10, percentile=percentile)
    assert set(scales) == set(captured)
    for name, parts in captured.items():
        rows = torch.relu(torch.cat(parts)).numpy()
        expected = np.maximum(np.percentile(rows, percentile, axis=0), 1e-6) / 255
        assert expected.dtype == scales[name].dtype and np.array_equal(expected, scales[name])


def test_rounded_relu_passes_gradients_where_its_output_is_positive():
    """Quantisation-aware training's activation: the exact network's 8-bit ReLU forward,
    the identity's gradient where that is positive and none where it is zero (clipped
    below or rounded to zero), the top clip included in what passes."""
    from neuralzip.nets.local import rounded_relu

    scale = torch.tensor([0.5, 2.0])
    a = torch.tensor([[-1.0, 1.2], [0.2, 0.9], [0.3, 700.0], [130.0, 3.1]], requires_grad=True)
    out = rounded_relu(a, scale, 255)
    expected = torch.clamp(torch.round(a.detach() / scale), 0, 255) * scale
    assert torch.equal(out, expected)
    out.sum().backward()
    assert torch.equal(a.grad, (expected > 0).float())
    assert a.grad[2, 1] == 1 and a.grad[1, 1] == 0 and a.grad[1, 0] == 0  # top clip passes; 0.9/2 rounds to 0


def test_round_trip_odd_sizes_and_modes(tiny_local):
    rng = np.random.default_rng(0)
    images = [PixelImage("RGB", smooth_image(h, w, seed=i)) for i, (h, w) in enumerate(ODD_SIZES)]
    images += [PixelImage("L", smooth_image(7, 5, 1, seed=8)), PixelImage("RGBA", smooth_image(6, 9, 4, seed=9)),
               PixelImage("LA", smooth_image(3, 4, 2, seed=10)),
               PixelImage("RGB", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)),
               PixelImage("RGB", np.zeros((4, 6, 3), np.uint8)), PixelImage("RGB", np.full((4, 6, 3), 255, np.uint8))]
    encoded = tiny_local.encode(images)
    decoded = tiny_local.decode(encoded.payloads, [_shape(im) for im in images])
    for original, image, payload, bits in zip(images, decoded, encoded.payloads, encoded.nll_bits):
        assert image.mode == original.mode and np.array_equal(image.pixels, original.pixels)
        assert len(payload) * 8 <= bits + 32 + 16  # one stream: the sealed checksum, a few bits of ending
    one_at_a_time = [tiny_local.encode([im]).payloads[0] for im in images]
    assert one_at_a_time == encoded.payloads  # a payload does not depend on the batch


def test_several_streams_large_image_and_estimate(tiny_local):
    image = PixelImage("RGB", smooth_image(70, 150, seed=3))
    assert wavefront.stream_count(70, 150, 3) > 1
    encoded = tiny_local.encode([image])
    assert np.array_equal(tiny_local.decode(encoded.payloads, [_shape(image)])[0].pixels, image.pixels)
    estimate = tiny_local.estimate_bits(image)
    assert abs(estimate - encoded.nll_bits[0]) < 0.05 * encoded.nll_bits[0]


def test_decode_with_other_batch_and_thread_count(tiny_local, monkeypatch):
    images = [PixelImage("RGB", smooth_image(10, 12, seed=s)) for s in range(6)]
    monkeypatch.setenv("NZIP_THREADS", "1")
    payloads = tiny_local.encode(images).payloads
    monkeypatch.setenv("NZIP_THREADS", "2")
    assert tiny_local.encode(images).payloads == payloads
    decoded = tiny_local.decode(payloads[::-1], [_shape(im) for im in images[::-1]])
    for original, image in zip(images[::-1], decoded):
        assert np.array_equal(original.pixels, image.pixels)


def test_corrupt_payloads_fail_their_own_image(tiny_local):
    images = [PixelImage("RGB", smooth_image(9, 9, seed=s)) for s in range(3)]
    payloads = tiny_local.encode(images).payloads
    bad = bytearray(payloads[1])
    bad[len(bad) // 2] ^= 0x10
    results = tiny_local.decode_each([payloads[0], bytes(bad), payloads[2][:-3]], [_shape(im) for im in images])
    assert np.array_equal(results[0].pixels, images[0].pixels)
    for result, original in zip(results[1:], images[1:]):  # an error, or (rarely) pixels the checksum refuses
        assert isinstance(result, PayloadError) or not np.array_equal(result.pixels, original.pixels)


def test_payloads_carry_the_checksum_sealed_in_their_first_stream(tiny_local):
    """The decoder reports the checksum the encoder sealed; a wrong seal is caught."""
    from neuralzip.coding import BatchAnsDecoder, bytes_to_stream

    images = [PixelImage("RGB", smooth_image(h, w, seed=h)) for h, w in ((1, 1), (5, 7), (70, 150))]
    shapes = [_shape(im) for im in images]
    decoded = tiny_local.decode(tiny_local.encode(images).payloads, shapes)
    for image, shape, back in zip(images, shapes, decoded):
        assert shape.seal == tiny_local.checksum(image) and np.array_equal(back.pixels, image.pixels)
    payload = tiny_local.encode(images[1:2]).payloads[0]  # one stream
    assert BatchAnsDecoder([bytes_to_stream(payload)]).seals()[0] == -1  # symbols left: no seal yet


def test_api_round_trip_and_checksum(tiny_local):
    from neuralzip import api, codecs
    from neuralzip.container import ChecksumError, FormatError

    codecs.register(tiny_local)
    image = PixelImage("RGB", smooth_image(11, 13, seed=5))
    data = api.compress(image, model="local")
    assert data[:4] == b"NZIP"  # weights that are no shipped version: named by hash (version 1)
    assert np.array_equal(api.decompress(data).pixels, image.pixels)  # its payload's seal agrees
    damaged = bytearray(data)
    damaged[-4] ^= 0x01
    with pytest.raises(FormatError):
        api.decompress(bytes(damaged))
    other_checksum = bytearray(data)
    other_checksum[13] ^= 0x01  # the header's checksum (after magic, version, id, hash, flags, sides)
    with pytest.raises(ChecksumError, match="payload's checksum differs"):
        api.decompress(bytes(other_checksum))


def test_versions_keep_old_files_decodable_and_decoding_needs_no_torch(tmp_path):
    """Export two versions of a tiny model: files of the first still decode once the second
    is the default, and decoding a local file in a fresh process never imports torch."""
    from safetensors.numpy import save_file

    from neuralzip.codecs.local import LocalCodec
    from neuralzip.registry import installed_versions, sha256_file

    models = tmp_path / "models"
    models.mkdir()
    calibration = np.stack([smooth_image(12, 12, seed=s) for s in range(4)])
    for version, seed in ((1, 0), (2, 1)):
        codec = LocalCodec.from_float(tiny_local_model(seed=seed), calibration)
        weights = models / f"local-v{version}.safetensors"
        save_file(codec.integer_tensors(), str(weights))
        card = {"name": "local", "family": "local", "codec_id": 64, "version": version,
                "config": codec.config.to_dict(), "sha256": sha256_file(weights)}
        (models / f"local-v{version}.json").write_text(__import__("json").dumps(card))
        if version == 1:
            env = {**os.environ, "NZIP_MODELS": str(models)}
            image = tmp_path / "x.png"
            from PIL import Image

            Image.fromarray(smooth_image(9, 14, seed=7)).save(image)
            subprocess.run([sys.executable, "-m", "neuralzip.cli", "compress", "-m", "local", str(image)],
                           check=True, env=env)
    assert [v.version for v in installed_versions("local", models)] == [1, 2]
    script = ("import sys, neuralzip; image = neuralzip.decompress(open(sys.argv[1], 'rb').read()); "
              "print(neuralzip.info(open(sys.argv[1], 'rb').read())['model_version'], 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "x.png.nzip")], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["local", "v1", "False"]
    assert (tmp_path / "x.png.nzip").read_bytes()[:4] == b"Nz\x40\x01"  # compact: local, version 1


def test_a_compact_file_naming_an_uninstalled_version_is_refused_by_name():
    from neuralzip import api
    from neuralzip.container import UnknownModelError

    data = b"Nz" + bytes([64, 99, 3, 4, 4]) + b"payload"  # local v99, a 4x4 RGB image
    with pytest.raises(UnknownModelError, match="v99"):
        api.decompress(data)
    assert api.info(data)["model_version"] == "local v99 (not installed)"
