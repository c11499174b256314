"""Image collections as shards of .nzip files: compress, restore, verify, read back.

Layout of a compressed dataset ``OUT/``:

* ``plan.json``: the source folder, its image files (sorted relative paths), the codec and
  the shard size, fixed by the first run. A run on a changed source is refused (start a new
  OUT), so shard k always holds the same files.
* ``shards/shard-NNNNN.tar``: a tar file of ``RELATIVE/PATH.EXT.nzip`` members (one .nzip file
  per image), which WebDataset reads as is (key ``RELATIVE/PATH``, extension ``EXT.nzip``).
* ``shards/shard-NNNNN.json``: the shard's manifest, written after its tar: per image its
  path, member name, byte offset and size of the .nzip data inside the tar (random access to
  one image is one seek), codec, CRC-32 of the .nzip bytes, input bytes; or the error that
  made the input unreadable. A shard is complete when both files exist and agree.
* ``manifest.json``: all shard manifests together, written when every shard is complete.

Guarantees: every shard and manifest is written atomically (temporary file, rename), so an
interrupted or killed worker leaves no partial shard; a run started again skips complete
shards and does the rest; unreadable inputs are listed with their errors and the others go
on. Engines: ``local`` (worker processes on this machine) or ``ray`` (:mod:`neuralzip.ray`,
Ray Data actors, on a cluster or the local machine). Both call :func:`compress_shard`, so a
shard is the same bytes whichever engine wrote it.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..images import write_atomic

IMAGE_SUFFIXES = {".png", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm", ".gif", ".jpg", ".jpeg", ".webp", ".tga"}
PLAN, MANIFEST, SHARDS = "plan.json", "manifest.json", "shards"
ENCODE_BATCH = 256  # images per codec call inside a shard


class DatasetError(Exception):
    """A dataset that cannot be processed as asked (the message says why)."""


@dataclass(frozen=True)
class ShardJob:
    """What one worker does: shard ``index`` of ``files`` (relative to ``source``)."""

    index: int
    source: str
    files: tuple[str, ...]
    out: str
    model: str

    @property
    def tar_path(self) -> Path:
        return Path(self.out) / SHARDS / f"shard-{self.index:05d}.tar"

    @property
    def manifest_path(self) -> Path:
        return Path(self.out) / SHARDS / f"shard-{self.index:05d}.json"


def source_files(source: Path) -> list[str]:
    """Image files under ``source``, as sorted POSIX paths relative to it."""
    if not source.is_dir():
        raise DatasetError(f"{source}: not a directory")
    return sorted(p.relative_to(source).as_posix() for p in source.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def plan(source: Path, out: Path, model: str, shard_size: int) -> list[ShardJob]:
    """The shard jobs of a dataset: fixed by the first run (``plan.json``)."""
    files = source_files(source)
    wanted = {"source": str(source.resolve()), "files": files, "model": model, "shard_size": shard_size}
    plan_file = out / PLAN
    if plan_file.exists():
        existing = json.loads(plan_file.read_text())
        if existing != wanted:
            raise DatasetError(f"{out}: made from other inputs or settings (plan.json differs); use a new output folder")
    else:
        (out / SHARDS).mkdir(parents=True, exist_ok=True)
        write_atomic(plan_file, json.dumps(wanted, indent=1).encode())
    return [ShardJob(k, str(source), tuple(files[i : i + shard_size]), str(out), model)
            for k, i in enumerate(range(0, len(files), shard_size))]


def shard_complete(job: ShardJob) -> bool:
    if not (job.tar_path.exists() and job.manifest_path.exists()):
        return False
    try:
        manifest = json.loads(job.manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return manifest.get("tar_bytes") == job.tar_path.stat().st_size and len(manifest.get("images", [])) == len(job.files)


def compress_shard(job: ShardJob, encode=None) -> dict:
    """Compress one shard and write its tar and manifest atomically; returns the manifest.
    ``encode``: images -> .nzip bytes (default :func:`neuralzip.api.encode_batch` with the
    job's codec; Ray actors pass the codec they loaded once)."""
    from ..api import encode_batch
    from ..images import read_image
    from ..jobs import describe, prepare_metadata

    encode = encode or (lambda images: encode_batch(images, job.model))
    started = time.perf_counter()
    rows: list[dict] = []
    loaded = []
    for rel in job.files:
        path = Path(job.source) / rel
        try:
            image = read_image(path)
            prepare_metadata(image, strip=False, kept_as_file=image.original_format == "jpeg")
            loaded.append((rel, image, path.stat().st_size))
        except Exception as error:  # one unreadable input never stops the shard
            rows.append({"path": rel, "error": describe(error).removeprefix(f"{path}: ")})
    encoded: dict[str, bytes] = {}
    for start in range(0, len(loaded), ENCODE_BATCH):
        chunk = loaded[start : start + ENCODE_BATCH]
        try:
            datas = encode([image for _, image, _ in chunk])
        except Exception:  # find the image that failed, code the others
            datas = []
            for rel, image, _ in chunk:
                try:
                    datas.append(encode([image])[0])
                except Exception as error:
                    datas.append(error)
        for (rel, _, _), data in zip(chunk, datas):
            encoded[rel] = data
    from ..container import unpack

    buffer = io.BytesIO()
    members = []
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, image, size in loaded:
            data = encoded[rel]
            if isinstance(data, Exception):
                rows.append({"path": rel, "error": describe(data)})
                continue
            info = tarfile.TarInfo(f"{rel}.nzip")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
            members.append((rel, info.name, data, size, image.subpixels))
    data = buffer.getvalue()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:  # where each member's bytes start
        offsets = {m.name: m.offset_data for m in tar.getmembers()}
    for rel, name, nzip, size, subpixels in members:
        rows.append({"path": rel, "member": name, "offset": offsets[name], "size": len(nzip),
                     "codec": _codec_name(unpack(nzip).codec_id), "crc32": zlib.crc32(nzip) & 0xFFFFFFFF,
                     "input_bytes": size, "subpixels": subpixels})
    order = {rel: i for i, rel in enumerate(job.files)}
    rows.sort(key=lambda r: order[r["path"]])
    write_atomic(job.tar_path, data, overwrite=True)
    manifest = {"shard": job.index, "tar": job.tar_path.name, "tar_bytes": len(data), "images": rows,
                "seconds": round(time.perf_counter() - started, 2)}
    write_atomic(job.manifest_path, json.dumps(manifest, indent=1).encode(), overwrite=True)
    return manifest


def _codec_name(codec_id: int) -> str:
    from ..codecs import BY_ID

    spec = BY_ID.get(codec_id)
    return spec.name if spec else str(codec_id)


def _local_worker(job: ShardJob) -> dict:
    os.environ.setdefault("NZIP_THREADS", "1")
    return compress_shard(job)


def compress(source: Path, out: Path, model: str = "local", shard_size: int = 1000, engine: str = "local",
             workers: int | None = None, address: str | None = None, progress=None) -> dict:
    """Compress every image under ``source`` into shards under ``out`` (resuming: complete
    shards are skipped). Returns the dataset manifest (also written to ``manifest.json``)."""
    source, out = Path(source), Path(out)
    jobs = plan(source, out, model, shard_size)
    todo = [job for job in jobs if not shard_complete(job)]
    workers = workers or max(1, os.cpu_count() or 1)
    if todo:
        if engine == "ray":
            from ..ray import compress_shards

            compress_shards(todo, workers=workers, address=address, progress=progress)
        elif engine == "local":
            _run_local(todo, workers, progress)
        else:
            raise DatasetError(f"unknown engine {engine!r} (local or ray)")
    missing = [job.index for job in jobs if not shard_complete(job)]
    if missing:
        raise DatasetError(f"shards {missing[:5]} did not complete; run the command again to resume")
    return write_manifest(out, jobs)


def _run_local(jobs: list[ShardJob], workers: int, progress) -> None:
    if workers <= 1:
        for job in jobs:
            compress_shard(job)
            if progress:
                progress(job)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_local_worker, job): job for job in jobs}
        for future in as_completed(futures):
            future.result()
            if progress:
                progress(futures[future])


def write_manifest(out: Path, jobs: list[ShardJob]) -> dict:
    shards = [json.loads(job.manifest_path.read_text()) for job in jobs]
    images = [dict(row, shard=s["tar"]) for s in shards for row in s["images"]]
    done = [r for r in images if "error" not in r]
    manifest = {"images": images, "shards": [s["tar"] for s in shards], "count": len(done),
                "errors": len(images) - len(done), "nzip_bytes": sum(r["size"] for r in done),
                "input_bytes": sum(r["input_bytes"] for r in done), "subpixels": sum(r["subpixels"] for r in done)}
    manifest["bits_per_subpixel"] = 8 * manifest["nzip_bytes"] / manifest["subpixels"] if manifest["subpixels"] else None
    write_atomic(out / MANIFEST, json.dumps(manifest, indent=1).encode(), overwrite=True)
    return manifest


def read_manifest(out: Path) -> dict:
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{out}: no manifest.json (not a compressed dataset, or not finished: run compress again)")
    return json.loads(path.read_text())


def read_member(out: Path, row: dict) -> bytes:
    """The .nzip bytes of one image, by one seek into its shard (random access)."""
    with open(Path(out) / SHARDS / row["shard"], "rb") as f:
        f.seek(row["offset"])
        return f.read(row["size"])


def restored_name(rel: str, original: bool) -> str:
    """Where an image is restored: its path relative to the source; a non-PNG input restored
    as PNG gets ``.png`` instead of its suffix, a JPEG kept as its file stays ``.jpg``."""
    path = Path(rel)
    if original or path.suffix.lower() == ".png":
        return rel
    return path.with_suffix(".png").as_posix()


def decompress(out: Path, target: Path, batch: int = 256) -> tuple[int, list[str]]:
    """Restore every image under ``target`` at its relative path. Returns (written, problems)."""
    from ..api import decode_batch
    from ..jobs import describe, restored_bytes

    manifest = read_manifest(out)
    rows = [r for r in manifest["images"] if "error" not in r]
    written, problems = 0, []
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        datas = [read_member(out, r) for r in chunk]
        for row, data, image in zip(chunk, datas, decode_batch(datas, errors="return")):
            if isinstance(image, Exception):
                problems.append(f"{row['path']}: {describe(image)}")
                continue
            destination = Path(target) / restored_name(row["path"], image.original is not None)
            destination.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(destination, restored_bytes(image), overwrite=True)
            written += 1
    return written, problems


def verify(out: Path, batch: int = 256) -> tuple[int, list[str]]:
    """Decode every image (checksums verified), check sizes and CRCs against the manifest
    and every shard's presence. Returns (images verified, problems)."""
    from ..api import decode_batch
    from ..jobs import describe

    manifest = read_manifest(out)
    problems = [f"{r['path']}: not compressed ({r['error']})" for r in manifest["images"] if "error" in r]
    rows = [r for r in manifest["images"] if "error" not in r]
    verified = 0
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        datas = []
        for row in chunk:
            try:
                data = read_member(out, row)
            except OSError as error:
                data = b""
                problems.append(f"{row['path']}: {describe(error)}")
            datas.append(data)
        for row, data, image in zip(chunk, datas, decode_batch(datas, errors="return")):
            if len(data) != row["size"] or zlib.crc32(data) & 0xFFFFFFFF != row["crc32"]:
                problems.append(f"{row['path']}: bytes in {row['shard']} differ from the manifest")
            elif isinstance(image, Exception):
                problems.append(f"{row['path']}: {describe(image)}")
            else:
                verified += 1
    return verified, problems
