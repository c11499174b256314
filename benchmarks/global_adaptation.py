"""What could a global latent tell the local model? An upper bound from per-image head shifts.

    python benchmarks/global_adaptation.py --data /path/to/cifar10 [--n 200] [--model local]

The local-VAE's latent can only pay where the local decoder, which sees a few rows of
neighbours, lacks something an image-wide summary knows. The cheapest such summary shifts
the decoder's mixture head for the whole image (its sharpness, its colour balance). This fits,
for each test image (a class-spread subset) and with the image's own pixels, k numbers added
to the shipped model's exact heads: one shift of every log-scale, one per colour channel, or
one log-scale and one mean shift per channel. The in-sample gain in bits per sub-pixel is an
optimistic bound on what a latent of k numbers saves; against it stands what describing k
real numbers costs (at least about half of log2 of the sub-pixels per number, the MDL price of
a fitted parameter, which is also roughly the KL of a latent known to that precision).
Results: ``benchmarks/results/global_adaptation.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from neuralzip.bench import machine_description
from neuralzip.codecs import get_codec
from neuralzip.codecs.head_offsets import HEAD_ONE
from neuralzip.data import load_cifar10, spread_subset
from neuralzip.distributions import mixture_log_likelihood

RESULTS = Path(__file__).resolve().parent / "results"
FIT_STEPS = 80
FIT_RATE = 0.03


def shift_groups(kind: str, mixtures: int, channels: int, size: int) -> torch.Tensor:
    """[size, k]: how k fitted numbers move the head's columns (logits, then each channel's
    means, log-scales and couplings, ``mixtures`` columns each)."""
    k = mixtures
    means = lambda c: slice(k + c * k, k + (c + 1) * k)
    scales = lambda c: slice(k + (channels + c) * k, k + (channels + c + 1) * k)
    columns = {"one log-scale shift": [[scales(c) for c in range(channels)]],
               "a log-scale shift per channel": [[scales(c)] for c in range(channels)],
               "a log-scale and a mean shift per channel": ([[scales(c)] for c in range(channels)]
                                                            + [[means(c)] for c in range(channels)])}[kind]
    matrix = np.zeros((size, len(columns)), np.float32)
    for j, slices in enumerate(columns):
        for part in slices:
            matrix[part, j] = 1.0
    return torch.from_numpy(matrix)


KINDS = ("one log-scale shift", "a log-scale shift per channel", "a log-scale and a mean shift per channel")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="CIFAR-10 path (default: $NZIP_DATA)")
    parser.add_argument("--n", type=int, default=200, help="test images (a class-spread subset)")
    parser.add_argument("--model", default="local", help="a local model name (default: local)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    codec = get_codec(args.model)
    layout = codec.mixture.layout
    test = load_cifar10("test", args.data)
    images = test.images[spread_subset(len(test), args.n, seed=5)]
    rows = []
    for kind in KINDS:
        groups = shift_groups(kind, layout.mixtures, layout.channels, layout.size)
        gains = []
        for image in images:
            head, values, _ = codec.sample_heads(image, image.shape[0] * image.shape[1], seed=0)
            params = torch.from_numpy(head.astype(np.float32) / HEAD_ONE).T.reshape(1, -1, len(head), 1)
            x = torch.from_numpy(values.astype(np.float32) * (2.0 / 255.0) - 1.0).T.reshape(1, layout.channels, len(head), 1)
            shift = torch.zeros(groups.shape[1], requires_grad=True)
            optimiser = torch.optim.Adam([shift], lr=FIT_RATE)
            for _ in range(FIT_STEPS):
                loss = -mixture_log_likelihood(params + (groups @ shift).view(1, -1, 1, 1), x, layout).sum()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            with torch.no_grad():
                before = -float(mixture_log_likelihood(params, x, layout).sum())
                after = -float(mixture_log_likelihood(params + (groups @ shift).view(1, -1, 1, 1), x, layout).sum())
            gains.append((before - after) / math.log(2) / image.size)
        k = groups.shape[1]
        cost = 0.5 * math.log2(images[0].size) * k / images[0].size
        rows.append({"shift": kind, "numbers": k, "gain_bpd": float(np.mean(gains)),
                     "median_gain_bpd": float(np.median(gains)), "cost_bpd": cost,
                     "net_bpd": float(np.mean(gains)) - cost})
        print(rows[-1], flush=True)
    label = f"{args.model} v{codec.card['version']}"
    document = {"started": started, "model": label, "images": len(images), "subset": "spread_subset(10000, n, seed=5)",
                "fit": {"steps": FIT_STEPS, "adam_lr": FIT_RATE}, "machine": machine_description(), "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "global_adaptation.json").write_text(json.dumps(document, indent=1) + "\n")
    lines = [f"# What an image-wide summary could tell {label} ({len(images)} CIFAR-10 test images, {started})", "",
             f"`python benchmarks/global_adaptation.py --n {args.n} --model {args.model}`. Per image, k numbers "
             "added to the exact heads of every pixel (fitted to the image's own pixels: an optimistic, in-sample "
             "bound on what a latent of k numbers could save the local decoder), against the MDL price of k fitted "
             "numbers (half of log2 of the image's sub-pixels each). bpd.", "",
             "| shift | k | mean gain | median gain | price of k numbers | net |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['shift']} | {r['numbers']} | {r['gain_bpd']:.4f} | {r['median_gain_bpd']:.4f} | "
              f"{r['cost_bpd']:.4f} | {r['net_bpd']:+.4f} |" for r in rows]
    (RESULTS / "global_adaptation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
