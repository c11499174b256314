"""CIFAR-10 access: the three layouts give the same arrays, in a deterministic order, cached."""

import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from neuralzip import data


def _fake_cifar(root, n_per_batch=3):
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, (n_per_batch, 3, 32, 32), dtype=np.uint8)
        labels = list(rng.integers(0, 10, n_per_batch))
        batches[name] = (images, labels)
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    for name, (images, labels) in batches.items():
        payload = {b"data": images.reshape(n_per_batch, -1), b"labels": [int(x) for x in labels]}
        (folder / name).write_bytes(pickle.dumps(payload))
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        for name in batches:
            tar.add(folder / name, arcname=f"cifar-10-batches-py/{name}")
    return batches


def test_batches_and_tarball_agree(tmp_path, monkeypatch):
    monkeypatch.setenv("NZIP_CACHE", str(tmp_path / "cache"))
    batches = _fake_cifar(tmp_path)
    from_folder = data.load_cifar10("test", tmp_path / "cifar-10-batches-py", use_cache=False)
    tar_only = tmp_path / "only"
    tar_only.mkdir()
    (tmp_path / "cifar-10-python.tar.gz").rename(tar_only / "cifar-10-python.tar.gz")
    from_tar = data.load_cifar10("test", tar_only, use_cache=False)
    expected = batches["test_batch"][0].transpose(0, 2, 3, 1)
    assert np.array_equal(from_folder.images, expected) and np.array_equal(from_tar.images, expected)
    train = data.load_cifar10("train", tmp_path / "cifar-10-batches-py")
    assert len(train) == 15 and np.array_equal(train.images[:3], batches["data_batch_1"][0].transpose(0, 2, 3, 1))


def test_image_folder_layout_sorted_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("NZIP_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(1)
    for cls in ("truck", "airplane"):
        (tmp_path / "test" / cls).mkdir(parents=True)
        for i in (2, 1):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "test" / cls / f"{i}.png")
    first = data.load_cifar10("test", tmp_path)
    assert first.names == ["airplane/1.png", "airplane/2.png", "truck/1.png", "truck/2.png"]
    assert list(first.labels) == [0, 0, 1, 1]
    assert any((tmp_path / "cache").iterdir())
    second = data.load_cifar10("test", tmp_path)
    assert np.array_equal(first.images, second.images) and first.names == second.names


def test_pickles_with_code_are_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(data.DataError, match="refusing"):
        data.load_cifar10("test", folder, use_cache=False)


def test_missing_path_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("NZIP_DATA", raising=False)
    with pytest.raises(data.DataError, match="--data"):
        data.resolve_data_path(None)
    with pytest.raises(data.DataError, match="no CIFAR-10"):
        data.load_cifar10("test", tmp_path)


def test_spread_subset_covers_classes():
    idx = data.spread_subset(10000, 1000, seed=0)
    assert len(set(idx // 1000)) == 10 and len(idx) == 1000
