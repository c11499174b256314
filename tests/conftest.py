"""Shared fixtures: tiny models (no training in tests), synthetic images, the sample photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from neuralzip.images import PixelImage, read_image

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "hopper.png"


def smooth_image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A photo-like uint8 image: smooth gradients plus a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 7 + y * 3 + 40 * c) % 256 for c in range(channels)], axis=-1).astype(np.float64)
    base += rng.normal(0, 6, base.shape)
    return np.clip(base, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_pixelcnn():
    """A PixelCNN++ codec with a tiny random (untrained) network."""
    from neuralzip.codecs.pixelcnn import PixelCNNCodec
    from neuralzip.nets.pixelcnn import PixelCNN, PixelCNNConfig

    torch.manual_seed(0)
    model = PixelCNN(PixelCNNConfig(filters=8, resnets=1, mixtures=3))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return PixelCNNCodec.from_float(model)


def tiny_local_model(seed: int = 0, **sizes):
    """A tiny random local autoregressive model (float), perturbed so it is not uniform."""
    from neuralzip.nets.local import LocalConfig, LocalModel

    torch.manual_seed(seed)
    model = LocalModel(LocalConfig(**{"width": 16, "mixtures": 3, **sizes}), seed=seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.fixture(scope="session")
def tiny_local():
    """A local autoregressive codec with a tiny random (untrained) network."""
    from neuralzip.codecs.local import LocalCodec

    calibration = np.stack([smooth_image(12, 12, seed=s) for s in range(4)])
    return LocalCodec.from_float(tiny_local_model(), calibration)


@pytest.fixture
def tiny_codecs(tiny_pixelcnn, tiny_flow, tiny_vae, tiny_local):
    """Every neural codec name served by a tiny model (local-photo shares the local one's)."""
    from neuralzip import codecs
    from neuralzip.codecs.local import LocalCodec

    photo = LocalCodec(tiny_local.config, tiny_local.network, tiny_local.model_hash, name="local-photo", codec_id=65,
                       card={"coding": {"head_offsets": True}})  # a version with head offsets
    for codec in (tiny_pixelcnn, tiny_flow, tiny_vae[1], tiny_local, photo):
        codecs.register(codec)
    return {codec.name: codec for codec in (tiny_pixelcnn, tiny_flow, tiny_vae[1], tiny_local, photo)}


@pytest.fixture(scope="session")
def sample_image() -> PixelImage:
    return read_image(SAMPLE)


@pytest.fixture(scope="session")
def tiny_flow():
    """An integer discrete flow codec with a tiny random (untrained) network."""
    from neuralzip.codecs.flow import FlowCodec
    from neuralzip.nets.flow import FlowConfig, IntegerFlow

    torch.manual_seed(0)
    model = IntegerFlow(FlowConfig(hidden=8, couplings=2, mixtures=2))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return FlowCodec.from_float(model)


@pytest.fixture(scope="session")
def tiny_vae():
    """A bits-back VAE codec with a tiny random (untrained) network."""
    from neuralzip.codecs.bitsback import BitsBackCodec
    from neuralzip.nets.vae import HierarchicalVAE, VAEConfig

    torch.manual_seed(0)
    model = HierarchicalVAE(VAEConfig(hidden=8, latents=(2, 2, 2), mixtures=2))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model, BitsBackCodec.from_float(model)
