"""Model families (what can be trained) and shipped models (what can code).

A shipped model version is two files in the models directory: ``NAME-vN.safetensors``
(tensors only, never pickle) and ``NAME-vN.json``, its card: family, codec id, version,
architecture config, training data and progress, test NLL, and the SHA-256 of the weights
file. Loading recomputes the hash and refuses a file that does not match its card, so a
tampered or truncated weights file is an error, never a silently different model.

Versions are frozen once shipped. Better weights become version N+1 beside the others;
encoding uses the newest, and decoding picks the version whose hash the file names, so a
file made by any earlier release decodes with every later one.

The models directory is ``$NZIP_MODELS`` if set, else ``models/`` beside the package (the
repository checkout that ``pip install -e .`` uses), else the copy a wheel installs inside
the package (``neuralzip/models/``).
"""

from __future__ import annotations

import functools
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
    from .nets.local import LocalConfig, LocalModel
    from .nets.local_vae import LocalVAE, LocalVAEConfig
    from .nets.pixelcnn import PixelCNN, PixelCNNConfig
    from .nets.vae import HierarchicalVAE, VAEConfig

    return {"pixelcnn": Family("pixelcnn", PixelCNNConfig, PixelCNN),
            "flow": Family("flow", FlowConfig, IntegerFlow),
            "vae": Family("vae", VAEConfig, HierarchicalVAE),
            "local": Family("local", LocalConfig, LocalModel),
            "local-vae": Family("local-vae", LocalVAEConfig, LocalVAE)}


FAMILY_NAMES = ("pixelcnn", "flow", "vae", "local", "local-vae")


class ModelError(Exception):
    """Shipped weights missing, damaged or not matching their card."""


def models_dir() -> Path:
    """``$NZIP_MODELS``; else the checkout's ``models/`` (an editable install or a source
    tree); else the weights installed with the package (``neuralzip/models`` in a wheel or a
    non-editable install, the same files)."""
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV])
    return _installed_models_dir()


@functools.lru_cache(maxsize=1)
def _installed_models_dir() -> Path:
    """Cached: resolving the package's path took ~0.13 ms, called once per coded image (5% of
    a thumbnail's batched encode); where the package lives does not change in a process."""
    checkout = Path(__file__).resolve().parent.parent / "models"
    if checkout.is_dir():
        return checkout
    return Path(__file__).resolve().parent / "models"


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
    tensors: dict  # name -> torch.Tensor (or numpy array, see load_shipped)

    @property
    def model_hash(self) -> bytes:
        """The 4 bytes stored in every .nzip file made with these weights."""
        return bytes.fromhex(self.card["sha256"][:8])

    @property
    def version(self) -> int:
        return int(self.card.get("version", 1))

    def prefixed(self, prefix: str) -> dict:
        return {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}


@dataclass(frozen=True)
class ModelVersion:
    """One installed version of a model: ``NAME-vN.safetensors`` and its card ``NAME-vN.json``."""

    name: str
    version: int
    card_file: Path
    weights_file: Path
    sha256: str

    @property
    def model_hash(self) -> bytes:
        return bytes.fromhex(self.sha256[:8])

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


def version_stem(name: str, version: int) -> str:
    return f"{name}-v{version}"


def installed_versions(name: str, directory: Path | None = None) -> list[ModelVersion]:
    """Every installed version of model ``name``, oldest first (the last is the default for
    encoding). Versions are frozen once shipped: better weights are a new version beside
    them, so files made with any earlier version keep decoding."""
    directory = directory or models_dir()
    out = []
    for card_file in directory.glob(f"{name}-v*.json"):
        number = card_file.stem[len(name) + 2:]
        if not number.isdigit():
            continue
        weights_file = card_file.with_suffix(".safetensors")
        if not weights_file.is_file():
            continue
        try:
            sha = str(json.loads(card_file.read_text()).get("sha256", ""))
        except (OSError, json.JSONDecodeError):
            sha = ""
        out.append(ModelVersion(name, int(number), card_file, weights_file, sha))
    return sorted(out, key=lambda v: v.version)


def model_available(name: str) -> bool:
    return bool(installed_versions(name))


def load_shipped(name: str, directory: Path | None = None, model_hash: bytes | None = None,
                 arrays: str = "torch") -> ShippedModel:
    """Load and verify a shipped model: the newest version, or the one whose weights have
    ``model_hash`` (what a .nzip file names). ``arrays``: "torch" or "numpy" tensors
    (decoders that need no torch load numpy). Raises :class:`ModelError` with a one-line
    reason that names the versions installed."""
    directory = directory or models_dir()
    versions = installed_versions(name, directory)
    if not versions:
        raise ModelError(f"model {name!r} is not installed (no {name}-vN.safetensors in {directory})")
    if model_hash is None:
        chosen = versions[-1]
    else:
        matching = [v for v in versions if v.model_hash == model_hash]
        if not matching:
            installed = ", ".join(f"v{v.version} {v.sha256[:8]}" for v in versions)
            raise ModelError(f"weights with hash {model_hash.hex()} are not installed (installed versions: {installed}); "
                             "every nzip release ships all earlier versions, so a newer neuralzip decodes it")
        chosen = matching[-1]
    return load_version(chosen, arrays)


def load_version(version: ModelVersion, arrays: str = "torch") -> ShippedModel:
    card_file, weights_file = version.card_file, version.weights_file
    try:
        card = json.loads(card_file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelError(f"model card {card_file} is unreadable ({error})") from None
    actual = sha256_file(weights_file)
    if actual != card.get("sha256"):
        raise ModelError(f"weights file {weights_file} does not match its card (sha256 {actual[:12]}..., "
                         f"card says {str(card.get('sha256'))[:12]}...): damaged or replaced")
    from safetensors import SafetensorError

    if arrays == "numpy":
        from safetensors.numpy import load_file
    else:
        from safetensors.torch import load_file
    try:
        tensors = load_file(str(weights_file))
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelError(f"weights file {weights_file} is unreadable ({error})") from None
    return ShippedModel(version.name, card, tensors)


def load_training_weights(weights: Path) -> dict:
    """The float training parameters of a shipped model file (for ``--init-from``)."""
    weights = Path(weights)
    stem = weights.stem
    name, _, number = stem.rpartition("-v")
    if not name or not number.isdigit():
        raise ModelError(f"{weights}: not a shipped model file (NAME-vN.safetensors)")
    version = ModelVersion(name, int(number), weights.with_suffix(".json"), weights,
                           str(json.loads(weights.with_suffix(".json").read_text()).get("sha256", "")))
    return load_version(version).prefixed("train.")
