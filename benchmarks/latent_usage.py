"""Does the local-VAE's latent pay? Every shipped local-VAE version on CIFAR-10 test images.

    python benchmarks/latent_usage.py --data /path/to/cifar10 [--n 1000] [--run DIR:LABEL ...]

``--run`` adds a training run's checkpoint (its EMA weights; an experiment, not shipped, so
its row says which run, step and objective it was). Rows already in the results for the same
images are kept: a shipped version's weights are frozen and the measurement is seeded, so
only new versions are measured (``--remeasure``: all of them again); a run's row stays after
its checkpoint is gone, unless the run is measured again.

For each image (a class-spread subset of the test set) one latent z is drawn from q(z|x), as
the bits-back coder pops it, and the decoder's NLL is measured twice: with z, and with the z
of another image of the batch (the batch rolled by one). The gap between the two is what the
decoder reads from its latent; the KL (what coding the latent costs) is beside it, with the
negative ELBO and, on the same images, the NLL of the newest shipped local model (the same
decoder without a latent). The latent pays when the VAE's negative ELBO is below the local
model's NLL; a gap near zero means the decoder ignores z (posterior collapse), whatever the
KL. Float32 model (the exact coder pays within ~0.01 bpd of it, see cifar10.md).
Results: ``benchmarks/results/latent_usage.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from neuralzip.data import load_cifar10, spread_subset
from neuralzip.nets.local import LocalModel
from neuralzip.nets.local_vae import LocalVAE, LocalVAEConfig
from neuralzip.nets.neighbourhood import LocalConfig
from neuralzip.nets.vae import latent_params, logistic_log_density
from neuralzip.registry import installed_versions, load_version

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 100


def measure_vae(model: LocalVAE, images: np.ndarray) -> dict:
    """Sums over ``images`` (nats): decoder NLL with its own z and with another image's, KL per channel."""
    own = wrong = 0.0
    kl = torch.zeros(model.config.latent_channels, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    for start in range(0, len(images), BATCH):
        batch = torch.from_numpy(images[start : start + BATCH])
        params = model.posterior(batch)
        mean, log_scale = latent_params(params)
        u = torch.rand(mean.shape, generator=generator).clamp(1e-6, 1 - 1e-6)
        z = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
        kl += (logistic_log_density(z, params) - logistic_log_density(z, model.prior_params(z))).sum(dim=(0, 2, 3)).double()
        own += float(model.decoder.nll_nats(batch, condition=model.condition(z)).double().sum())
        wrong += float(model.decoder.nll_nats(batch, condition=model.condition(z.roll(1, 0))).double().sum())
    return {"own": own, "wrong": wrong, "kl": kl}


def local_nll(images: np.ndarray) -> tuple[str, float]:
    version = installed_versions("local")[-1]
    shipped = load_version(version)
    model = LocalModel(LocalConfig(**shipped.card["config"]))
    model.load_state_dict(shipped.prefixed("train."))
    model.eval()
    total = sum(float(model.nll_nats(torch.from_numpy(images[s : s + BATCH])).double().sum())
                for s in range(0, len(images), BATCH))
    return version.label, total


def shipped_vaes(skip: set[str] = frozenset()) -> list[tuple[str, float, LocalVAE]]:
    """(label, epochs, float model) of every shipped local-VAE version not in ``skip``."""
    out = []
    for version in installed_versions("vae"):
        if version.label in skip:
            continue
        shipped = load_version(version)
        if shipped.card.get("family") != "local-vae":
            continue
        model = LocalVAE(LocalVAEConfig.from_dict(shipped.card["config"]))
        model.load_state_dict(shipped.prefixed("train."))
        out.append((version.label, shipped.card.get("training", {}).get("epochs"), model.eval()))
    return out


def run_vae(spec: str) -> tuple[str, float, LocalVAE]:
    """A training run's EMA model from ``DIR:LABEL`` (the label says what the run tried)."""
    from neuralzip.train import load_checkpoint_ema

    directory, _, label = spec.partition(":")
    meta = json.loads((Path(directory) / "checkpoint.json").read_text())
    model = load_checkpoint_ema(LocalVAE(LocalVAEConfig.from_dict(meta["config"])), Path(directory))
    return f"run {Path(directory).name} step {meta['step']} (not shipped): {label}", meta["epochs"], model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="CIFAR-10 path (default: $NZIP_DATA)")
    parser.add_argument("--n", type=int, default=1000, help="test images (a class-spread subset)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--run", action="append", default=[], metavar="DIR:LABEL",
                        help="also measure a training run's checkpoint (EMA), labelled")
    parser.add_argument("--remeasure", action="store_true", help="measure every shipped version again")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    test = load_cifar10("test", args.data)
    images = test.images[spread_subset(len(test), args.n, seed=5)]
    per_image_bpd = 1.0 / (len(images) * images[0].size * math.log(2))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    subset = f"spread_subset(10000, {len(images)}, seed=5)"
    previous = json.loads((RESULTS / "latent_usage.json").read_text()) if (RESULTS / "latent_usage.json").exists() else {}
    kept = previous.get("vae", []) if previous.get("subset") == subset and not args.remeasure else []
    shipped_kept = [r for r in kept if not r["model"].startswith("run ")]
    runs = [run_vae(spec) for spec in args.run]
    measured = {label.split(" step ")[0] for label, _, _ in runs}  # "run NAME": a run measured again replaces its rows
    runs_kept = [r for r in kept if r["model"].startswith("run ") and r["model"].split(" step ")[0] not in measured]
    rows = list(shipped_kept)
    with torch.no_grad():
        local_label, local_total = local_nll(images)
        for label, epochs, model in shipped_vaes({r["model"] for r in shipped_kept}) + runs:
            m = measure_vae(model, images)
            kl_bits = (m["kl"] / len(images) / math.log(2)).tolist()
            rows.append({
                "model": label, "epochs": epochs,
                "decoder_nll_bpd": m["own"] * per_image_bpd, "decoder_nll_other_z_bpd": m["wrong"] * per_image_bpd,
                "read_from_z_bpd": (m["wrong"] - m["own"]) * per_image_bpd, "kl_bpd": float(m["kl"].sum()) * per_image_bpd,
                "kl_bits_per_channel": [round(b, 2) for b in kl_bits],
                "negative_elbo_bpd": (m["own"] + float(m["kl"].sum())) * per_image_bpd,
            })
    rows += runs_kept
    document = {"started": started, "images": len(images), "subset": subset,
                "local": {"model": local_label, "nll_bpd": local_total * per_image_bpd}, "vae": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latent_usage.json").write_text(json.dumps(document, indent=1) + "\n")
    lines = [f"# Does the local-VAE's latent pay? ({len(images)} CIFAR-10 test images, {started})", "",
             "`python benchmarks/latent_usage.py`. Decoder NLL with the image's own latent (one draw from "
             "q(z|x)) and with another image's; their gap is what the decoder reads from z. bpd, float32 models.",
             f"On the same images the newest local model ({local_label}, no latent) has NLL "
             f"{local_total * per_image_bpd:.4f}.", "",
             "| model | epochs | decoder NLL | with another image's z | read from z | KL | negative ELBO | KL bits per channel |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['epochs']:.1f} | {r['decoder_nll_bpd']:.4f} | {r['decoder_nll_other_z_bpd']:.4f} | "
                     f"{r['read_from_z_bpd']:+.4f} | {r['kl_bpd']:.4f} | {r['negative_elbo_bpd']:.4f} | "
                     f"{', '.join(f'{b:.1f}' for b in r['kl_bits_per_channel'])} |")
    (RESULTS / "latent_usage.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
