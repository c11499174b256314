"""A Pillow plugin: ``import neuralzip.pillow`` (or :func:`register`) and
``PIL.Image.open("x.nzip")`` works, so torchvision-style loaders and Hugging Face datasets'
Image feature read .nzip files and bytes with no code of ours.

Opening reads the header only (mode and size); ``load()`` decodes, checksum verified. Modes
Pillow represents are returned as such (RGB, RGBA, L, LA, P, 1, I;16, I, F, CMYK); 16-bit
colour (which Pillow cannot hold) is refused with a clear error. A JPEG kept as its file
opens as the JPEG it restores.
"""

from __future__ import annotations

import io

from PIL import Image, ImageFile

_PILLOW_MODES = {"RGB", "RGBA", "L", "LA", "P", "PA", "1", "I;16", "I", "F", "CMYK", "YCbCr", "LAB", "HSV"}


def _accept(prefix: bytes) -> bool:
    """The magic of versions 1/2 (``NZIP``) or of a compact file (``Nz``); a file that merely
    starts with ``Nz`` fails to open here, and Pillow goes on to its other formats."""
    from .container import has_magic

    return has_magic(prefix)


class NzipImageFile(ImageFile.ImageFile):
    format = "NZIP"
    format_description = "neuralzip lossless image"

    def _open(self) -> None:
        from .container import FormatError, unpack

        self._data = self.fp.read()
        try:
            container = unpack(self._data)
        except FormatError as error:
            raise SyntaxError(f"not a readable .nzip file: {error}") from None
        entry = container.entries[0]
        if entry.mode not in _PILLOW_MODES:
            raise SyntaxError(f".nzip image of mode {entry.mode}: Pillow cannot hold it (use neuralzip.decompress)")
        self._mode = entry.mode
        self._size = (entry.width, entry.height)
        self.tile = []
        self._decoded = None

    def load(self):
        if self._decoded is None:
            from .api import decompress
            from .images import to_pil

            image = decompress(self._data)
            if image.original is not None:
                decoded = Image.open(io.BytesIO(image.original))
                decoded.load()
            else:
                decoded = to_pil(image)
            self._decoded = decoded
            self.im = decoded.im
            self._mode = decoded.mode
            self._size = decoded.size
            if decoded.palette is not None:
                self.palette = decoded.palette
            self.info.update(decoded.info)
        return super().load() if self.tile else Image.Image.load(self)


def register() -> None:
    """Make Pillow open .nzip files (idempotent)."""
    Image.register_open(NzipImageFile.format, NzipImageFile, _accept)
    Image.register_extension(NzipImageFile.format, ".nzip")


register()
