"""Everything that changes how an image displays survives a round trip: ICC profiles, EXIF,
XMP, text chunks, gamma/chromaticities, resolution, background and transparency keys in
every mode and bit depth; --strip drops them and says so; what cannot be kept is refused."""

import io
import struct
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, PngImagePlugin

import neuralzip
from neuralzip.cli import main
from neuralzip.images import decode_image_bytes, png_bytes
from neuralzip.metadata import png_chunks, splice


def _chunk(kind: bytes, body: bytes) -> tuple[bytes, bytes]:
    return kind, body


EXTRA = (_chunk(b"gAMA", struct.pack(">I", 45455)), _chunk(b"cHRM", bytes(32)),
         _chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(b"not really a profile" * 20)),
         _chunk(b"pHYs", struct.pack(">IIB", 11811, 11811, 1)), _chunk(b"tEXt", b"Author\x00someone"),
         _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"a long comment " * 30)),
         _chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00<x:xmpmeta/>"), _chunk(b"eXIf", b"MM\x00*\x00\x00\x00\x08\x00\x00"))


def _png(pixels: np.ndarray, mode: str, extra) -> bytes:
    """A PNG written by Pillow (8-bit) or libpng (16-bit), with ``extra`` chunks spliced in."""
    if pixels.dtype == np.uint16 and mode != "I;16":
        import imagecodecs

        data = bytes(imagecodecs.png_encode(pixels))
    else:
        buffer = io.BytesIO()
        Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(buffer, "PNG")
        data = buffer.getvalue()
    return splice(data, tuple(extra))


def _ancillary(data: bytes):
    return [(k, b) for k, b in png_chunks(data) if k not in (b"IHDR", b"PLTE", b"IDAT", b"IEND")]


rng = np.random.default_rng(0)
CASES = {
    "L": (rng.integers(0, 256, (6, 7, 1), dtype=np.uint8), "L", struct.pack(">H", 17)),
    "RGB": (rng.integers(0, 256, (6, 7, 3), dtype=np.uint8), "RGB", struct.pack(">HHH", 1, 2, 3)),
    "I;16": (rng.integers(0, 65536, (5, 4, 1), dtype=np.uint16), "I;16", struct.pack(">H", 40000)),
    "RGB;16": (rng.integers(0, 65536, (5, 4, 3), dtype=np.uint16), "RGB;16", struct.pack(">HHH", 9, 60000, 3)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("codec", ["png", "jxl", "j2k"])
def test_metadata_and_transparency_keys_round_trip(case, codec):
    pixels, mode, key = CASES[case]
    data = _png(pixels, mode, EXTRA + ((b"tRNS", key), (b"bKGD", key)))
    image = decode_image_bytes(data)
    assert image.dropped_metadata == [] and len(image.metadata) == len(EXTRA) + 2
    nz = neuralzip.compress(image, model=codec)
    assert nz[:2] == b"Nz" and nz[4] & 0x40  # a compact file with its metadata bit
    back = neuralzip.decompress(nz)
    assert np.array_equal(back.pixels, image.pixels) and back.metadata == image.metadata
    restored = png_bytes(back)
    assert _ancillary(restored) == _ancillary(data)  # every chunk, byte for byte, in order
    if case in ("L", "RGB"):  # Pillow shows the transparency key it reads back
        assert Image.open(io.BytesIO(restored)).info["transparency"] is not None


def test_metadata_is_covered_by_the_checksum():
    pixels, mode, key = CASES["RGB"]
    image = decode_image_bytes(_png(pixels, mode, EXTRA))
    nz = bytearray(neuralzip.compress(image, model="png"))
    at = bytes(nz).index(b"someone")
    nz[at] ^= 1
    with pytest.raises(neuralzip.container.FormatError, match="checksum"):
        neuralzip.decompress(bytes(nz))


def test_cli_keeps_metadata_and_strip_drops_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "kept")
    Image.fromarray(CASES["RGB"][0]).save("a.png", pnginfo=info, icc_profile=b"\x00icc" * 40)
    runner = CliRunner()
    assert runner.invoke(main, ["compress", "-m", "png", "a.png"]).exit_code == 0
    assert "keeps ICC profile, text" in runner.invoke(main, ["info", "a.png.nzip"]).output
    assert runner.invoke(main, ["decompress", "a.png.nzip", "-o", "b.png"]).exit_code == 0
    restored = Image.open("b.png")
    assert restored.text == {"Title": "kept"} and restored.info["icc_profile"] == b"\x00icc" * 40
    result = runner.invoke(main, ["compress", "-m", "png", "--strip", "-f", "a.png"])
    assert result.exit_code == 0 and "stripped ICC profile, text (--strip)" in result.stderr
    assert "keeps" not in runner.invoke(main, ["info", "a.png.nzip"]).output


def test_what_cannot_be_kept_is_refused_unless_stripped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(CASES["RGB"][0]).save("c.jpg", quality=95, comment=b"a JPEG comment")
    runner = CliRunner()
    result = runner.invoke(main, ["compress", "-m", "png", "c.jpg"])
    assert result.exit_code == 1 and "comment" in result.stderr and "--strip" in result.stderr
    assert runner.invoke(main, ["compress", "-m", "png", "--strip", "c.jpg"]).exit_code == 0


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_low_bit_depth_grey_keys_keep_marking_the_same_pixels(bits):
    """The key is in the file's sample units: the restored PNG must mark the same pixels."""
    levels = (1 << bits) - 1
    raw = (np.arange(48).reshape(6, 8) % (levels + 1)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(raw * (255 // levels)).save(buffer, "PNG", bits=bits)
    key = levels // 2 if levels > 1 else 1
    data = splice(buffer.getvalue(), ((b"tRNS", struct.pack(">H", key)),))
    back = neuralzip.decompress(neuralzip.compress(decode_image_bytes(data), model="png"))
    restored = png_bytes(back)
    depth = restored[24]
    (stored_key,) = struct.unpack(">H", dict(png_chunks(restored))[b"tRNS"])
    samples = np.asarray(Image.open(io.BytesIO(restored))).astype(np.int64)
    if depth == 1:
        samples = samples.astype(np.int64)  # mode "1": 0/1 samples
    assert np.array_equal(samples == stored_key, raw == key)


def test_animations_are_refused_unless_the_first_frame_is_asked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    frames = [Image.fromarray(CASES["RGB"][0] // (k + 1)) for k in range(3)]
    frames[0].save("anim.png", save_all=True, append_images=frames[1:])
    runner = CliRunner()
    result = runner.invoke(main, ["compress", "-m", "png", "anim.png"])
    assert result.exit_code == 1 and "has 3 frames" in result.stderr and "--first-frame" in result.stderr
    result = runner.invoke(main, ["compress", "-m", "png", "--first-frame", "anim.png"])
    assert result.exit_code == 0 and "left out 2 (--first-frame)" in result.stderr
    assert runner.invoke(main, ["decompress", "anim.png.nzip", "-o", "first.png"]).exit_code == 0
    assert np.array_equal(np.asarray(Image.open("first.png")), CASES["RGB"][0])
    assert all(kind not in (b"acTL", b"fcTL", b"fdAT") for kind, _ in png_chunks((tmp_path / "first.png").read_bytes()))
