"""Bits-back VAE codec: exact chains of many images, seed stripping, ELBO as code length."""

import math

import numpy as np
import torch

from neuralzip import api, codecs
from neuralzip.codecs.base import ImageShape, PayloadError
from neuralzip.images import PixelImage

from .conftest import smooth_image


def _shapes(images):
    return [ImageShape(im.mode, im.width, im.height) for im in images]


def test_chain_round_trip_any_sizes(tiny_vae):
    _, codec = tiny_vae
    images = [PixelImage("RGB", smooth_image(h, w, seed=h * w)) for h, w in [(32, 32), (5, 7), (40, 33), (32, 32)]]
    encoded = codec.encode(images)
    assert len(encoded.payloads) == 1
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        decoded = codec.decode(encoded.payloads, _shapes(images))
    finally:
        torch.set_num_threads(threads)
    for original, image in zip(images, decoded):
        assert np.array_equal(original.pixels, image.pixels)


def test_several_chains_round_trip_with_another_thread_count(tiny_vae, monkeypatch):
    """Large archives split into chains coded as one batch: uneven chains, a different
    thread count for decoding, exact."""
    from neuralzip.codecs import bitsback

    _, codec = tiny_vae
    monkeypatch.setattr(bitsback, "TILES_PER_CHAIN", 2)
    images = [PixelImage("RGB", smooth_image(h, w, seed=h + w)) for h, w in [(32, 32), (40, 33), (32, 32), (9, 70)]]
    encoded = codec.encode(images)  # 1 + 4 + 1 + 3 = 9 tiles: 4 chains of 2 or 3 tiles
    assert encoded.payloads[0][0] == 4
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if threads > 1 else 2)
        decoded = codec.decode(encoded.payloads, _shapes(images))
    finally:
        torch.set_num_threads(threads)
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(images, decoded))
    payload = bytearray(encoded.payloads[0])
    payload[0] = 9  # more chains than tiles
    try:
        codec.decode([bytes(payload)], _shapes(images))
        raise AssertionError("a wrong chain count decoded")
    except PayloadError:
        pass


def test_chained_cost_is_the_elbo_and_first_image_pays_initial_bits(tiny_vae):
    model, codec = tiny_vae
    images = [PixelImage("RGB", smooth_image(32, 32, seed=s)) for s in range(6)]
    one = len(codec.encode(images[:1]).payloads[0])
    six = len(codec.encode(images).payloads[0])
    with torch.no_grad():
        elbo_bytes = float(model.nll_nats(torch.from_numpy(np.stack([im.pixels for im in images]))).mean()) / math.log(2) / 8
    per_image_chained = (six - one) / 5
    assert per_image_chained < one  # later images get their bits back
    assert abs(per_image_chained - elbo_bytes) < 0.03 * elbo_bytes


def test_archive_through_api_keeps_order_and_names(tiny_vae):
    _, codec = tiny_vae
    codecs.register(codec)
    images = [PixelImage("RGB", smooth_image(32, 32, seed=s)) for s in range(3)]
    result = api.compress_archive(images, ["a.png", "b.png", "c.png"], model="vae")
    back = api.decompress_all(result.data)
    assert [name for name, _ in back] == ["a.png", "b.png", "c.png"]
    assert all(np.array_equal(a.pixels, b.pixels) for a, (_, b) in zip(images, back))
    single = api.compress(images[0], model="vae")
    assert np.array_equal(api.decompress(single).pixels, images[0].pixels)


def test_corruption_is_detected(tiny_vae):
    _, codec = tiny_vae
    images = [PixelImage("RGB", smooth_image(32, 32, seed=s)) for s in range(2)]
    payload = bytearray(codec.encode(images).payloads[0])
    payload[len(payload) // 3] ^= 0x08
    try:
        decoded = codec.decode([bytes(payload)], _shapes(images))
    except PayloadError:
        return
    assert not all(np.array_equal(a.pixels, b.pixels) for a, b in zip(images, decoded))
