"""One training loop for every likelihood model (``nzip train FAMILY``).

Guarantees:

* **Resumable.** A run directory holds ``checkpoint.safetensors`` (model, EMA and optimizer
  tensors) and ``checkpoint.json`` (step, configuration, learning-rate schedule, history).
  Both are written atomically, every few minutes and on SIGINT/SIGTERM. Restarting the same
  command continues at the same step with the same data order: the order of epoch ``e`` is a
  permutation drawn from ``seed`` and ``e`` alone, so no random state needs saving.
* **Campaign across sessions.** ``--init-from models/NAME.safetensors`` starts a run from
  shipped weights (model and EMA; the optimizer restarts with the learning rate's warm-up,
  which it needs: local v9 taken straight to 4e-4 went from 3.51 to 4.36 train bpd within
  100 steps). Continuing the same model keeps averaging the shipped EMA at full decay;
  growing or changing it warms the EMA up again.
* The learning rate is ``lr * decay**step`` after a linear warm-up, a function of the step
  alone. Polyak averaging (EMA) of the weights is what gets evaluated and exported.
* Evaluation reports the EMA model's test NLL in bits per dimension on a class-spread subset
  (quick) or the whole test set (``--eval-full`` / at the end).

Nothing here pickles: tensors go to safetensors, the rest to JSON.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .data import ImageSet, load_cifar10, spread_subset
from .progress import progress
from .registry import FAMILY_NAMES, families


@dataclass
class TrainSettings:
    batch_size: int = 64
    lr: float = 2e-3
    lr_decay: float = 0.99995
    warmup_steps: int = 500
    ema_decay: float = 0.9995
    grad_clip: float = 100.0
    seed: int = 0
    threads: int = 2
    autocast: bool | str = "auto"  # bf16 autocast: true, false, or "auto" (on where the CPU has AMX-BF16 or AVX-512 BF16)
    eval_images: int = 1000
    eval_every_steps: int = 2000
    checkpoint_minutes: float = 10.0
    max_steps: int | None = None
    time_limit_minutes: float | None = None
    flip: bool = False
    photos: str | None = None  # a corpus of neuralzip.photoset: train on its crops (with CIFAR-10)
    photo_crops: int = 200_000  # 32x32 crops of the training photographs
    photo_test_crops: int = 5_000  # crops of the held-out photographs: the test set
    with_cifar: bool = True  # photographs mixed with the CIFAR-10 training set
    qat: bool = False  # local models: train through the exact network's rounding (straight-through)
    qat_every_steps: int = 500  # re-measure the 8-bit activation scales this often
    compile: bool = False  # torch.compile the training objective (~25% faster steps here; ~30 s to compile)
    extra: dict = field(default_factory=dict)


def bf16_is_fast() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX-BF16, or AVX-512 BF16
    as on AMD Zen 4). Measured here (benchmarks/training_speed.py): a local model's compiled
    training step runs ~1.8x faster in bf16 autocast than in float32 with AMX, ~3.1x faster
    with AVX-512 BF16 (an AMD EPYC, 110 against 35 img/s on one thread); on an AVX2-only CPU
    bf16 is ~10x slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_autocast(value: bool | str) -> bool:
    """A run's ``autocast`` setting as used on this machine ("auto": :func:`bf16_is_fast`)."""
    if isinstance(value, str):
        if value.lower() == "auto":
            return bf16_is_fast()
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"autocast must be true, false or auto, not {value!r}")
    return bool(value)


def training_data(settings: TrainSettings, data_path=None) -> tuple[ImageSet, ImageSet]:
    """(train, test) sets: CIFAR-10, or with ``settings.photos`` 32x32 crops of the corpus's
    training photographs (plus CIFAR-10's training set unless ``with_cifar`` is off) and
    crops of its held-out photographs as the test set. Crops are drawn with fixed seeds, so a
    resumed run sees the same data."""
    if not settings.photos:
        return load_cifar10("train", data_path), load_cifar10("test", data_path)
    from .photoset import load_photos, random_crops

    def as_set(images: np.ndarray, label: str) -> ImageSet:
        return ImageSet(images, np.zeros(len(images), np.int64), [f"{label}/{i}" for i in range(len(images))])

    crops = random_crops(load_photos(Path(settings.photos), "train"), settings.photo_crops, seed=settings.seed)
    test = as_set(random_crops(load_photos(Path(settings.photos), "test"), settings.photo_test_crops, seed=12345), "photo-test")
    if settings.with_cifar:
        cifar = load_cifar10("train", data_path)
        crops = np.concatenate([cifar.images, crops])
    return as_set(crops, "train"), test


def matching_state(model: torch.nn.Module, state: dict) -> dict:
    """``state`` fitted to ``model`` for a strict load: the model's training-only parameters
    (those under its ``TRAINING_ONLY_PREFIX``, e.g. a VAE's auxiliary decoder) that ``state``
    lacks take the model's fresh values, and training-only ones it has that the model does not
    are dropped. Every other key must match exactly (the strict load checks)."""
    prefix = getattr(model, "TRAINING_ONLY_PREFIX", None)
    own = model.state_dict()
    fitted = {k: v for k, v in state.items() if k in own or not (prefix and k.startswith(prefix))}
    for key, value in own.items():
        if prefix and key.startswith(prefix) and key not in fitted:
            fitted[key] = value.detach().clone()
    return fitted


def load_checkpoint_ema(model: torch.nn.Module, run_dir: Path) -> torch.nn.Module:
    """``model`` with a run directory's EMA weights (through :func:`matching_state`), in
    eval mode: what export and the benchmarks measure of a run."""
    tensors = load_file(str(Path(run_dir) / "checkpoint.safetensors"))
    model.load_state_dict(matching_state(model, {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}))
    return model.eval()


class Trainer:
    """Owns model, EMA, optimizer and the run directory."""

    def __init__(self, family: str, config, run_dir: Path, settings: TrainSettings, data_path=None):
        self.family = families()[family]
        self.family_name = family
        self.run_dir = Path(run_dir)
        self.settings = settings
        self.autocast = resolve_autocast(settings.autocast)  # the campaign moves between CPUs: decided here
        torch.set_num_threads(settings.threads)
        torch.manual_seed(settings.seed)
        self.train_set, self.test_set = training_data(settings, data_path)
        self.config = config
        self.model = self.family.model_class(config).to(memory_format=torch.channels_last)
        self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=settings.lr, betas=(0.95, 0.9995))
        self.step = 0
        self.warmup_start = 0
        self.ema_warmup = True  # the EMA's decay ramps up after warmup_start (not when continuing shipped weights)
        self.history: list[dict] = []
        self._stop = False
        self._compiled = None  # the training objective, built on first use (_objective)
        self.dims = int(np.prod(self.train_set.images.shape[1:]))

    # ---- state ---------------------------------------------------------------------------
    def checkpoint_paths(self) -> tuple[Path, Path]:
        return self.run_dir / "checkpoint.safetensors", self.run_dir / "checkpoint.json"

    def save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tensors = {f"model.{k}": v.contiguous() for k, v in self.model.state_dict().items()}
        tensors.update({f"ema.{k}": v.contiguous() for k, v in self.ema.items()})
        names = {id(p): n for n, p in self.model.named_parameters()}
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                for key, value in self.optimizer.state.get(p, {}).items():
                    if torch.is_tensor(value):
                        tensors[f"optim.{names[id(p)]}.{key}"] = value.contiguous()
        weights_path, meta_path = self.checkpoint_paths()
        tmp = weights_path.with_suffix(".tmp")
        save_file(tensors, str(tmp))
        os.replace(tmp, weights_path)
        meta = {
            "family": self.family_name, "config": self.config.to_dict(), "step": self.step,
            "warmup_start": self.warmup_start, "ema_warmup": self.ema_warmup, "settings": self.settings.__dict__,
            "history": self.history, "images_seen": self.step * self.settings.batch_size,
            "epochs": self.step * self.settings.batch_size / len(self.train_set),
        }
        tmp = meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, meta_path)

    def resume(self) -> bool:
        weights_path, meta_path = self.checkpoint_paths()
        if not (weights_path.exists() and meta_path.exists()):
            return False
        meta = json.loads(meta_path.read_text())
        tensors = load_file(str(weights_path))
        self.model.load_state_dict(matching_state(self.model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}))
        self.ema = matching_state(self.model, {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        params = dict(self.model.named_parameters())
        for name, p in params.items():
            state = {key.rsplit(".", 1)[1]: v for key, v in tensors.items()
                     if key.startswith(f"optim.{name}.") and key.count(".") == name.count(".") + 2}
            if state:
                state["step"] = state.get("step", torch.tensor(float(meta["step"])))
                self.optimizer.state[p] = state
        self.step = meta["step"]
        self.warmup_start = meta.get("warmup_start", 0)
        self.ema_warmup = meta.get("ema_warmup", True)
        self.history = meta.get("history", [])
        return True

    def init_from(self, weights: Path) -> None:
        """Start from shipped weights: model and EMA both take them; warm-up restarts. The
        weights may be a smaller model of the family that grows (:meth:`LocalModel.grow_from`)
        or another family's that this one starts from (``load_initial``)."""
        from .registry import load_training_weights

        continuing = False
        state = load_training_weights(weights)
        card = json.loads(Path(weights).with_suffix(".json").read_text())
        grow = getattr(self.model, "grow_from", None)
        if card.get("family") == self.family_name and grow is not None and type(self.config).from_dict(card.get("config", {})) != self.config:
            grow(state)  # e.g. a local model with more residual blocks than the shipped one
        elif card.get("family") == self.family_name:
            self.model.load_state_dict(matching_state(self.model, state))
            self.history = card.get("training", {}).get("history", [])
            continuing = True
        elif hasattr(self.model, "load_initial"):  # e.g. a VAE starting from its decoder's local model
            self.model.load_initial(state)
        else:
            raise ValueError(f"{weights}: a {card.get('family')} model cannot start a {self.family_name} run")
        self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.step = int(card.get("training", {}).get("steps", 0))
        self.warmup_start = self.step
        self.ema_warmup = not continuing  # the shipped weights are an EMA already: keep averaging them

    # ---- training ------------------------------------------------------------------------
    def learning_rate(self) -> float:
        s = self.settings
        warm = min(1.0, (self.step - self.warmup_start + 1) / max(1, s.warmup_steps))
        return s.lr * warm * (s.lr_decay ** self.step)

    def batch_indices(self, step: int) -> np.ndarray:
        n, bs = len(self.train_set), self.settings.batch_size
        per_epoch = n // bs
        epoch, position = divmod(step, per_epoch)
        order = np.random.default_rng([self.settings.seed, epoch]).permutation(n)
        return order[position * bs : (position + 1) * bs]

    def _activation_scales(self, model) -> dict[str, np.ndarray]:
        """Activation scales of quantisation-aware training, measured on a fixed spread of
        training images (the export measures them the same way)."""
        from .exact.local import activation_scales

        calibration = self.train_set.images[spread_subset(len(self.train_set), 500, seed=3)]
        previous, model.quantizer = model.quantizer, None
        try:
            return activation_scales(model, calibration)
        finally:
            model.quantizer = previous

    def _quantizer(self, model):
        """Quantisation-aware training: the exact network's rounding with the model's scales."""
        from .exact.local import FakeQuantizer

        return FakeQuantizer(model, self._activation_scales(model))

    def _objective(self):
        """The per-image training loss in nats (a VAE's has free bits), compiled when asked.
        A resumed run compiles again: the result is the same function, only faster."""
        if self._compiled is None:
            objective = getattr(self.model, "loss_nats", self.model.nll_nats)
            self._compiled = torch.compile(objective) if self.settings.compile else objective
        return self._compiled

    def train_step(self) -> float:
        if self.settings.qat and self.model.quantizer is None:
            self.model.quantizer = self._quantizer(self.model)
        elif self.settings.qat and self.step % self.settings.qat_every_steps == 0:
            self.model.quantizer.update(self._activation_scales(self.model))
        indices = self.batch_indices(self.step)
        images = torch.from_numpy(self.train_set.images[indices])
        if self.settings.flip:
            flip = torch.from_numpy(np.random.default_rng([self.settings.seed, self.step, 1]).random(len(indices)) < 0.5)
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(2), images)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        self.model.train()
        nats = self._objective()(images, autocast=self.autocast)
        loss = nats.mean() / self.dims
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
        self.optimizer.step()
        self.step += 1
        decay = self.settings.ema_decay
        if self.ema_warmup:
            decay = min(decay, (1 + self.step - self.warmup_start) / (10 + self.step - self.warmup_start))
        with torch.no_grad():
            for k, v in self.model.state_dict().items():
                self.ema[k].mul_(decay).add_(v.detach(), alpha=1 - decay)
        return float(loss.detach()) / math.log(2)

    def ema_model(self):
        model = self.family.model_class(self.config)
        model.load_state_dict(self.ema)
        model.eval()
        if self.settings.qat:  # evaluate what the coder will pay
            model.quantizer = self._quantizer(model)
        return model

    def evaluate(self, n_images: int | None) -> float:
        """EMA model's test NLL in bpd (float32) over a class-spread subset or all images."""
        model = self.ema_model()
        indices = spread_subset(len(self.test_set), n_images or len(self.test_set), seed=1)
        total = 0.0
        with torch.no_grad():
            for start in progress(range(0, len(indices), 250), desc="eval", leave=False):
                batch = torch.from_numpy(self.test_set.images[indices[start : start + 250]])
                total += float(model.nll_nats(batch).double().sum())
        return total / (len(indices) * self.dims * math.log(2))

    def latent_bits(self, n_images: int | None) -> list[float] | None:
        """KL of each latent channel in bits per image (EMA model, the evaluation subset), or
        None for models without a latent."""
        model = self.ema_model()
        if not hasattr(model, "kl_bits_per_channel"):
            return None
        indices = spread_subset(len(self.test_set), n_images or len(self.test_set), seed=1)
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(indices), 250):
                batch = torch.from_numpy(self.test_set.images[indices[start : start + 250]])
                total = total + model.kl_bits_per_channel(batch).double() * len(batch)
        return [round(float(v), 2) for v in total / len(indices)]

    def run(self) -> None:
        s = self.settings
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: setattr(self, "_stop", True))
        started = time.time()
        last_save = time.time()
        log = open(self.run_dir / "log.txt", "a")
        window, t0, seen = [], time.time(), 0
        bar = progress(total=s.max_steps, initial=self.step, desc=f"train {self.family_name}", unit="step")
        while not self._stop:
            if s.max_steps is not None and self.step >= s.max_steps:
                break
            if s.time_limit_minutes is not None and time.time() - started > 60 * s.time_limit_minutes:
                break
            window.append(self.train_step())
            bar.update(1)
            seen += s.batch_size
            if self.step % 100 == 0:
                rate = seen / (time.time() - t0)
                line = (f"step {self.step} epoch {self.step * s.batch_size / len(self.train_set):.2f} "
                        f"train_bpd {np.mean(window):.4f} lr {self.learning_rate():.2e} {rate:.1f} img/s")
                print(line, file=log, flush=True)
                bar.set_postfix_str(f"bpd {np.mean(window):.3f}")
                window, t0, seen = [], time.time(), 0
            if self.step % s.eval_every_steps == 0:
                bpd = self.evaluate(s.eval_images)
                entry = {"step": self.step, "epochs": round(self.step * s.batch_size / len(self.train_set), 3),
                         "test_bpd_subset": round(bpd, 5), "time": time.strftime("%Y-%m-%d %H:%M")}
                line = f"eval step {self.step}: test bpd (EMA, {s.eval_images} images) {bpd:.4f}"
                kl = self.latent_bits(s.eval_images)
                if kl is not None:  # a latent-variable model: what its latent costs, per channel
                    entry["kl_bits_per_image"] = kl
                    line += f"; KL bits/image per latent channel {kl}"
                self.history.append(entry)
                print(line, file=log, flush=True)
            if time.time() - last_save > 60 * s.checkpoint_minutes:
                self.save()
                last_save = time.time()
        bar.close()
        self.save()
        print(f"stopped at step {self.step}; checkpoint saved", file=log, flush=True)
        log.close()


def parse_overrides(pairs: list[str]) -> dict:
    """``["filters=48", "dropout=0.1"]`` -> {"filters": 48, "dropout": 0.1} (JSON values)."""
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m neuralzip.train FAMILY --out DIR [--data PATH] [key=value ...]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", choices=sorted(FAMILY_NAMES))
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--data")
    parser.add_argument("--init-from", type=Path)
    parser.add_argument("--eval-full", action="store_true", help="only evaluate on all test images")
    parser.add_argument("overrides", nargs="*", help="config or setting overrides, key=value")
    args = parser.parse_intermixed_args(argv)
    overrides = parse_overrides(args.overrides)
    family = families()[args.family]
    meta_path = args.out / "checkpoint.json"
    saved = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    # A resumed run keeps its saved configuration and settings unless overridden again; a
    # new run started from shipped weights of its family takes their configuration (its
    # sizes, its activation bits) unless overridden (e.g. blocks=2: a grown model).
    initial = {}
    if args.init_from and not saved:
        card = json.loads(args.init_from.with_suffix(".json").read_text())
        initial = card.get("config", {}) if card.get("family") == args.family else {}
    setting_values = {**saved.get("settings", {}), **overrides}
    settings = TrainSettings(**{k: v for k, v in setting_values.items() if k in TrainSettings.__dataclass_fields__})
    config = family.config_class.from_dict({**family.config_class().to_dict(), **initial, **saved.get("config", {}),
                                            **overrides})
    trainer = Trainer(args.family, config, args.out, settings, args.data)
    if not trainer.resume() and args.init_from:
        trainer.init_from(args.init_from)
    if args.eval_full:
        print(f"test bpd (EMA, all {len(trainer.test_set)} images): {trainer.evaluate(None):.5f}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    trainer.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
