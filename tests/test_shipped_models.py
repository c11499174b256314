"""The weights shipped in models/: each family loads (hash checked) and codes real image crops
exactly, with a trained model's rate."""

import importlib

import numpy as np
import pytest

from neuralzip.codecs.base import ImageShape
from neuralzip.images import PixelImage
from neuralzip.registry import load_shipped, model_available

CODEC_CLASSES = {"pixelcnn": ("neuralzip.codecs.pixelcnn", "PixelCNNCodec"),
                 "flow": ("neuralzip.codecs.flow", "FlowCodec"),
                 "vae": ("neuralzip.codecs.bitsback", "BitsBackCodec"),
                 "local": ("neuralzip.codecs.local", "LocalCodec"),
                 "local-photo": ("neuralzip.codecs.local", "LocalCodec")}
NUMPY_WEIGHTS = {"local", "local-photo"}  # decoders that need no torch


@pytest.mark.parametrize("name", sorted(CODEC_CLASSES))
def test_shipped_model_on_real_images(name, sample_image):
    if not model_available(name):
        pytest.skip(f"shipped {name} weights not installed")
    module, cls = CODEC_CLASSES[name]
    arrays = "numpy" if name in NUMPY_WEIGHTS else "torch"
    codec = getattr(importlib.import_module(module), cls).from_shipped(load_shipped(name, arrays=arrays))
    crops = [PixelImage("RGB", np.ascontiguousarray(sample_image.pixels[y : y + 32, x : x + 32]))
             for y, x in [(0, 0), (32, 16)]]
    encoded = codec.encode(crops)
    decoded = codec.decode(encoded.payloads, [ImageShape(im.mode, im.width, im.height) for im in crops])
    subpixels = sum(im.subpixels for im in crops)
    for original, image in zip(crops, decoded):
        assert np.array_equal(original.pixels, image.pixels)
    assert sum(encoded.nll_bits) < 7.0 * subpixels  # trained weights beat raw 8 bits (random ones do not)
    if not codec.chained:  # the coder adds a few bytes per image at most
        for payload, bits in zip(encoded.payloads, encoded.nll_bits):
            assert len(payload) * 8 - bits < 48
