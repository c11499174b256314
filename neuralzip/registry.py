"""Model families (what can be trained) and shipped models (what can code).

A shipped model is two files in the models directory: ``NAME.safetensors`` (tensors only,
never pickle) and ``NAME.json``, its card: family, codec id, architecture config, training
data and progress, test NLL, and the SHA-256 of the weights file. Loading recomputes the
hash and refuses a file that does not match its card, so a tampered or truncated weights
file is an error, never a silently different model.

The models directory is ``$NZIP_MODELS`` if set, else ``models/`` beside the package (the
repository checkout that ``pip install -e .`` uses).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

MODELS_ENV = "NZIP_MODELS"


@dataclass(frozen=True)
class Family:
    name: str
    config_class: type
    model_class: type


def families() -> dict[str, Family]:
    """Trainable model families (imports torch, so only on demand)."""
    from .nets.flow import FlowConfig, IntegerFlow
    from .nets.pixelcnn import PixelCNN, PixelCNNConfig
    from .nets.vae import HierarchicalVAE, VAEConfig

    return {"pixelcnn": Family("pixelcnn", PixelCNNConfig, PixelCNN),
            "flow": Family("flow", FlowConfig, IntegerFlow),
            "vae": Family("vae", VAEConfig, HierarchicalVAE)}


FAMILY_NAMES = ("pixelcnn", "flow", "vae")


class ModelError(Exception):
    """Shipped weights missing, damaged or not matching their card."""


def models_dir() -> Path:
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV])
    return Path(__file__).resolve().parent.parent / "models"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ShippedModel:
    name: str
    card: dict
    tensors: dict  # name -> torch.Tensor

    @property
    def model_hash(self) -> bytes:
        """The 4 bytes stored in every .nzip file made with these weights."""
        return bytes.fromhex(self.card["sha256"][:8])

    def prefixed(self, prefix: str) -> dict:
        return {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}


def card_path(name: str, directory: Path | None = None) -> Path:
    return (directory or models_dir()) / f"{name}.json"


def model_available(name: str) -> bool:
    directory = models_dir()
    return (directory / f"{name}.json").is_file() and (directory / f"{name}.safetensors").is_file()


def load_shipped(name: str, directory: Path | None = None) -> ShippedModel:
    """Load and verify a shipped model; raises :class:`ModelError` with a one-line reason."""
    directory = directory or models_dir()
    card_file, weights_file = directory / f"{name}.json", directory / f"{name}.safetensors"
    if not card_file.is_file() or not weights_file.is_file():
        raise ModelError(f"model {name!r} is not installed (looked for {weights_file})")
    try:
        card = json.loads(card_file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelError(f"model card {card_file} is unreadable ({error})") from None
    actual = sha256_file(weights_file)
    if actual != card.get("sha256"):
        raise ModelError(f"weights file {weights_file} does not match its card (sha256 {actual[:12]}..., "
                         f"card says {str(card.get('sha256'))[:12]}...): damaged or replaced")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(weights_file))
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelError(f"weights file {weights_file} is unreadable ({error})") from None
    return ShippedModel(name, card, tensors)


def load_training_weights(weights: Path) -> dict:
    """The float training parameters of a shipped model file (for ``--init-from``)."""
    weights = Path(weights)
    model = load_shipped(weights.stem, weights.parent)
    return model.prefixed("train.")
