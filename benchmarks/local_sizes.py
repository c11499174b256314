"""Coding speed of the local codec's network sizes, with and without its matrix product accelerator, beside JPEG-XL.

    python benchmarks/local_sizes.py [--images 1000] [--blocks 0,1,2] [--data CIFAR]

What a bigger network costs the exact codec: the shipped ``local`` model, and the same model
grown to more residual blocks (:meth:`LocalModel.grow_from`: the added blocks start as the
identity, so the mixture heads, whose search costs depend on them, are a trained model's;
the matrix products cost the same whatever the weights), quantised as an export does,
encode and decode the same class-spread CIFAR-10 test images in one batch with the codec's
threads, once on each matrix product accelerator the CPU has (AMX tiles, AVX-512 VNNI, AVX2) and
once on the float32 path.
JPEG-XL codes the same images in the same run, so the ratios hold across machines. Every
round trip is checked exact. Writes ``benchmarks/results/local_sizes.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def timed(codec, images, shapes) -> tuple[float, float, bool]:
    start = time.perf_counter()
    payloads = codec.encode(images).payloads
    encode = time.perf_counter() - start
    start = time.perf_counter()
    decoded = codec.decode(payloads, shapes)
    decode = time.perf_counter() - start
    exact = all(np.array_equal(a.pixels, b.pixels) for a, b in zip(images, decoded))
    return len(images) / encode, len(images) / decode, exact


def main(argv=None) -> int:
    import torch

    from neuralzip import codecs
    from neuralzip.codecs.base import ImageShape
    from neuralzip.codecs.local import LocalCodec
    from neuralzip.data import load_cifar10, spread_subset
    from neuralzip.exact import kernels
    from neuralzip.images import PixelImage
    from neuralzip.nets.local import LocalConfig, LocalModel
    from neuralzip.registry import installed_versions, load_training_weights

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--blocks", default="0,1,2", help="residual blocks of the sizes to time")
    parser.add_argument("--data", default=None, help="CIFAR-10 path (default: $NZIP_DATA)")
    parser.add_argument("--note", default="")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    test = load_cifar10("test", args.data)
    pixels = test.images[spread_subset(len(test), args.images, seed=1)]
    images = [PixelImage("RGB", p) for p in pixels]
    shapes = [ImageShape("RGB", 32, 32) for _ in images]
    calibration = load_cifar10("train", args.data).images[:500]
    backends = kernels.matmul_backends()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = []
    jxl = codecs.get_codec("jxl")
    jxl_encode, jxl_decode, jxl_exact = timed(jxl, images, shapes)
    rows.append({"codec": "jxl", "blocks": None, "width": None, "matmul": None, "encode_img_per_s": round(jxl_encode, 1),
                 "decode_img_per_s": round(jxl_decode, 1), "exact": jxl_exact})
    original = kernels.matmul_backends
    shipped = installed_versions("local")[-1]
    state = load_training_weights(shipped.weights_file)
    base = json.loads(shipped.card_file.read_text())["config"]
    width = base["width"]
    for blocks in (int(b) for b in args.blocks.split(",")):
        torch.manual_seed(0)
        model = LocalModel(LocalConfig.from_dict({**base, "blocks": blocks}), seed=0)
        if blocks == base["blocks"]:
            model.load_state_dict(state)
        else:
            model.grow_from(state)
        for backend in [*backends, None]:
            kernels.matmul_backends = lambda: (backend,) if backend else ()  # what the codec may use
            codec = LocalCodec.from_float(model, calibration)
            encode, decode, exact = timed(codec, images, shapes)
            rows.append({"codec": "local", "blocks": blocks, "width": width, "matmul": backend or "float32",
                         "encode_img_per_s": round(encode, 1), "decode_img_per_s": round(decode, 1), "exact": exact,
                         "encode_vs_jxl": round(encode / jxl_encode, 2), "decode_vs_jxl": round(decode / jxl_decode, 3)})
            print(rows[-1], flush=True)
    kernels.matmul_backends = original
    document = {"started": started, "images": len(images), "cpu": platform.processor() or platform.machine(),
                "matmul_backends": list(backends), "model": shipped.label, "note": args.note,
                "command": "python benchmarks/local_sizes.py " + " ".join(sys.argv[1:] if argv is None else argv),
                "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "local_sizes.json").write_text(json.dumps(document, indent=1) + "\n")
    lines = [f"# Local codec: coding speed by network size ({len(images)} CIFAR-10 test images, one batch)", "",
             f"Run {started}: `{document['command']}`; matrix product accelerators on this CPU: {', '.join(backends) or 'none'}."
             + (f" {args.note}" if args.note else ""), "",
             f"{shipped.label} and the same model grown to more residual blocks (added blocks start as the identity; "
             "the matrix products cost the same whatever the weights), quantised as an export does; JPEG-XL coded "
             "the same images in the same run. img/s: wall clock, the codec's threads.", "",
             "| codec | blocks | width | matrix products | encode img/s | decode img/s | encode / jxl | decode / jxl | exact |",
             "|---|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in rows:
        if r["codec"] == "jxl":
            lines.append(f"| jxl | - | - | - | {r['encode_img_per_s']} | {r['decode_img_per_s']} | 1 | 1 | "
                         f"{'yes' if r['exact'] else 'NO'} |")
        else:
            lines.append(f"| local | {r['blocks']} | {r['width']} | {r['matmul']} | {r['encode_img_per_s']} | "
                         f"{r['decode_img_per_s']} | {r['encode_vs_jxl']} | {r['decode_vs_jxl']} | "
                         f"{'yes' if r['exact'] else 'NO'} |")
    (args.out / "local_sizes.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
