"""Exact integer execution of the local autoregressive network (:mod:`neuralzip.nets.local`).

Why a separate executor: the local network is a per-pixel MLP, and its decoder evaluates it
on a few pixels of many images at a time, 156 times for a 32x32 image. Plain matrix
products in **float32** suit that, and they are exact here by construction:

* every matrix product multiplies integers: layer inputs are 8-bit ReLU outputs (0..255) or
  the pixel features ``2v - 255`` and the ones channel (255), |input| <= 255; weights are
  integers with ``fan_in * 255 * max|w| < 2**24`` (:func:`weight_limit`). Every product and
  every partial sum is then an integer below 2**24, which float32 represents exactly, so
  the result is the same in any summation order: on any BLAS, batch size, thread count or
  machine. No torch is needed (numpy's own BLAS serves), so decoding does not import it;
* requantisation ``floor(acc * M + B)`` is float32 multiplication and addition, each an
  IEEE-754 basic operation (correctly rounded: the same bits on every machine and in every
  SIMD or scalar loop), then a floor; the clamp to 0..255 is the ReLU;
* the head's output is in the fixed point of :mod:`neuralzip.exact.mixture` (2**-12), where
  the exact mixture tables take over;
* models with wider activations (``LocalConfig.activation_bits`` above 8, local v15 on) bound
  their sums by 2**31 instead (:func:`layer_weight_limit`): exact in int32 (the VNNI and AVX2
  kernels) and in float64 (numpy), each sum then rounded to float32 before the
  requantisation, the same bits on every path.
* on CPUs with AMX, AVX-512 VNNI or AVX2 the same products run in ``_matmul.c`` (2-4x
  faster): on the AMX-BF16 tiles, because every layer input is an integer of at most 8
  significant bits, which bfloat16 holds exactly, weights beyond +-256 are split exactly into
  two bfloat16 parts and the float32 sums are the same exact integers; with VNNI or AVX2 as
  int16 products summed in int32, integer arithmetic. The outputs are identical (tested).

Scales: each 8-bit activation channel has its own scale (from calibration data, or the
quantisation-aware training's buffers), folded into the next layer's weights; each weight
row has its own scale. :func:`quantize` turns a float model into integers,
:class:`ExactLocalNetwork` runs them, and :class:`FakeQuantizer` lets training see the
same rounding (straight-through), so the float NLL it optimises is the rate the coder pays.

Neighbourhood features of pixel (i, j): for each offset of
:func:`~neuralzip.nets.local.neighbour_offsets`, the neighbour's channels as ``2v - 255``,
zero where the neighbour lies outside the image (the only padding: the image's own edges,
nothing else). The float model also reads a ones channel per neighbour (255 inside the
image, 0 outside); its contribution to the input layer depends only on which neighbours
are inside, one of :func:`edge_patterns`' few cases, so the exact network adds it from a
table instead of multiplying 255s (a quarter of the input layer's products; the same
integer sums).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..nets.neighbourhood import LocalConfig, neighbour_offsets
from .fixedpoint import ACT_FRAC
from .kernels import requantizer, residual_stepper

FLOAT32_EXACT = 1 << 24
INT32_EXACT = 1 << 31  # the wide models' sums (LocalConfig.wide_sums): int32 in the kernels, float64 in numpy
INT16_WEIGHT = (1 << 15) - 1  # weights are stored and multiplied as int16
INPUT_LIMIT = 255  # |feature| (pixels, the ones channel, a conditioner's 8-bit activations)
ACTIVATION_TOP = 255  # the largest activation of 8-bit models (LocalConfig.activation_top in general)
HEAD_LIMIT = 1 << 20  # head values in 2**-12 units: |x| <= 256, as the exact mixture expects
STREAM_LIMIT = 1 << 20  # the residual stream of models with blocks, in its own units
BLOCK_ROWS = 1024  # rows per matrix product (fastest here at 512-1024; 4096 was ~1.5x slower per row)


def weight_limit(fan_in: int, input_top: int = INPUT_LIMIT, sum_limit: int = FLOAT32_EXACT) -> int:
    """Largest |weight| for which a fan-in of inputs of at most ``input_top`` sums exactly
    below ``sum_limit`` (float32's exact integers, or int32's), and within int16."""
    return min(INT16_WEIGHT, (sum_limit - 1) // (fan_in * input_top))


def activation_top(config: LocalConfig, name: str) -> int:
    """The largest value of activation ``name`` (the input of the layer of that name, or
    ``condition``): a conditioning network's features, which the input layer reads beside
    the pixels, are 8-bit; the network's own activations have ``config.activation_top``."""
    return INPUT_LIMIT if name == "condition" else config.activation_top


def layer_weight_limit(config: LocalConfig, name: str, fan_in: int) -> int:
    """:func:`weight_limit` of layer ``name``: the input layer reads pixel features, the
    others the network's activations; wide models sum in int32."""
    top = INPUT_LIMIT if name == "input" else config.activation_top
    return weight_limit(fan_in, top, INT32_EXACT if config.wide_sums else FLOAT32_EXACT)


def as_float32(values: np.ndarray) -> np.ndarray:
    """Requantisation constants are float32 (what the exact network multiplies with)."""
    return np.asarray(values, dtype=np.float64).astype(np.float32)


@dataclass
class ExactLayer:
    """``out = clip(floor(acc * multiplier + offset), low, high)`` with ``acc = x @ weight``.

    ``acc`` is exact: integers below 2**24 in float32, or (``wide``) below 2**31, summed in
    float64 here and in int32 by the kernels, then rounded to float32 (to nearest even: the
    same bits either way). The requantisation is two IEEE-754 float32 basic operations
    (each correctly rounded, so the same bits on every machine and in every SIMD or scalar
    loop) and a floor; it runs in place, because on large batches these passes over memory
    cost as much as the matrix product."""

    weight: np.ndarray  # float32 [in, out], integer values
    multiplier: np.ndarray  # float32 [out]
    offset: np.ndarray  # float32 [out]
    low: float
    high: float
    packed: object = None  # the weights for the matrix product accelerator (kernels.PackedWeights)
    wide: bool = False  # sums up to 2**31 (inputs up to 2**15): float64 products here, no AMX

    def use_accelerator(self) -> None:
        """Run on the best matrix product accelerator this CPU has (AMX tiles, AVX-512 VNNI,
        AVX2: the same integers, 2-4x faster). AMX's bfloat16 holds inputs of at most 8
        significant bits and sums in float32: wide layers run on VNNI or AVX2 (int16
        products, int32 sums)."""
        from .kernels import matmul_backends, pack_weights

        backends = [b for b in matmul_backends() if not (self.wide and b == "amx")]
        if backends:
            self.packed = pack_weights(self.weight.astype(np.int64), backends[0])

    def __call__(self, x: np.ndarray, table: np.ndarray | None = None, rows: np.ndarray | None = None) -> np.ndarray:
        """The layer on rows ``x``; with ``table`` [T, out] and ``rows`` [N], row i's
        ``acc`` also gets ``table[rows[i]]`` (integers: the sum stays exact) before the
        requantisation."""
        if self.packed is not None:
            from .kernels import matmul_layer

            accelerated = matmul_layer(self.packed.backend)
            if accelerated is not None:  # None if NZIP_NO_KERNEL was set since
                return accelerated(x, self.packed, self.multiplier, self.offset, self.low, self.high, table, rows)
        acc = (x.astype(np.float64) @ self.weight.astype(np.float64)).astype(np.float32) if self.wide else x @ self.weight
        accelerated = requantizer()
        if accelerated is not None and acc.flags.c_contiguous and acc.ndim == 2:
            accelerated(acc, self.multiplier, self.offset, self.low, self.high, table, rows)  # the same, in one pass
            return acc
        if table is not None:
            acc += table[rows]
        acc *= self.multiplier
        acc += self.offset
        np.floor(acc, out=acc)
        np.clip(acc, self.low, self.high, out=acc)  # one pass (min then max took two, ~20% of encoding)
        return acc


def layer_bounds(config: LocalConfig, name: str) -> tuple[float, float]:
    """Output range of a layer: 8-bit ReLU, the residual stream, or the head."""
    if name == "head":
        return -HEAD_LIMIT, HEAD_LIMIT
    if config.blocks and (name == "input" or name.endswith(".2")):
        return -STREAM_LIMIT, STREAM_LIMIT
    return 0.0, float(config.activation_top)


class ExactLocalNetwork:
    """Integer weights of a local model, run exactly on neighbourhood features."""

    def __init__(self, config: LocalConfig, tensors: dict[str, np.ndarray], prefix: str = "exact."):
        self.config = config
        self.layers: dict[str, ExactLayer] = {}
        for name in config.layer_names():
            weight = np.asarray(tensors[f"{prefix}{name}.weight"]).astype(np.int64)
            if np.abs(weight).max(initial=0) > layer_weight_limit(config, name, weight.shape[1]):
                raise ValueError(f"local model layer {name}: weights beyond the exact range")
            low, high = layer_bounds(config, name)
            self.layers[name] = ExactLayer(
                np.ascontiguousarray(weight.T.astype(np.float32)),
                np.asarray(tensors[f"{prefix}{name}.multiplier"], dtype=np.float32),
                np.asarray(tensors[f"{prefix}{name}.offset"], dtype=np.float32), low, high, wide=config.wide_sums)
        self.rescale = {}  # residual stream -> activations, models with blocks only
        for b in range(config.blocks + (1 if config.blocks else 0)):
            self.rescale[b] = np.asarray(tensors[f"{prefix}rescale{b}"], dtype=np.float32)
        self.offsets = neighbour_offsets(config.horizon)
        # the input layer as run: colour (and conditioning) rows only, the ones channels'
        # contribution per edge pattern from a table (exact integers: |sum| < 2**24)
        full = self.layers["input"]
        ones = np.arange(len(self.offsets)) * (config.channels + 1) + config.channels
        colour = np.setdiff1d(np.arange(full.weight.shape[0]), ones)
        self.colour_input = ExactLayer(np.ascontiguousarray(full.weight[colour]), full.multiplier, full.offset,
                                       full.low, full.high, wide=full.wide)
        inside = pattern_inside(config.horizon).astype(np.float64)
        # exact integers below 2**24 for 8-bit models; a wide model's may round to float32,
        # once, here: every path then adds the same float32 table to the same float32 sum
        self.edge_table = (inside @ full.weight[ones].astype(np.float64) * INPUT_LIMIT).astype(np.float32)
        # every layer reads activations (8-bit, or wider) or pixel features (the residual
        # stream only through residual_step): a matrix product accelerator applies to all
        for layer in [self.colour_input, *self.layers.values()]:
            layer.use_accelerator()

    def tensors(self, prefix: str = "exact.") -> dict[str, np.ndarray]:
        out = {}
        for name, layer in self.layers.items():
            out[f"{prefix}{name}.weight"] = np.ascontiguousarray(layer.weight.T.astype(np.int16))
            out[f"{prefix}{name}.multiplier"] = layer.multiplier
            out[f"{prefix}{name}.offset"] = layer.offset
        for b, values in self.rescale.items():
            out[f"{prefix}rescale{b}"] = values
        return out

    def run(self, features: np.ndarray, patterns: np.ndarray) -> np.ndarray:
        """Colour features float32 [N, F] (integers; :func:`image_features`) and each row's
        :func:`edge_patterns` id [N] -> head int64 [N, size] (2**-12). Rows are independent:
        they run in blocks of ``BLOCK_ROWS``, so that a layer's activations are still in
        cache when the next layer reads them."""
        patterns = np.ascontiguousarray(patterns, dtype=np.int64)
        if len(features) <= BLOCK_ROWS:
            return self._run_block(features, patterns)
        head = np.empty((len(features), self.layers["head"].weight.shape[1]), dtype=np.int64)
        for start in range(0, len(features), BLOCK_ROWS):
            block = slice(start, start + BLOCK_ROWS)
            head[block] = self._run_block(features[block], patterns[block])
        return head

    def _run_block(self, features: np.ndarray, patterns: np.ndarray) -> np.ndarray:
        layers, config = self.layers, self.config
        x = self.colour_input(features, self.edge_table, patterns)
        if config.blocks:
            stream, branch = x, None
            for b in range(config.blocks + 1):
                x = residual_step(stream, branch, self.rescale[b], config.activation_top)
                if b < config.blocks:
                    branch = x
                    for i in range(3):
                        branch = layers[f"block{b}.{i}"](branch)
        x = layers["hidden"](x)
        return layers["head"](x).astype(np.int64)


def residual_step(stream: np.ndarray, branch: np.ndarray | None, rescale: np.ndarray,
                  top: int = ACTIVATION_TOP) -> np.ndarray:
    """One step of the residual stream, float32 [N, width] integers: ``stream`` becomes
    ``clip(stream + branch, -STREAM_LIMIT, STREAM_LIMIT)`` in place (exact: integers below
    2**21; no branch: unchanged), and the ReLU of the result is returned as activations,
    ``clip(floor(stream * rescale + 0.5), 0, top)`` (per-channel rescale, float32 basic
    operations as in :class:`ExactLayer`). The C accelerator does both in one pass, with the
    same values (tested)."""
    step = residual_stepper() if stream.flags.c_contiguous and stream.dtype == np.float32 else None
    if step is not None:
        return step(stream, branch, rescale, float(STREAM_LIMIT), float(top))
    if branch is not None:
        np.add(stream, branch, out=stream)
        np.clip(stream, -STREAM_LIMIT, STREAM_LIMIT, out=stream)
    return np.clip(np.floor(stream * rescale + np.float32(0.5)), 0, top)


# ---- neighbourhoods ------------------------------------------------------------------------

def edge_patterns(rows: np.ndarray, columns: np.ndarray, width: int, horizon: int) -> np.ndarray:
    """Which neighbours of pixels (rows, columns) lie inside an image of ``width`` columns,
    as one id per pixel, int64: ``(top * (h + 1) + left) * (h + 1) + right`` with top,
    left and right the pixel's distances to the image's edges, capped at the horizon h
    (neighbours are never below a pixel, so the bottom edge does not matter)."""
    rows, columns = np.asarray(rows, dtype=np.int64), np.asarray(columns, dtype=np.int64)
    top, left = np.minimum(rows, horizon), np.minimum(columns, horizon)
    right = np.minimum(width - 1 - columns, horizon)
    return (top * (horizon + 1) + left) * (horizon + 1) + right


def pattern_inside(horizon: int) -> np.ndarray:
    """bool [(h + 1)**3, P]: for each :func:`edge_patterns` id, which neighbour offsets lie
    inside the image."""
    span = np.arange(horizon + 1)
    top, left, right = (a.reshape(-1) for a in np.meshgrid(span, span, span, indexing="ij"))
    offsets = np.array(neighbour_offsets(horizon), dtype=np.int64)
    dy, dx = offsets[:, 0][None, :], offsets[:, 1][None, :]
    return (-dy <= top[:, None]) & (-dx <= left[:, None]) & (dx <= right[:, None])


def image_patterns(batch: int, width: int, horizon: int, rows: slice) -> np.ndarray:
    """:func:`edge_patterns` of every pixel of ``rows`` of ``batch`` same-size images, in the
    order :func:`image_features` lays them out (image-major, raster order)."""
    r, c = np.divmod(np.arange((rows.stop - rows.start) * width), width)
    return np.tile(edge_patterns(r + rows.start, c, width, horizon), batch)


class Canvas:
    """Images of one size with their padding, as the network reads them: float32
    [B, (H + h) * (W + 2h), 3] (rows above and columns either side padded with zeros),
    channels ``2v - 255`` (R, G, B; a grey image repeats its channel).

    Pixels are written with :meth:`write` as they become known (all at once when encoding,
    one wavefront step at a time when decoding); :meth:`features` gathers the neighbourhood
    of any pixels whose neighbours are known."""

    def __init__(self, batch: int, height: int, width: int, horizon: int):
        self.height, self.width, self.horizon = height, width, horizon
        self.stride = width + 2 * horizon
        self.data = np.zeros((batch, (height + horizon) * self.stride, 3), dtype=np.float32)
        self.deltas = np.array([dy * self.stride + dx for dy, dx in neighbour_offsets(horizon)], dtype=np.int64)

    def position(self, rows, columns):
        """Flat canvas index of image pixel (row, column)."""
        return (np.asarray(rows) + self.horizon) * self.stride + np.asarray(columns) + self.horizon

    def write(self, positions: np.ndarray, values: np.ndarray) -> None:
        """``values`` uint8 [B, n, c] (c = 3, or 1 for grey) at canvas ``positions`` [n]."""
        v = values.astype(np.float32) * 2.0 - 255.0
        if v.shape[2] == 1:
            v = np.repeat(v, 3, axis=2)
        self.data[:, positions] = v

    def features(self, positions: np.ndarray) -> np.ndarray:
        """Neighbourhood features float32 [B * n, P * 3] of the pixels at ``positions`` [n]."""
        index = positions[:, None] + self.deltas[None, :]
        gathered = self.data[:, index]  # [B, n, P, 3]
        return gathered.reshape(-1, len(self.deltas) * 3)


def image_features(pixels: np.ndarray, horizon: int, rows: slice | None = None,
                   condition: np.ndarray | None = None) -> np.ndarray:
    """Features of every pixel (raster order) of same-size images uint8 [B, H, W, c],
    optionally only of some rows: float32 [B * rows * W, P * 3], the values
    :meth:`Canvas.features` gathers, followed by ``condition`` [B, rows * W, F] when given
    (a conditional model's input row); :func:`image_patterns` gives their edge patterns.
    Only the rows the wanted ones read are laid out (a band of a large image costs memory
    of the band).

    Why slices and not :meth:`Canvas.features`' index gather: a neighbourhood row is
    ``2h + 1`` consecutive canvas pixels, so each of the ``h + 1`` neighbourhood rows of
    every pixel is one strided copy of a sliding window (~4x faster than gathering
    ``P * 3`` floats per pixel by index, which was ~15% of encoding)."""
    b, h, w, _ = pixels.shape
    rows = rows or slice(0, h)
    first = max(0, rows.start - horizon)
    band = pixels[:, first : rows.stop]
    canvas = Canvas(b, band.shape[1], w, horizon)
    canvas.write(canvas.position(np.arange(band.shape[1])[:, None], np.arange(w)[None, :]).reshape(-1),
                 band.reshape(b, -1, band.shape[3]))
    grid = canvas.data.reshape(b, band.shape[1] + horizon, canvas.stride * 3)  # canvas rows, pixel-major
    n_rows, span = rows.stop - rows.start, 2 * horizon + 1
    top = rows.start - first + horizon  # the canvas row of the first wanted row
    neighbourhood = len(canvas.deltas) * 3
    extra = 0 if condition is None else condition.shape[-1]
    out = np.empty((b, n_rows, w, neighbourhood + extra), dtype=np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(grid, span * 3, axis=2)[:, :, ::3]  # [B, R, pixels, span*3]
    for k, dy in enumerate(range(-horizon, 0)):  # the rows above: columns x - h .. x + h
        out[..., k * span * 3 : (k + 1) * span * 3] = windows[:, top + dy : top + dy + n_rows, :w]
    own = horizon * span * 3  # the pixel's own row: columns x - h .. x - 1
    out[..., own:neighbourhood] = windows[:, top : top + n_rows, :w, : horizon * 3]
    if condition is not None:
        out[..., neighbourhood:] = condition.reshape(b, n_rows, w, extra)
    return out.reshape(-1, neighbourhood + extra)


def sampled_features(pixels: np.ndarray, rows: np.ndarray, columns: np.ndarray, horizon: int) -> np.ndarray:
    """Features float32 [n, P * 3] of the pixels (rows, columns) of one image uint8 [H, W, c],
    the same values :class:`Canvas` gives, gathered without laying out the whole image."""
    h, w, c = pixels.shape
    offsets = np.array(neighbour_offsets(horizon), dtype=np.int64)
    y = rows[:, None] + offsets[None, :, 0]
    x = columns[:, None] + offsets[None, :, 1]
    inside = (y >= 0) & (x >= 0) & (x < w)  # neighbours are never below the pixel
    values = pixels[np.where(inside, y, 0), np.where(inside, x, 0)].astype(np.float32) * 2.0 - 255.0
    if c == 1:
        values = np.repeat(values, 3, axis=2)
    return np.where(inside[..., None], values[..., :3], np.float32(0.0)).reshape(len(rows), -1)


# ---- quantisation ----------------------------------------------------------------------------

def activation_scales(model, images: np.ndarray, batch: int = 100, percentile: float = 99.999) -> dict[str, np.ndarray]:
    """Per-channel scales of every activation (the ReLU input of each layer but the first): a
    high percentile of the float activations on ``images`` / the largest activation
    (:func:`activation_top`).

    The percentile is numpy's (linear interpolation) over all ``len(images) * H * W`` rows,
    computed from each channel's largest values only (kept batch by batch: the same result
    in a few MB instead of every activation, which took 12 GB for an export's 2,000
    calibration images)."""
    import torch

    tops: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    config = getattr(model, "decoder", model).config  # a local model, or a VAE whose decoder is one
    model.eval()

    def keep(name: str, rows: torch.Tensor) -> None:
        counts[name] = counts.get(name, 0) + len(rows)
        merged = rows if name not in tops else torch.cat([tops[name], rows])
        k = min(len(merged), _top_rows_needed(len(images) * rows_per_image[0], percentile))
        tops[name] = torch.topk(merged, k, dim=0, sorted=False).values

    rows_per_image = [0]

    class Recorder:
        def activation(self, name, a):
            rows = a if a.dim() == 2 else a.permute(0, 2, 3, 1).reshape(-1, a.shape[1])  # [N, channels]
            keep(name, torch.relu(rows.detach().float()))
            return torch.relu(a)

        def weight(self, name, w, b):
            return w, b

        def accumulator(self, name, a):
            return a

    previous = model.quantizer
    model.quantizer = Recorder()
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch):
                part = images[start : start + batch]
                rows_per_image[0] = part.shape[1] * part.shape[2]
                model.head(torch.from_numpy(part))
    finally:
        model.quantizer = previous
    scales = {}
    for name, top in tops.items():
        scales[name] = np.maximum(_percentile_from_top(top.numpy(), counts[name], percentile), 1e-6) / activation_top(config, name)
    return scales


def _top_rows_needed(rows: int, percentile: float) -> int:
    """How many of the largest of ``rows`` values numpy's linear percentile reads (with a
    margin of two for the rounding of its virtual index)."""
    return max(1, rows - math.floor((rows - 1) * percentile / 100.0) + 2)


def _percentile_from_top(top: np.ndarray, rows: int, percentile: float) -> np.ndarray:
    """np.percentile over ``rows`` values per column of which ``top`` [k, C] are the largest:
    each column is rebuilt as ``rows`` values whose others equal the column's smallest kept
    value (below the percentile's positions, so they do not change it) and handed to numpy,
    so the result is numpy's own, bit for bit."""
    out = np.empty(top.shape[1], dtype=top.dtype)
    column = np.empty(rows, dtype=top.dtype)
    for c in range(top.shape[1]):
        kept = np.sort(top[:, c])
        column[: rows - len(kept)] = kept[0]
        column[rows - len(kept) :] = kept
        out[c] = np.percentile(column, percentile)
    return out


def quantize(model, scales: dict[str, np.ndarray]) -> ExactLocalNetwork:
    """The integer network of a float local model with the given activation scales
    (``scales[layer]``: per input channel of ``layer``, for every layer but ``input``)."""
    config: LocalConfig = model.config
    tensors: dict[str, np.ndarray] = {}
    names = config.layer_names()
    out_scale: dict[str, np.ndarray] = {}  # scale of each layer's output units
    if config.blocks:
        stream_scale = _stream_scale(model, scales)
    for name in names:
        weight, bias = (t.detach().double().numpy() for t in model.layer(name))
        in_scale = input_scale(config, scales) if name == "input" else scales[name]
        low, _ = layer_bounds(config, name)
        if name == "head":
            target = np.full(weight.shape[0], 2.0 ** -ACT_FRAC)
        elif low < 0:  # the residual stream
            target = stream_scale
        else:  # the next layer's input activations
            target = scales[_next_layer(names, name)]
        integer, multiplier, offset = quantize_layer(weight, bias, in_scale, target,
                                                     layer_weight_limit(config, name, weight.shape[1]))
        tensors[f"exact.{name}.weight"] = integer
        tensors[f"exact.{name}.multiplier"] = multiplier
        tensors[f"exact.{name}.offset"] = offset
        out_scale[name] = target
    if config.blocks:
        for b in range(config.blocks + 1):
            reader = f"block{b}.0" if b < config.blocks else "hidden"
            tensors[f"exact.rescale{b}"] = as_float32(stream_scale / scales[reader])
    return ExactLocalNetwork(config, tensors)


def quantize_layer(weight: np.ndarray, bias: np.ndarray, in_scale: np.ndarray,
                   target: np.ndarray, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One float layer ``weight`` [out, in] (float64), ``bias`` [out] as the integers of an
    :class:`ExactLayer`: inputs in units ``in_scale`` [in], outputs in units ``target``
    [out] (rounded to nearest). Each weight row gets its own scale, as fine as the exact
    sums allow (``limit``, by default :func:`weight_limit` of 8-bit inputs). Returns (int16
    weight, float32 multiplier, float32 offset)."""
    folded = weight * in_scale[None, :]
    limit = limit or weight_limit(weight.shape[1])
    row_scale = np.maximum(np.abs(folded).max(axis=1), 1e-12) / limit
    integer = np.clip(np.rint(folded / row_scale[:, None]), -limit, limit)
    return integer.astype(np.int16), as_float32(row_scale / target), as_float32(bias / target + 0.5)


def input_scale(config: LocalConfig, scales: dict[str, np.ndarray]) -> np.ndarray:
    """Units of the input layer's features: pixels and the ones channel are exact integers
    (``2v - 255``, 255) for values in [-1, 1]; conditioning features are 8-bit activations
    with their own scales (``scales["condition"]``)."""
    neighbourhood = np.full(config.neighbourhood_features, 1.0 / INPUT_LIMIT)
    if not config.condition:
        return neighbourhood
    return np.concatenate([neighbourhood, np.asarray(scales["condition"], dtype=np.float64)])


def _next_layer(names: list[str], name: str) -> str:
    return names[names.index(name) + 1]


def _stream_scale(model, scales) -> np.ndarray:
    """Units of the residual stream, per channel [width]: 1/16 of the finest unit in which the
    layers that read the stream (each block's first layer and ``hidden``) read that channel,
    so their 8-bit reads lose nothing to the stream's rounding, and the stream holds every
    reader's top value (255 of its units) within +-2**20 unless two readers' units of one
    channel differ more than 257-fold.

    Channels never active on the calibration images (scale at activation_scales' 1e-6
    floor) do not set the unit: their reads multiply weights that fold to zero. A single
    unit for all channels, the finest scale of any layer, once made the stream ~10**6 times
    too fine (a dead channel elsewhere), and it clamped at +-2**20 almost everywhere."""
    config = model.config
    readers = [f"block{b}.0" for b in range(config.blocks)] + ["hidden"]
    reads = np.stack([np.asarray(scales[name], dtype=np.float64) for name in readers])  # [readers, width]
    live = reads > 2e-6 / config.activation_top
    finest = np.where(live, reads, np.inf).min(axis=0)
    unread = ~live.any(axis=0)
    # a channel no reader uses: any unit serves; the median of the others keeps it ordinary
    finest[unread] = np.median(finest[~unread]) if (~unread).any() else 1.0 / config.activation_top
    return finest / 16.0


class FakeQuantizer:
    """Quantisation-aware training: the float model rounds weights and 8-bit activations as
    :func:`quantize` will (straight-through gradients), with fixed activation scales."""

    def __init__(self, model, scales: dict[str, np.ndarray]):
        import torch

        self.scales = {name: torch.tensor(s, dtype=torch.float32) for name, s in scales.items()}
        self.config = getattr(model, "decoder", model).config  # a local model, or a VAE whose decoder is one
        self.input_scale = torch.tensor(input_scale(self.config, scales), dtype=torch.float32)

    def update(self, scales: dict[str, np.ndarray]) -> None:
        """Re-measured activation scales, written into the same tensors: a compiled training
        step (``torch.compile``) guards on these objects, not their values, so it keeps its
        code instead of recompiling at every re-measurement."""
        import torch

        for name, values in scales.items():
            self.scales[name].copy_(torch.as_tensor(values, dtype=torch.float32))
        self.input_scale.copy_(torch.as_tensor(input_scale(self.config, scales), dtype=torch.float32))

    def activation(self, name, a):
        """The ReLU of pre-activations ``a`` (rows [N, C] or maps [B, C, H, W]) rounded to
        8 bits in the layer's units; gradients pass straight through where the result is
        positive."""
        from ..nets.local import rounded_relu

        s = self.scales[name].view(1, -1, *([1] * (a.dim() - 2))).to(a.dtype)
        return rounded_relu(a, s, activation_top(self.config, name))

    def weight(self, name, w, b):
        import torch

        in_scale = (self.input_scale if name == "input" else self.scales[name]).to(w.dtype)
        folded = w * in_scale[None, :]
        limit = layer_weight_limit(self.config, name, w.shape[1])
        row = folded.detach().abs().amax(dim=1).clamp(min=1e-12) / limit
        q = torch.clamp(torch.round(folded / row[:, None]), -limit, limit) * row[:, None] / in_scale[None, :]
        return w + (q - w).detach(), b

    def accumulator(self, name, a):
        return a


def nll_gap_note(float_bpd: float, exact_bpd: float) -> str:
    return f"float {float_bpd:.5f}, exact {exact_bpd:.5f} bpd (quantisation costs {exact_bpd - float_bpd:+.5f})"


__all__ = ["ExactLocalNetwork", "Canvas", "image_features", "image_patterns", "edge_patterns", "sampled_features", "activation_scales", "quantize", "FakeQuantizer",
           "weight_limit", "layer_weight_limit", "math"]
