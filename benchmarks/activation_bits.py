"""What the local model's exact network loses to rounding, by activation precision.

    python benchmarks/activation_bits.py --data /path/to/cifar10 [--n 1000] [--version N] [--bits 8,10,12]

One shipped model's float weights quantised as its export would (calibration on the same
class-spread training images) with 8-bit activations summed in float32 and with wider ones
summed in int32 (``LocalConfig.activation_bits``); the exact network's NLL on a class-spread
subset of the test set beside the float model's. Results:
``benchmarks/results/activation_bits.{json,md}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from neuralzip.bench import machine_description
from neuralzip.codecs.local import LocalCodec
from neuralzip.data import load_cifar10, spread_subset
from neuralzip.export import CALIBRATION_IMAGES, evaluate_float
from neuralzip.nets.local import LocalModel
from neuralzip.nets.neighbourhood import LocalConfig
from neuralzip.registry import installed_versions, load_version

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="CIFAR-10 path (default: $NZIP_DATA)")
    parser.add_argument("--n", type=int, default=1000, help="test images (a class-spread subset)")
    parser.add_argument("--version", type=int, help="local model version (default: the newest shipped)")
    parser.add_argument("--bits", default="8,10,12", help="activation bits to compare")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    versions = installed_versions("local")
    version = next(v for v in versions if v.version == args.version) if args.version else versions[-1]
    shipped = load_version(version)
    train, test = load_cifar10("train", args.data), load_cifar10("test", args.data)
    calibration = train.images[spread_subset(len(train), CALIBRATION_IMAGES, seed=3)]  # as the export
    images = test.images[spread_subset(len(test), args.n, seed=1)]
    rows, float_bpd = [], None
    for bits in (int(b) for b in args.bits.split(",")):
        config = dataclasses.replace(LocalConfig.from_dict(shipped.card["config"]), activation_bits=bits)
        model = LocalModel(config)
        model.load_state_dict(shipped.prefixed("train."))
        model.eval()
        if float_bpd is None:
            float_bpd = evaluate_float(model, images)
        exact = LocalCodec.from_float(model, calibration).nll_bits_per_subpixel(images)
        rows.append({"activation_bits": bits, "exact_bpd": exact, "cost_bpd": exact - float_bpd})
        print(rows[-1], flush=True)
    label = f"local v{version.version}"
    trained = shipped.card["config"].get("activation_bits", 8)
    document = {"started": started, "model": label, "trained_with_activation_bits": trained, "images": len(images),
                "subset": "spread_subset(10000, n, seed=1)", "float_bpd": float_bpd, "machine": machine_description(),
                "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "activation_bits.json").write_text(json.dumps(document, indent=1) + "\n")
    lines = [f"# The exact network's rounding by activation precision ({label}, {len(images)} CIFAR-10 test images, {started})",
             "", f"`python benchmarks/activation_bits.py --n {args.n} --bits {args.bits}`. {label}'s float weights "
             f"(trained quantisation-aware with {trained}-bit activations) quantised as the export does, with "
             "8-bit activations (sums exact in float32) or wider ones (sums exact in int32); bpd of the exact "
             f"network against the float model's {float_bpd:.4f}.", "",
             "| activation bits | exact NLL | rounding costs |", "|---:|---:|---:|"]
    lines += [f"| {r['activation_bits']} | {r['exact_bpd']:.4f} | {r['cost_bpd']:+.4f} |" for r in rows]
    (RESULTS / "activation_bits.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
