"""neuralzip: lossless image compression with neural likelihood models.

Python API (see :mod:`neuralzip.api`): ``compress``, ``compress_batch``, ``compress_archive``,
``decompress``, ``decompress_all``, ``info``, and the batched ``encode_batch`` /
``decode_batch``. Datasets: :mod:`neuralzip.dataset`, Ray Data: :mod:`neuralzip.ray`,
Pillow: ``import neuralzip.pillow``. Command line: ``nzip``.
"""

import os

# The exact decoders run many small tensor operations per pixel. With OpenMP's default
# (active) waiting, a machine busy with other work makes each operation wait for descheduled
# spinning threads: measured 7.5x slower decoding on 2 busy cores. Passive waiting costs
# little when the machine is idle. Only a default: the user's own setting wins, and it only
# takes effect when neuralzip is imported before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .api import compress, compress_archive, compress_batch, decode_batch, decompress, decompress_all, encode_batch, info
from .images import PixelImage, read_image

__version__ = "0.1.0"
__all__ = ["compress", "compress_batch", "compress_archive", "decompress", "decompress_all", "info",
           "encode_batch", "decode_batch",
           "PixelImage", "read_image", "__version__"]
