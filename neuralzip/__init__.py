"""neuralzip: lossless image compression with neural likelihood models.

Python API (see :mod:`neuralzip.api`): ``compress``, ``compress_batch``, ``compress_archive``,
``decompress``, ``decompress_all``, ``info``. Command line: ``nzip``.
"""

from .api import compress, compress_archive, compress_batch, decompress, decompress_all, info
from .images import PixelImage, read_image

__version__ = "0.1.0"
__all__ = ["compress", "compress_batch", "compress_archive", "decompress", "decompress_all", "info",
           "PixelImage", "read_image", "__version__"]
