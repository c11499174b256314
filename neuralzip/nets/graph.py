"""Convolutional networks described as a small graph, executed in float (training) or exactly.

A network is a list of :class:`Node` in topological order. A node sums one or more *terms*;
each term is a convolution (plain, strided or transposed, with padding, cropping and a shift
of its output) of one earlier node, optionally through a pointwise nonlinearity first. After
the sum, a node may apply a *gate*: ``residual + a * sigmoid(b)`` with ``[a, b]`` the two
halves of its channels (the gated resnet block of PixelCNN++).

The same description drives three executors:

* :class:`FloatNetwork` (here): torch convolutions with weight normalisation, bf16-friendly,
  for training and quick float evaluation;
* ``neuralzip.exact.ExactNetwork``: integer fixed-point arithmetic that gives identical
  results on any batch size, thread count or machine, for coding;
* its incremental mode, which recomputes only the positions a newly decoded pixel changes.

Because all three read one description, a model is written once. The geometry of every term
is also available as an explicit index map (:meth:`ConvGeometry.index_map`), which is what the
exact executor uses and what tests compare the float executor against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PRE_NONE, PRE_ELU, PRE_CONCAT_ELU = "none", "elu", "concat_elu"
_PRE_CHANNEL_FACTOR = {PRE_NONE: 1, PRE_ELU: 1, PRE_CONCAT_ELU: 2}


@dataclass(frozen=True)
class ConvGeometry:
    """Where a convolution reads its input.

    Plain conv: output (oy, ox) reads input rows ``oy*stride - pad_top + ky`` and columns
    ``ox*stride - pad_left + kx``; out-of-range reads are zero. Output size
    ``(in + pad_top + pad_bottom - kh) // stride + 1``.
    Transposed conv: the full transposed output has ``in*stride + k - stride`` rows; the
    output is its window starting at (crop_top, crop_left) of size ``in*stride``.
    Then the output is shifted by (shift_down, shift_right), filling with zeros (the bias
    included: a shifted-in position is exactly zero).
    """

    kh: int
    kw: int
    stride: int = 1
    transposed: bool = False
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right (plain conv)
    crop: tuple[int, int] = (0, 0)  # top, left (transposed conv)
    shift: tuple[int, int] = (0, 0)  # down, right

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        if self.transposed:
            return h * self.stride, w * self.stride
        top, bottom, left, right = self.pad
        return (h + top + bottom - self.kh) // self.stride + 1, (w + left + right - self.kw) // self.stride + 1

    def shifted(self, down: int = 0, right: int = 0) -> "ConvGeometry":
        return ConvGeometry(self.kh, self.kw, self.stride, self.transposed, self.pad, self.crop,
                            (self.shift[0] + down, self.shift[1] + right))

    def index_map(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """For an (h, w) input: ``(index, valid)`` with index int64 (out_h*out_w, kh*kw) giving
        the flat input position each kernel slot reads (``h*w`` meaning a zero), and valid
        bool (out_h*out_w,) saying whether the position carries a value (False where the
        shift filled in zeros, which also drops the bias)."""
        oh, ow = self.output_size(h, w)
        zero = h * w
        index = np.full((oh, ow, self.kh, self.kw), zero, dtype=np.int64)
        valid = np.zeros((oh, ow), dtype=bool)
        sd, sr = self.shift
        for oy in range(oh):
            for ox in range(ow):
                y, x = oy - sd, ox - sr
                if y < 0 or x < 0:
                    continue
                valid[oy, ox] = True
                for ky in range(self.kh):
                    for kx in range(self.kw):
                        if self.transposed:
                            ny, nx = y + self.crop[0] - ky, x + self.crop[1] - kx
                            if ny % self.stride or nx % self.stride:
                                continue
                            iy, ix = ny // self.stride, nx // self.stride
                        else:
                            iy = y * self.stride - self.pad[0] + ky
                            ix = x * self.stride - self.pad[2] + kx
                        if 0 <= iy < h and 0 <= ix < w:
                            index[oy, ox, ky, kx] = iy * w + ix
        return index.reshape(oh * ow, self.kh * self.kw), valid.reshape(-1)


def down_shifted(kh: int, kw: int, stride: int = 1) -> ConvGeometry:
    """Sees the rows above (and, with kh rows, the current row's centre column band)."""
    return ConvGeometry(kh, kw, stride, pad=(kh - 1, 0, (kw - 1) // 2, (kw - 1) // 2))


def down_right_shifted(kh: int, kw: int, stride: int = 1) -> ConvGeometry:
    """Sees the rows above and the columns to the left, including the current position."""
    return ConvGeometry(kh, kw, stride, pad=(kh - 1, 0, kw - 1, 0))


def down_shifted_transposed(kh: int = 2, kw: int = 3, stride: int = 2) -> ConvGeometry:
    return ConvGeometry(kh, kw, stride, transposed=True, crop=(0, (kw - 1) // 2))


def down_right_shifted_transposed(kh: int = 2, kw: int = 2, stride: int = 2) -> ConvGeometry:
    return ConvGeometry(kh, kw, stride, transposed=True, crop=(0, 0))


def pointwise() -> ConvGeometry:
    return ConvGeometry(1, 1)


def conv3x3() -> ConvGeometry:
    """A plain (non-causal) 3x3 convolution keeping the size."""
    return ConvGeometry(3, 3, pad=(1, 1, 1, 1))


@dataclass(frozen=True)
class Term:
    """One convolution of node ``source`` (after nonlinearity ``pre``) into the sum."""

    source: str
    geometry: ConvGeometry
    pre: str = PRE_NONE
    dropout: bool = False  # dropout after ``pre``, in training only


@dataclass(frozen=True)
class Node:
    """``out = gate(sum(terms))``; ``gate_residual`` names the node added back when gating."""

    name: str
    channels: int
    terms: tuple[Term, ...]
    gate_residual: str | None = None
    init_scale: float = 1.0  # filter norm at initialisation (small for residual branches)

    @property
    def conv_channels(self) -> int:
        """Channels the convolutions produce (twice ``channels`` for a gate)."""
        return 2 * self.channels if self.gate_residual else self.channels


@dataclass
class Graph:
    """Inputs (name -> channels, all at the input resolution) and nodes in topological order;
    the last node is the output."""

    inputs: dict[str, int]
    nodes: list[Node] = field(default_factory=list)

    def add(self, node: Node) -> str:
        known = set(self.inputs) | {n.name for n in self.nodes}
        if node.name in known:
            raise ValueError(f"duplicate node name {node.name}")
        for term in node.terms:
            if term.source not in known:
                raise ValueError(f"{node.name}: unknown source {term.source}")
        if node.gate_residual is not None and node.gate_residual not in known:
            raise ValueError(f"{node.name}: unknown residual {node.gate_residual}")
        self.nodes.append(node)
        return node.name

    def channels(self, name: str) -> int:
        if name in self.inputs:
            return self.inputs[name]
        return next(n.channels for n in self.nodes if n.name == name)

    def sizes(self, h: int, w: int) -> dict[str, tuple[int, int]]:
        """Spatial size of every input and node for an (h, w) input; checks that all terms
        of a node (and its residual) agree."""
        sizes = {name: (h, w) for name in self.inputs}
        for node in self.nodes:
            outs = {term.geometry.output_size(*sizes[term.source]) for term in node.terms}
            if node.gate_residual is not None:
                outs.add(sizes[node.gate_residual])
            if len(outs) != 1:
                raise ValueError(f"{node.name}: terms disagree on output size {outs}")
            sizes[node.name] = outs.pop()
        return sizes


def weight_shape(term: Term, graph: Graph, out_channels: int) -> tuple[int, ...]:
    """The torch weight shape of a term (transposed convs store [in, out, kh, kw])."""
    in_channels = graph.channels(term.source) * _PRE_CHANNEL_FACTOR[term.pre]
    g = term.geometry
    if g.transposed:
        return (in_channels, out_channels, g.kh, g.kw)
    return (out_channels, in_channels, g.kh, g.kw)


def param_key(node_name: str, term_index: int) -> str:
    """Name of a term's parameters (torch forbids dots in parameter names)."""
    return f"{node_name.replace('.', '_')}__{term_index}"


def apply_pre(x: torch.Tensor, pre: str, channel_dim: int = 1) -> torch.Tensor:
    """The float version of a term's pointwise nonlinearity."""
    if pre == PRE_NONE:
        return x
    if pre == PRE_ELU:
        return F.elu(x)
    if pre == PRE_CONCAT_ELU:
        return F.elu(torch.cat([x, -x], dim=channel_dim))
    raise ValueError(f"unknown nonlinearity {pre}")


class FloatNetwork(nn.Module):
    """Float executor of a :class:`Graph`, with weight normalisation (w = g * v / |v|).

    Parameters are ``v``, ``g``, ``b`` keyed by :func:`param_key`; :meth:`folded_weights`
    returns the plain convolution weights the exact executor quantises.
    """

    def __init__(self, graph: Graph, dropout: float = 0.0, seed: int = 0):
        super().__init__()
        self.graph = graph
        self.dropout = dropout
        generator = torch.Generator().manual_seed(seed)
        self.v = nn.ParameterDict()
        self.g = nn.ParameterDict()
        self.b = nn.ParameterDict()
        for node in graph.nodes:
            for i, term in enumerate(node.terms):
                key = param_key(node.name, i)
                shape = weight_shape(term, graph, node.conv_channels)
                v = torch.randn(shape, generator=generator) * 0.05
                self.v[key] = nn.Parameter(v)
                self.g[key] = nn.Parameter(torch.full((node.conv_channels,), float(node.init_scale)))
                self.b[key] = nn.Parameter(torch.zeros(node.conv_channels))

    def output_bias(self) -> torch.Tensor:
        """The bias of the output node's first term (to initialise output parameters)."""
        node = self.graph.nodes[-1]
        return self.b[param_key(node.name, 0)]

    def term_weight(self, key: str, transposed: bool) -> torch.Tensor:
        v = self.v[key]
        dims = (0, 2, 3) if transposed else (1, 2, 3)
        norm = v.pow(2).sum(dim=dims, keepdim=True).add(1e-12).sqrt()
        g = self.g[key].view(1, -1, 1, 1) if transposed else self.g[key].view(-1, 1, 1, 1)
        return g * v / norm

    def folded_weights(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{key: (weight, bias)}`` with weight normalisation folded in, float64."""
        out = {}
        with torch.no_grad():
            for node in self.graph.nodes:
                for i, term in enumerate(node.terms):
                    key = param_key(node.name, i)
                    weight = self.term_weight(key, term.geometry.transposed).double()
                    out[key] = (weight, self.b[key].double().clone())
        return out

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        values = dict(inputs)
        for node in self.graph.nodes:
            total = None
            for i, term in enumerate(node.terms):
                key = param_key(node.name, i)
                x = apply_pre(values[term.source], term.pre)
                if term.dropout and self.dropout > 0:
                    x = F.dropout(x, self.dropout, self.training)
                y = self._conv(x, term.geometry, self.term_weight(key, term.geometry.transposed), self.b[key])
                total = y if total is None else total + y
            if node.gate_residual is not None:
                a, b = total.chunk(2, dim=1)
                total = values[node.gate_residual] + a * torch.sigmoid(b)
            values[node.name] = total
        return values[self.graph.nodes[-1].name]

    @staticmethod
    def _conv(x: torch.Tensor, g: ConvGeometry, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        if not torch.is_autocast_enabled():
            weight, bias = weight.to(x.dtype), bias.to(x.dtype)
        if g.transposed:
            h, w = x.shape[-2:]
            y = F.conv_transpose2d(x, weight, bias, stride=g.stride)
            y = y[..., g.crop[0] : g.crop[0] + h * g.stride, g.crop[1] : g.crop[1] + w * g.stride]
        else:
            top, bottom, left, right = g.pad
            if any(g.pad):
                x = F.pad(x, (left, right, top, bottom))
            y = F.conv2d(x, weight, bias, stride=g.stride)
        down, right_shift = g.shift
        if down or right_shift:
            h, w = y.shape[-2:]
            y = F.pad(y, (right_shift, 0, down, 0))[..., :h, :w]
        return y


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = [
    "ConvGeometry", "Term", "Node", "Graph", "FloatNetwork", "apply_pre", "weight_shape",
    "down_shifted", "down_right_shifted", "down_shifted_transposed",
    "down_right_shifted_transposed", "pointwise", "conv3x3", "PRE_NONE", "PRE_ELU", "PRE_CONCAT_ELU",
    "count_parameters", "param_key",
]
