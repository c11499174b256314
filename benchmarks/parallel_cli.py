"""The command line on many files at once: ``nzip compress -j N`` then ``nzip decompress -j N``.

    python benchmarks/parallel_cli.py [--data PATH] [--n N] [--jobs 2] [--model auto]

Writes the CIFAR-10 test images (default all 10,000) as PNG files into a temporary folder,
compresses them all with one ``nzip compress -j N`` command (the default model, ``auto``,
unless ``--model``), moves the originals aside, restores them all with one
``nzip decompress -j N`` command, and compares every restored image with its original,
read back by Pillow (independently of nzip's own reader). Writes
``benchmarks/results/parallel_cli.json`` and ``.md``: files, exact round trips, exit codes,
wall-clock times, total bytes and which codecs ``auto`` chose.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from neuralzip.bench import machine_description
from neuralzip.container import unpack
from neuralzip.data import load_cifar10, spread_subset
from neuralzip import codecs as codec_table

RESULTS = Path(__file__).resolve().parent / "results"


def nzip(*args: str, cwd: Path) -> tuple[int, float, str]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "neuralzip.cli", *args], cwd=cwd, capture_output=True, text=True)
    return result.returncode, time.perf_counter() - started, result.stderr


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="CIFAR-10 path (default: $NZIP_DATA)")
    parser.add_argument("--n", type=int, default=None, help="images (default: all 10,000)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--model", default="auto")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    test = load_cifar10("test", args.data)
    indices = spread_subset(len(test), args.n or len(test), seed=0)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        names = []
        for i in indices:
            name = f"{i:05d}.png"
            Image.fromarray(test.images[i]).save(work / name)
            names.append(name)
        png_bytes = sum((work / n).stat().st_size for n in names)
        code_c, seconds_c, err_c = nzip("compress", "-j", str(args.jobs), "-m", args.model, *names, cwd=work)
        compressed = [n for n in names if (work / f"{n}.nzip").exists()]
        nzip_bytes = sum((work / f"{n}.nzip").stat().st_size for n in compressed)
        by_id = {spec.codec_id: spec.name for spec in codec_table.SPECS}
        chosen = Counter(by_id.get(unpack((work / f"{n}.nzip").read_bytes()).codec_id, "?") for n in compressed)
        originals = work / "originals"
        originals.mkdir()
        for n in names:
            (work / n).rename(originals / n)
        code_d, seconds_d, err_d = nzip("decompress", "-j", str(args.jobs), *[f"{n}.nzip" for n in compressed], cwd=work)
        exact = 0
        for n in names:
            if (work / n).exists():
                with Image.open(originals / n) as a, Image.open(work / n) as b:
                    exact += a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))
        leftovers = [p.name for p in work.iterdir() if p.name.endswith(".part")]
    errors = [line for line in (err_c + err_d).splitlines() if line.startswith("nzip:")]
    subpixels = 3 * 32 * 32 * len(names)
    document = {
        "started": started, "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python benchmarks/parallel_cli.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "files": len(names), "compressed": len(compressed), "exact": exact, "jobs": args.jobs, "model": args.model,
        "compress_exit": code_c, "decompress_exit": code_d, "compress_seconds": round(seconds_c, 1),
        "decompress_seconds": round(seconds_d, 1), "png_bytes": png_bytes, "nzip_bytes": nzip_bytes,
        "bpd": 8 * nzip_bytes / subpixels, "chosen": dict(chosen), "errors": errors[:20], "leftover_temp_files": leftovers,
        "machine": machine_description(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "parallel_cli.json").write_text(json.dumps(document, indent=1) + "\n")
    lines = [f"# `nzip -j {args.jobs}` on {len(names)} CIFAR-10 test images as files\n",
             f"Run {started} to {document['finished']} by `{document['command']}` on this project's 2-core machine.\n",
             "| files | compressed | restored exactly | compress exit | decompress exit | compress s | decompress s | bpd | codecs chosen |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
             f"| {len(names)} | {len(compressed)} | {exact} | {code_c} | {code_d} | {seconds_c:.0f} | {seconds_d:.0f} | "
             f"{document['bpd']:.4f} | {', '.join(f'{k} {v}' for k, v in chosen.most_common())} |", "",
             "Exactness is checked against the original PNGs read by Pillow. Errors reported: "
             f"{len(errors)}; temporary files left behind: {len(leftovers)}."]
    (args.out / "parallel_cli.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    ok = exact == len(names) and code_c == 0 and code_d == 0 and not leftovers
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
