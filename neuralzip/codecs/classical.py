"""Classical lossless codecs behind the codec interface: PNG, WebP, JPEG-XL, JPEG 2000.

The payload is the codec's own file (a .png, .webp, .jxl or .j2k stream), so a payload can
be extracted and opened by any other tool. Settings are the strongest lossless ones:
PNG with ``optimize``; WebP lossless, quality 100, method 6, ``exact`` (keeps colour under
transparent pixels); JPEG-XL lossless, effort 9; JPEG 2000 reversible 5/3 wavelet with the
reversible colour transform.

Modes: each codec codes the modes its format stores exactly; grey images go to WebP and
JPEG-XL (through Pillow) as RGB with three equal channels, which decodes back to grey
exactly. 16-bit samples (I;16, LA;16, RGB;16, RGBA;16) go through imagecodecs (libpng,
libjxl, OpenJPEG), never through an 8-bit path.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ..images import ImageError, PixelImage, decode_image_bytes, png_bytes, to_pil
from .base import Codec, Encoded, ImageShape, PayloadError, UnsupportedImageError


def _check_mode(codec: Codec, image: PixelImage, modes: tuple[str, ...]) -> None:
    if image.mode not in modes:
        raise UnsupportedImageError(f"{codec.name} cannot code {image.mode} images losslessly (it codes {', '.join(modes)})")


def _expect_size(codec: Codec, width: int, height: int, shape: ImageShape) -> None:
    """Checked before decoding, so a payload cannot make us allocate a huge image."""
    if (width, height) != (shape.width, shape.height):
        raise PayloadError(f"{codec.name} payload is {width}x{height}, the container says {shape.width}x{shape.height}")


def _j2k_size(payload: bytes) -> tuple[int, int, int]:
    """(width, height, components) from a JPEG 2000 codestream's SIZ marker."""
    import struct

    if len(payload) < 42 or payload[:4] != b"\xff\x4f\xff\x51":
        raise PayloadError("j2k payload is not a JPEG 2000 codestream")
    xsiz, ysiz, xosiz, yosiz = struct.unpack(">IIII", payload[8:24])
    components = struct.unpack(">H", payload[40:42])[0]
    if xsiz <= xosiz or ysiz <= yosiz:
        raise PayloadError("j2k payload has an empty image area")
    return xsiz - xosiz, ysiz - yosiz, components


def _decoded(codec: Codec, image: PixelImage, shape: ImageShape) -> PixelImage:
    if image.mode != shape.mode or (image.width, image.height) != (shape.width, shape.height):
        raise PayloadError(f"{codec.name} payload decodes to {image.mode} {image.width}x{image.height}, "
                           f"expected {shape.mode} {shape.width}x{shape.height}")
    return image


WIDE = ("I;16", "LA;16", "RGB;16", "RGBA;16")  # 16-bit samples, coded through imagecodecs


class PngCodec(Codec):
    name, codec_id, description = "png", 1, "PNG (Pillow, optimize)"
    MODES = ("1", "L", "LA", "RGB", "RGBA", "P") + WIDE

    def check(self, image):
        _check_mode(self, image, self.MODES)

    def encode(self, images):
        for image in images:
            self.check(image)
        return Encoded([png_bytes(image, optimize=True) for image in images])

    def decode(self, payloads, shapes):
        out = []
        for payload, shape in zip(payloads, shapes):
            try:
                image = decode_image_bytes(payload, "png payload", max_pixels=shape.width * shape.height)
            except ImageError as error:
                raise PayloadError(str(error)) from None
            out.append(_decoded(self, image, shape))
        return out


class _PillowCodec(Codec):
    """Codecs saved and opened through Pillow; grey (+alpha) travels as RGB(A)."""

    FORMAT = ""
    MODES = ("L", "LA", "RGB", "RGBA")
    OPTIONS: dict = {}
    ESTIMATE_OPTIONS: dict = {}  # overrides for size estimates of samples (auto): much faster, about as small

    def check(self, image):
        _check_mode(self, image, self.MODES)

    def estimate_payload(self, image: PixelImage) -> bytes:
        """The image coded with ``ESTIMATE_OPTIONS`` (auto compares such sizes of a sample
        between codecs; never stored)."""
        self.check(image)
        buffer = io.BytesIO()
        self._carrier(image).save(buffer, format=self.FORMAT, **{**self.OPTIONS, **self.ESTIMATE_OPTIONS})
        return buffer.getvalue()

    def _carrier(self, image: PixelImage) -> Image.Image:
        pixels = image.pixels
        if image.mode == "L":
            pixels = np.repeat(pixels, 3, axis=2)
        elif image.mode == "LA":
            pixels = np.concatenate([np.repeat(pixels[:, :, :1], 3, axis=2), pixels[:, :, 1:]], axis=2)
        mode = "RGBA" if pixels.shape[2] == 4 else "RGB"
        return to_pil(PixelImage(mode, np.ascontiguousarray(pixels)))

    def encode(self, images):
        payloads = []
        for image in images:
            self.check(image)
            buffer = io.BytesIO()
            self._carrier(image).save(buffer, format=self.FORMAT, **self.OPTIONS)
            payloads.append(buffer.getvalue())
        return Encoded(payloads)

    def decode(self, payloads, shapes):
        out = []
        for payload, shape in zip(payloads, shapes):
            try:
                with Image.open(io.BytesIO(payload)) as im:
                    _expect_size(self, im.width, im.height, shape)
                    im.load()
                    # the carrier the header's mode needs (a damaged file may hold another)
                    carrier = np.asarray(im.convert("RGBA" if shape.mode in ("RGBA", "LA") else "RGB"))
            except PayloadError:
                raise
            except Exception as error:  # the plugins raise a variety of types on bad data
                raise PayloadError(f"{self.name} payload does not decode ({type(error).__name__})") from None
            out.append(_decoded(self, self._from_carrier(carrier, shape), shape))
        return out

    @staticmethod
    def _from_carrier(pixels: np.ndarray, shape: ImageShape) -> PixelImage:
        if shape.mode == "L":
            return PixelImage("L", np.ascontiguousarray(pixels[:, :, :1]))
        if shape.mode == "LA":
            return PixelImage("LA", np.ascontiguousarray(pixels[:, :, [0, 3]]))
        if shape.mode == "RGB":
            return PixelImage("RGB", np.ascontiguousarray(pixels[:, :, :3]))
        return PixelImage(shape.mode, np.ascontiguousarray(pixels))


class WebpCodec(_PillowCodec):
    name, codec_id, description = "webp", 2, "WebP lossless (quality 100, method 6)"
    FORMAT = "WEBP"
    OPTIONS = {"lossless": True, "quality": 100, "method": 6, "exact": True}
    # method 6 spends ~7 s on any image, even a 192x192 crop; method 4 codes such a crop in
    # ~0.1 s and within ~1% of method 6's size
    ESTIMATE_OPTIONS = {"method": 4}


class JxlCodec(_PillowCodec):
    name, codec_id, description = "jxl", 3, "JPEG-XL lossless (effort 9)"
    FORMAT = "JXL"
    OPTIONS = {"lossless": True, "effort": 9, "use_container": False}
    MODES = _PillowCodec.MODES + WIDE

    def __init__(self):
        import imagecodecs
        import pillow_jxl  # noqa: F401 (registers the JXL format with Pillow)

        self._codecs = imagecodecs

    def encode(self, images):
        wide = [im.mode in WIDE for im in images]
        if not any(wide):
            return super().encode(images)
        return Encoded([self._encode_wide(im) if w else super().encode([im]).payloads[0] for im, w in zip(images, wide)])

    def _encode_wide(self, image: PixelImage) -> bytes:
        pixels = image.pixels[:, :, 0] if image.channels == 1 else image.pixels
        return bytes(self._codecs.jpegxl_encode(np.ascontiguousarray(pixels), lossless=True, effort=9))

    def decode(self, payloads, shapes):
        out = []
        for payload, shape in zip(payloads, shapes):
            if shape.mode not in WIDE:
                out += super().decode([payload], [shape])
                continue
            try:
                with Image.open(io.BytesIO(payload)) as im:  # reads the header only
                    _expect_size(self, im.width, im.height, shape)
                pixels = np.asarray(self._codecs.jpegxl_decode(payload))
            except PayloadError:
                raise
            except Exception as error:
                raise PayloadError(f"jxl payload does not decode ({type(error).__name__})") from None
            pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
            out.append(_decoded(self, PixelImage(shape.mode, np.ascontiguousarray(pixels.astype(np.uint16))), shape))
        return out


class J2kCodec(Codec):
    name, codec_id, description = "j2k", 4, "JPEG 2000 reversible with colour transform (OpenJPEG)"
    MODES = ("L", "LA", "RGB", "RGBA") + WIDE

    def __init__(self):
        import imagecodecs

        self._codecs = imagecodecs

    def check(self, image):
        _check_mode(self, image, self.MODES)

    def encode(self, images):
        payloads = []
        for image in images:
            self.check(image)
            pixels = image.pixels[:, :, 0] if image.channels == 1 else image.pixels
            payloads.append(bytes(self._codecs.jpeg2k_encode(
                np.ascontiguousarray(pixels), level=0, reversible=True, mct=image.channels >= 3, codecformat="j2k")))
        return Encoded(payloads)

    def decode(self, payloads, shapes):
        out = []
        for payload, shape in zip(payloads, shapes):
            width, height, components = _j2k_size(payload)
            _expect_size(self, width, height, shape)
            if components > 4:
                raise PayloadError(f"j2k payload has {components} components")
            try:
                pixels = np.asarray(self._codecs.jpeg2k_decode(payload))
            except Exception as error:
                raise PayloadError(f"j2k payload does not decode ({type(error).__name__})") from None
            if pixels.ndim == 2:
                pixels = pixels[:, :, None]
            dtype = np.uint16 if shape.mode in WIDE else np.uint8
            out.append(_decoded(self, PixelImage(shape.mode, np.ascontiguousarray(pixels.astype(dtype))), shape))
        return out
