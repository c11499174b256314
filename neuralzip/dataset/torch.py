"""Reading compressed datasets in PyTorch pipelines (torch is only needed here).

* :func:`webdataset_decoder`: a WebDataset decoder handler for ``.nzip`` members
  (``wds.WebDataset(urls).decode(webdataset_decoder)``): decodes them to uint8 arrays
  [H, W, C], leaves other members to the next handler.
* :class:`NzipShards`: an IterableDataset over the shards of ``nzip dataset compress`` that
  decodes whole batches at once (a neural codec decodes a batch far faster than its images
  one by one) and yields ``(relative path, uint8 array)``; DataLoader workers split the
  shards between them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def webdataset_decoder(key: str, data: bytes):
    """WebDataset handler: ``*.nzip`` -> uint8 array [H, W, C]; anything else: None."""
    if not key.endswith("nzip"):
        return None
    from ..api import decompress

    return decompress(data).pixels


def _torch_iterable():
    from torch.utils.data import IterableDataset

    return IterableDataset


class NzipShards(_torch_iterable()):
    """Iterate over every image of a compressed dataset folder, decoding ``batch`` at a time."""

    def __init__(self, root: str | Path, batch: int = 256):
        from . import read_manifest

        self.root = Path(root)
        self.batch = batch
        manifest = read_manifest(self.root)
        self.rows = [r for r in manifest["images"] if "error" not in r]
        self.shards = manifest["shards"]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        from torch.utils.data import get_worker_info

        from ..api import decode_batch
        from . import read_member

        info = get_worker_info()
        shards = self.shards if info is None else self.shards[info.id :: info.num_workers]
        mine = [r for r in self.rows if r["shard"] in set(shards)]
        for start in range(0, len(mine), self.batch):
            chunk = mine[start : start + self.batch]
            images = decode_batch([read_member(self.root, r) for r in chunk])
            for row, image in zip(chunk, images):
                yield row["path"], np.ascontiguousarray(image.pixels)
