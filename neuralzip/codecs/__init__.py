"""The table of codecs: stable ids, names, and how to build each one.

Ids are written into every .nzip file and are never reused or renumbered: 1-15 classical
codecs, 16-31 PixelCNN models, 32-47 flows, 48-63 VAEs, 64-79 local autoregressive models.
A file names its codec id and the hash of the model version that made it; every installed
version of a model stays decodable (:func:`get_codec` with ``model_hash``), the newest
encodes. A neural codec is listed only when its weights are installed. Building a codec is
lazy and cached: ``nzip compress --model png`` never loads torch weights.
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
    # Estimates its size from the same fixed pixel sample as every other such codec
    # (LocalCodec.estimate_bits), so that auto can compare their estimates pairwise.
    paired_estimate: bool = False


def _classical(cls_name: str) -> Callable[[], Codec]:
    def build():
        from . import classical

        return getattr(classical, cls_name)()
    return build


def _neural(module: str, cls_name: str, model: str, arrays: str = "torch") -> Callable[..., Codec]:
    def build(model_hash: bytes | None = None):
        import importlib

        from ..registry import load_shipped
        from ..threads import configure_torch

        configure_torch()
        codec_class = getattr(importlib.import_module(f"{__name__}.{module}"), cls_name)
        return codec_class.from_shipped(load_shipped(model, model_hash=model_hash, arrays=arrays))
    return build


def _local(name: str, codec_id: int) -> Callable[..., Codec]:
    """A local autoregressive codec; its decoder needs numpy only (no torch import)."""
    def build(model_hash: bytes | None = None):
        from ..registry import load_shipped
        from .local import LocalCodec

        return LocalCodec.from_shipped(load_shipped(name, model_hash=model_hash, arrays="numpy"), name, codec_id)
    return build


def _vae() -> Callable[..., Codec]:
    """The VAE: version 1 is the hierarchical VAE (bitsback), later versions the local-VAE;
    the version's card names its family, which picks the codec."""
    def build(model_hash: bytes | None = None):
        from ..registry import load_shipped
        from ..threads import configure_torch

        configure_torch()
        shipped = load_shipped("vae", model_hash=model_hash, arrays="numpy")
        if shipped.card.get("family") == "local-vae":
            from .local_vae import LocalVAECodec

            return LocalVAECodec.from_shipped(shipped)
        from .bitsback import BitsBackCodec

        return BitsBackCodec.from_shipped(load_shipped("vae", model_hash=shipped.model_hash, arrays="torch"))
    return build


SPECS = [
    CodecSpec("png", 1, "classical", "PNG (Pillow, optimize)", _classical("PngCodec")),
    CodecSpec("webp", 2, "classical", "WebP lossless (quality 100, method 6)", _classical("WebpCodec")),
    CodecSpec("jxl", 3, "classical", "JPEG-XL lossless (effort 9)", _classical("JxlCodec")),
    CodecSpec("j2k", 4, "classical", "JPEG 2000 reversible, colour transform", _classical("J2kCodec")),
    CodecSpec("jpeg", 5, "classical", "JPEG inputs as files: JPEG-XL lossless transcoding, the .jpg restored byte for byte",
              lambda: __import__(f"{__name__}.jpeg", fromlist=["JpegCodec"]).JpegCodec()),
    CodecSpec("pixelcnn", 16, "neural", "PixelCNN++, exact integer inference", _neural("pixelcnn", "PixelCNNCodec", "pixelcnn"), "pixelcnn"),
    CodecSpec("flow", 32, "neural", "integer discrete flow, exact integer inference", _neural("flow", "FlowCodec", "flow"), "flow"),
    CodecSpec("vae", 48, "neural", "VAE, bits-back ANS (v1 hierarchical; v2 and later on the local autoregressive decoder)", _vae(), "vae"),
    CodecSpec("local", 64, "neural", "local autoregressive model (CIFAR-10 weights), wavefront decoding",
              _local("local", 64), "local", paired_estimate=True),
    CodecSpec("local-photo", 65, "neural", "local autoregressive model (weights for photographs)",
              _local("local-photo", 65), "local-photo", paired_estimate=True),
]
BY_NAME = {spec.name: spec for spec in SPECS}
BY_ID = {spec.codec_id: spec for spec in SPECS}
DEFAULT_CODEC = "local"  # the neural codec for -m when none is named (auto is the CLI default)
FALLBACK_CODEC = "jxl"  # used while no neural model is installed

_cache: dict[tuple[str, bytes | None], Codec] = {}


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


def get_codec(name: str, model_hash: bytes | None = None) -> Codec:
    """The codec called ``name`` (built once): its newest model version, or the installed
    version whose weights have ``model_hash``. Raises UnknownCodecError or a ModelError."""
    if name not in BY_NAME:
        raise UnknownCodecError(f"unknown codec {name!r} (available: {', '.join(s.name for s in available_specs())})")
    spec = BY_NAME[name]
    if spec.model is None:
        model_hash = None
    key = (name, model_hash)
    if key not in _cache:
        newest = _cache.get((name, None))
        if model_hash is not None and newest is not None and newest.model_hash == model_hash:
            _cache[key] = newest
        else:
            _cache[key] = spec.build(model_hash) if spec.model else spec.build()
    return _cache[key]


def register(codec: Codec) -> None:
    """Use ``codec`` for its name (as the newest version) and its model hash from now on
    (tests with tiny models do this)."""
    _cache[(codec.name, None)] = codec
    _cache[(codec.name, codec.model_hash)] = codec


def forget(name: str) -> None:
    """Drop every cached version of ``name`` (tests that swap models)."""
    for key in [k for k in _cache if k[0] == name]:
        del _cache[key]


__all__ = ["Codec", "Encoded", "ImageShape", "PayloadError", "UnsupportedImageError", "CodecSpec",
           "SPECS", "BY_NAME", "BY_ID", "get_codec", "register", "available_specs", "default_codec_name",
           "UnknownCodecError", "DEFAULT_CODEC", "forget"]
