"""Where the local model's 8-bit integer network loses rate against its float model.

    python benchmarks/quantisation_gap.py --data /path/to/cifar10 [--n 1000] [--version N]
    python benchmarks/quantisation_gap.py --model local-photo --photos /path/to/photos

The exact network (:mod:`neuralzip.exact.local`) rounds two things: every layer's weights
(a scale per output row, as fine as exact float32 sums allow) and every layer's input
activations (8 bits, a scale per channel from calibration images, as the export sets them).
This measures, on a class-spread subset of the CIFAR-10 test set, the float NLL of the
shipped model's float weights with each rounding applied alone (one layer's weights, or one
layer's 8-bit inputs), all of them together (the straight-through rounding of
quantisation-aware training), and the shipped exact network's own NLL on the same images,
which all of them together should equal. The gap of a layer says what a wider integer
path for it could win. With ``--photos`` the images are the full-size photographs of that
folder instead (the calibration is the model's own training data, as its export's), without
head offsets on either side. Results: ``benchmarks/results/quantisation_gap[-MODEL].{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from neuralzip.bench import machine_description
from neuralzip.codecs.local import LocalCodec
from neuralzip.data import load_cifar10, spread_subset
from neuralzip.exact.local import FakeQuantizer, activation_scales
from neuralzip.export import CALIBRATION_IMAGES, photo_run_data, evaluate_float
from neuralzip.images import read_image
from neuralzip.nets.local import LocalModel
from neuralzip.nets.neighbourhood import LocalConfig
from neuralzip.registry import installed_versions, load_version

RESULTS = Path(__file__).resolve().parent / "results"


class SelectiveRounding(FakeQuantizer):
    """The exact network's rounding for the named layers only: ``weights`` rounds those
    layers' weights, ``inputs`` those layers' 8-bit input activations; every other layer
    stays float (its ReLU unrounded)."""

    def __init__(self, model, scales, weights=(), inputs=()):
        super().__init__(model, scales)
        self.weights, self.inputs = set(weights), set(inputs)

    def activation(self, name, a):
        return super().activation(name, a) if name in self.inputs else torch.relu(a)

    def weight(self, name, w, b):
        return super().weight(name, w, b) if name in self.weights else (w, b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="CIFAR-10 path (default: $NZIP_DATA)")
    parser.add_argument("--n", type=int, default=1000, help="test images (a class-spread subset)")
    parser.add_argument("--model", default="local", help="a local model name (default: local)")
    parser.add_argument("--version", type=int, help="model version (default: the newest shipped)")
    parser.add_argument("--photos", help="measure on the photographs (PNG) of this folder, not CIFAR-10")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    versions = installed_versions(args.model)
    version = next(v for v in versions if v.version == args.version) if args.version else versions[-1]
    shipped = load_version(version)
    model = LocalModel(LocalConfig.from_dict(shipped.card["config"]))
    model.load_state_dict(shipped.prefixed("train."))
    model.eval()
    settings = shipped.card["training"]["settings"]
    if settings.get("photos"):  # the calibration of the export: the run's own training data
        calibration = photo_run_data(settings, args.data)[0]
    else:
        train = load_cifar10("train", args.data)
        calibration = train.images[spread_subset(len(train), CALIBRATION_IMAGES, seed=3)]  # as the export
    if args.photos:
        photos = sorted(Path(args.photos).glob("*.png"))
        image_sets = [np.array(read_image(path).pixels[None]) for path in photos]  # writable, for torch
        what = f"{len(photos)} photographs ({', '.join(path.name for path in photos)})"
    else:
        test = load_cifar10("test", args.data)
        image_sets = [test.images[spread_subset(len(test), args.n, seed=1)]]
        what = f"{len(image_sets[0])} CIFAR-10 test images"
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    scales = activation_scales(model, calibration)
    layers = model.config.layer_names()

    def mean_bpd(measure) -> float:  # over every sub-pixel of every image
        return sum(measure(images) * images.size for images in image_sets) / sum(images.size for images in image_sets)

    def nll(weights=(), inputs=()) -> float:
        model.quantizer = SelectiveRounding(model, scales, weights, inputs)
        try:
            return mean_bpd(lambda images: evaluate_float(model, images))
        finally:
            model.quantizer = None

    float_bpd = mean_bpd(lambda images: evaluate_float(model, images))
    rows = [{"rounded": f"{layer} weights", "bpd": nll(weights=[layer])} for layer in layers]
    rows += [{"rounded": f"{layer} 8-bit inputs", "bpd": nll(inputs=[layer])} for layer in scales]
    rows += [{"rounded": "every weight", "bpd": nll(weights=layers)},
             {"rounded": "every 8-bit input", "bpd": nll(inputs=list(scales))},
             {"rounded": "everything (quantisation-aware training's rounding)", "bpd": nll(layers, list(scales))}]
    exact_bpd = mean_bpd(LocalCodec.from_shipped(shipped).nll_bits_per_subpixel)
    for row in rows:
        row["cost"] = row["bpd"] - float_bpd
    document = {"started": started, "model": version.label, "images": what,
                "subset": None if args.photos else "spread_subset(10000, n, seed=1)", "machine": machine_description(),
                "float_bpd": float_bpd, "exact_bpd": exact_bpd, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    stem = "quantisation_gap" + ("" if args.model == "local" else f"-{args.model}")
    (RESULTS / f"{stem}.json").write_text(json.dumps(document, indent=1) + "\n")
    command = (f"--model {args.model} --photos {args.photos}" if args.photos
               else f"--n {args.n}" + ("" if args.model == "local" else f" --model {args.model}"))
    lines = [f"# Where {version.label}'s integer network loses rate ({what}, {started})", "",
             f"`python benchmarks/quantisation_gap.py {command}`. Float NLL of the shipped float weights with "
             "one rounding of the exact network applied at a time (a layer's weights, or its 8-bit input "
             "activations; scales as the export sets them), bpd. A layer's input is the ReLU of the layer "
             "before it (for `hidden`, of the residual stream).", "",
             f"Float model: {float_bpd:.4f}. The shipped exact network on the same images: {exact_bpd:.4f} "
             f"({exact_bpd - float_bpd:+.4f}).", "",
             "| rounded | bpd | cost |", "|---|---:|---:|"]
    lines += [f"| {r['rounded']} | {r['bpd']:.4f} | {r['cost']:+.4f} |" for r in rows]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
