"""Reading, validating and writing images; the canonical pixel form every codec works on.

Guarantees:

* :func:`read_image` returns the file's pixels exactly or raises :class:`ImageError` with a
  one-line reason: missing, empty, directory, not an image, truncated or damaged, too many
  pixels (``max_pixels``), several frames, or a sample format it would otherwise reduce (it
  never silently drops bits or frames).
* :func:`write_image` writes a PNG with the same mode, size and values, atomically (temporary
  file in the target directory, then rename), and never replaces an existing file unless
  ``overwrite`` is set.
* :func:`pixel_checksum` is the CRC-32 stored in every .nzip entry; it covers the mode, size,
  samples and palette.

16-bit colour PNGs keep all 16 bits (modes ``RGB;16``, ``RGBA;16``, ``LA;16``, uint16).

Metadata that changes how an image displays or describes it (ICC profile, EXIF, XMP, text
chunks, gamma and chromaticities, resolution, background, transparency keys in every mode)
is read into ``PixelImage.metadata`` as PNG chunks (:mod:`neuralzip.metadata`), covered by
the checksum and written back by :func:`png_bytes`; what could not be kept is listed in
``PixelImage.dropped_metadata`` (the command line refuses such inputs unless ``--strip``).
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from .container import MODES

DEFAULT_MAX_PIXELS = 1 << 28  # 268 megapixels
ImageFile.LOAD_TRUNCATED_IMAGES = False

_DTYPES = {"1": np.uint8, "L": np.uint8, "LA": np.uint8, "RGB": np.uint8, "RGBA": np.uint8,
           "P": np.uint8, "PA": np.uint8, "CMYK": np.uint8, "YCbCr": np.uint8, "LAB": np.uint8,
           "HSV": np.uint8, "I;16": np.uint16, "I": np.int32, "F": np.float32,
           "RGB;16": np.uint16, "RGBA;16": np.uint16, "LA;16": np.uint16}
# 16-bit colour: Pillow would reduce these to 8 bits, so they are read and written with
# imagecodecs (libpng) and carried as uint16 arrays under their own mode names.
WIDE_MODES = {2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}


class ImageError(Exception):
    """An input image that cannot be compressed losslessly; the message is one line."""


@dataclass
class PixelImage:
    """Pixels as a numpy array [height, width, channels] in the dtype of the mode.

    ``palette``: raw palette bytes for P/PA images (``palette_mode`` RGB or RGBA)."""

    mode: str
    pixels: np.ndarray
    palette: bytes | None = None
    palette_mode: str | None = None
    transparency: int | None = None
    dropped_metadata: list[str] = field(default_factory=list)
    metadata: tuple = ()  # PNG ancillary chunks (type, data), see neuralzip.metadata
    original: bytes | None = None  # the input file itself, where a codec can keep it (JPEG)
    original_format: str | None = None  # "jpeg" when ``original`` is a JPEG file
    frames_dropped: int = 0  # frames after the first, left out on request (first_frame)

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def channels(self) -> int:
        return self.pixels.shape[2]

    @property
    def subpixels(self) -> int:
        return self.pixels.size

    @classmethod
    def from_array(cls, array: np.ndarray, mode: str | None = None) -> "PixelImage":
        """Wrap an array: [H, W] -> L, [H, W, 3] -> RGB, [H, W, 4] -> RGBA, [H, W, 2] -> LA."""
        array = np.asarray(array)
        if array.ndim == 2:
            array = array[:, :, None]
        if mode is None:
            mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}.get(array.shape[2])
            if mode is None or array.dtype != np.uint8:
                raise ImageError(f"cannot infer an image mode for a {array.dtype} array of shape {array.shape}")
        return cls(mode, np.ascontiguousarray(array))


def pixel_checksum(image: PixelImage) -> int:
    """CRC-32 over mode, size, samples (little-endian) and palette."""
    crc = zlib.crc32(f"{image.mode}:{image.width}x{image.height}:".encode())
    crc = zlib.crc32(np.ascontiguousarray(image.pixels).astype(image.pixels.dtype.newbyteorder("<")).tobytes(), crc)
    if image.palette is not None:
        crc = zlib.crc32(f"{image.palette_mode}:{image.transparency}:".encode() + image.palette, crc)
    if image.metadata:
        from .metadata import serialize

        crc = zlib.crc32(b"META:" + serialize(image.metadata), crc)
    return crc & 0xFFFFFFFF


def _png_bit_depth(head: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR, or None if not a PNG."""
    if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 26 or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, first_frame: bool = False) -> PixelImage:
    """Read an image file exactly; see the module docstring for what is refused. An image
    of several frames (animation, multi-page) is refused unless ``first_frame`` accepts
    keeping only the first (then ``dropped_metadata`` says so)."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(f"{path}: cannot read ({error.strerror or error})") from None
    return decode_image_bytes(data, str(path), max_pixels, first_frame)


def decode_image_bytes(data: bytes, label: str = "input", max_pixels: int = DEFAULT_MAX_PIXELS,
                       first_frame: bool = False) -> PixelImage:
    """Like :func:`read_image` for bytes in memory."""
    if not data:
        raise ImageError(f"{label}: empty file")
    png = _png_bit_depth(data[:32])
    if png is not None and png[0] == 16 and png[1] in (2, 4, 6):
        return _with_png_metadata(_read_wide_png(data, label, max_pixels), data, label)
    image = _decode_with_pillow(data, label, max_pixels, first_frame)
    if data[:3] == b"\xff\xd8\xff":  # a JPEG: the jpeg codec keeps the file itself
        image.original, image.original_format = bytes(data), "jpeg"
    return _with_png_metadata(image, data, label) if png is not None else image


def _with_png_metadata(image: PixelImage, data: bytes, label: str) -> PixelImage:
    """``image`` with the PNG file's ancillary chunks as its metadata."""
    from .metadata import MetadataError, from_png

    try:
        chunks = from_png(data, palette=image.mode in ("P", "PA"))
    except MetadataError as error:
        raise ImageError(f"{label}: damaged image ({error})") from None
    depth, colour_type = data[24], data[25]
    if colour_type == 0 and depth < 8 and image.mode == "L":
        # a 2/4-bit grey PNG is read (and restored) as 8-bit samples scaled by 255 / (2^d - 1):
        # its transparency key and background grey are in sample units, so they scale too
        factor = 255 // ((1 << depth) - 1)
        chunks = tuple((kind, struct.pack(">H", struct.unpack(">H", body)[0] * factor))
                       if kind in (b"tRNS", b"bKGD") and len(body) == 2 else (kind, body) for kind, body in chunks)
    image.metadata = chunks
    image.dropped_metadata = []
    return image


def _decode_with_pillow(data: bytes, label: str, max_pixels: int, first_frame: bool = False) -> PixelImage:
    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = max_pixels
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                frames = getattr(im, "n_frames", 1)
                if frames > 1 and not first_frame:
                    raise ImageError(f"{label}: has {frames} frames; nzip stores one (--first-frame keeps only the first)")
                if im.width * im.height > max_pixels:
                    raise ImageError(f"{label}: {im.width}x{im.height} exceeds the limit of {max_pixels} pixels (raise it with --max-pixels)")
                _refuse_reduced_depth(im, label)
                im.load()
                image = _from_pil(im, label)
                image.frames_dropped = frames - 1
                return image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{label}: too many pixels (limit {max_pixels}; raise it with --max-pixels)") from None
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError(f"{label}: not an image file (format not recognised)") from None
    except Exception as error:  # Pillow and its plugins (JPEG-XL's raises RuntimeError) fail in many ways
        raise ImageError(f"{label}: {_damage(error)}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _damage(error: BaseException) -> str:
    """A reader's failure in plain words, without the library's nested details."""
    import re

    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    reason = re.sub(r"\s*\([^()]*\)", "", reason).strip().rstrip(".") or type(error).__name__
    if "truncat" in reason.lower():
        return "the image file is truncated"
    return f"damaged image ({reason})"


def _refuse_reduced_depth(im: Image.Image, label: str) -> None:
    """Pillow reads some 16-bit colour formats (TIFF, PPM) as 8-bit RGB; refuse those."""
    for tile in getattr(im, "tile", None) or []:
        rawmode = tile[3] if len(tile) > 3 else None
        if isinstance(rawmode, tuple):
            rawmode = rawmode[0] if rawmode else None
        if im.mode in ("RGB", "RGBA", "LA") and isinstance(rawmode, str) and "16" in rawmode:
            raise ImageError(f"{label}: 16-bit colour is only supported in PNG files; refusing to drop bits")


def _read_wide_png(data: bytes, label: str, max_pixels: int) -> PixelImage:
    """A 16-bit colour PNG with all 16 bits of every sample."""
    import imagecodecs

    width, height = struct.unpack(">II", data[16:24])
    if width * height > max_pixels:
        raise ImageError(f"{label}: {width}x{height} exceeds the limit of {max_pixels} pixels (raise it with --max-pixels)")
    try:
        array = np.asarray(imagecodecs.png_decode(data))
    except Exception as error:  # imagecodecs raises its own error types
        raise ImageError(f"{label}: {_damage(error)}") from None
    if array.dtype != np.uint16 or array.ndim != 3 or array.shape[2] not in WIDE_MODES:
        raise ImageError(f"{label}: unexpected 16-bit PNG layout {array.dtype} {array.shape}")
    return PixelImage(WIDE_MODES[array.shape[2]], np.ascontiguousarray(array))


def _from_pil(im: Image.Image, label: str) -> PixelImage:
    mode = im.mode
    if mode == "I;16B":
        im = im.convert("I;16") if hasattr(im, "convert") else im
        mode = "I;16"
    if mode not in _DTYPES:
        raise ImageError(f"{label}: image mode {mode} is not supported")
    array = np.asarray(im)
    if mode == "1":
        array = array.astype(np.uint8)
    array = np.ascontiguousarray(array.astype(_DTYPES[mode], copy=False))
    if array.ndim == 2:
        array = array[:, :, None]
    from .metadata import from_info, unkept

    metadata = from_info(im.info)
    dropped = unkept(im.info, getattr(im, "text", None) if im.format != "PNG" else None)
    palette = palette_mode = transparency = None
    if mode in ("P", "PA"):
        palette_mode, palette = im.palette.getdata() if im.palette is not None else ("RGB", b"")
        transparency = im.info.get("transparency")
        if isinstance(transparency, bytes):  # per-entry alpha: fold into an RGBA palette
            rgb = np.frombuffer(palette, np.uint8).reshape(-1, 3)
            alpha = np.full(len(rgb), 255, np.uint8)
            alpha[: len(transparency)] = np.frombuffer(transparency, np.uint8)[: len(rgb)]
            palette, palette_mode, transparency = np.concatenate([rgb, alpha[:, None]], 1).tobytes(), "RGBA", None
        elif transparency is not None and not isinstance(transparency, int):
            raise ImageError(f"{label}: unsupported palette transparency")
    elif "transparency" in im.info and im.format != "PNG":
        dropped.append("transparency key")
    return PixelImage(mode, array, palette, palette_mode, transparency, dropped, metadata)


def to_pil(image: PixelImage) -> Image.Image:
    """A Pillow image with exactly these samples (and palette)."""
    pixels = image.pixels
    if image.mode == "1":
        im = Image.fromarray(pixels[:, :, 0].astype(bool))
    elif image.mode in ("L", "I;16", "I", "F"):
        im = Image.fromarray(pixels[:, :, 0])
    else:
        im = Image.frombuffer(image.mode, (image.width, image.height), pixels.tobytes(), "raw", image.mode, 0, 1)
    if im.mode != image.mode:
        raise ImageError(f"cannot rebuild a {image.mode} image from {pixels.dtype} samples")
    if image.palette is not None:
        im.putpalette(image.palette, image.palette_mode)
        if image.transparency is not None:
            im.info["transparency"] = image.transparency
    return im


def png_bytes(image: PixelImage, optimize: bool = False) -> bytes:
    """The image as a PNG file (16-bit colour through libpng, the rest through Pillow)."""
    if image.mode in WIDE_MODES.values():
        import imagecodecs

        data = bytes(imagecodecs.png_encode(image.pixels, level=9 if optimize else 6))
    else:
        buffer = io.BytesIO()
        im = to_pil(image)
        kwargs = {"optimize": optimize}
        if image.transparency is not None:
            kwargs["transparency"] = image.transparency
        im.save(buffer, format="PNG", **kwargs)
        data = buffer.getvalue()
    if image.metadata:
        from .metadata import splice

        data = splice(data, image.metadata)
    return data


def default_file_mode() -> int:
    """The permission bits a new file gets here: 0o666 less the umask (as open() gives)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: str | os.PathLike, data: bytes, overwrite: bool = False,
                 like: str | os.PathLike | None = None) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename.

    Refuses (FileExistsError) to replace an existing file unless ``overwrite``. On any
    failure (including KeyboardInterrupt) the temporary file is removed and ``path`` is
    untouched. The file gets ``like``'s permission bits and modification time (as gzip
    gives its output the input's), else the umask's default mode."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists (use -f to overwrite)")
    source = os.stat(like) if like is not None else None
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, (source.st_mode & 0o7777) if source is not None else default_file_mode())
        if source is not None:
            os.utime(tmp, ns=(source.st_atime_ns, source.st_mtime_ns))
        if overwrite:
            os.replace(tmp, path)
        else:
            # link() fails if the target appeared meanwhile: no race can overwrite a file.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(f"{path}: already exists (use -f to overwrite)") from None
            except OSError:
                if path.exists():
                    raise FileExistsError(f"{path}: already exists (use -f to overwrite)") from None
                os.replace(tmp, path)  # file systems without hard links
            else:
                os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_image(image: PixelImage, path: str | os.PathLike, overwrite: bool = False) -> None:
    """Write ``image`` as PNG atomically (see :func:`write_atomic`)."""
    write_atomic(path, png_bytes(image), overwrite)


__all__ = ["PixelImage", "ImageError", "read_image", "decode_image_bytes", "write_image",
           "write_atomic", "png_bytes", "to_pil", "pixel_checksum", "DEFAULT_MAX_PIXELS", "MODES"]
