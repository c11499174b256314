"""CIFAR-10 and image-folder access for training, evaluation and benchmarks.

Three layouts are understood, all giving the same arrays for the same data:

* an image folder ``<root>/<split>/<class>/<name>.png`` (the lossless PNG layout);
* the standard ``cifar-10-batches-py`` folder of the original distribution;
* the ``cifar-10-python.tar.gz`` archive itself.

Guarantees:

* Deterministic order. Folder images are sorted by their path relative to the split folder;
  the pickled batches keep their published order (the ``data_batch_1..5`` files in turn).
  The order of a loaded split never depends on the file system or on the cache.
* The pickled batches are read with a restricted unpickler that only builds plain containers
  (dict, list, bytes, numpy arrays); anything else in the file is refused.
* A loaded split is cached as raw uint8 bytes (no pickle) under the cache directory, keyed by
  the absolute data path, its file list and sizes, so a second load takes well under a second.

The data path comes from the caller (``--data``) or the environment variable ``NZIP_DATA``;
nothing is hard-coded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_ENV = "NZIP_DATA"
CACHE_ENV = "NZIP_CACHE"
SPLITS = ("train", "test")
_BATCH_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


class DataError(Exception):
    """The data path does not hold a readable CIFAR-10 layout."""


@dataclass(frozen=True)
class ImageSet:
    """Images of one split: ``images`` is uint8 (N, 32, 32, 3); ``labels`` int64 (N,);
    ``names`` gives each image's relative path (folder layout) or ``batch/index``."""

    images: np.ndarray
    labels: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices) -> "ImageSet":
        indices = np.asarray(indices, dtype=np.int64)
        return ImageSet(self.images[indices], self.labels[indices], [self.names[i] for i in indices])


def resolve_data_path(path: str | os.PathLike | None) -> Path:
    """Return the data path given, else ``$NZIP_DATA``; raise DataError if neither is set."""
    chosen = path if path is not None else os.environ.get(DATA_ENV)
    if not chosen:
        raise DataError(f"no CIFAR-10 path given: pass --data PATH or set {DATA_ENV}")
    resolved = Path(chosen).expanduser()
    if not resolved.exists():
        raise DataError(f"CIFAR-10 path does not exist: {resolved}")
    return resolved


def cache_dir() -> Path:
    """The cache directory: ``$NZIP_CACHE`` or ``~/.cache/neuralzip``."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "neuralzip"))


def load_cifar10(split: str, path: str | os.PathLike | None = None, use_cache: bool = True) -> ImageSet:
    """Load one split ("train" or "test") of CIFAR-10 from any of the supported layouts."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
    root = resolve_data_path(path)
    layout, source, fingerprint = _locate(root, split)
    cache_file = cache_dir() / f"cifar10-{split}-{fingerprint}.bin"
    if use_cache and cache_file.exists():
        cached = _read_cache(cache_file)
        if cached is not None:
            return cached
    if layout == "folder":
        result = _load_folder(source)
    elif layout == "batches":
        result = _load_batches(lambda name: (source / name).read_bytes(), split)
    else:
        with tarfile.open(source, "r:gz") as archive:
            def read_member(name: str) -> bytes:
                member = archive.extractfile(f"cifar-10-batches-py/{name}")
                if member is None:
                    raise DataError(f"{source}: member {name} missing")
                return member.read()
            result = _load_batches(read_member, split)
    if use_cache:
        _write_cache(cache_file, result)
    return result


def spread_subset(n_total: int, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` of ``n_total`` items drawn by a fixed seeded permutation, sorted.

    Used for quick estimates: a prefix of the path-sorted test set is one class only, a seeded
    draw covers every class in proportion."""
    if n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).permutation(n_total)[:n])


def _locate(root: Path, split: str) -> tuple[str, Path, str]:
    """Find the layout under ``root``; return (layout, source path, cache fingerprint)."""
    candidates = [root, root / "cifar10", root / "cifar-10-batches-py"]
    for base in candidates:
        folder = base / split
        if folder.is_dir() and any(p.is_dir() for p in folder.iterdir()):
            files = sorted(folder.glob("*/*.png"))
            if not files:
                raise DataError(f"{folder}: no PNG files in its class folders")
            listing = "\n".join(f"{f.relative_to(folder)}:{f.stat().st_size}" for f in files)
            return "folder", folder, _fingerprint(folder, listing)
        if all((base / name).is_file() for name in _BATCH_FILES[split]):
            listing = "\n".join(f"{n}:{(base / n).stat().st_size}" for n in _BATCH_FILES[split])
            return "batches", base, _fingerprint(base, listing)
    tar = root if root.is_file() else root / "cifar-10-python.tar.gz"
    if tar.is_file():
        return "tar", tar, _fingerprint(tar, str(tar.stat().st_size))
    raise DataError(
        f"{root}: no CIFAR-10 found (expected {split}/<class>/*.png, cifar-10-batches-py/ "
        "or cifar-10-python.tar.gz)"
    )


def _fingerprint(path: Path, listing: str) -> str:
    digest = hashlib.sha256(f"{path.resolve()}\n{listing}".encode()).hexdigest()
    return digest[:16]


def _load_folder(folder: Path) -> ImageSet:
    from PIL import Image

    files = sorted(folder.glob("*/*.png"))
    classes = sorted({f.parent.name for f in files})
    images = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
    labels = np.empty(len(files), dtype=np.int64)
    for i, f in enumerate(files):
        with Image.open(f) as im:
            array = np.asarray(im.convert("RGB"))
        if array.shape != (32, 32, 3):
            raise DataError(f"{f}: expected a 32x32 image, got {array.shape[1]}x{array.shape[0]}")
        images[i] = array
        labels[i] = classes.index(f.parent.name)
    return ImageSet(images, labels, [str(f.relative_to(folder)) for f in files])


class _SafeUnpickler(pickle.Unpickler):
    """Builds only what CIFAR's batches contain; refuses any other global."""

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"refusing to unpickle {module}.{name} from a CIFAR batch file")


def _load_batches(read, split: str) -> ImageSet:
    images, labels, names = [], [], []
    for batch in _BATCH_FILES[split]:
        content = _SafeUnpickler(io.BytesIO(read(batch)), encoding="bytes").load()
        data = np.asarray(content[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        images.append(data.transpose(0, 2, 3, 1))
        labels.append(np.asarray(content[b"labels"], dtype=np.int64))
        names += [f"{batch}/{i:05d}" for i in range(len(data))]
    return ImageSet(np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels), names)


def _write_cache(cache_file: Path, images: ImageSet) -> None:
    """Header (JSON length + JSON with names and labels) then raw image bytes; atomic."""
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        header = json.dumps({"n": len(images), "labels": images.labels.tolist(), "names": images.names}).encode()
        tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(len(header).to_bytes(8, "little"))
            f.write(header)
            f.write(images.images.tobytes())
        os.replace(tmp, cache_file)
    except OSError:
        pass  # a cache that cannot be written only costs time on the next load


def _read_cache(cache_file: Path) -> ImageSet | None:
    try:
        raw = cache_file.read_bytes()
        length = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + length])
        pixels = np.frombuffer(raw, dtype=np.uint8, offset=8 + length)
        n = header["n"]
        if pixels.size != n * 32 * 32 * 3:
            return None
        return ImageSet(pixels.reshape(n, 32, 32, 3).copy(), np.asarray(header["labels"], np.int64), header["names"])
    except (OSError, ValueError, KeyError):
        return None
