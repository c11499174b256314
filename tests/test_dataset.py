"""Datasets: shards written atomically and resumed, every image back exactly, a killed Ray
worker loses nothing, and the data reads back through Pillow, WebDataset and PyTorch."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import neuralzip
from neuralzip import dataset as ds
from neuralzip.cli import main
from neuralzip.container import has_magic
from neuralzip.images import read_image

from .conftest import smooth_image


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    for i in range(9):
        Image.fromarray(smooth_image(6 + i % 3, 7, seed=i)).save(root / ("sub" if i % 2 else "") / f"img{i}.png")
    Image.fromarray(smooth_image(8, 8, 1, seed=20)[:, :, 0]).save(root / "grey.bmp")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return root


def _same_tree(source: Path, restored: Path) -> None:
    for path in ds.source_files(source):
        if path == "broken.png":
            continue
        target = restored / ds.restored_name(path, False)
        a, b = read_image(source / path), read_image(target)
        assert a.mode == b.mode and np.array_equal(a.pixels, b.pixels), path


def test_compress_resume_decompress_verify(source, tmp_path):
    out = tmp_path / "out"
    manifest = ds.compress(source, out, model="png", shard_size=4, engine="local", workers=1)
    assert manifest["count"] == 10 and manifest["errors"] == 1 and len(manifest["shards"]) == 3
    assert [r for r in manifest["images"] if "error" in r][0]["path"] == "broken.png"
    first = (out / "shards" / "shard-00000.tar").stat().st_mtime_ns
    (out / "shards" / "shard-00001.json").unlink()  # as if interrupted while writing shard 1
    again = ds.compress(source, out, model="png", shard_size=4, engine="local", workers=1)
    assert again["count"] == 10 and (out / "shards" / "shard-00000.tar").stat().st_mtime_ns == first  # skipped
    assert not list((out / "shards").glob("*.part"))
    written, problems = ds.decompress(out, tmp_path / "back")
    assert written == 10 and not problems
    _same_tree(source, tmp_path / "back")
    verified, problems = ds.verify(out)
    assert verified == 10 and len(problems) == 1 and "broken.png" in problems[0]
    row = next(r for r in again["images"] if r.get("path") == "sub/img3.png")  # random access: one seek
    assert np.array_equal(neuralzip.decompress(ds.read_member(out, row)).pixels, read_image(source / "sub/img3.png").pixels)
    with pytest.raises(ds.DatasetError, match="plan.json differs"):
        ds.compress(source, out, model="jxl", shard_size=4)


def test_verify_catches_damage_and_the_cli_exits_1(source, tmp_path):
    out = tmp_path / "out"
    (source / "broken.png").unlink()
    runner = CliRunner()
    assert runner.invoke(main, ["dataset", "compress", str(source), str(out), "-m", "png", "--shard-size", "5",
                                "--workers", "1"]).exit_code == 0
    assert runner.invoke(main, ["dataset", "verify", str(out)]).exit_code == 0
    tar = out / "shards" / "shard-00001.tar"
    data = bytearray(tar.read_bytes())
    row = next(r for r in json.loads((out / "manifest.json").read_text())["images"] if r["shard"] == tar.name)
    data[row["offset"] + row["size"] // 2] ^= 0x40
    tar.write_bytes(bytes(data))
    result = runner.invoke(main, ["dataset", "verify", str(out)])
    assert result.exit_code == 1 and "differ from the manifest" in result.stderr


def test_reading_back_with_pillow_webdataset_and_torch(source, tmp_path):
    import torch
    import webdataset as wds

    import neuralzip.pillow  # noqa: F401  registers the format
    from neuralzip.dataset.torch import NzipShards, webdataset_decoder

    (source / "broken.png").unlink()
    out = tmp_path / "out"
    ds.compress(source, out, model="png", shard_size=4, workers=1)
    originals = {p: read_image(source / p).pixels for p in ds.source_files(source)}
    member = next(iter(json.loads((out / "manifest.json").read_text())["images"]))
    (tmp_path / "one.nzip").write_bytes(ds.read_member(out, member))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "one.nzip"))[..., None].reshape(originals[member["path"]].shape),
                          originals[member["path"]])
    seen = {}
    urls = [str(p) for p in sorted((out / "shards").glob("*.tar"))]
    for sample in wds.WebDataset(urls, shardshuffle=False).decode(webdataset_decoder):
        (key, value), = [(k, v) for k, v in sample.items() if k.endswith("nzip")]
        seen[sample["__key__"] + "." + key[: -len(".nzip")]] = value
    assert set(seen) == set(originals) and all(np.array_equal(seen[p], originals[p]) for p in originals)
    loader = torch.utils.data.DataLoader(NzipShards(out, batch=3), batch_size=None, num_workers=2)
    got = dict(loader)
    assert set(got) == set(originals) and all(np.array_equal(np.asarray(got[p]), originals[p]) for p in originals)


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_engine_survives_a_killed_worker(source, tmp_path, ray_cluster):
    marker = tmp_path / "killed-once"
    out = tmp_path / "out"
    from neuralzip import ray as nzr

    jobs = ds.plan(source, out, "png", 3)
    nzr.compress_shards(jobs, workers=2, kill_once=str(marker))
    assert marker.exists()  # a worker really died mid-shard
    manifest = ds.write_manifest(out, jobs)
    assert manifest["count"] == 10 and all(ds.shard_complete(job) for job in jobs)
    assert not list((out / "shards").glob("*.part"))
    assert ds.verify(out)[0] == 10
    written, _ = ds.decompress(out, tmp_path / "back")
    assert written == 10
    _same_tree(source, tmp_path / "back")


def test_ray_map_batches_encoder_and_decoder(ray_cluster):
    from neuralzip import ray as nzr

    images = [smooth_image(5, 6, seed=s) for s in range(6)]
    data = ray_cluster.data.from_items([{"image": im} for im in images])
    coded = data.map_batches(nzr.NzipEncoder, fn_constructor_kwargs={"model": "png"}, batch_size=3,
                             batch_format="numpy", concurrency=1)
    decoded = coded.map_batches(nzr.NzipDecoder, batch_size=3, batch_format="numpy", concurrency=1)
    rows = decoded.take_all()
    assert len(rows) == 6
    for row in rows:
        assert any(np.array_equal(row["image"], im) for im in images)
        assert has_magic(bytes(row["nzip"]))
