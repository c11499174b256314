"""The weights shipped in models/: each family loads (hash checked) and codes real image crops
exactly, with a trained model's rate."""

import numpy as np
import pytest

from neuralzip import api, codecs
from neuralzip.codecs.base import ImageShape
from neuralzip.images import PixelImage
from neuralzip.registry import load_shipped, model_available

NEURAL = ("pixelcnn", "flow", "vae", "local", "local-photo")


@pytest.mark.parametrize("name", NEURAL)
def test_shipped_model_on_real_images(name, sample_image):
    """The newest shipped version of each model, built as ``-m NAME`` builds it (the card's
    family picks the codec: vae v2 is the local-VAE), outside the tests' codec cache."""
    if not model_available(name):
        pytest.skip(f"shipped {name} weights not installed")
    codec = codecs.BY_NAME[name].build()
    assert codec.model_hash == load_shipped(name, arrays="numpy").model_hash
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


def test_auto_archive_compares_a_bits_back_codec_by_its_archive(sample_image):
    """A bits-back codec's single files each pay the initial bits its chain pays once per
    archive, so auto must judge it by its archive: on enough images the VAE's archive is the
    smaller, and auto writes exactly that archive."""
    if not (model_available("vae") and model_available("local")):
        pytest.skip("shipped local and vae weights not installed")
    crops = [PixelImage("RGB", np.ascontiguousarray(sample_image.pixels[y : y + 32, x : x + 32]))
             for y in range(0, 33, 3) for x in range(0, 33, 3)]
    names = [f"crop{i}.png" for i in range(len(crops))]
    archives = {name: api.compress_archive(crops, names, model=name).data for name in ("local", "vae")}
    assert len(archives["vae"]) < len(archives["local"]), "the test needs more crops for the VAE's archive to win"
    result = api.compress_archive(crops, names, candidates="local,vae")
    assert result.codec == "vae" and result.data == archives["vae"]
