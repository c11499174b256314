"""Exact integer execution of a :class:`~neuralzip.nets.graph.Graph`, whole or incremental.

Values are float64 tensors holding integers (fixed point, see :mod:`.fixedpoint`), laid out
``[positions + 1, batch, channels]``: position-major, so gathering or writing one position
for the whole batch moves one contiguous block, with one extra all-zero position that
out-of-image reads point to. A convolution is a sum over kernel slots of (gathered
positions x batch, channels) @ (channels, outputs) products.

Guarantees:

* :meth:`ExactNetwork.run` (all positions at once, used by encoders) and
  :class:`IncrementalRun` (only what each newly decoded pixel makes computable, used by
  autoregressive decoders) execute the same per-position arithmetic, exactly, so they give
  identical integers; so do any batch size and thread count, and any machine.
* :meth:`ExactNetwork.schedule` derives from the graph alone at which decoding step each
  position becomes computable, and checks causality: output position p never depends on
  input pixel p or later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..nets.graph import PRE_CONCAT_ELU, PRE_ELU, PRE_NONE, Graph, param_key
from .fixedpoint import (
    ACT_FRAC, ACT_LIMIT, ACT_ONE, GATE_FRAC, TABLE_SPAN, WEIGHT_FRAC, WEIGHT_LIMIT,
    check_fan_in, elu_negative_table, gate_sigmoid_table, to_fixed,
)

_SPAN = TABLE_SPAN * ACT_ONE


@dataclass
class _TermPlan:
    source: str
    pre: str
    index: torch.Tensor  # long [positions, K]: flat source position per kernel slot (zero slot = H*W)
    valid: torch.Tensor  # float64 [positions]: 1 where the term (and its bias) applies
    matrix: torch.Tensor  # float64 [K, C', C_out] integer weights, one matrix per kernel slot
    bias: torch.Tensor  # float64 [C_out] integer bias at accumulator scale


@dataclass
class _NodePlan:
    name: str
    channels: int
    positions: int
    terms: list[_TermPlan]
    gate_residual: str | None


def _positions(indices: np.ndarray):
    """A contiguous run of positions as a slice (plain memory copies), else a LongTensor."""
    if len(indices) and indices[-1] - indices[0] + 1 == len(indices):
        return slice(int(indices[0]), int(indices[-1]) + 1)
    return torch.from_numpy(indices)


def _count(positions, total: int) -> int:
    if positions is None:
        return total
    if isinstance(positions, slice):
        return positions.stop - positions.start
    return len(positions)


class ExactNetwork:
    """Integer weights plus a graph; build with :meth:`from_float` or from stored integers."""

    def __init__(self, graph: Graph, integer_weights: dict[str, tuple[np.ndarray, np.ndarray]]):
        """``integer_weights[param_key]`` = (weight in torch layout, bias) as integers:
        weight on the 2**-WEIGHT_FRAC grid, bias on the 2**-(ACT_FRAC + WEIGHT_FRAC) grid."""
        self.graph = graph
        self.integer_weights = integer_weights
        self._elu = torch.from_numpy(elu_negative_table().astype(np.float64))
        self._gate = torch.from_numpy(gate_sigmoid_table().astype(np.float64))
        self._matrices: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for node in graph.nodes:
            fan_in = 0
            for i, term in enumerate(node.terms):
                weight, bias = integer_weights[param_key(node.name, i)]
                weight = np.asarray(weight, dtype=np.int64)
                if np.abs(weight).max(initial=0) > WEIGHT_LIMIT:
                    raise ValueError(f"{node.name}: weight beyond the fixed-point range")
                if term.geometry.transposed:  # [in, out, kh, kw] -> [slot, in, out]
                    matrix = weight.transpose(2, 3, 0, 1).reshape(-1, weight.shape[0], weight.shape[1])
                else:  # [out, in, kh, kw] -> [slot, in, out]
                    matrix = weight.transpose(2, 3, 1, 0).reshape(-1, weight.shape[1], weight.shape[0])
                fan_in += matrix.shape[0] * matrix.shape[1]
                self._matrices[param_key(node.name, i)] = (
                    torch.from_numpy(matrix.astype(np.float64)),
                    torch.from_numpy(np.asarray(bias, dtype=np.int64).astype(np.float64)),
                )
            check_fan_in(fan_in)
        # Which nonlinearities of each value some term reads (raw values are always kept).
        self._pres: dict[str, set[str]] = {name: {PRE_NONE} for name in list(graph.inputs) + [n.name for n in graph.nodes]}
        for node in graph.nodes:
            for term in node.terms:
                self._pres[term.source].add(term.pre)
        self._plans: dict[tuple[int, int], list[_NodePlan]] = {}
        self._schedules: dict[tuple[int, int], list] = {}

    @classmethod
    def from_float(cls, graph: Graph, folded: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> "ExactNetwork":
        """Quantise float weights (weight normalisation already folded in)."""
        weights = {}
        for key, (weight, bias) in folded.items():
            w = np.clip(to_fixed(weight.double().numpy(), WEIGHT_FRAC), -WEIGHT_LIMIT, WEIGHT_LIMIT)
            b = np.clip(to_fixed(bias.double().numpy(), ACT_FRAC + WEIGHT_FRAC), -(WEIGHT_LIMIT << ACT_FRAC), WEIGHT_LIMIT << ACT_FRAC)
            weights[key] = (w, b)
        return cls(graph, weights)

    # ---- planning ----------------------------------------------------------------------
    def plan(self, h: int, w: int) -> list[_NodePlan]:
        if (h, w) in self._plans:
            return self._plans[(h, w)]
        sizes = self.graph.sizes(h, w)
        plans = []
        for node in self.graph.nodes:
            terms = []
            for i, term in enumerate(node.terms):
                index, valid = term.geometry.index_map(*sizes[term.source])
                matrix, bias = self._matrices[param_key(node.name, i)]
                terms.append(_TermPlan(term.source, term.pre, torch.from_numpy(index),
                                       torch.from_numpy(valid.astype(np.float64)), matrix, bias))
            oh, ow = sizes[node.name]
            plans.append(_NodePlan(node.name, node.channels, oh * ow, terms, node.gate_residual))
        self._plans[(h, w)] = plans
        return plans

    def availability(self, h: int, w: int, input_name: str = "x") -> dict[str, np.ndarray]:
        """Decoding step at which each position of every node can first be computed.

        Input pixel p (raster order) becomes known after step p, i.e. usable from step p+1;
        positions that read no pixel are computable at step 0."""
        available = {input_name: np.arange(h * w, dtype=np.int64) + 1}
        for name in self.graph.inputs:
            available.setdefault(name, np.zeros(h * w, dtype=np.int64))
        for plan in self.plan(h, w):
            step = np.zeros(plan.positions, dtype=np.int64)
            for term in plan.terms:
                source = np.concatenate([available[term.source], [0]])
                step = np.maximum(step, source[term.index.numpy()].max(axis=1))
            if plan.gate_residual is not None:
                step = np.maximum(step, available[plan.gate_residual])
            available[plan.name] = step
        return available

    def schedule(self, h: int, w: int, output: str | None = None) -> list[list[tuple[int, torch.Tensor]]]:
        """For each decoding step t: [(node index, positions computable exactly at t)].

        Raises if the output at pixel p could depend on pixel p or later."""
        if (h, w) in self._schedules:
            return self._schedules[(h, w)]
        output = output or self.graph.nodes[-1].name
        available = self.availability(h, w)
        if np.any(available[output] > np.arange(h * w)):
            raise ValueError("the network is not causal: an output depends on its own or later pixels")
        steps: list[list[tuple[int, torch.Tensor]]] = [[] for _ in range(h * w)]
        for n, plan in enumerate(self.plan(h, w)):
            at = available[plan.name]
            for t in np.unique(at[at < h * w]):
                steps[t].append((n, _positions(np.nonzero(at == t)[0])))
        self._schedules[(h, w)] = steps
        return steps

    # ---- arithmetic ----------------------------------------------------------------------
    def _pre(self, x: torch.Tensor, pre: str) -> torch.Tensor:
        if pre == PRE_NONE:
            return x
        if pre == PRE_ELU:
            return self._elu_exact(x)
        if pre == PRE_CONCAT_ELU:
            return torch.cat([self._elu_exact(x), self._elu_exact(-x)], dim=-1)
        raise ValueError(pre)

    def _elu_exact(self, x: torch.Tensor) -> torch.Tensor:
        index = (-x).clamp(0, _SPAN).long()
        return torch.where(x >= 0, x, self._elu[index])

    def compute(self, plan: _NodePlan, values: dict, positions) -> None:
        """Compute ``plan``'s node at ``positions`` (None: all; a slice; or a LongTensor) and
        store them in ``values``."""
        batch = values[plan.name].shape[1]
        count = _count(positions, plan.positions)
        every = slice(None) if positions is None else positions
        acc = None
        for term in plan.terms:
            index = term.index[every]
            valid = term.valid[every]
            # Sources keep their nonlinearity applied already (see _store), so each kernel
            # slot is a plain gather of whole (batch, channels) blocks and one product.
            source = values[(term.source, term.pre)]
            for slot in range(index.shape[1]):
                patch = source.index_select(0, index[:, slot]).view(count * batch, -1)
                if acc is None:
                    acc = patch @ term.matrix[slot]
                else:
                    acc.addmm_(patch, term.matrix[slot])
            acc.view(count, batch, -1).add_(valid.view(-1, 1, 1) * term.bias)
        out = torch.round(acc.view(count, batch, -1) * (2.0 ** -WEIGHT_FRAC))
        if plan.gate_residual is not None:
            a, b = out.split(plan.channels, dim=-1)
            a = a.clamp(-ACT_LIMIT, ACT_LIMIT)
            gate = self._gate[(b.clamp(-_SPAN, _SPAN) + _SPAN).long()]
            residual = values[(plan.gate_residual, PRE_NONE)]
            residual = residual[:-1] if positions is None else residual[positions]
            out = residual + torch.round(a * gate * (2.0 ** -GATE_FRAC))
        self._store(values, plan.name, out.clamp(-ACT_LIMIT, ACT_LIMIT), positions)

    def _store(self, values: dict, name: str, out: torch.Tensor, positions) -> None:
        """Write raw values and every nonlinearity a consumer reads (pre(0) = 0 keeps the
        zero row valid for all of them). ``out``: [positions, batch, channels]."""
        for pre in self._pres[name]:
            target = values[(name, pre)]
            transformed = self._pre(out, pre)
            if positions is None:
                target[:-1] = transformed
            else:
                target[positions] = transformed

    def allocate(self, batch: int, h: int, w: int, inputs: dict[str, torch.Tensor]) -> dict:
        """Value buffers [positions + 1, batch, channels'] (zero row last), keyed by
        (name, nonlinearity), for inputs and nodes; ``inputs`` are given as [batch, h*w, C]."""
        factor = {PRE_NONE: 1, PRE_ELU: 1, PRE_CONCAT_ELU: 2}
        values: dict = {}
        for name, channels in self.graph.inputs.items():
            for pre in self._pres[name]:
                values[(name, pre)] = torch.zeros(h * w + 1, batch, channels * factor[pre], dtype=torch.float64)
            values[name] = values[(name, PRE_NONE)]
            if name in inputs:
                self._store(values, name, inputs[name].to(torch.float64).transpose(0, 1), None)
        for plan in self.plan(h, w):
            for pre in self._pres[plan.name]:
                buffer = torch.empty(plan.positions + 1, batch, plan.channels * factor[pre], dtype=torch.float64)
                buffer[-1] = 0
                values[(plan.name, pre)] = buffer
            values[plan.name] = values[(plan.name, PRE_NONE)]
        return values

    def run(self, inputs: dict[str, torch.Tensor], h: int, w: int, chunk: int = 16) -> torch.Tensor:
        """All positions of the output node for integer inputs [B, h*w, C]; chunked over the batch."""
        batch = next(iter(inputs.values())).shape[0]
        outputs = []
        for start in range(0, batch, chunk):
            values = self.allocate(min(chunk, batch - start), h, w, {k: v[start : start + chunk] for k, v in inputs.items()})
            for plan in self.plan(h, w):
                self.compute(plan, values, None)
            outputs.append(values[self.graph.nodes[-1].name][:-1].transpose(0, 1))
        return torch.cat(outputs)


class IncrementalRun:
    """Autoregressive decoding state: after :meth:`set_pixel` for pixels < t,
    :meth:`advance` (t) computes everything pixel t's prediction needs, no more."""

    def __init__(self, network: ExactNetwork, batch: int, h: int, w: int, constant_inputs: dict[str, torch.Tensor]):
        self.network = network
        self.plans = network.plan(h, w)
        self.steps = network.schedule(h, w)
        self.values = network.allocate(batch, h, w, constant_inputs)
        self.output = network.graph.nodes[-1].name

    def advance(self, t: int) -> torch.Tensor:
        """Run step t; returns the output node at pixel t, [batch, channels]."""
        for n, positions in self.steps[t]:
            self.network.compute(self.plans[n], self.values, positions)
        return self.values[self.output][t]

    def set_pixel(self, t: int, value: torch.Tensor, input_name: str = "x") -> None:
        """Make input pixel t known: ``value`` [batch, channels] (all channels of the input)."""
        self.network._store(self.values, input_name, value.unsqueeze(0).to(torch.float64), slice(t, t + 1))
