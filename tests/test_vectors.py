"""Golden vectors: files written by earlier nzip versions (tests/vectors/, never regenerated)
decode to exactly the pixels they were made from, with the codec and model version that made
them. Because CI runs on different machines over time, this is also the cross-machine test."""

import json
from pathlib import Path

import numpy as np
import pytest

import neuralzip

VECTORS = Path(__file__).parent / "vectors"
MANIFEST = json.loads((VECTORS / "manifest.json").read_text())


def test_every_codec_has_vectors():
    codecs = {entry["codec"] for entry in MANIFEST.values()}
    assert {"png", "webp", "jxl", "j2k", "pixelcnn", "flow", "vae"} <= codecs


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_vector_decodes_exactly(name):
    entry = MANIFEST[name]
    data = (VECTORS / f"{name}.nzip").read_bytes()
    expected = np.load(VECTORS / f"{name}.npz")
    info = neuralzip.info(data)
    assert info["codec_id"] == entry["codec_id"] and info["model_hash"] == entry["model_hash"]
    decoded = neuralzip.decompress_all(data)
    assert len(decoded) == len(entry["images"])
    for i, ((decoded_name, image), meta) in enumerate(zip(decoded, entry["images"])):
        assert decoded_name == meta["name"] and image.mode == meta["mode"]
        pixels = expected[f"pixels{i}"]
        assert image.pixels.dtype == pixels.dtype and np.array_equal(image.pixels, pixels)
        if f"palette{i}" in expected:
            assert image.palette == expected[f"palette{i}"].tobytes()
        from neuralzip.metadata import serialize

        assert serialize(image.metadata) == (expected[f"metadata{i}"].tobytes() if f"metadata{i}" in expected else b"")
        if f"original{i}" in expected:  # a file kept as itself comes back byte for byte
            assert image.original == expected[f"original{i}"].tobytes()
