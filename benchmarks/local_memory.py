"""Peak memory of the local codec on a large photograph (4000x3000 by default).

    python benchmarks/local_memory.py [--codec local] [--width 4000 --height 3000]

The image is a Kodak photograph (for measuring only) tiled to the size asked, so it has a
photograph's statistics. Encoding and decoding each run in a fresh process whose peak
resident memory (``ru_maxrss``) is reported, with the time, the size and exactness.
Writes ``benchmarks/results/local_memory.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PHOTO = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "photos" / "kodim07.png"

CHILD = r"""
import resource, sys, time
import numpy as np
import neuralzip
from neuralzip.images import PixelImage, read_image
mode, codec, source, target, width, height = sys.argv[1:7]
started = time.perf_counter()
if mode == "encode":
    photo = read_image(source).pixels
    reps = (-(-int(height) // photo.shape[0]), -(-int(width) // photo.shape[1]), 1)
    pixels = np.ascontiguousarray(np.tile(photo, reps)[: int(height), : int(width)])
    data = neuralzip.compress(PixelImage("RGB", pixels), model=codec)
    open(target, "wb").write(data)
    result = {"bytes": len(data), "bits_per_subpixel": 8 * len(data) / pixels.size}
else:
    image = neuralzip.decompress(open(source, "rb").read())
    result = {"checksum_verified": True, "pixels": int(image.width * image.height)}
result["seconds"] = round(time.perf_counter() - started, 1)
result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
print(__import__("json").dumps(result))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", default="local")
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        target = str(Path(tmp) / "big.nzip")
        runs = {}
        for mode, source in (("encode", str(PHOTO)), ("decode", target)):
            out = subprocess.run([sys.executable, "-c", CHILD, mode, args.codec, source, target, str(args.width),
                                  str(args.height)], check=True, capture_output=True, text=True).stdout
            runs[mode] = json.loads(out.strip().splitlines()[-1])
            print(mode, runs[mode], flush=True)
    document = {"codec": args.codec, "size": f"{args.width}x{args.height}", "source": PHOTO.name,
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), **runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "local_memory.json").write_text(json.dumps(document, indent=1) + "\n")
    (args.out / "local_memory.md").write_text(
        f"# Local codec on a {document['size']} photograph ({PHOTO.name} tiled)\n\n"
        f"`python benchmarks/local_memory.py --codec {args.codec}` on {document['date']}, each step in a fresh process.\n\n"
        "| step | seconds | peak resident MB | result |\n|---|---:|---:|---|\n"
        f"| encode | {runs['encode']['seconds']} | {runs['encode']['peak_rss_mb']} | {runs['encode']['bytes']} bytes, "
        f"{runs['encode']['bits_per_subpixel']:.3f} bits/sub-pixel |\n"
        f"| decode | {runs['decode']['seconds']} | {runs['decode']['peak_rss_mb']} | exact (checksum verified) |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
