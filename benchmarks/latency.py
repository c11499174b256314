"""Latency of ``nzip compress`` and ``nzip decompress`` on one file: codecs side by side, each
command a fresh process, as a user runs them.

    python benchmarks/latency.py [--codecs local,jxl,auto] [--repeats 7] [--data CIFAR]
    python benchmarks/latency.py --photo kodim08.png [--codecs local-photo,jxl,auto]

One CIFAR-10 test image (32x32; or ``--photo``) is written as PNG; each codec compresses it
and decompresses its file in a fresh process, ``--repeats`` times in turn (codecs
interleaved, so machine load affects all alike); the median wall times (process start,
imports, model loading, coding, checksum, writing the file) are reported with their ratios
to JPEG-XL's. Writes ``benchmarks/results/latency.{json,md}`` (``latency_photo.*`` with
``--photo``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def main(argv=None) -> int:
    from PIL import Image

    from neuralzip.data import load_cifar10

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codecs", default=None, help="default: local,jxl,auto (with --photo: local-photo,jxl,auto)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--data", default=None, help="CIFAR-10 path (default: $NZIP_DATA)")
    parser.add_argument("--photo", type=Path, default=None, help="time this PNG instead of a CIFAR-10 image")
    parser.add_argument("--note", default="", help="conditions of this run, recorded with it")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = (args.codecs or ("local-photo,jxl,auto" if args.photo else "local,jxl,auto")).split(",")
    nzip = [sys.executable, "-m", "neuralzip.cli"]
    times = {(name, op): [] for name in names for op in ("compress", "decompress")}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "image.png"
        if args.photo:
            shutil.copyfile(args.photo, source)
            with Image.open(source) as im:
                described = f"{args.photo.name} ({im.width}x{im.height} {im.mode})"
        else:
            Image.fromarray(load_cifar10("test", args.data).images[1234]).save(source)
            described = "CIFAR-10 test image 1234 (32x32 RGB)"
        files = {name: Path(tmp) / f"{name}.nzip" for name in names}
        for _ in range(args.repeats):
            for name in names:
                times[(name, "compress")].append(_timed(
                    nzip + ["compress", "-q", "-f", "-m", name, str(source), "-o", str(files[name])]))
                times[(name, "decompress")].append(_timed(
                    nzip + ["decompress", "-q", "-f", str(files[name]), "-o", str(Path(tmp) / f"{name}.png")]))
        sizes = {name: files[name].stat().st_size for name in names}
    median = {key: statistics.median(t) for key, t in times.items()}

    def ratio(name: str, op: str) -> float | None:
        return round(median[(name, op)] / median[("jxl", op)], 2) if "jxl" in names else None

    rows = [{"codec": name, "file_bytes": sizes[name],
             **{f"{op}_median_seconds": round(median[(name, op)], 3) for op in ("compress", "decompress")},
             **{f"{op}_runs": [round(t, 3) for t in times[(name, op)]] for op in ("compress", "decompress")},
             **{f"{op}_ratio_to_jxl": ratio(name, op) for op in ("compress", "decompress")}} for name in names]
    given = list(argv if argv is not None else sys.argv[1:])
    if "--note" in given:  # the note is recorded on its own
        del given[given.index("--note") : given.index("--note") + 2]
    document = {"image": described, "command": "python benchmarks/latency.py " + " ".join(given),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "note": args.note, "results": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "latency_photo" if args.photo else "latency"
    (args.out / f"{stem}.json").write_text(json.dumps(document, indent=1) + "\n")
    lines = [f"# Latency of `nzip compress` and `nzip decompress`: {described}\n",
             f"`{document['command']}` on {document['date']}{'. ' + args.note if args.note else ''}: each "
             f"codec's compress and decompress run as fresh processes {args.repeats} times, codecs interleaved; "
             "median wall time (process start, imports, model loading, coding, checksum, writing the file).\n",
             "| codec | file bytes | compress s | x JPEG-XL | decompress s | x JPEG-XL |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['codec']} | {r['file_bytes']} | {r['compress_median_seconds']:.3f} | "
              f"{r['compress_ratio_to_jxl'] or '-'} | {r['decompress_median_seconds']:.3f} | "
              f"{r['decompress_ratio_to_jxl'] or '-'} |" for r in rows]
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
