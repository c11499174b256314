"""Training throughput (images/s) of each model family's shipped size on this machine.

    python benchmarks/training_speed.py [--families local,local-vae,vae] [--threads 1,2] [--steps 20]

Each family trains ``--steps`` steps of batch 64 on random 32x32 images (the speed does not
depend on the pixels) after 3 warm-up steps, with the trainer's own step (Adam, gradient
clipping, EMA; quantisation-aware rounding for the local families, as the campaign runs),
float32 or bf16 autocast (``--autocast``: ~10x slower on an AVX2-only CPU; the CPU
model changes between sessions), the objective compiled with
``torch.compile`` as the campaign's ``compile=true`` does (``--no-compile`` for eager; the
warm-up steps include the compilation). Configurations are those of the
newest shipped version of each family's model (its card), else the family's default.
Results: ``benchmarks/results/training_speed.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from neuralzip.bench import machine_description
from neuralzip.registry import families, installed_versions

RESULTS = Path(__file__).resolve().parent / "results"
SHIPPED = {"local": "local", "local-vae": "vae", "vae": "vae", "pixelcnn": "pixelcnn", "flow": "flow"}


def shipped_config(family: str) -> dict:
    """The config of the newest shipped version of this family, if any."""
    for version in reversed(installed_versions(SHIPPED.get(family, family))):
        card = json.loads(version.card_file.read_text())
        if card.get("family") == family:
            return card["config"]
    return {}


def measure(family: str, threads: int, steps: int, compile: bool = True, autocast: bool = False) -> float:
    torch.set_num_threads(threads)
    spec = families()[family]
    config = spec.config_class.from_dict({**spec.config_class().to_dict(), **shipped_config(family)})
    model = spec.model_class(config).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8))
    if family in ("local", "local-vae"):
        from neuralzip.exact.local import FakeQuantizer, activation_scales

        model.quantizer = FakeQuantizer(model, activation_scales(model, images.numpy()))
    objective = getattr(model, "loss_nats", model.nll_nats)
    if compile:
        objective = torch.compile(objective)  # as the trainer does with compile=true

    def step():
        loss = objective(images, autocast=autocast).mean() / (3 * 32 * 32 * math.log(2))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
        optimizer.step()
        with torch.no_grad():
            for k, v in model.state_dict().items():
                ema[k].mul_(0.999).add_(v.detach(), alpha=0.001)

    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * len(images) / (time.perf_counter() - started)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="local,local-vae,vae")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="eager steps (default: compiled)")
    parser.add_argument("--autocast", default="false",
                        help="bf16 autocast: false, true or both (fast only on CPUs with AMX or AVX-512 BF16)")
    parser.add_argument("--note", default="")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = []
    for family in args.families.split(","):
        for threads in (int(t) for t in args.threads.split(",")):
            for autocast in {"false": [False], "true": [True], "both": [False, True]}[args.autocast]:
                torch._dynamo.reset()  # each configuration compiles afresh, as a new run would
                rate = measure(family, threads, args.steps, args.compile, autocast)
                rows.append({"family": family, "threads": threads, "autocast": autocast, "img_per_s": round(rate, 1),
                             "compiled": args.compile, "config": shipped_config(family) or "default"})
                print(f"{family}, {threads} thread(s), autocast {autocast}: {rate:.1f} img/s", flush=True)
    document = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine_description(),
                "command": "python benchmarks/training_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                "note": args.note, "batch": 64, "steps": args.steps, "compiled": args.compile, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training_speed.json").write_text(json.dumps(document, indent=1) + "\n")
    lines = [f"# Training throughput ({document['when']})", "",
             f"`{document['command']}`: batch 64, {args.steps} timed steps after 3 warm-up, "
             + ("compiled (torch.compile, as compile=true), " if args.compile else "eager, ")
             + "the trainer's step (Adam, clipping, EMA; quantisation-aware rounding for local families). "
             + (args.note + "." if args.note else ""), "",
             "| family | threads | bf16 autocast | img/s |", "|---|---:|---|---:|"]
    lines += [f"| {r['family']} | {r['threads']} | {'yes' if r['autocast'] else 'no'} | {r['img_per_s']} |" for r in rows]
    (args.out / "training_speed.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
