"""PixelCNN++ codec: exact round trips at odd sizes, independence from batch size and thread
count (the shipped weights: tests/test_shipped_models.py)."""

import numpy as np
import pytest
import torch

from neuralzip import api, codecs
from neuralzip.codecs.base import ImageShape, PayloadError
from neuralzip.images import PixelImage

from .conftest import smooth_image


def _shapes(images):
    return [ImageShape(im.mode, im.width, im.height) for im in images]


def test_round_trip_odd_sizes(tiny_pixelcnn):
    images = [PixelImage("RGB", smooth_image(h, w, seed=h * w)) for h, w in [(1, 1), (1, 9), (5, 7), (33, 17), (32, 32)]]
    encoded = tiny_pixelcnn.encode(images)
    decoded = tiny_pixelcnn.decode(encoded.payloads, _shapes(images))
    for original, image in zip(images, decoded):
        assert np.array_equal(original.pixels, image.pixels)
    # the payload is the model's ideal code length plus a few bytes per 32x32 tile
    for payload, bits, image in zip(encoded.payloads, encoded.nll_bits, images):
        tiles = -(-image.height // 32) * -(-image.width // 32)
        assert bits / 8 <= len(payload) <= bits / 8 + 6 * tiles + 2


def test_batch_size_and_threads_do_not_change_anything(tiny_pixelcnn):
    images = [PixelImage("RGB", smooth_image(16, 16, seed=s)) for s in range(5)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        together = tiny_pixelcnn.encode(images).payloads
        torch.set_num_threads(2)
        alone = [tiny_pixelcnn.encode([im]).payloads[0] for im in images]
        assert together == alone
        decoded_in_pairs = tiny_pixelcnn.decode(together[:2], _shapes(images[:2])) + \
            tiny_pixelcnn.decode(together[2:], _shapes(images[2:]))
        torch.set_num_threads(1)
        decoded_all = tiny_pixelcnn.decode(together, _shapes(images))
    finally:
        torch.set_num_threads(threads)
    for original, a, b in zip(images, decoded_in_pairs, decoded_all):
        assert np.array_equal(original.pixels, a.pixels) and np.array_equal(original.pixels, b.pixels)


def test_damaged_payload_never_decodes_silently(tiny_pixelcnn):
    codecs.register(tiny_pixelcnn)
    image = PixelImage("RGB", smooth_image(8, 8))
    data = bytearray(api.compress(image, model="pixelcnn"))
    rng = np.random.default_rng(0)
    for _ in range(5):
        broken = bytearray(data)
        position = int(rng.integers(19, len(broken)))
        broken[position] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(Exception) as info:
            api.decompress(bytes(broken))
        assert type(info.value).__name__ in ("CorruptError", "ChecksumError", "TruncatedError")


def test_unsupported_modes_are_refused(tiny_pixelcnn):
    from neuralzip.codecs.base import UnsupportedImageError

    for image in (PixelImage("P", np.zeros((4, 4, 1), np.uint8)), PixelImage("I;16", np.zeros((4, 4, 1), np.uint16)),
                  PixelImage("RGB;16", np.zeros((4, 4, 3), np.uint16))):
        with pytest.raises(UnsupportedImageError):
            tiny_pixelcnn.check(image)


def test_bad_tile_table_is_a_payload_error(tiny_pixelcnn):
    with pytest.raises(PayloadError):
        tiny_pixelcnn.decode([b"\xff\xff\xff\xff\xff\xff"], [ImageShape("RGB", 40, 40)])


@pytest.mark.parametrize("mode,channels", [("L", 1), ("LA", 2), ("RGBA", 4)])
def test_grey_and_alpha_round_trip(tiny_pixelcnn, mode, channels):
    pixels = smooth_image(11, 37, channels=channels, seed=channels)
    image = PixelImage(mode, pixels)
    encoded = tiny_pixelcnn.encode([image])
    decoded = tiny_pixelcnn.decode(encoded.payloads, _shapes([image]))[0]
    assert decoded.mode == mode and np.array_equal(decoded.pixels, pixels)


def test_large_image_uses_many_recorded_tiles(tiny_pixelcnn):
    from neuralzip.codecs.pixelcnn import tile_grid, tile_side

    image = PixelImage("RGB", smooth_image(260, 263, seed=9))
    side = tile_side(260, 263)
    assert side == 64 and len(tile_grid(260, 263, side)) == 25
    payload = tiny_pixelcnn.encode([image]).payloads[0]
    assert payload[0] * 4 == side  # the tile layout is recorded in the payload
    decoded = tiny_pixelcnn.decode([payload], _shapes([image]))[0]
    assert np.array_equal(decoded.pixels, image.pixels)
