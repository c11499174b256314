"""Measuring codecs on a set of images: size from real bytes, speed, exactness.

Shared by ``benchmarks/cifar10.py`` and ``nzip bench``. For every codec it encodes all images
to real .nzip files (in batches, as the CLI does), decodes them back through the container
(checksums verified), and compares every pixel with the original.

Reported per codec:

* ``bpd``: bits per sub-pixel of the files a user of that codec gets: the .nzip file for
  neural codecs (header included), the codec's own file (.png, .webp, .jxl, .j2k, its own
  header included) for classical ones; ``bpd_nzip`` is the .nzip file for every codec;
* ``nll_bpd``: the model's ideal code length under its exact integer tables (neural only),
  so ``bpd - nll_bpd`` is the whole coding and container overhead;
* ``encode_img_per_s`` and ``decode_img_per_s``: wall-clock throughput in this process;
* ``exact``: images whose decoded pixels equal the original, sample for sample.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import api
from . import codecs as codec_table
from .container import unpack
from .images import PixelImage
from .progress import progress


@dataclass
class CodecResult:
    name: str
    images: int
    exact: int
    bpd: float
    bpd_nzip: float
    nll_bpd: float | None
    encode_img_per_s: float
    decode_img_per_s: float
    encode_seconds: float
    decode_seconds: float
    payload_bytes: int
    file_bytes: int
    subpixels: int
    failures: list[str] = field(default_factory=list)
    per_image: list[dict] | None = None
    ratio: float | None = None  # .nzip bytes / input file bytes, where inputs are files


def run_codec(name: str, images: list[PixelImage], labels: list[str] | None = None, batch: int = 256,
              keep_per_image: bool = False) -> CodecResult:
    """Encode, decode and verify ``images`` with codec ``name``."""
    auto = name == api.AUTO
    codec = None if auto else codec_table.get_codec(name)
    labels = labels or [str(i) for i in range(len(images))]
    files: list[bytes] = []
    nll: list[float] = []
    encode_time = 0.0
    bar = progress(total=2 * len(images), desc=name, unit="img", leave=False)
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        t0 = time.perf_counter()
        results = api.compress_batch(chunk, name)
        encode_time += time.perf_counter() - t0
        files += [r.data for r in results]
        if results[0].nll_bits is not None:
            nll += [r.nll_bits[0] for r in results]
        bar.update(len(chunk))
    decode_time = 0.0
    exact = 0
    failures = []
    decoded_all: list[PixelImage | None] = []
    for start in range(0, len(files), batch):
        containers = [unpack(data) for data in files[start : start + batch]]
        t0 = time.perf_counter()
        decoded = _decode_many(containers, failures, labels[start : start + batch])
        decode_time += time.perf_counter() - t0
        decoded_all += decoded
        bar.update(len(containers))
    bar.close()
    for original, image in zip(images, decoded_all):
        if image is not None and image.mode == original.mode and np.array_equal(image.pixels, original.pixels):
            exact += 1
    subpixels = sum(im.subpixels for im in images)
    payload = sum(coded_payload_bytes(unpack(f).entries[0]) for f in files)
    file_bytes = sum(len(f) for f in files)
    native = payload if codec is not None and codec.kind == "classical" else file_bytes
    per_image = None
    if keep_per_image:
        per_image = [{"image": label, "bytes": len(f), "bits_per_subpixel": 8 * len(f) / im.subpixels}
                     for label, f, im in zip(labels, files, images)]
    return CodecResult(
        name=name, images=len(images), exact=exact,
        bpd=8 * native / subpixels, bpd_nzip=8 * file_bytes / subpixels,
        nll_bpd=(sum(nll) / subpixels) if nll else None,
        encode_img_per_s=len(images) / encode_time if encode_time else float("inf"),
        decode_img_per_s=len(images) / decode_time if decode_time else float("inf"),
        encode_seconds=encode_time, decode_seconds=decode_time,
        payload_bytes=payload, file_bytes=file_bytes, subpixels=subpixels,
        failures=failures[:20], per_image=per_image,
    )


def coded_payload_bytes(entry) -> int:
    """The entropy coder's output for one image: its payload, less the 4-byte checksum a
    sealing codec keeps in it (a compact file's header leaves it out, so it is the
    container's, moved: see docs/FORMAT.md, *Sealed checksum*)."""
    return len(entry.payload) - (4 if entry.checksum is None else 0)


def run_archive(name: str, images: list[PixelImage], labels: list[str]) -> CodecResult:
    """All ``images`` in one archive file (a chained codec codes them as one chain)."""
    t0 = time.perf_counter()
    result = api.compress_archive(images, labels, name)
    encode_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    decoded = api.decompress_all(result.data)
    decode_time = time.perf_counter() - t0
    exact = sum(1 for original, (_, image) in zip(images, decoded)
                if image.mode == original.mode and np.array_equal(image.pixels, original.pixels))
    subpixels = sum(im.subpixels for im in images)
    bpd = 8 * len(result.data) / subpixels
    container = unpack(result.data)
    payload = len(container.chained_payload) if container.chained else sum(len(e.payload) for e in container.entries)
    return CodecResult(
        name=f"{name}-archive", images=len(images), exact=exact, bpd=bpd, bpd_nzip=bpd,
        nll_bpd=(sum(result.nll_bits) / subpixels) if result.nll_bits else None,
        encode_img_per_s=len(images) / encode_time, decode_img_per_s=len(images) / decode_time,
        encode_seconds=encode_time, decode_seconds=decode_time, payload_bytes=payload,
        file_bytes=len(result.data), subpixels=subpixels)


def _decode_many(containers, failures, labels) -> list[PixelImage | None]:
    """Decode a batch the way ``nzip decompress`` decodes many files (one codec call per
    codec: files of ``auto`` may use different codecs); errors become failures."""
    out: list[PixelImage | None] = []
    for label, result in zip(labels, api.decode_containers(containers)):
        if isinstance(result, Exception):
            failures.append(f"{label}: {result}")
            out.append(None)
        else:
            out.append(result[0][1])
    return out


def machine_description() -> dict:
    import os

    import torch

    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__}


def write_results(results: list[CodecResult], path_json: Path, extra: dict) -> dict:
    document = {**extra, "machine": machine_description(), "codecs": [asdict(r) for r in results]}
    path_json.parent.mkdir(parents=True, exist_ok=True)
    path_json.write_text(json.dumps(document, indent=1) + "\n")
    return document


def markdown_table(results: list[CodecResult], with_ratio: bool = False) -> str:
    ratio_head, ratio_rule = (" ratio |", "---:|") if with_ratio else ("", "")
    lines = [f"| codec | images | exact | bpd | bpd (.nzip) | payload bpd | NLL bpd |{ratio_head} encode img/s | decode img/s |",
             f"|---|---:|---:|---:|---:|---:|---:|{ratio_rule}---:|---:|"]
    for r in sorted(results, key=lambda r: r.bpd):
        nll = f"{r.nll_bpd:.4f}" if r.nll_bpd is not None else "-"
        ratio = f" {100 * r.ratio:.1f}% |" if with_ratio and r.ratio is not None else (" - |" if with_ratio else "")
        lines.append(f"| {r.name} | {r.images} | {r.exact} | {r.bpd:.4f} | {r.bpd_nzip:.4f} | "
                     f"{8 * r.payload_bytes / r.subpixels:.4f} | {nll} |{ratio} "
                     f"{rate(r.encode_img_per_s)} | {rate(r.decode_img_per_s)} |")
    return "\n".join(lines)


def rate(images_per_second: float) -> str:
    """Throughput with the precision it needs: 0.0 never hides a slow codec."""
    if images_per_second >= 10:
        return f"{images_per_second:.1f}"
    return f"{images_per_second:.3g}"


def plot(results: list[CodecResult], path: Path, title: str) -> None:
    """bpd against decode throughput (log scale) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for r in results:
        spec = codec_table.BY_NAME.get(r.name.split("-")[0])
        colour = "tab:blue" if spec is not None and spec.kind == "classical" else "tab:red"
        ax.scatter(r.decode_img_per_s, r.bpd, color=colour, s=40, zorder=3)
        ax.annotate(r.name, (r.decode_img_per_s, r.bpd), textcoords="offset points", xytext=(6, 4), fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel("decode throughput (images/s, this machine)")
    ax.set_ylabel("bits per sub-pixel (real bytes)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
