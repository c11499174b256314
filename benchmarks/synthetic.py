"""Images unlike the training data: where the neural codecs lose, and by how much.

    python benchmarks/synthetic.py --data /path/to/cifar10 [--codecs local,local-photo,jxl,png] [--note TEXT]

The local models learned from CIFAR-10 thumbnails or photographs; graphics (flat saturated
colours, smooth gradients in one or two channels at the ends of the range) and pure noise are
far from both. Each codec codes each image of a fixed, seeded set (64x64 synthetic images,
and the CIFAR-10 test image on which `local` costs most) and the whole file's bits per
sub-pixel are reported, with `auto`'s choice: `auto` codes with the classical codecs too, so
its file is never larger than theirs, whatever the models do. Results:
``benchmarks/results/synthetic.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from neuralzip import api
from neuralzip.data import load_cifar10
from neuralzip.images import PixelImage

RESULTS = Path(__file__).resolve().parent / "results"
SIDE = 64
WORST_CIFAR = 922  # the test image local v17 codes worst (9.1 bits per sub-pixel; the mean is 3.44)


def gradient(red: int, green_from: int, green_to: int, blue: int, rng: np.random.Generator) -> np.ndarray:
    """Constant red and blue, green rising down the image with +-1 of noise."""
    image = np.empty((SIDE, SIDE, 3), np.uint8)
    image[..., 0], image[..., 2] = red, blue
    ramp = np.linspace(green_from, green_to, SIDE)[:, None] + rng.integers(-1, 2, (SIDE, SIDE))
    image[..., 1] = np.clip(ramp, 0, 255)
    return image


def images(data: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "flat white": np.full((SIDE, SIDE, 3), 255, np.uint8),
        "flat red (255, 0, 0)": np.full((SIDE, SIDE, 3), (255, 0, 0), np.uint8),
        "flat mid grey": np.full((SIDE, SIDE, 3), 128, np.uint8),
        "cyan gradient, red 0": gradient(0, 150, 190, 250, rng),
        "cyan gradient, red 2": gradient(2, 150, 190, 250, rng),
        "blue gradient, red 0": gradient(0, 60, 120, 255, rng),
        "grey noise +-5": np.repeat(rng.integers(100, 110, (SIDE, SIDE, 1)), 3, axis=2).astype(np.uint8),
        "uniform noise": rng.integers(0, 256, (SIDE, SIDE, 3)).astype(np.uint8),
        f"CIFAR-10 test {WORST_CIFAR} (32x32)": load_cifar10("test", data).images[WORST_CIFAR],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--codecs", default="local,local-photo,jxl,png")
    parser.add_argument("--note", default="", help="conditions of this run, recorded with it")
    args = parser.parse_args(argv)
    names = args.codecs.split(",")
    rows = []
    for label, pixels in images(args.data).items():
        image = PixelImage("RGB", np.ascontiguousarray(pixels))
        row = {"image": label}
        for name in names + ["auto"]:
            data = api.compress(image, model=name)
            decoded = api.decompress(data)
            if not np.array_equal(decoded.pixels, image.pixels):
                raise SystemExit(f"{name} did not restore {label}")
            row[name] = 8 * len(data) / image.subpixels
        row["auto chose"] = api.compress_batch([image], "auto")[0].codec
        rows.append(row)
        print(row, flush=True)
    document = {"command": "python benchmarks/synthetic.py " + " ".join(
                    a for a in (argv if argv is not None else sys.argv[1:]) if a not in (args.note, "--note")),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "note": args.note,
                "codecs": names, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "synthetic.json").write_text(json.dumps(document, indent=1) + "\n")
    lines = ["# Images unlike the training data (whole files, bits per sub-pixel; every one restored exactly)", "",
             f"`{document['command']}` on {document['date']}{'. ' + args.note if args.note else ''}.", "",
             "| image | " + " | ".join(names) + " | auto | auto chose |", "|---|" + "---:|" * (len(names) + 1) + "---|"]
    for row in rows:
        lines.append(f"| {row['image']} | " + " | ".join(f"{row[n]:.3f}" for n in names + ["auto"]) + f" | {row['auto chose']} |")
    (RESULTS / "synthetic.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
