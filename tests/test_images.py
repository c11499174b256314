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


def test_pixel_limit():
    big = _png(Image.fromarray(np.zeros((100, 100, 3), np.uint8)))
    with pytest.raises(ImageError, match="pixels"):
        decode_image_bytes(big, max_pixels=5000)


def _png16_by_hand(samples: np.ndarray) -> bytes:
    """A 16-bit PNG written without any imaging library (filter 0 on every row)."""
    h, w, c = samples.shape
    colour_type = {2: 4, 3: 2, 4: 6}[c]
    rows = samples.astype(">u2").reshape(h, w * c)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _unpng16_by_hand(data: bytes) -> np.ndarray:
    """An independent 16-bit PNG decoder (zlib + the five PNG filters), for checking."""
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    w, h, depth, colour_type = header[:4]
    assert depth == 16 and header[6] == 0
    c = {4: 2, 2: 3, 6: 4}[colour_type]
    stride, bpp = w * c * 2, c * 2
    raw = zlib.decompress(idat)
    out = np.zeros((h, stride), dtype=np.int64)
    prior = np.zeros(stride, dtype=np.int64)
    for y in range(h):
        kind = raw[y * (stride + 1)]
        line = np.frombuffer(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)], np.uint8).astype(np.int64)
        cur = np.zeros(stride, dtype=np.int64)
        for x in range(stride):
            a = cur[x - bpp] if x >= bpp else 0
            b = prior[x]
            cc = prior[x - bpp] if x >= bpp else 0
            if kind == 0:
                pred = 0
            elif kind == 1:
                pred = a
            elif kind == 2:
                pred = b
            elif kind == 3:
                pred = (a + b) // 2
            else:
                p = a + b - cc
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
            cur[x] = (line[x] + pred) & 0xFF
        out[y], prior = cur, cur
    return (out[:, 0::2] * 256 + out[:, 1::2]).reshape(h, w, c).astype(np.uint16)


@pytest.mark.parametrize("channels,mode", [(2, "LA;16"), (3, "RGB;16"), (4, "RGBA;16")])
def test_16_bit_colour_keeps_every_bit(channels, mode):
    samples = np.random.default_rng(channels).integers(0, 65536, (5, 6, channels)).astype(np.uint16)
    samples[0, 0] = 1  # low bits that an 8-bit reduction would lose
    image = decode_image_bytes(_png16_by_hand(samples))
    assert image.mode == mode and image.pixels.dtype == np.uint16
    assert np.array_equal(image.pixels, samples)
    written = png_bytes(image)
    assert np.array_equal(_unpng16_by_hand(written), samples)  # checked by an independent decoder


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
