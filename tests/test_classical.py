"""Classical codecs behind the codec interface: exact round trips for the modes they code."""

import numpy as np
import pytest

from neuralzip import codecs
from neuralzip.codecs.base import ImageShape, PayloadError, UnsupportedImageError
from neuralzip.images import PixelImage

from .conftest import smooth_image


def _images():
    rgb = smooth_image(13, 21)
    return {
        "RGB": PixelImage("RGB", rgb),
        "L": PixelImage("L", rgb[:, :, :1].copy()),
        "RGBA": PixelImage("RGBA", np.concatenate([rgb, rgb[:, :, :1] // 3], axis=2)),
        "LA": PixelImage("LA", np.ascontiguousarray(rgb[:, :, :2])),
        "I;16": PixelImage("I;16", (rgb[:, :, :1].astype(np.uint16) * 257 + 3)),
        "RGB;16": PixelImage("RGB;16", rgb.astype(np.uint16) * 251 + 7),
        "RGBA;16": PixelImage("RGBA;16", np.concatenate([rgb, rgb[:, :, :1]], axis=2).astype(np.uint16) * 255 + 1),
        "LA;16": PixelImage("LA;16", np.ascontiguousarray(rgb[:, :, :2]).astype(np.uint16) * 199),
    }


@pytest.mark.parametrize("name", ["png", "webp", "jxl", "j2k"])
def test_round_trip(name):
    codec = codecs.get_codec(name)
    for mode, image in _images().items():
        if not codec.supports(image):
            with pytest.raises(UnsupportedImageError):
                codec.encode([image])
            continue
        payload = codec.encode([image]).payloads[0]
        decoded = codec.decode([payload], [ImageShape(mode, image.width, image.height)])[0]
        assert decoded.mode == mode and np.array_equal(decoded.pixels, image.pixels), (name, mode)


def test_webp_keeps_colour_under_transparent_pixels():
    rgba = np.concatenate([smooth_image(8, 8), np.zeros((8, 8, 1), np.uint8)], axis=2)
    codec = codecs.get_codec("webp")
    payload = codec.encode([PixelImage("RGBA", rgba)]).payloads[0]
    assert np.array_equal(codec.decode([payload], [ImageShape("RGBA", 8, 8)])[0].pixels, rgba)


@pytest.mark.parametrize("name", ["png", "webp", "jxl", "j2k"])
def test_garbage_payload_is_an_error(name):
    with pytest.raises(PayloadError):
        codecs.get_codec(name).decode([b"\x00garbage" * 3], [ImageShape("RGB", 4, 4)])


def test_jpeg_inputs_come_back_as_the_identical_file(tmp_path, monkeypatch):
    """A JPEG is kept as its file: smaller than the JPEG, the same bytes restored."""
    import io

    from click.testing import CliRunner
    from PIL import Image

    from neuralzip.cli import main

    from .conftest import smooth_image

    monkeypatch.chdir(tmp_path)
    Image.fromarray(smooth_image(96, 128, seed=3)).save("photo.jpg", quality=90, comment=b"kept too")
    original = (tmp_path / "photo.jpg").read_bytes()
    runner = CliRunner()
    assert runner.invoke(main, ["compress", "-m", "png", "photo.jpg"]).exit_code == 1  # the comment: refused
    result = runner.invoke(main, ["compress", "-v", "photo.jpg"])
    assert result.exit_code == 0 and "auto chose jpeg" in result.stderr
    assert (tmp_path / "photo.jpg.nzip").stat().st_size < len(original)
    (tmp_path / "photo.jpg").rename(tmp_path / "original.jpg")
    assert runner.invoke(main, ["decompress", "photo.jpg.nzip"]).exit_code == 0
    assert (tmp_path / "photo.jpg").read_bytes() == original
    result = runner.invoke(main, ["compress", "-f", "--pixels", "--strip", "-m", "png", "original.jpg"])
    assert result.exit_code == 0 and "stripped comment" in result.stderr
    assert Image.open(io.BytesIO((tmp_path / "photo.jpg").read_bytes())).size == (128, 96)
