"""Ray Data integration (``pip install "neuralzip[ray]"``).

Callable classes for ``Dataset.map_batches``: each runs as a stateful actor, so its codec
(and model weights) load once per worker, not once per batch.

* :class:`NzipEncoder`: a batch with a column of images (uint8 arrays [H, W, C], or encoded
  image file bytes) -> adds a column of .nzip bytes.
* :class:`NzipDecoder`: a batch with a column of .nzip bytes -> adds a column of decoded
  images (uint8 arrays), every checksum verified.
* :class:`ShardCompressor`: one shard job of :mod:`neuralzip.dataset` per call (what ``nzip
  dataset compress --engine ray`` runs).

Faults: actors are started with unlimited restarts and task retries, so a worker process
killed mid-task is replaced by Ray and its batch runs again; shards are written atomically
(:func:`neuralzip.dataset.compress_shard`), so a retried shard never leaves a partial file.

Example::

    import ray, neuralzip.ray as nzr
    ds = ray.data.read_images("s3://bucket/images", mode="RGB")
    ds = ds.map_batches(nzr.NzipEncoder, fn_constructor_kwargs={"model": "local"},
                        batch_size=256, compute=ray.data.ActorPoolStrategy(size=8), batch_format="numpy")
"""

from __future__ import annotations

import os

import numpy as np



def _threads(threads: int | None) -> None:
    if threads:
        os.environ["NZIP_THREADS"] = str(threads)


class NzipEncoder:
    """``map_batches`` callable: column ``column`` (images) -> column ``output`` (.nzip bytes)."""

    def __init__(self, model: str = "local", column: str = "image", output: str = "nzip", threads: int | None = 1):
        from . import api

        _threads(threads)
        self.model, self.column, self.output = model, column, output
        if model not in (api.AUTO, None):
            api.resolve_codec(model)  # load the weights once, now

    def __call__(self, batch: dict) -> dict:
        from . import api
        from .images import PixelImage, decode_image_bytes

        images = []
        for item in batch[self.column]:
            if isinstance(item, (bytes, bytearray)):
                images.append(decode_image_bytes(bytes(item)))
            else:
                images.append(PixelImage.from_array(np.asarray(item)))
        batch[self.output] = np.array(api.encode_batch(images, self.model), dtype=object)
        return batch


class NzipDecoder:
    """``map_batches`` callable: column ``column`` (.nzip bytes) -> column ``output`` (arrays)."""

    def __init__(self, column: str = "nzip", output: str = "image", threads: int | None = 1):
        _threads(threads)
        self.column, self.output = column, output

    def __call__(self, batch: dict) -> dict:
        from . import api

        images = api.decode_batch([bytes(b) for b in batch[self.column]])
        out = np.empty(len(images), dtype=object)
        for i, image in enumerate(images):
            out[i] = image.pixels
        batch[self.output] = out
        return batch


class ShardCompressor:
    """``map_batches`` callable over shard jobs (one per row): compresses and writes shards."""

    def __init__(self, model: str, threads: int | None = 1, kill_once: str | None = None):
        from . import api

        _threads(threads)
        self.model = model
        self.kill_once = kill_once  # fault injection for tests, see _maybe_fail_for_tests
        if model not in (api.AUTO, None):
            api.resolve_codec(model)

    def __call__(self, batch: dict) -> dict:
        from . import api
        from .dataset import ShardJob, compress_shard

        indices = []
        for index, source, files, out in zip(batch["index"], batch["source"], batch["files"], batch["out"]):
            job = ShardJob(int(index), str(source), tuple(str(f) for f in files), str(out), self.model)
            _maybe_fail_for_tests(self.kill_once)
            compress_shard(job, lambda images: api.encode_batch(images, self.model))
            indices.append(int(index))
        return {"index": np.array(indices, dtype=np.int64)}


def _maybe_fail_for_tests(marker: str | None) -> None:
    """Fault injection for the killed-worker test: with a ``kill_once`` file name, the first
    worker that reaches a shard while that file does not exist creates it and dies mid-task."""
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)


def compress_shards(jobs: list, workers: int = 2, address: str | None = None, progress=None,
                    kill_once: str | None = None) -> None:
    """Run shard jobs on Ray Data actors (``address``: an existing cluster; default: the one
    this process is connected to, else a local one)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {k: v for k, v in os.environ.items()
                                           if k.startswith("NZIP_")}} if any(k.startswith("NZIP_") for k in os.environ) else None)
    rows = [{"index": job.index, "source": job.source, "files": list(job.files), "out": job.out} for job in jobs]
    dataset = ray.data.from_items(rows).map_batches(
        ShardCompressor, fn_constructor_kwargs={"model": jobs[0].model, "kill_once": kill_once}, batch_size=1,
        batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1)
    # Fault tolerance: Ray Data (>= 2.60, what the extra requires) restarts a map actor that
    # dies and retries its task (max_restarts = max_task_retries = -1 by default); a retried
    # shard is rewritten from scratch and only renamed into place when complete.
    for row in dataset.iter_rows():
        if progress:
            progress(next(job for job in jobs if job.index == int(row["index"])))
