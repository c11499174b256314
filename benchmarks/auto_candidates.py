"""Which codecs earn their place in ``auto``: every candidate on CIFAR-10 test images.

    python benchmarks/auto_candidates.py --data /path/to/cifar10 [--n 1000] [--note TEXT]

On a class-spread subset of the test set (seeded), each codec auto can try codes every image
as auto codes it (batches of the CLI's size, the threads of this machine), timed; each
image's smallest file then says what auto would store with a given set of candidates: by
default (:func:`neuralzip.auto.candidates`) and with every codec (``--try all``). On images
this small auto codes every candidate in full, so the smallest file among a set's codecs is
exactly auto's choice; the script checks that against :func:`neuralzip.auto.choose` itself on
a slice of the images. Reported: per codec its bits per sub-pixel, seconds per image and the
images it wins (strictly smaller than every other candidate's file); per set its rate and its
time per image (the sum of its codecs'), and the time a fresh process needs to import torch
(which only the codecs of ``auto.ON_REQUEST`` need). Results:
``benchmarks/results/auto_candidates.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from neuralzip import api, auto, codecs
from neuralzip.bench import machine_description
from neuralzip.data import load_cifar10, spread_subset
from neuralzip.images import PixelImage
from neuralzip.jobs import NEURAL_BATCH

RESULTS = Path(__file__).resolve().parent / "results"
CHECKED = 64  # images on which auto.choose itself confirms the simulated choice


def code_all(name: str, images: list[PixelImage]) -> tuple[list[int], float]:
    """(each image's coded bytes as auto compares them, seconds per image) of codec ``name``."""
    codec = codecs.get_codec(name)
    sizes: list[int] = []
    started = time.perf_counter()
    for start in range(0, len(images), NEURAL_BATCH):
        payloads, _ = auto._encode(codec, images[start : start + NEURAL_BATCH])
        sizes += [auto.coded_bytes(name, p) for p in payloads]
    return sizes, (time.perf_counter() - started) / len(images)


def torch_import_seconds(repeats: int = 3) -> float:
    """Median wall time of a fresh Python process importing torch, less one importing nothing."""
    def wall(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - started
    return float(np.median([wall("import torch") - wall("pass") for _ in range(repeats)]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--note", default="", help="conditions of this run, recorded with it")
    args = parser.parse_args(argv)

    test = load_cifar10("test", args.data)
    indices = spread_subset(len(test), args.n, seed=1)
    images = [PixelImage("RGB", np.ascontiguousarray(test.images[i])) for i in indices]
    every = auto.candidates("all")
    default = auto.candidates()
    sizes, seconds = {}, {}
    for name in every:
        sizes[name], seconds[name] = code_all(name, images)
        print(f"{name}: {8 * np.mean(sizes[name]) / images[0].subpixels:.4f} bits/sub-pixel, "
              f"{1000 * seconds[name]:.1f} ms/image", flush=True)
    # every single file of an image repeats the same bytes beyond what coded_bytes counts
    shared = len(api.compress(images[0], model="png")) - auto.coded_bytes("png", codecs.get_codec("png").encode([images[0]]).payloads[0])
    table = np.array([sizes[name] for name in every])  # [codec, image]

    def chosen(names: list[str]) -> np.ndarray:
        rows = [every.index(n) for n in names]  # auto keeps the first of equal sizes, in its order
        return np.array(rows)[np.argmin(table[rows], axis=0)]

    for names in (default, every):
        simulated = [every[k] for k in chosen(names)[:CHECKED]]
        real = [c.codec for c in auto.choose(images[:CHECKED], names=names)]
        if simulated != real:
            raise SystemExit(f"auto chose {real} but the per-codec sizes say {simulated}: the benchmark does not measure auto")
    subpixels = images[0].subpixels
    rows = []
    for k, name in enumerate(every):
        others = np.delete(table, k, axis=0).min(axis=0)
        rows.append({"codec": name, "default": name in default,
                     "bpd": 8 * (float(np.mean(table[k])) + shared) / subpixels,
                     "ms_per_image": 1000 * seconds[name], "wins": int((table[k] < others).sum())})
    sets = []
    for label, names in (("default", default), ("all (--try all)", every)):
        pick = chosen(names)
        best = table[pick, np.arange(len(images))]
        sets.append({"set": label, "codecs": names, "bpd": 8 * (float(best.mean()) + shared) / subpixels,
                     "ms_per_image": 1000 * sum(seconds[n] for n in names),
                     "chosen": {n: int((pick == every.index(n)).sum()) for n in names if (pick == every.index(n)).any()}})
    document = {"dataset": "CIFAR-10 test", "images": len(images), "subset_seed": 1,
                "command": "python benchmarks/auto_candidates.py " + " ".join(
                    a for a in (argv if argv is not None else sys.argv[1:]) if a != args.note and a != "--note"),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "note": args.note,
                "models": {spec.name: spec_version(spec) for spec in codecs.available_specs() if spec.model},
                "torch_import_s": torch_import_seconds(), "machine": machine_description(),
                "codecs": rows, "sets": sets}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "auto_candidates.json").write_text(json.dumps(document, indent=1) + "\n")
    (RESULTS / "auto_candidates.md").write_text(markdown(document))
    print(markdown(document))
    return 0


def spec_version(spec) -> str:
    from neuralzip.registry import installed_versions

    versions = installed_versions(spec.model)
    return versions[-1].label if versions else "-"


def markdown(document: dict) -> str:
    lines = [f"# Which codecs auto tries: {document['images']} CIFAR-10 test images (class-spread, seed 1)", "",
             f"`{document['command']}` on {document['date']}{'. ' + document['note'] if document['note'] else ''}; "
             f"{document['machine']['cpus']} CPUs. Whole single files (every file's shared "
             "header included); time per image in batches of the CLI's size, models loaded. "
             f"A fresh process needs {document['torch_import_s']:.2f} s more to import torch, which only "
             f"{', '.join(auto.ON_REQUEST)} need.", "",
             "| codec | tried by default | bits/sub-pixel | ms per image | images it wins |", "|---|---|---:|---:|---:|"]
    for row in sorted(document["codecs"], key=lambda r: r["bpd"]):
        lines.append(f"| {row['codec']} | {'yes' if row['default'] else 'on request'} | {row['bpd']:.4f} | "
                     f"{row['ms_per_image']:.1f} | {row['wins']} |")
    lines += ["", "| auto tries | bits/sub-pixel | ms per image | chosen |", "|---|---:|---:|---|"]
    for entry in document["sets"]:
        chosen = ", ".join(f"{name} {count}" for name, count in sorted(entry["chosen"].items(), key=lambda kv: -kv[1]))
        lines.append(f"| {entry['set']} | {entry['bpd']:.5f} | {entry['ms_per_image']:.1f} | {chosen} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
