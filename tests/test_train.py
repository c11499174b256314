"""Training: resumable checkpoints with the same data order; export to a verified shipped model."""

import json

import numpy as np
import pytest
from PIL import Image

from neuralzip.export import export_run
from neuralzip.registry import ModelError, load_shipped
from neuralzip.train import TrainSettings, Trainer, main as train_main


@pytest.fixture
def tiny_cifar(tmp_path, monkeypatch):
    monkeypatch.setenv("NZIP_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 6)):
        for cls in ("cat", "dog"):
            folder = tmp_path / "data" / split / cls
            folder.mkdir(parents=True)
            for i in range(n // 2):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return tmp_path / "data"


def test_resume_continues_where_it_stopped(tiny_cifar, tmp_path):
    args = ["pixelcnn", "--out", str(tmp_path / "run"), "--data", str(tiny_cifar), "filters=4", "mixtures=2",
            "batch_size=4", "eval_every_steps=2", "eval_images=4", "threads=1", "autocast=false"]
    assert train_main(args + ["max_steps=2"]) == 0
    meta = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert meta["step"] == 2 and meta["config"]["filters"] == 4 and meta["history"]
    assert train_main(["pixelcnn", "--out", str(tmp_path / "run"), "--data", str(tiny_cifar), "max_steps=5"]) == 0
    meta = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert meta["step"] == 5 and meta["settings"]["batch_size"] == 4  # saved settings kept


def test_data_order_depends_only_on_seed_and_step(tiny_cifar, tmp_path):
    from neuralzip.nets.pixelcnn import PixelCNNConfig

    config = PixelCNNConfig(filters=4, mixtures=2)
    a = Trainer("pixelcnn", config, tmp_path / "a", TrainSettings(batch_size=4, threads=1), tiny_cifar)
    b = Trainer("pixelcnn", config, tmp_path / "b", TrainSettings(batch_size=4, threads=1), tiny_cifar)
    for step in (0, 1, 2, 7):
        assert np.array_equal(a.batch_indices(step), b.batch_indices(step))
    epoch = np.concatenate([a.batch_indices(s) for s in range(3)])
    assert sorted(epoch) == list(range(12))  # one epoch visits every image once


def test_export_load_and_tamper(tiny_cifar, tmp_path):
    run = tmp_path / "run"
    assert train_main(["pixelcnn", "--out", str(run), "--data", str(tiny_cifar), "filters=4", "mixtures=2",
                       "batch_size=4", "max_steps=1", "threads=1", "autocast=false", "eval_every_steps=100"]) == 0
    models = tmp_path / "models"
    card = export_run(run, "tiny", str(tiny_cifar), directory=models)
    assert card["codec_id"] == 16 and card["version"] == 1 and card["training"]["steps"] == 1 and card["test_nll_bpd"]["images"] == 6
    shipped = load_shipped("tiny", models)
    from neuralzip.codecs.base import ImageShape
    from neuralzip.codecs.pixelcnn import PixelCNNCodec
    from neuralzip.images import PixelImage

    codec = PixelCNNCodec.from_shipped(shipped)
    image = PixelImage("RGB", np.random.default_rng(3).integers(0, 256, (6, 9, 3), dtype=np.uint8))
    payload = codec.encode([image]).payloads[0]
    assert np.array_equal(codec.decode([payload], [ImageShape("RGB", 9, 6)])[0].pixels, image.pixels)
    weights = models / "tiny-v1.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its card"):
        load_shipped("tiny", models)
    weights.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ModelError):
        load_shipped("tiny", models)


def test_local_model_trains_quantisation_aware_and_exports(tiny_cifar, tmp_path):
    """A local run (with QAT) resumes, exports a version with its exact NLL, and codes."""
    run = tmp_path / "local"
    args = ["local", "--out", str(run), "--data", str(tiny_cifar), "width=8", "mixtures=2", "batch_size=4",
            "threads=1", "autocast=false", "eval_every_steps=100", "qat=true", "qat_every_steps=1"]
    assert train_main(args + ["max_steps=2"]) == 0
    assert train_main(args + ["max_steps=3"]) == 0  # resumed
    card = export_run(run, "local", str(tiny_cifar), directory=tmp_path / "models")
    assert card["codec_id"] == 64 and card["version"] == 1 and card["training"]["steps"] == 3
    assert card["test_nll_bpd"]["exact"] > 0 and (tmp_path / "models" / "local-v1.safetensors").exists()
    with pytest.raises(FileExistsError):
        export_run(run, "local", str(tiny_cifar), directory=tmp_path / "models", version=1)  # frozen
    assert export_run(run, "local", str(tiny_cifar), directory=tmp_path / "models")["version"] == 2


def test_compiled_objective_follows_remeasured_quantisation_scales(tiny_cifar, tmp_path):
    """compile=true: the compiled loss equals the eager one, also after the activation scales
    are re-measured in place (no stale scales baked into the compiled code)."""
    import torch

    from neuralzip.nets.neighbourhood import LocalConfig

    settings = TrainSettings(batch_size=4, threads=1, autocast=False, qat=True, compile=True, eval_images=4)
    trainer = Trainer("local", LocalConfig(width=8, mixtures=2), tmp_path / "run", settings, str(tiny_cifar))
    images = torch.from_numpy(trainer.train_set.images[:4])
    trainer.train_step()
    model = trainer.model
    with torch.no_grad():
        compiled, eager = trainer._objective()(images), model.nll_nats(images)
        assert torch.allclose(compiled, eager, rtol=1e-4)
        old = {k: v.clone() for k, v in model.quantizer.scales.items()}
        model.quantizer.update({k: v.numpy() * 1e-3 for k, v in old.items()})  # activations saturate
        rescaled = trainer._objective()(images)
        assert torch.allclose(rescaled, model.nll_nats(images), rtol=1e-4)
        assert (rescaled - compiled).abs().min() > 1.0  # the new scales were used


def test_autocast_setting_is_decided_per_machine(monkeypatch):
    """``autocast=auto`` follows the CPU (bf16 only where it is fast); true/false are kept as
    given, and anything else is refused."""
    from neuralzip import train

    assert train.resolve_autocast(True) is True and train.resolve_autocast("false") is False
    monkeypatch.setattr(train, "bf16_is_fast", lambda: True)
    assert train.resolve_autocast("auto") is True
    monkeypatch.setattr(train, "bf16_is_fast", lambda: False)
    assert train.resolve_autocast("auto") is False
    with pytest.raises(ValueError, match="autocast"):
        train.resolve_autocast("sometimes")


def test_a_local_model_grows_residual_blocks_from_shipped_weights(tiny_cifar, tmp_path, monkeypatch):
    """``--init-from`` a smaller local model: the grown one (an added residual block) starts
    computing exactly the same likelihood, then trains; a mismatched width is refused."""
    import torch

    from neuralzip.nets.local import LocalModel
    from neuralzip.nets.neighbourhood import LocalConfig

    small = LocalModel(LocalConfig(3, 8, 0, 2, 3), seed=1)
    grown = LocalModel(LocalConfig(3, 8, 1, 2, 3), seed=2)
    grown.grow_from(small.state_dict())
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 6, 7, 3), dtype=np.uint8))
    with torch.no_grad():
        assert torch.allclose(grown.nll_nats(images), small.nll_nats(images), rtol=1e-6)
    with pytest.raises(ValueError, match="cannot grow"):
        LocalModel(LocalConfig(3, 16, 1, 2, 3)).grow_from(small.state_dict())

    models = tmp_path / "models"
    common = ["--data", str(tiny_cifar), "batch_size=4", "threads=1", "autocast=false", "eval_every_steps=100",
              "mixtures=2", "width=8"]
    assert train_main(["local", "--out", str(tmp_path / "small"), "max_steps=1"] + common) == 0
    export_run(tmp_path / "small", "local", str(tiny_cifar), directory=models)
    assert train_main(["local", "--out", str(tmp_path / "grown"), "--init-from", str(models / "local-v1.safetensors"),
                       "blocks=1", "max_steps=2"] + common) == 0
    meta = json.loads((tmp_path / "grown" / "checkpoint.json").read_text())
    assert meta["config"]["blocks"] == 1 and meta["step"] == 2


def test_a_run_started_from_shipped_weights_takes_their_configuration(tiny_cifar, tmp_path):
    """``--init-from`` a version exported with 10-bit activations, no sizes given: the new
    run has the shipped configuration (activation bits included) and continues its steps."""
    models = tmp_path / "models"
    common = ["--data", str(tiny_cifar), "batch_size=4", "threads=1", "autocast=false", "eval_every_steps=100"]
    assert train_main(["local", "--out", str(tmp_path / "first"), "max_steps=2", "mixtures=2", "width=8"] + common) == 0
    card = export_run(tmp_path / "first", "local", str(tiny_cifar), directory=models, activation_bits=10)
    assert card["config"]["activation_bits"] == 10
    assert train_main(["local", "--out", str(tmp_path / "next"), "--init-from", str(models / "local-v1.safetensors"),
                       "max_steps=3", "qat=true"] + common) == 0
    meta = json.loads((tmp_path / "next" / "checkpoint.json").read_text())
    assert meta["config"] == card["config"] and meta["step"] == 3


def test_a_continuation_keeps_averaging_the_shipped_ema_at_full_decay(tiny_cifar, tmp_path):
    """``--init-from`` the same model: its first step starts the learning-rate warm-up and
    averages into the shipped (EMA) weights at the EMA's full decay, also after a resume."""
    import torch

    models = tmp_path / "models"
    common = ["--data", str(tiny_cifar), "batch_size=4", "threads=1", "autocast=false", "eval_every_steps=100",
              "mixtures=2", "width=8"]
    assert train_main(["local", "--out", str(tmp_path / "first"), "max_steps=3"] + common) == 0
    export_run(tmp_path / "first", "local", str(tiny_cifar), directory=models)
    from neuralzip.nets.neighbourhood import LocalConfig

    config = LocalConfig.from_dict(json.loads((models / "local-v1.json").read_text())["config"])
    settings = TrainSettings(batch_size=4, threads=1, autocast=False, lr=1e-2, lr_decay=0.9, warmup_steps=10)
    trainer = Trainer("local", config, tmp_path / "next", settings, tiny_cifar)
    trainer.init_from(models / "local-v1.safetensors")
    shipped = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert trainer.step == 3 and not trainer.ema_warmup
    assert trainer.learning_rate() == pytest.approx(1e-2 * 0.1 * 0.9 ** 3)  # the warm-up's first step
    for _ in range(2):
        before = {k: v.clone() for k, v in trainer.ema.items()}
        trainer.train_step()
        for key, value in trainer.model.state_dict().items():
            expected = before[key] * settings.ema_decay + value * (1 - settings.ema_decay)
            assert torch.allclose(trainer.ema[key], expected, atol=1e-7)
    assert any(not torch.equal(trainer.ema[k], shipped[k]) for k in shipped)  # it does average
    trainer.save()
    resumed = Trainer("local", config, tmp_path / "next", settings, tiny_cifar)
    assert resumed.resume() and resumed.step == 5 and not resumed.ema_warmup
    fresh = Trainer("local", config, tmp_path / "fresh", settings, tiny_cifar)
    assert fresh.ema_warmup  # a new model's EMA warms up
