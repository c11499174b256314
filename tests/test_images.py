"""Reading and writing images: exact samples for every mode, clear errors for bad input."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from neuralzip.images import ImageError, PixelImage, decode_image_bytes, pixel_checksum, png_bytes, read_image, write_atomic


def _png(im: Image.Image, **kw) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, "PNG", **kw)
    return buffer.getvalue()


@pytest.mark.parametrize("mode,shape,dtype", [
    ("RGB", (9, 7, 3), np.uint8), ("RGBA", (9, 7, 4), np.uint8), ("L", (9, 7), np.uint8),
    ("LA", (9, 7, 2), np.uint8), ("I;16", (9, 7), np.uint16),
])
def test_modes_round_trip(mode, shape, dtype):
    rng = np.random.default_rng(0)
    array = rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
    im = Image.fromarray(array) if mode != "LA" else Image.frombuffer("LA", shape[1::-1], array.tobytes(), "raw", "LA", 0, 1)
    image = decode_image_bytes(_png(im))
    assert image.mode == mode
    again = decode_image_bytes(png_bytes(image))
    assert again.mode == mode and np.array_equal(again.pixels, image.pixels)
    assert pixel_checksum(again) == pixel_checksum(image)


def test_palette_and_bilevel_round_trip():
    rng = np.random.default_rng(1)
    palette = Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).convert("P", palette=Image.ADAPTIVE, colors=8)
    for im, kw in ((palette, {"transparency": 2}), (Image.fromarray(rng.random((6, 5)) > 0.5), {})):
        image = decode_image_bytes(_png(im, **kw))
        again = decode_image_bytes(png_bytes(image))
        assert again.mode == image.mode and np.array_equal(again.pixels, image.pixels)
        assert pixel_checksum(again) == pixel_checksum(image)


def test_checksum_sees_every_sample():
    image = PixelImage.from_array(np.zeros((4, 4, 3), np.uint8))
    changed = PixelImage.from_array(image.pixels.copy())
    changed.pixels[3, 3, 2] = 1
    assert pixel_checksum(image) != pixel_checksum(changed)


def test_bad_inputs_give_one_line_errors(tmp_path):
    good = _png(Image.fromarray(np.zeros((8, 8, 3), np.uint8)))
    cases = {
        "missing.png": None,
        "text.png": b"this is not an image\n",
        "empty.png": b"",
        "truncated.png": good[: len(good) // 2],
    }
    bad_crc = bytearray(good)
    bad_crc[29] ^= 0xFF  # inside the IHDR CRC
    cases["badcrc.png"] = bytes(bad_crc)
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(ImageError) as info:
            read_image(path)
        assert "\n" not in str(info.value) and name in str(info.value)
    with pytest.raises(ImageError, match="directory"):
        read_image(tmp_path)


def test_pixel_limit_and_16_bit_colour_refused():
    big = _png(Image.fromarray(np.zeros((100, 100, 3), np.uint8)))
    with pytest.raises(ImageError, match="pixels"):
        decode_image_bytes(big, max_pixels=5000)
    # A 16-bit RGB PNG, written by hand (Pillow cannot write one): refused, not reduced.
    raw = b"".join(b"\x00" + bytes(6 * 2) for _ in range(2))
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    png16 = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 16, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    with pytest.raises(ImageError, match="16-bit"):
        decode_image_bytes(png16)


def test_write_atomic_never_overwrites_without_permission(tmp_path):
    target = tmp_path / "out.bin"
    write_atomic(target, b"first")
    with pytest.raises(FileExistsError):
        write_atomic(target, b"second")
    assert target.read_bytes() == b"first"
    write_atomic(target, b"second", overwrite=True)
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_write_atomic_leaves_nothing_on_failure(tmp_path, monkeypatch):
    import os

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_atomic(tmp_path / "out.bin", b"data")
    assert list(tmp_path.iterdir()) == []
