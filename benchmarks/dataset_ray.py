"""The CIFAR-10 training set through ``nzip dataset compress --engine ray`` and back.

    python benchmarks/dataset_ray.py [--data CIFAR] [--n 50000] [--model local] [--workers 2]

Writes the training images as PNG files, then in one run: ``nzip compress -j WORKERS`` on
the same files (the reference throughput), ``nzip dataset compress --engine ray`` with
WORKERS Ray workers, the shards read back through a PyTorch DataLoader
(:class:`neuralzip.dataset.torch.NzipShards`, 2 loader workers) and compared with the
originals, and a second Ray run in which one worker is killed part-way (it must still end
with every image and no partial shard). Writes ``benchmarks/results/dataset_ray.json``/``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv=None) -> int:
    import numpy as np
    from PIL import Image

    from neuralzip.data import load_cifar10

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--model", default="local")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--tmp", default=None, help="scratch directory (default: a temporary one)")
    args = parser.parse_args(argv)
    train = load_cifar10("train", args.data)
    env = {**os.environ, "NZIP_THREADS": "1"}
    nzip = [sys.executable, "-m", "neuralzip.cli"]
    with tempfile.TemporaryDirectory(dir=args.tmp) as scratch:
        scratch = Path(scratch)
        source = scratch / "train"
        for i in range(args.n):
            folder = source / train.names[i].rsplit("/", 1)[0] if "/" in train.names[i] else source
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(train.images[i]).save(folder / f"{i:05d}.png")
        files = sorted(str(p) for p in source.rglob("*.png"))
        # reference: nzip compress -j WORKERS on the same files (outputs beside them, then
        # removed); the file list goes through a file, as 50,000 paths exceed the argv limit
        listing = scratch / "files.json"
        listing.write_text(json.dumps(files))
        launcher = ("import json, sys; from neuralzip.cli import entry; "
                    f"sys.argv = ['nzip', 'compress', '-q', '-m', {args.model!r}, '-j', '{args.workers}'] "
                    f"+ json.load(open({str(listing)!r})); entry()")
        reference = _timed([sys.executable, "-c", launcher], env)
        for path in source.rglob("*.nzip"):
            path.unlink()
        out = scratch / "shards"
        ray_seconds = _timed(nzip + ["dataset", "compress", "-q", str(source), str(out), "-m", args.model,
                                     "--engine", "ray", "--workers", str(args.workers),
                                     "--shard-size", str(args.shard_size)], env)
        manifest = json.loads((out / "manifest.json").read_text())
        # back through a PyTorch DataLoader, compared with the originals
        import torch

        from neuralzip.dataset.torch import NzipShards

        originals = {Path(f).relative_to(source).as_posix(): i for i, f in enumerate(files)}
        index = {p: int(Path(p).stem) for p in originals}
        started = time.perf_counter()
        exact = 0
        loader = torch.utils.data.DataLoader(NzipShards(out), batch_size=None, num_workers=2)
        for path, pixels in loader:
            exact += int(np.array_equal(np.asarray(pixels), train.images[index[path]]))
        read_seconds = time.perf_counter() - started
        # a run with a worker killed part-way
        from neuralzip import dataset as ds
        from neuralzip import ray as nzr

        killed_out = scratch / "killed"
        marker = scratch / "killed-once"
        subset = scratch / "subset"
        shutil.copytree(source, subset, dirs_exist_ok=True,
                        ignore=lambda d, names: [n for n in names if n.endswith(".png") and int(n[:5]) >= 4000])
        import ray

        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"NZIP_THREADS": "1"}})
        jobs = ds.plan(subset, killed_out, args.model, 500)
        nzr.compress_shards(jobs, workers=args.workers, kill_once=str(marker))
        killed_manifest = ds.write_manifest(killed_out, jobs)
        killed = {"images": killed_manifest["count"], "expected": len(ds.source_files(subset)),
                  "worker_killed": marker.exists(), "partial_files": len(list((killed_out / "shards").glob("*.part"))),
                  "verified": ds.verify(killed_out)[0]}
        ray.shutdown()
    document = {
        "images": args.n, "model": args.model, "workers": args.workers, "shard_size": args.shard_size,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nzip_compress_j_seconds": round(reference, 1), "nzip_compress_j_img_per_s": round(args.n / reference, 1),
        "ray_seconds": round(ray_seconds, 1), "ray_img_per_s": round(args.n / ray_seconds, 1),
        "ray_over_j": round(reference / ray_seconds, 3), "compressed": manifest["count"], "errors": manifest["errors"],
        "bits_per_subpixel": round(manifest["bits_per_subpixel"], 4), "dataloader_exact": exact,
        "dataloader_seconds": round(read_seconds, 1), "dataloader_img_per_s": round(args.n / read_seconds, 1),
        "killed_worker_run": killed,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dataset_ray.json").write_text(json.dumps(document, indent=1) + "\n")
    lines = [f"# {args.n} CIFAR-10 training images through `nzip dataset compress --engine ray`\n",
             f"`python benchmarks/dataset_ray.py` on {document['date']}, model `{args.model}`, {args.workers} workers "
             f"(one codec thread each), shards of {args.shard_size}.\n",
             "| step | seconds | images/s | result |", "|---|---:|---:|---|",
             f"| `nzip compress -j {args.workers}` (reference) | {document['nzip_compress_j_seconds']} | "
             f"{document['nzip_compress_j_img_per_s']} | |",
             f"| `nzip dataset compress --engine ray` | {document['ray_seconds']} | {document['ray_img_per_s']} | "
             f"{manifest['count']} images, {document['bits_per_subpixel']} bits/sub-pixel, {document['ray_over_j']}x the reference |",
             f"| DataLoader over the shards (2 workers) | {document['dataloader_seconds']} | "
             f"{document['dataloader_img_per_s']} | {exact} of {args.n} exact |",
             "",
             f"Killed-worker run ({killed['expected']} images, shards of 500, one worker killed mid-shard: "
             f"{killed['worker_killed']}): {killed['images']} images compressed, {killed['verified']} verified, "
             f"{killed['partial_files']} partial files left."]
    (args.out / "dataset_ray.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if exact == args.n and killed["images"] == killed["expected"] else 1


if __name__ == "__main__":
    sys.exit(main())
