"""The codec interface every way of coding implements, classical or neural.

A codec turns images into payloads and back. It never sees the container: ids, hashes,
checksums and names are handled by :mod:`neuralzip.api`. Codecs work on batches because
neural decoders are only fast when many images are decoded together; a batch may hold
images of different sizes.

Guarantees a codec gives:

* ``decode(encode(images).payloads, shapes)`` returns exactly ``images``;
* the payload of an image does not depend on the other images in the batch, the batch size
  or the thread count (so single files and benchmark batches are the same bytes), except
  for *chained* codecs, which code a whole archive as one payload by design;
* bad payloads raise :class:`PayloadError`, never return a silently wrong image.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from ..images import PixelImage

NO_MODEL_HASH = b"\x00\x00\x00\x00"


class UnsupportedImageError(Exception):
    """This codec cannot code this image losslessly (mode or size); the message says why."""


class PayloadError(Exception):
    """A payload that does not decode (corrupt data or a mismatched model)."""


@dataclass
class ImageShape:
    """What the decoder knows about an image before decoding it (from the container), and
    ``seal``, which a sealing codec's decoder fills in: the checksum its payload carried."""

    mode: str
    width: int
    height: int
    seal: int | None = None


@dataclass
class Encoded:
    """Payloads, one per image (or a single one for a chained codec's archive), and the
    model's ideal code length of each image in bits where the codec has a model."""

    payloads: list[bytes]
    nll_bits: list[float] | None = None


class Codec(ABC):
    name: str = ""
    codec_id: int = 0
    kind: str = "classical"  # or "neural"
    chained: bool = False  # True: an archive is one payload (bits-back chains)
    keeps_file: bool = False  # True: codes the input file itself (its metadata included)
    # True: every payload carries the image's checksum (:meth:`checksum`) at the bottom of its
    # ANS stream, where the coder's empty initial state would otherwise waste ~24 bits; the
    # decoder reports it in ``ImageShape.seal`` (compact files need no header checksum then).
    seals_checksum: bool = False
    description: str = ""

    @property
    def model_hash(self) -> bytes:
        """4 bytes identifying the exact weights (zeros for codecs without weights)."""
        return NO_MODEL_HASH

    def checksum(self, image: PixelImage) -> int:
        """The CRC-32 stored with an image this codec coded: pixels and metadata (see
        :func:`neuralzip.images.pixel_checksum`), unless the codec keeps the file itself."""
        from ..images import pixel_checksum

        return pixel_checksum(image)

    def check(self, image: PixelImage) -> None:
        """Raise :class:`UnsupportedImageError` if this codec cannot code ``image``."""

    def supports(self, image: PixelImage) -> bool:
        try:
            self.check(image)
        except UnsupportedImageError:
            return False
        return True

    @abstractmethod
    def encode(self, images: list[PixelImage]) -> Encoded:
        """Payloads for ``images`` (one each; one in all for a chained codec)."""

    @abstractmethod
    def decode(self, payloads: list[bytes], shapes: list[ImageShape]) -> list[PixelImage]:
        """Images from payloads; ``shapes`` gives each image's mode and size."""


class PerImageCodec(Codec):
    """A codec whose batch decoding reports failures per image: :meth:`decode_each` returns,
    per image, the image or the :class:`PayloadError` that stopped it (one bad file never
    fails the others); :meth:`decode` raises the first such error."""

    def decode(self, payloads: list[bytes], shapes: list[ImageShape]) -> list[PixelImage]:
        results = self.decode_each(payloads, shapes)
        for result in results:
            if isinstance(result, PayloadError):
                raise result
        return results

    @abstractmethod
    def decode_each(self, payloads: list[bytes], shapes: list[ImageShape]) -> list:
        """Per image: the decoded image or the PayloadError that stopped it."""
