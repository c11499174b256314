"""The table of codecs: stable ids, names, and how to build each one.

Ids are written into every .nzip file and are never reused or renumbered: 1-15 classical
codecs, 16-31 PixelCNN models, 32-47 flows, 48-63 VAEs. A neural codec is listed only when
its weights are installed. Building a codec is lazy and cached: ``nzip compress --model png``
never loads torch weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .base import Codec, Encoded, ImageShape, PayloadError, UnsupportedImageError  # noqa: F401


@dataclass(frozen=True)
class CodecSpec:
    name: str
    codec_id: int
    kind: str
    description: str
    build: Callable[[], Codec]
    model: str | None = None  # shipped model name for neural codecs


def _classical(cls_name: str) -> Callable[[], Codec]:
    def build():
        from . import classical

        return getattr(classical, cls_name)()
    return build


def _neural(module: str, cls_name: str, model: str) -> Callable[[], Codec]:
    def build():
        import importlib

        from ..registry import load_shipped

        codec_class = getattr(importlib.import_module(f"{__name__}.{module}"), cls_name)
        return codec_class.from_shipped(load_shipped(model))
    return build


SPECS = [
    CodecSpec("png", 1, "classical", "PNG (Pillow, optimize)", _classical("PngCodec")),
    CodecSpec("webp", 2, "classical", "WebP lossless (quality 100, method 6)", _classical("WebpCodec")),
    CodecSpec("jxl", 3, "classical", "JPEG-XL lossless (effort 9)", _classical("JxlCodec")),
    CodecSpec("j2k", 4, "classical", "JPEG 2000 reversible, colour transform", _classical("J2kCodec")),
    CodecSpec("pixelcnn", 16, "neural", "PixelCNN++, exact integer inference", _neural("pixelcnn", "PixelCNNCodec", "pixelcnn"), "pixelcnn"),
    CodecSpec("flow", 32, "neural", "integer discrete flow, exact integer inference", _neural("flow", "FlowCodec", "flow"), "flow"),
    CodecSpec("vae", 48, "neural", "hierarchical VAE, bits-back ANS", _neural("bitsback", "BitsBackCodec", "vae"), "vae"),
]
BY_NAME = {spec.name: spec for spec in SPECS}
BY_ID = {spec.codec_id: spec for spec in SPECS}
DEFAULT_CODEC = "pixelcnn"
FALLBACK_CODEC = "jxl"  # used while no neural model is installed

_cache: dict[str, Codec] = {}


class UnknownCodecError(Exception):
    pass


def spec_available(spec: CodecSpec) -> bool:
    if spec.model is None:
        return True
    from ..registry import model_available

    return model_available(spec.model)


def available_specs() -> list[CodecSpec]:
    return [spec for spec in SPECS if spec_available(spec)]


def default_codec_name() -> str:
    spec = BY_NAME[DEFAULT_CODEC]
    return spec.name if spec_available(spec) else FALLBACK_CODEC


def get_codec(name: str) -> Codec:
    """The codec called ``name`` (built once); raises UnknownCodecError or a ModelError."""
    if name not in BY_NAME:
        raise UnknownCodecError(f"unknown codec {name!r} (available: {', '.join(s.name for s in available_specs())})")
    if name not in _cache:
        _cache[name] = BY_NAME[name].build()
    return _cache[name]


def register(codec: Codec) -> None:
    """Use ``codec`` for its name and id from now on (tests with tiny models do this)."""
    _cache[codec.name] = codec


__all__ = ["Codec", "Encoded", "ImageShape", "PayloadError", "UnsupportedImageError", "CodecSpec",
           "SPECS", "BY_NAME", "BY_ID", "get_codec", "register", "available_specs", "default_codec_name",
           "UnknownCodecError", "DEFAULT_CODEC"]
