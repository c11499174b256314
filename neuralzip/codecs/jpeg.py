"""Lossless JPEG transcoding: a JPEG input is kept as its file, not as its pixels.

Storing a JPEG's decoded pixels losslessly makes the file about three times larger and loses
the original file. JPEG-XL can instead re-encode the JPEG's own coefficients losslessly and
give back the identical .jpg bytes (``jpegxl_encode_jpeg`` / ``jpegxl_decode_jpeg`` of
imagecodecs, libjxl), typically 15-20% smaller than the JPEG.

Guarantees: the payload is a JPEG-XL codestream with JPEG reconstruction data; decoding it
returns the original JPEG byte for byte (checked when encoding: a JPEG that libjxl cannot
reconstruct exactly is refused, so ``auto`` uses another codec). The entry's checksum is
the CRC-32 of the JPEG file itself (:meth:`JpegCodec.checksum`), so the check does not
depend on any JPEG decoder's pixels. Decoded images carry the original bytes
(``PixelImage.original``), which ``nzip decompress`` writes as the restored ``.jpg``; their
pixels are the JPEG decoded by Pillow, for API users who want pixels.
"""

from __future__ import annotations

import io
import zlib

import numpy as np

from ..images import ImageError, PixelImage, decode_image_bytes
from .base import Codec, Encoded, ImageShape, PayloadError, UnsupportedImageError


class JpegCodec(Codec):
    name, codec_id, kind = "jpeg", 5, "classical"
    description = "JPEG input kept as its file: JPEG-XL lossless transcoding, the original .jpg restored byte for byte"
    keeps_file = True

    def check(self, image: PixelImage) -> None:
        if image.original_format != "jpeg" or image.original is None:
            raise UnsupportedImageError("jpeg codes JPEG files (as files), not pixels")

    def checksum(self, image: PixelImage) -> int:
        """CRC-32 of the JPEG file (the bytes restored), not of decoded pixels."""
        return zlib.crc32(b"JPEG:" + image.original) & 0xFFFFFFFF

    def encode(self, images: list[PixelImage]) -> Encoded:
        import imagecodecs

        payloads = []
        for image in images:
            self.check(image)
            try:
                payload = bytes(imagecodecs.jpegxl_encode_jpeg(image.original))
                exact = bytes(imagecodecs.jpegxl_decode_jpeg(payload)) == image.original
            except Exception as error:  # libjxl refuses some JPEGs (arithmetic coding, odd markers)
                raise UnsupportedImageError(f"jpeg: this JPEG cannot be transcoded losslessly ({type(error).__name__})") from None
            if not exact:
                raise UnsupportedImageError("jpeg: this JPEG does not reconstruct exactly; its pixels are coded instead")
            payloads.append(payload)
        return Encoded(payloads)

    def decode(self, payloads: list[bytes], shapes: list[ImageShape]) -> list[PixelImage]:
        import imagecodecs

        out = []
        for payload, shape in zip(payloads, shapes):
            try:
                original = bytes(imagecodecs.jpegxl_decode_jpeg(payload))
            except Exception as error:
                raise PayloadError(f"jpeg payload does not decode ({type(error).__name__})") from None
            try:
                image = decode_image_bytes(original, "restored JPEG", shape.width * shape.height)
            except ImageError as error:
                raise PayloadError(f"jpeg payload restores a broken JPEG ({error})") from None
            if (image.mode, image.width, image.height) != (shape.mode, shape.width, shape.height):
                raise PayloadError(f"jpeg payload restores a {image.mode} {image.width}x{image.height} JPEG, "
                                   f"expected {shape.mode} {shape.width}x{shape.height}")
            image.metadata, image.dropped_metadata = (), []
            out.append(image)
        return out


def is_jpeg(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff"


__all__ = ["JpegCodec", "is_jpeg", "io", "np"]
