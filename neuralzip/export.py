"""Export a training run to a shipped model: ``models/NAME.safetensors`` + ``NAME.json``.

The weights file holds the EMA parameters in float32 under ``train.`` (what the next
training session resumes from, see ``nzip train --init-from``) and, for codecs with exact
inference, the integer weights under ``exact.`` that coding uses. The card records the
architecture, data, training progress, test NLL and the SHA-256 of the weights file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from .data import load_cifar10, spread_subset
from .images import default_file_mode
from .registry import families, models_dir, sha256_file
from .train import load_checkpoint_ema

CODEC_IDS = {"pixelcnn": 16, "flow": 32, "vae": 48, "local": 64, "local-vae": 48}
NAMED_CODEC_IDS = {"local-photo": 65}  # models of a family shipped under a codec name of their own
CALIBRATION_IMAGES = 2000  # training images that set the local model's 8-bit activation scales


def evaluate_float(model, images: np.ndarray, batch: int = 200) -> float:
    """Float NLL in bits per sub-pixel of ``images`` uint8 [N, H, W, C]."""
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(images), batch):
            total += float(model.nll_nats(torch.from_numpy(images[start : start + batch])).double().sum())
    return total / (images.size * math.log(2))


def photo_run_data(settings: dict, data: str | None):
    """Calibration and test images of a run trained on a photograph corpus, and what the
    card says of its data (photographs, packages, licences)."""
    from .train import TrainSettings, training_data

    known = {k: v for k, v in settings.items() if k in TrainSettings.__dataclass_fields__}
    train, test = training_data(TrainSettings(**known), data)
    calibration = train.images[spread_subset(len(train), CALIBRATION_IMAGES, seed=3)]
    manifest = json.loads((Path(settings["photos"]) / "manifest.json").read_text())
    photos = manifest["photographs"]
    counts = {split: sum(e["split"] == split for e in photos) for split in ("train", "test")}
    note = (f"{settings['photo_crops']} random 32x32 crops of {counts['train']} photographs from Debian wallpaper "
            f"packages ({', '.join(sorted({e['package'] for e in photos}))}), reduced 2-4x"
            + (", mixed with the CIFAR-10 training set (50,000 images)" if settings.get("with_cifar", True) else "")
            + f"; test: {settings['photo_test_crops']} crops of {counts['test']} held-out photographs. "
              "Built by `python -m neuralzip.photoset`; no standard test image was used.")
    card = {"photographs": [{k: e[k] for k in ("source", "package", "licence", "reduced", "split")} for e in photos]}
    return calibration, test.images, note, card


def export_run(run_dir: Path, name: str, data: str | None = None, eval_images: int | None = None,
               directory: Path | None = None, version: int | None = None, calibration: np.ndarray | None = None,
               test_images: np.ndarray | None = None, data_note: str | None = None, note: str | None = None,
               extra_card: dict | None = None, activation_bits: int | None = None) -> dict:
    """Write the run's EMA weights as model ``name`` version ``version`` (default: one
    above the newest installed; an existing version is never overwritten: shipped
    versions are frozen). ``calibration``/``test_images`` replace the CIFAR-10 sets for
    models trained on other data (``data_note`` says what). ``activation_bits`` (local
    models and the local-VAE's decoder) sets the exact network's activation precision
    (default: the run's)."""
    from .registry import installed_versions, version_stem

    directory = directory or models_dir()
    existing = installed_versions(name, directory)
    version = version or (existing[-1].version + 1 if existing else 1)
    stem = version_stem(name, version)
    if (directory / f"{stem}.json").exists() or (directory / f"{stem}.safetensors").exists():
        raise FileExistsError(f"{directory / stem}: version {version} of {name} exists (shipped versions are frozen)")
    meta = json.loads((run_dir / "checkpoint.json").read_text())
    if meta.get("settings", {}).get("photos") and test_images is None:
        calibration, test_images, data_note, photo_card = photo_run_data(meta["settings"], data)
        extra_card = {**photo_card, **(extra_card or {})}
    family = families()[meta["family"]]
    config = family.config_class.from_dict(meta["config"])
    if activation_bits is not None:
        if meta["family"] not in ("local", "local-vae"):
            raise ValueError(f"activation bits are a setting of local models, not of {meta['family']}")
        config = dataclasses.replace(config, activation_bits=activation_bits)
    model = load_checkpoint_ema(family.model_class(config), run_dir)
    out = {f"train.{k}": v.float().contiguous() for k, v in model.state_dict().items()}
    if meta["family"] == "pixelcnn":
        from .codecs.pixelcnn import PixelCNNCodec

        out.update(PixelCNNCodec.from_float(model).integer_tensors())
    elif meta["family"] == "flow":
        from .codecs.flow import FlowCodec

        out.update(FlowCodec.from_float(model).integer_tensors())
    elif meta["family"] == "vae":
        from .codecs.bitsback import BitsBackCodec

        out.update(BitsBackCodec.from_float(model).integer_tensors())
    if test_images is None:
        test = load_cifar10("test", data)
        indices = spread_subset(len(test), eval_images or len(test), seed=1)
        test_images = test.images[indices]
    bpd = evaluate_float(model, test_images)
    coded = {}
    if meta["family"] in ("local", "local-vae"):  # 8-bit activation scales from calibration images
        if calibration is None:
            train = load_cifar10("train", data)
            calibration = train.images[spread_subset(len(train), CALIBRATION_IMAGES, seed=3)]
    if meta["family"] == "local":
        from .codecs.local import LocalCodec

        codec = LocalCodec.from_float(model, calibration)
        out.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in codec.integer_tensors().items()})
        coded = {"exact": round(codec.nll_bits_per_subpixel(test_images), 5),
                 "exact_note": "ideal code length of the exact integer model (what the coder pays before its few "
                               "bits of stream overhead)"}
    elif meta["family"] == "local-vae":
        from .codecs.local_vae import LocalVAECodec

        codec = LocalVAECodec.from_float(model, calibration)
        out.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in codec.integer_tensors().items()})
        with torch.no_grad():
            kl = sum(model.kl_bits_per_channel(torch.from_numpy(test_images[i : i + 250])).double() * len(test_images[i : i + 250])
                     for i in range(0, len(test_images), 250)) / len(test_images)
        coded = {"kl_bits_per_image": [round(float(v), 2) for v in kl],
                 "kl_bpd": round(float(kl.sum()) / test_images[0].size, 5),
                 "kl_note": "KL(q(z|x) || p(z)) of each latent channel, bits per image (what the latent costs)"}
    extra = {}
    if hasattr(model, "iw_nll_nats"):  # latent-variable model: a tighter estimate of -log p(x)
        subset = test.images[spread_subset(len(test), min(1000, len(test)), seed=2)]
        with torch.no_grad():
            nats = sum(float(model.iw_nll_nats(torch.from_numpy(subset[i : i + 50]), samples=16).double().sum())
                       for i in range(0, len(subset), 50))
        extra = {"iw16_nll": round(nats / (subset.size * math.log(2)), 5), "iw_images": len(subset),
                 "iw_subset_elbo": round(evaluate_float(model, subset), 5),  # the same images, for comparison
                 "note": "float: negative ELBO (EMA weights); iw16_nll: 16-sample importance-weighted estimate "
                         "of -log p(x) on iw_images test images, whose negative ELBO is iw_subset_elbo"}
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{stem}.safetensors"
    tmp = weights.with_suffix(".tmp")
    save_file(out, str(tmp))
    os.chmod(tmp, default_file_mode())  # safetensors writes owner-only files; weights are for everyone
    os.replace(tmp, weights)
    card = {
        "name": name,
        "family": meta["family"],
        "codec_id": NAMED_CODEC_IDS.get(name, CODEC_IDS[meta["family"]]),
        "version": version,
        "config": config.to_dict(),
        "weights": weights.name,
        "sha256": sha256_file(weights),
        "data": data_note or "CIFAR-10 training set (50,000 images, 32x32 RGB)",
        "training": {
            "steps": meta["step"],
            "epochs": round(meta["epochs"], 3),
            "images_seen": meta["images_seen"],
            "settings": meta["settings"],
            "history": meta.get("history", []),
        },
        "test_nll_bpd": {"float": round(bpd, 5), "images": int(len(test_images)),
                         "note": "EMA weights, float32 evaluation; coded bpd is in benchmarks/results", **coded, **extra},
        "exported": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        **({"note": note} if note else {}),
        # how files made with this version are coded: fixed for the version's life, read by its codec
        **({"coding": {"head_offsets": True}} if meta["family"] == "local" else {}),
        **(extra_card or {}),
    }
    card_file = directory / f"{stem}.json"
    tmp = card_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(card, indent=1) + "\n")
    os.replace(tmp, card_file)
    return card
