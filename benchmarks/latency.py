"""Latency of ``nzip decompress`` on one small file: a neural codec against JPEG-XL, side by side.

    python benchmarks/latency.py [--codecs local,jxl] [--repeats 7] [--data CIFAR]

One CIFAR-10 test image (32x32) is written as PNG and compressed with each codec; then each
file is decompressed by a fresh ``nzip decompress`` process, ``--repeats`` times in turn
(codecs interleaved, so machine load affects both alike), and the median wall time is
reported with its ratio to JPEG-XL's. Writes ``benchmarks/results/latency.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    from PIL import Image

    from neuralzip.data import load_cifar10

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codecs", default="local,pixelcnn,flow,jxl")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--data", default=None, help="CIFAR-10 path (default: $NZIP_DATA)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = args.codecs.split(",")
    image = load_cifar10("test", args.data).images[1234]
    nzip = [sys.executable, "-m", "neuralzip.cli"]
    times: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "image.png"
        Image.fromarray(image).save(source)
        files = {}
        for name in names:
            target = Path(tmp) / f"{name}.nzip"
            subprocess.run(nzip + ["compress", "-q", "-m", name, str(source), "-o", str(target)], check=True)
            files[name] = target
        for _ in range(args.repeats):
            for name in names:
                out = Path(tmp) / f"{name}.png"
                start = time.perf_counter()
                subprocess.run(nzip + ["decompress", "-q", "-f", str(files[name]), "-o", str(out)], check=True)
                times[name].append(time.perf_counter() - start)
        sizes = {name: files[name].stat().st_size for name in names}
    median = {name: statistics.median(t) for name, t in times.items()}
    reference = median.get("jxl")
    rows = [{"codec": name, "median_seconds": round(median[name], 3), "runs": [round(t, 3) for t in times[name]],
             "file_bytes": sizes[name], "ratio_to_jxl": round(median[name] / reference, 2) if reference else None}
            for name in names]
    document = {"image": "CIFAR-10 test image 1234 (32x32 RGB)", "command": "python benchmarks/latency.py " + " ".join(
        argv if argv is not None else sys.argv[1:]), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "results": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency.json").write_text(json.dumps(document, indent=1) + "\n")
    lines = ["# Latency of `nzip decompress` on one 32x32 file\n",
             f"`{document['command']}` on {document['date']}: each file decoded by a fresh process "
             f"{args.repeats} times, codecs interleaved; median wall time (process start, imports, decoding, "
             "checksum, writing the PNG).\n",
             "| codec | file bytes | median s | x JPEG-XL |", "|---|---:|---:|---:|"]
    lines += [f"| {r['codec']} | {r['file_bytes']} | {r['median_seconds']:.3f} | {r['ratio_to_jxl'] or '-'} |" for r in rows]
    (args.out / "latency.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
