"""Local autoregressive codec: whole images in context, every pixel one exact network pass,
each sub-pixel one ANS symbol, decoding along a wavefront.

Encoding runs the integer network (:mod:`neuralzip.exact.local`) over every pixel of the
whole image at once (all neighbourhoods are known), turns each head into the exact
one-symbol cumulative of its channels (:class:`~neuralzip.exact.mixture.SymbolTable`: R,
then G with R's value in its mean and the mixture's posterior weights, then B) and pushes
every sub-pixel as one symbol on its row's stream. Decoding visits the wavefront steps of
:mod:`~neuralzip.exact.wavefront`: at each step it gathers the neighbourhoods of the step's pixels in a
whole batch of same-size images, runs the network on them together, and pops their values,
one search for ``C(v) <= q < C(v + 1)`` per sub-pixel, vectorised over every stream that
pops in that round. Encoder and decoder compute the same integers on any batch size,
thread count or machine.

No tiles: every pixel sees its whole causal neighbourhood; only the image's own edges are
padded (neighbours outside the image read as zeros, see :class:`~neuralzip.exact.local.Canvas`).
Any size from 1x1 up. Grey images are seen as R = G = B and code one channel; an alpha plane
is coded beside the colour by the smaller of PNG and JPEG-XL.

Model versions whose card enables them adapt to each large image: the encoder fits offsets
that the decoder adds to every head (:mod:`~neuralzip.codecs.head_offsets`).

Payload: [alpha plane, only for RGBA/LA: codec id byte, varint length, bytes]
[head offsets, only with a model that enables them and an image of at least
:data:`~neuralzip.codecs.head_offsets.MIN_PIXELS` pixels]
[S - 1 varint stream lengths in bytes] [the S streams' bytes], S = :func:`~neuralzip.exact.wavefront.stream_count`.
Decoding imports no torch.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..coding import BatchAnsDecoder, BatchAnsEncoder, CodingError
from ..distributions import MixtureLayout
from ..exact.local import Canvas, ExactLocalNetwork, edge_patterns, image_features, image_patterns, sampled_features
from ..exact.kernels import kernel
from ..exact.mixture import ExactMixture, SymbolTable, posterior_weights
from ..images import PixelImage
from ..nets.neighbourhood import LocalConfig
from ..progress import progress
from ..threads import codec_threads
from ..exact import wavefront
from . import head_offsets
from .base import Encoded, PerImageCodec, ImageShape, PayloadError, UnsupportedImageError
from .tiles import ALPHA_MODES, COLOUR_CHANNELS, decode_alpha, encode_alpha, join_streams, split_streams

ENCODE_PIXELS = 1 << 16  # pixels per encoding chunk (bounds memory on large images)
NETWORK_ROWS = 4096  # network rows per matrix product: activations stay in cache
DECODE_BATCH = 1000  # images of one size decoded together
ESTIMATE_PIXELS = 8192  # pixels whose exact code length estimates a large image's size


def in_threads(function, parts: list) -> list:
    """``[function(part) for part in parts]`` on up to the codec's thread count of threads,
    with BLAS held to one thread each: the network's matrix products are small (a wavefront
    step's pixels), where BLAS's own threads cost more in synchronisation than they gain,
    and our threads already fill the cores (numpy's BLAS and the C accelerator release the
    GIL). The exact arithmetic makes the results independent of how the work is split."""
    from threadpoolctl import threadpool_limits

    threads = min(len(parts), codec_threads())
    with threadpool_limits(limits=1, user_api="blas"):
        if threads <= 1:
            return [function(part) for part in parts]
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(function, parts))


def search_arity_bits(rows: int) -> int:
    """How wide the decoder's search rounds are: few rows are cheaper with all 255 inner
    edges in one round, many with a binary search (the result is the same)."""
    if rows <= 8:
        return 8
    if rows <= 64:
        return 4
    return 1


class LocalCodec(PerImageCodec):
    name, codec_id, kind = "local", 64, "neural"
    seals_checksum = True
    description = "local autoregressive model (NeLLoC-style), exact integer inference, wavefront decoding"

    def __init__(self, config: LocalConfig, network: ExactLocalNetwork, model_hash: bytes, card: dict | None = None,
                 name: str | None = None, codec_id: int | None = None):
        self.config = config
        self.network = network
        self._hash = model_hash
        self.card = card or {}
        self.head_offsets = head_offsets.enabled(self.card)  # fixed by the model version: part of its format
        self._last_fit = None  # (image key, fitted offsets) of the last image fitted
        self.mixture = ExactMixture(MixtureLayout(config.channels, config.mixtures))
        if name is not None:
            self.name = name
        if codec_id is not None:
            self.codec_id = codec_id

    @property
    def model_hash(self) -> bytes:
        return self._hash

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def from_shipped(cls, shipped, name: str | None = None, codec_id: int | None = None) -> "LocalCodec":
        config = LocalConfig.from_dict(shipped.card["config"])
        network = ExactLocalNetwork(config, shipped.tensors)
        return cls(config, network, shipped.model_hash, shipped.card, name, codec_id)

    @classmethod
    def from_float(cls, model, calibration: np.ndarray) -> "LocalCodec":
        """Quantise a float model with activation scales from ``calibration`` images (tests,
        export). The hash covers the integer weights."""
        from ..exact.local import activation_scales, quantize
        from ..exact.network import tensors_hash
        import torch

        network = quantize(model, activation_scales(model, calibration))
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in network.tensors().items()}
        return cls(model.config, network, tensors_hash(tensors))

    def integer_tensors(self) -> dict[str, np.ndarray]:
        return self.network.tensors()

    # ---- interface -------------------------------------------------------------------------
    def check(self, image: PixelImage) -> None:
        if self.config.channels != 3 or image.mode not in COLOUR_CHANNELS or image.pixels.dtype != np.uint8:
            raise UnsupportedImageError(f"{self.name} codes RGB, RGBA, L and LA images with 8-bit samples, not {image.mode}")

    def encode(self, images: list[PixelImage]) -> Encoded:
        for image in images:
            self.check(image)
        payloads: list[bytes] = [b""] * len(images)
        nll = [0.0] * len(images)
        groups: dict[tuple[int, int, int], list[int]] = {}
        for index, image in enumerate(images):
            groups.setdefault((image.height, image.width, COLOUR_CHANNELS[image.mode]), []).append(index)
        for (h, w, c), members in groups.items():
            colour = np.stack([images[i].pixels[:, :, :c] for i in members])
            units = [self.fitted_offsets(colour[k]) for k in range(len(members))] if self._carries_offsets(h, w) else None
            offsets = None if units is None else self._head_units(units)
            streams, bits = self._encode_same_size(colour, [self.checksum(images[i]) for i in members], offsets)
            for k, i in enumerate(members):
                image = images[i]
                alpha = encode_alpha(image.pixels[:, :, -1]) if image.mode in ALPHA_MODES else b""
                block = head_offsets.encode_block(units[k]) if units is not None else b""
                payloads[i] = alpha + block + join_streams(streams[k])
                nll[i] = float(bits[k]) + 8 * (len(alpha) + len(block))
        return Encoded(payloads, nll)

    def _carries_offsets(self, height: int, width: int) -> bool:
        return self.head_offsets and head_offsets.carries_block(height, width)

    def _head_units(self, units: list[np.ndarray | None]) -> np.ndarray | None:
        """Per image offsets in head units int64 [B, size] (zeros for an image without), or
        None when no image has any."""
        if all(u is None for u in units):
            return None
        size = self.mixture.layout.size
        return np.stack([np.zeros(size, np.int64) if u is None else u * head_offsets.OFFSET_UNIT for u in units])

    def fitted_offsets(self, colour: np.ndarray) -> np.ndarray | None:
        """The head offsets (stored units int64 [size]) fitted to one image uint8 [H, W, c],
        or None where they would not pay for their bytes (judged by the exact code length of
        the fitting sample, scaled to the image). A function of the pixels alone (a fixed
        sample, a deterministic fit); the last image's result is kept, so that auto's
        estimate and the encoding that follows fit once."""
        key = (colour.shape, hashlib.blake2b(np.ascontiguousarray(colour).data, digest_size=16).digest())
        last = self._last_fit
        if last is not None and last[0] == key:
            return last[1]
        head, values, scale = self.sample_heads(colour, head_offsets.FIT_PIXELS, seed=1)
        units = head_offsets.fit(head, values, self.mixture.layout)
        if units.any():
            saved = (self._sample_bits(head, values)
                     - self._sample_bits(head_offsets.apply(head, units * head_offsets.OFFSET_UNIT), values)) * scale
            cost = 8 * (len(head_offsets.encode_block(units)) - len(head_offsets.encode_block(None)))
            units = units if saved > cost else None
        else:
            units = None
        self._last_fit = (key, units)  # one assignment: a concurrent reader sees the old pair or the new
        return units

    def forget_fit(self) -> None:
        """Drop the kept fit (:meth:`fitted_offsets`): the next encode fits afresh, as a new
        process would (benchmarks time each codec so)."""
        self._last_fit = None

    def decode_each(self, payloads: list[bytes], shapes: list[ImageShape]) -> list:
        """Like :meth:`decode`, but a bad payload only fails its own image: returns, per
        image, the decoded image or the :class:`PayloadError` that stopped it."""
        results: list = [None] * len(payloads)
        parsed: dict[int, tuple] = {}
        groups: dict[tuple[int, int, int], list[int]] = {}
        for index, (payload, shape) in enumerate(zip(payloads, shapes)):
            try:
                parsed[index] = self._parse(payload, shape)
            except PayloadError as error:
                results[index] = error
                continue
            groups.setdefault((shape.height, shape.width, COLOUR_CHANNELS[shape.mode]), []).append(index)
        for (h, w, c), members in groups.items():
            for start in range(0, len(members), DECODE_BATCH):
                chunk = members[start : start + DECODE_BATCH]
                offsets = self._head_units([parsed[i][2] for i in chunk])
                colour, seals = self._decode_same_size([parsed[i][1] for i in chunk], h, w, c, offsets)
                for k, i in enumerate(chunk):
                    if seals[k] < 0:
                        results[i] = PayloadError(f"{self.name} payload is corrupt (a stream was not consumed exactly)")
                        continue
                    shape, alpha = shapes[i], parsed[i][0]
                    shape.seal = int(seals[k])
                    pixels = colour[k] if alpha is None else np.concatenate([colour[k], alpha[:, :, None]], axis=2)
                    results[i] = PixelImage(shape.mode, np.ascontiguousarray(pixels))
        return results

    def _parse(self, payload: bytes, shape: ImageShape):
        """(alpha plane or None, the image's streams, its head offsets' stored units or None)
        of one payload."""
        if shape.mode not in COLOUR_CHANNELS:
            raise PayloadError(f"{self.name} payload for an image of mode {shape.mode}")
        pos, alpha, units = 0, None, None
        if shape.mode in ALPHA_MODES:
            alpha, pos = decode_alpha(payload, pos, shape, self.name)
        if self._carries_offsets(shape.height, shape.width):
            units, pos = head_offsets.decode_block(payload, pos, self.mixture.layout.size, self.name)
        count = wavefront.stream_count(shape.height, shape.width, self.config.horizon)
        return alpha, split_streams(payload[pos:], count, self.name), units

    # ---- the network and the mixture -------------------------------------------------------
    def intervals(self, colour: np.ndarray, condition: np.ndarray | None = None,
                  slot: np.ndarray | None = None, slots: int | None = None,
                  offsets: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(left cumulative, frequency) int32 [B, slots, c] (values below 2**24 + 1: half the
        memory of int64 on large images) of every sub-pixel of same-size images uint8
        [B, H, W, c] (c = 3, or 1 for grey), and each image's ideal code length in bits
        float64 [B]. Pixel p (raster order) lands at ``slot[p]`` of ``slots`` (by default
        raster order itself; the encoder asks for its streams' pop order, so that the layout
        is written by the threads that compute it); unused slots hold the interval [0, 1).
        Computed in chunks of at most ``ENCODE_PIXELS`` pixels (whole images, or rows of one
        large image). Conditional models take each pixel's features ``condition`` float32
        [B, H * W, F]; ``offsets`` int64 [B, size] are added to each image's heads (head
        offsets, in head units)."""
        b, h, w, c = colour.shape
        if slot is None:
            slot, slots = np.arange(h * w), h * w
        left = np.zeros((b, slots, c), dtype=np.int32)
        frequency = np.ones((b, slots, c), dtype=np.int32)
        images_per_chunk = max(1, ENCODE_PIXELS // max(1, h * w))
        rows_per_chunk = h if images_per_chunk > 1 else max(1, ENCODE_PIXELS // max(1, w))
        chunks = [(slice(first, min(b, first + images_per_chunk)), slice(top, min(h, top + rows_per_chunk)))
                  for first in range(0, b, images_per_chunk) for top in range(0, h, rows_per_chunk)]

        def work(chunk):
            batch, rows = chunk
            span = slice(rows.start * w, rows.stop * w)
            features = image_features(colour[batch], self.config.horizon, rows,
                                      None if condition is None else condition[batch, span])
            patterns = image_patterns(batch.stop - batch.start, w, self.config.horizon, rows)
            values = colour[batch, rows].reshape(-1, c)
            lo = np.empty(values.shape, dtype=np.int32)
            freq = np.empty(values.shape, dtype=np.int32)
            # network and mixture block by block: a block's activations and heads stay in cache
            pixels = span.stop - span.start
            for start in range(0, len(values), NETWORK_ROWS):
                block = slice(start, start + NETWORK_ROWS)
                head = self.network.run(features[block], patterns[block])
                if offsets is not None:  # rows are image-major: row r is image batch.start + r // pixels
                    image = batch.start + np.arange(start, min(start + NETWORK_ROWS, len(values))) // pixels
                    head = head_offsets.apply(head, offsets[image])
                lo[block], freq[block] = self._channel_intervals(head, values[block].astype(np.int64))
            left[batch, slot[span]] = lo.reshape(-1, pixels, c)
            frequency[batch, slot[span]] = freq.reshape(-1, pixels, c)
            return (24.0 - np.log2(freq.astype(np.float64))).reshape(-1, pixels * c).sum(axis=1)

        bits = np.zeros(b)
        for (batch, _), chunk_bits in zip(chunks, in_threads(work, chunks)):
            bits[batch] += chunk_bits  # in chunk order: the same sum however the threads ran
        return left, frequency, bits

    def _channel_intervals(self, head: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Symbol intervals of ``values`` [N, c] under ``head`` [N, size], channel by channel."""
        accelerator = kernel(self.config.mixtures, self.config.channels)
        if accelerator is not None:
            return accelerator.intervals(head, values)
        weights, channels = self.mixture.channel_parameters(head)
        n, c = values.shape
        left = np.zeros((n, c), dtype=np.int64)
        frequency = np.zeros((n, c), dtype=np.int64)
        for channel, params in enumerate(channels[:c]):
            means = params.coupled_means(values[:, :channel])
            left[:, channel], frequency[:, channel] = SymbolTable.build(params, means, weights).interval(values[:, channel])
            if channel + 1 < c:
                weights = posterior_weights(weights, params.bin_probabilities(values[:, channel], means))
        return left, frequency

    def nll_bits_per_subpixel(self, images: np.ndarray, batch: int = 500) -> float:
        """The exact model's ideal code length of same-size uint8 images [N, H, W, C] in bits
        per sub-pixel (the coded size, less the streams' few bits of ending)."""
        total = 0.0
        for start in range(0, len(images), batch):
            total += float(self.intervals(images[start : start + batch])[2].sum())
        return total / images.size

    def estimate_bits(self, image: PixelImage, target: float | None = None, adapt: bool = True) -> float:
        """The payload's size in bits, estimated from the exact code length of a fixed
        sample of ``ESTIMATE_PIXELS`` pixels (all of them in small images) plus the alpha
        plane; cheap, because a pixel's code length needs only its own neighbourhood.
        Every local model samples the same pixels of an image (seed 0), so two models'
        estimates are paired: their difference is far less noisy than either.
        Where the encoder would fit head offsets, the estimate includes them (the fit is
        kept for the encoder: :meth:`fitted_offsets`), unless ``adapt`` is false or
        ``target`` is given and the unadapted estimate is beyond what offsets save
        (``head_offsets.MAX_GAIN``) from it: then the unadapted estimate is returned."""
        self.check(image)
        colour = image.pixels[:, :, : COLOUR_CHANNELS[image.mode]]
        head, values, scale = self.sample_heads(colour, ESTIMATE_PIXELS, seed=0)
        alpha = 8 * len(encode_alpha(image.pixels[:, :, -1])) if image.mode in ALPHA_MODES else 0
        bits = self._sample_bits(head, values) * scale + alpha
        if adapt and self._carries_offsets(image.height, image.width):
            if target is not None and bits > target * (1 + head_offsets.MAX_GAIN):
                return bits
            units = self.fitted_offsets(colour)
            block = 8 * len(head_offsets.encode_block(units))
            if units is not None:
                head = head_offsets.apply(head, units * head_offsets.OFFSET_UNIT)
            bits = self._sample_bits(head, values) * scale + alpha + block
        return bits

    def sample_heads(self, colour: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(exact heads int64 [N, size], values int64 [N, c], image pixels per sampled pixel)
        of a fixed random sample of ``count`` pixels of one image uint8 [H, W, c] (all of
        them in smaller images): a pixel's head needs only its own neighbourhood."""
        h, w, _ = colour.shape
        n = h * w
        flat = np.arange(n) if n <= count else np.sort(np.random.default_rng(seed).choice(n, count, replace=False))
        rows, columns = np.divmod(flat, w)
        head = self.network.run(sampled_features(colour, rows, columns, self.config.horizon),
                                edge_patterns(rows, columns, w, self.config.horizon))
        return head, colour[rows, columns].astype(np.int64), n / len(flat)

    def _sample_bits(self, head: np.ndarray, values: np.ndarray) -> float:
        """The exact code length in bits of pixels ``values`` int64 [N, c] under ``head``."""
        _, frequency = self._channel_intervals(head, values)
        return float((24.0 - np.log2(frequency.astype(np.float64))).sum())

    def pixel_bits(self, image: PixelImage) -> np.ndarray:
        """The model's code length of every pixel in bits (channels summed), float [H, W]."""
        self.check(image)
        colour = image.pixels[None, :, :, : COLOUR_CHANNELS[image.mode]]
        _, frequency, _ = self.intervals(colour)
        bits = (24.0 - np.log2(frequency.astype(np.float64))).sum(axis=2)
        return bits.reshape(image.height, image.width)

    # ---- streams ---------------------------------------------------------------------------
    def _encode_same_size(self, colour: np.ndarray, seals: list[int],
                          offsets: np.ndarray | None = None) -> tuple[list[list[np.ndarray]], np.ndarray]:
        """Each image's streams and ideal code length (bits) for same-size images; image
        k's first stream starts from ``seals[k]`` (its checksum), the others empty; image k's
        heads get ``offsets[k]`` (head units) where given."""
        b = len(colour)
        left, frequency, lengths, bits = self.stream_sequences(colour, offsets=offsets)
        s = len(lengths) // b
        initial = np.zeros((b, s), dtype=np.uint32)
        initial[:, 0] = seals
        encoder = BatchAnsEncoder(len(lengths), seals=initial.reshape(-1))
        encoder.push_sequences(left, frequency, lengths)
        words = encoder.streams()
        return [words[i * s : (i + 1) * s] for i in range(b)], bits

    def stream_sequences(self, colour: np.ndarray, condition: np.ndarray | None = None,
                         offsets: np.ndarray | None = None):
        """Every sub-pixel's symbol, laid out per stream in the order the wavefront decoder
        pops them, for same-size images [B, H, W, c]: (left, frequency) int32
        [B * S, longest * c] (image-major, S streams each), the sequences' lengths [B * S]
        and each image's ideal code length in bits [B]."""
        b, h, w, c = colour.shape
        stream, rank, counts = wavefront.pop_order(h, w, self.config.horizon)
        s, longest = len(counts), int(counts.max())
        # symbol k of stream s in pop order: pixel-major, channels R, G, B
        left, frequency, bits = self.intervals(colour, condition, stream * longest + rank, s * longest, offsets)
        return left.reshape(b * s, longest * c), frequency.reshape(b * s, longest * c), np.tile(counts * c, b), bits

    def _decode_same_size(self, streams: list[list[np.ndarray]], h: int, w: int, c: int,
                          offsets: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Decode same-size images from their streams (image k's heads plus ``offsets[k]``
        where given), split over the codec threads. Returns
        the colour planes uint8 [B, H, W, c] and, per image, the seal its first stream ended
        in (every other stream consumed exactly, to the empty state), or -1 if anything was
        left."""
        parts = np.array_split(np.arange(len(streams)), min(len(streams), codec_threads()))
        results = in_threads(lambda part: self._decode_images([streams[i] for i in part], h, w, c,
                                                              None if offsets is None else offsets[part]), parts)
        return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])

    def _decode_images(self, streams: list[list[np.ndarray]], h: int, w: int, c: int,
                       offsets: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_decode_same_size` in one thread."""
        b = len(streams)
        s = wavefront.stream_count(h, w, self.config.horizon)
        try:
            decoder = BatchAnsDecoder([stream for image in streams for stream in image])
        except CodingError as error:
            raise PayloadError(f"{self.name} payload is corrupt ({error})") from None
        out = self.pop_images(decoder, np.arange(b, dtype=np.int64) * s, h, w, c, offsets=offsets)
        seals = decoder.seals().reshape(b, s)
        complete = (seals[:, 0] >= 0) & (seals[:, 1:] == 0).all(axis=1)
        return out, np.where(complete, seals[:, 0], -1)

    def pop_images(self, decoder, first_stream: np.ndarray, h: int, w: int, c: int,
                   condition: np.ndarray | None = None, offsets: np.ndarray | None = None) -> np.ndarray:
        """Pop same-size images uint8 [B, H, W, c] along the wavefront from ``decoder`` (a
        :class:`~neuralzip.coding.BatchAnsDecoder` or a stack with its interface): image
        k's row r from stream ``first_stream[k] + r % S``. Conditional models take each
        pixel's features ``condition`` float32 [B, H * W, F]; image k's heads get
        ``offsets[k]`` (head units) where given."""
        b = len(first_stream)
        horizon = self.config.horizon
        s = wavefront.stream_count(h, w, horizon)
        canvas = Canvas(b, h, w, horizon)
        out = np.zeros((b, h, w, c), dtype=np.uint8)
        image_base = np.asarray(first_stream, dtype=np.int64)[:, None]
        steps = range(wavefront.steps(h, w, horizon))
        if b * h * w > 200_000:
            steps = progress(steps, desc=f"{self.name}: {b} image{'s' * (b > 1)}", unit="step", leave=False)
        for t in steps:
            rows, cols = wavefront.active(t, h, w, horizon)
            n = len(rows)
            positions = canvas.position(rows, cols)
            features = canvas.features(positions)
            if condition is not None:
                features = np.concatenate([features, condition[:, rows * w + cols].reshape(b * n, -1)], axis=1)
            head = self.network.run(features, np.tile(edge_patterns(rows, cols, w, horizon), b))  # [b * n, size], image-major
            if offsets is not None:
                head = head_offsets.apply(head.reshape(b, n, -1), offsets[:, None, :]).reshape(b * n, -1)
            values = np.zeros((b * n, c), dtype=np.int64)
            for members in wavefront.rounds(rows, s):
                index = (np.arange(b, dtype=np.int64)[:, None] * n + members[None, :]).reshape(-1)
                stream_index = (image_base + (rows[members] % s)[None, :]).reshape(-1)
                values[index] = self._pop_pixels(decoder, stream_index, head[index], c)
            canvas.write(positions, values.reshape(b, n, c).astype(np.uint8))
            out[:, rows, cols] = values.reshape(b, n, c)
        return out

    def _pop_pixels(self, decoder: BatchAnsDecoder, stream_index: np.ndarray, head: np.ndarray, c: int) -> np.ndarray:
        """Pop the ``c`` channels of one pixel per stream of ``stream_index`` (distinct),
        whose heads are ``head`` [n, size]. Returns the values int64 [n, c]."""
        accelerator = kernel(self.config.mixtures, self.config.channels)
        if accelerator is not None:
            return accelerator.decode(head, c, stream_index, decoder)
        arity = search_arity_bits(len(stream_index))
        weights, channels = self.mixture.channel_parameters(head)
        known = np.zeros((len(head), c), dtype=np.int64)
        for channel, params in enumerate(channels[:c]):
            means = params.coupled_means(known[:, :channel])
            table = SymbolTable.build(params, means, weights)
            value, c_low, c_high = table.search(slice(None), decoder.quantiles(stream_index), arity)
            decoder.advance_streams(stream_index, c_low, c_high - c_low)
            known[:, channel] = value
            if channel + 1 < c:
                weights = posterior_weights(weights, params.bin_probabilities(value, means))
        return known
