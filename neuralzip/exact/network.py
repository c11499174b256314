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

import threading
from dataclasses import dataclass

import numpy as np
import torch

from ..nets.graph import PRE_CONCAT_ELU, PRE_ELU, PRE_NONE, Graph, param_key
from .fixedpoint import (
    ACT_FRAC, ACT_LIMIT, GATE_FRAC, WEIGHT_FRAC, WEIGHT_LIMIT, check_fan_in, elu_negative_table,
    gate_sigmoid_table, to_fixed,
)


@dataclass
class _TermPlan:
    source: str
    pre: str
    index: np.ndarray  # int64 [positions, K]: flat source position per kernel slot (zero slot = H*W)
    valid: torch.Tensor  # float64 [positions]: 1 where the term (and its bias) applies
    matrix: torch.Tensor  # float64 [K, C', C_out] integer weights, one matrix per kernel slot
    bias: torch.Tensor  # float64 [C_out] integer bias at accumulator scale
    shifts: list  # per slot (dy, dx) if it reads position p + dy*w + dx (zero outside), else None
    size: tuple[int, int]  # output (h, w)
    sparse: list  # per slot: None, or (positions, source rows) where it reads a non-zero row


@dataclass
class _NodePlan:
    name: str
    channels: int
    positions: int
    terms: list[_TermPlan]
    gate_residual: str | None


@dataclass
class _Work:
    """One node computed at ``count`` positions: where to read and write in the buffers."""

    node: int
    count: int
    out_rows: object  # slice or LongTensor
    term_rows: list  # per term: LongTensor [count, K] (buffer rows; the zero row included)
    term_valid: list  # per term: float64 [count]
    residual_rows: object  # slice, LongTensor or None


def tensors_hash(tensors: dict) -> bytes:
    """4 bytes identifying a set of integer tensors (name and content), for model hashes
    of models that are not shipped files (tests, fresh exports)."""
    import hashlib

    digest = hashlib.sha256()
    for key in sorted(tensors):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(tensors[key].numpy()).tobytes())
    return digest.digest()[:4]


def _positions(indices: np.ndarray):
    """A contiguous run of positions as a slice (plain memory copies), else a LongTensor."""
    if len(indices) and indices[-1] - indices[0] + 1 == len(indices):
        return slice(int(indices[0]), int(indices[-1]) + 1)
    return torch.from_numpy(indices)


def _slot_shift(index: np.ndarray, h: int, w: int) -> tuple[int, int] | None:
    """(dy, dx) if kernel slot ``index`` [h*w] reads input (y + dy, x + dx) at output (y, x)
    and zero outside the image (a same-size convolution's slot), else None."""
    reads = np.nonzero(index != h * w)[0]
    if len(reads) == 0:
        return None
    first = reads[0]
    y, x = divmod(int(first), w)
    dy, dx = divmod(int(index[first]), w)
    dy, dx = dy - y, dx - x
    ys, xs = np.divmod(np.arange(h * w), w)
    inside = (ys + dy >= 0) & (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)
    expected = np.where(inside, (ys + dy) * w + xs + dx, h * w)
    return (dy, dx) if np.array_equal(expected, index) else None


def _sparse_slot(index: np.ndarray, source_size: tuple[int, int]):
    """(positions, source rows) of the positions where a kernel slot reads something, when
    it reads the zero row at more than a quarter of them (a transposed convolution's slot
    reads at one output position in four), else None."""
    reads = np.nonzero(index != source_size[0] * source_size[1])[0]
    if len(reads) * 4 >= len(index) * 3:
        return None
    return torch.from_numpy(reads), torch.from_numpy(index[reads])


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
        self._elu_negative = torch.from_numpy(elu_negative_table().astype(np.float64))  # ELU at -|x|
        self._gate = torch.from_numpy(gate_sigmoid_table().astype(np.float64))
        self._gate_span = (len(self._gate) - 1) // 2
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
                if term.pre == PRE_CONCAT_ELU:
                    # torch's concat-ELU orders channels (x_0..x_n, -x_0..-x_n); the stored
                    # values interleave them (x_0, -x_0, ...), so reorder the weight rows.
                    half = matrix.shape[1] // 2
                    order = np.stack([np.arange(half), np.arange(half) + half], axis=1).reshape(-1)
                    matrix = matrix[:, order]
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
        self._work: dict[tuple[int, int], tuple] = {}
        # The last allocation per purpose ("run", "incremental") and thread, reused: no new
        # page faults; per thread, so that threads may run the same network at once.
        self._buffers: dict[tuple[str, int], tuple] = {}

    @classmethod
    def from_float(cls, graph: Graph, folded: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> "ExactNetwork":
        """Quantise float weights (weight normalisation already folded in)."""
        weights = {}
        for key, (weight, bias) in folded.items():
            w = np.clip(to_fixed(weight.double().numpy(), WEIGHT_FRAC), -WEIGHT_LIMIT, WEIGHT_LIMIT)
            b = np.clip(to_fixed(bias.double().numpy(), ACT_FRAC + WEIGHT_FRAC), -(WEIGHT_LIMIT << ACT_FRAC), WEIGHT_LIMIT << ACT_FRAC)
            weights[key] = (w, b)
        return cls(graph, weights)

    @classmethod
    def from_tensors(cls, graph: Graph, tensors: dict, prefix: str) -> "ExactNetwork":
        """Load integer weights stored by :meth:`tensors` under ``prefix``."""
        weights = {}
        for node in graph.nodes:
            for i, _ in enumerate(node.terms):
                key = param_key(node.name, i)
                weights[key] = (tensors[f"{prefix}{key}.weight"].numpy().astype(np.int64),
                                tensors[f"{prefix}{key}.bias"].numpy().astype(np.int64))
        return cls(graph, weights)

    def tensors(self, prefix: str) -> dict:
        """The integer weights as torch tensors named ``prefix<key>.weight`` / ``.bias``."""
        out = {}
        for key, (weight, bias) in self.integer_weights.items():
            out[f"{prefix}{key}.weight"] = torch.from_numpy(np.asarray(weight, np.int32))
            out[f"{prefix}{key}.bias"] = torch.from_numpy(np.asarray(bias, np.int64))
        return out

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
                oh, ow = sizes[node.name]
                shifts = ([_slot_shift(index[:, k], oh, ow) for k in range(index.shape[1])]
                          if sizes[term.source] == (oh, ow) else [None] * index.shape[1])
                terms.append(_TermPlan(term.source, term.pre, index, torch.from_numpy(valid.astype(np.float64)),
                                       matrix, bias, shifts, (oh, ow), [_sparse_slot(index[:, k], sizes[term.source])
                                                                        for k in range(index.shape[1])]))
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
                step = np.maximum(step, source[term.index].max(axis=1))
            if plan.gate_residual is not None:
                step = np.maximum(step, available[plan.gate_residual])
            available[plan.name] = step
        return available

    def schedule(self, h: int, w: int, output: str | None = None) -> list[list[tuple[int, np.ndarray]]]:
        """For each decoding step t: [(node index, positions computable exactly at t)].

        Raises if the output at pixel p could depend on pixel p or later."""
        if (h, w) in self._schedules:
            return self._schedules[(h, w)]
        output = output or self.graph.nodes[-1].name
        available = self.availability(h, w)
        if np.any(available[output] > np.arange(h * w)):
            raise ValueError("the network is not causal: an output depends on its own or later pixels")
        steps: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(h * w)]
        for n, plan in enumerate(self.plan(h, w)):
            at = available[plan.name]
            for t in np.unique(at[at < h * w]):
                steps[t].append((n, np.nonzero(at == t)[0]))
        self._schedules[(h, w)] = steps
        return steps

    def ring_sizes(self, h: int, w: int, input_name: str = "x") -> dict[str, int]:
        """Rows each value needs during incremental decoding: the largest distance, at any
        step, between the newest position written and the oldest one still read (rounded up
        to whole image rows). Buffers of that many rows, indexed by position modulo the
        size, never overwrite a value before its last read."""
        sizes = self.graph.sizes(h, w)
        plans = self.plan(h, w)
        written = {name: -1 for name in sizes}
        span = {name: 1 for name in sizes}
        output = self.graph.nodes[-1].name
        for t, work in enumerate(self.schedule(h, w)):
            oldest: dict[str, int] = {output: t}
            for n, positions in work:
                plan = plans[n]
                for term in plan.terms:
                    rows = term.index[positions]
                    rows = rows[rows < sizes[term.source][0] * sizes[term.source][1]]
                    if len(rows):
                        oldest[term.source] = min(oldest.get(term.source, rows.min()), rows.min())
                if plan.gate_residual is not None:
                    oldest[plan.gate_residual] = min(oldest.get(plan.gate_residual, positions[0]), positions.min())
                written[plan.name] = max(written[plan.name], positions.max())
            for name, low in oldest.items():
                span[name] = max(span[name], written[name] - low + 1)
            written[input_name] = t  # set_pixel(t) follows step t
        ring = {}
        for name, (nh, nw) in sizes.items():
            rows = -(-span[name] // nw) * nw  # whole rows, so row-wise writes stay contiguous
            ring[name] = min(nh * nw, rows + nw)  # one spare row: a write never wraps onto a read
        return ring

    def work_items(self, h: int, w: int, rows: dict[str, int] | None = None) -> list[list[_Work]]:
        """Per step, the nodes to compute with buffer rows resolved for buffers of ``rows``
        rows per value (ring buffers; None: full buffers, one row per position)."""
        sizes = self.graph.sizes(h, w)
        full = {name: nh * nw for name, (nh, nw) in sizes.items()}
        rows = rows or full
        plans = self.plan(h, w)

        def buffer_rows(positions: np.ndarray, name: str):
            mapped = positions % rows[name]
            return _positions(mapped)

        out = []
        for work in self.schedule(h, w):
            items = []
            for n, positions in work:
                plan = plans[n]
                term_rows, term_valid = [], []
                for term in plan.terms:
                    index = term.index[positions]
                    zero = full[term.source]
                    term_rows.append(torch.from_numpy(np.where(index == zero, rows[term.source], index % rows[term.source])))
                    term_valid.append(term.valid[torch.from_numpy(positions)])
                residual = buffer_rows(positions, plan.gate_residual) if plan.gate_residual else None
                items.append(_Work(n, len(positions), buffer_rows(positions, plan.name), term_rows, term_valid, residual))
            out.append(items)
        return out

    # ---- arithmetic ----------------------------------------------------------------------
    def _pre(self, x: torch.Tensor, pre: str, out: torch.Tensor | None = None) -> torch.Tensor:
        """ELU or concat-ELU of integer activations ``x`` [..., C] (concat-ELU interleaves
        its channels: x_0, -x_0, x_1, ...), written into ``out`` if given. One of x and -x is
        never negative and passes unchanged; the other's ELU is the table value at |x| (a
        small, cache-friendly table)."""
        if pre == PRE_NONE:
            return x if out is None else out.copy_(x)
        if pre not in (PRE_ELU, PRE_CONCAT_ELU):
            raise ValueError(pre)
        tail = self._elu_negative[x.abs().clamp_(max=len(self._elu_negative) - 1).long()]
        if out is None:
            out = torch.empty(*x.shape[:-1], x.shape[-1] * (2 if pre == PRE_CONCAT_ELU else 1), dtype=x.dtype)
        pairs = out.view(*x.shape, -1)  # [..., C, 1 or 2]
        torch.where(x >= 0, x, tail, out=pairs[..., 0])
        if pre == PRE_CONCAT_ELU:
            torch.where(x <= 0, -x, tail, out=pairs[..., 1])
        return out

    def compute(self, plan: _NodePlan, values: dict, work: _Work | None = None) -> None:
        """Compute ``plan``'s node at the positions of ``work`` (None: every position of full
        buffers) and store them in ``values``."""
        batch = values[plan.name].shape[1]
        count = plan.positions if work is None else work.count
        acc = None
        for i, term in enumerate(plan.terms):
            # Sources keep their nonlinearity applied already (see _store), so each kernel
            # slot is a plain gather of whole (batch, channels) blocks and one product.
            source = values[(term.source, term.pre)]
            if work is None and all(shift is not None for shift in term.shifts):
                acc = self._shifted_products(term, source, count, batch, acc)
            else:
                index = torch.from_numpy(term.index) if work is None else work.term_rows[i]
                for slot in range(index.shape[1]):
                    if work is None and term.sparse[slot] is not None:
                        acc = self._sparse_product(term, slot, source, count, batch, acc)
                        continue
                    patch = source.index_select(0, index[:, slot]).view(count * batch, -1)
                    if acc is None:
                        acc = patch @ term.matrix[slot]
                    else:
                        acc.addmm_(patch, term.matrix[slot])
            valid = term.valid if work is None else work.term_valid[i]
            acc.view(count, batch, -1).add_(valid.view(-1, 1, 1) * term.bias)
        out = acc.view(count, batch, -1).mul_(2.0 ** -WEIGHT_FRAC).round_()  # in place: acc is ours
        if plan.gate_residual is not None:
            a, b = out.clamp_(-ACT_LIMIT, ACT_LIMIT).split(plan.channels, dim=-1)
            gate = self._gate[(b.clamp(-self._gate_span, self._gate_span) + self._gate_span).long()]
            residual = values[(plan.gate_residual, PRE_NONE)]
            residual = residual[:-1] if work is None else residual[work.residual_rows]
            out = residual + torch.round(a * gate * (2.0 ** -GATE_FRAC))
        self._store(values, plan.name, out.clamp_(-ACT_LIMIT, ACT_LIMIT), None if work is None else work.out_rows)

    def _sparse_product(self, term: _TermPlan, slot: int, source: torch.Tensor, count: int, batch: int, acc):
        """One kernel slot at only the positions where it reads a value (the rest read zeros
        and would add exact zeros), added into ``acc``."""
        positions, rows = term.sparse[slot]
        if acc is None:
            acc = torch.zeros(count * batch, term.matrix.shape[2], dtype=torch.float64)
        if len(positions):
            product = source.index_select(0, rows).view(len(rows) * batch, -1) @ term.matrix[slot]
            acc.view(count, batch, -1).index_add_(0, positions, product.view(len(rows), batch, -1))
        return acc

    def _shifted_products(self, term: _TermPlan, source: torch.Tensor, count: int, batch: int, acc):
        """All slots of a same-size convolution over every position, without gathers.

        In the position-major buffer, slot (dy, dx) reads position p + s (s = dy*w + dx): a
        contiguous block of rows, so each slot is one product of buffer views. Positions
        whose read leaves the image through the top or bottom fall outside the block (they
        get nothing: zero padding); a read that leaves through the left or right edge lands
        on a column at the other side of the neighbouring row, so while the slots of one dx
        run, that band of source columns is set to zero (and restored after). Products of
        integers are exact, so this gives the same integers as the gathering path."""
        h, w = term.size
        grid = source[:-1].view(h, w, batch, -1)
        flat = source[:-1].view(count * batch, -1)
        for dx in sorted({dx for _, dx in term.shifts}):
            band = slice(0, dx) if dx > 0 else slice(w + dx, w)
            saved = grid[:, band].clone() if dx else None
            if dx:
                grid[:, band] = 0
            try:
                for slot, (dy, slot_dx) in enumerate(term.shifts):
                    s = dy * w + dx
                    low, high = max(0, -s), count - max(0, s)  # output positions whose read is in the block
                    if slot_dx != dx or high <= low:
                        continue
                    if acc is None:
                        acc = torch.zeros(count * batch, term.matrix.shape[2], dtype=torch.float64)
                    acc[low * batch : high * batch].addmm_(flat[(low + s) * batch : (high + s) * batch], term.matrix[slot])
            finally:
                if dx:
                    grid[:, band] = saved
        return acc

    def _store(self, values: dict, name: str, out: torch.Tensor, positions) -> None:
        """Write raw values and every nonlinearity a consumer reads (pre(0) = 0 keeps the
        zero row valid for all of them). ``out``: [positions, batch, channels]."""
        for pre in self._pres[name]:
            target = values[(name, pre)]
            if positions is None:
                self._pre(out, pre, target[:-1])
            else:
                target[positions] = self._pre(out, pre)

    def allocate(self, batch: int, h: int, w: int, inputs: dict[str, torch.Tensor], purpose: str = "run",
                 rows: dict[str, int] | None = None) -> dict:
        """Value buffers [rows + 1, batch, channels'] (zero row last), keyed by
        (name, nonlinearity), for inputs and nodes; ``rows`` per value (None: one row per
        position); ``inputs`` are given as [batch, h*w, C] (full buffers only).

        The buffers of the previous allocation for the same ``purpose``, thread and sizes are
        reused (so only one computation per purpose and thread may be alive at a time): every row is written
        before it is read (the schedule guarantees it), so stale values are never seen, and
        reuse spares the page faults of fresh memory."""
        factor = {PRE_NONE: 1, PRE_ELU: 1, PRE_CONCAT_ELU: 2}
        sizes = self.graph.sizes(h, w)
        rows = rows or {name: nh * nw for name, (nh, nw) in sizes.items()}
        key = (batch, h, w, tuple(sorted(rows.items())))
        slot = (purpose, threading.get_ident())
        cached = self._buffers.get(slot)
        if cached is not None and cached[0] == key:
            values = cached[1]
        else:
            self._buffers.pop(slot, None)  # free the old ones first
            values = {}
            channels = dict(self.graph.inputs)
            channels.update({node.name: node.channels for node in self.graph.nodes})
            for name in sizes:
                for pre in self._pres[name]:
                    buffer = torch.empty(rows[name] + 1, batch, channels[name] * factor[pre], dtype=torch.float64)
                    buffer[-1] = 0
                    values[(name, pre)] = buffer
                values[name] = values[(name, PRE_NONE)]
            self._buffers[slot] = (key, values)
        for name, given in inputs.items():
            self._store(values, name, given.to(torch.float64).transpose(0, 1), None)
        return values

    def release(self, this_thread_only: bool = False) -> None:
        """Drop the reusable buffers (they can take gigabytes for large batches): all, or
        those of the calling thread (a worker thread that ends)."""
        ident = threading.get_ident()
        for slot in [slot for slot in self._buffers if not this_thread_only or slot[1] == ident]:
            self._buffers.pop(slot, None)

    def run(self, inputs: dict[str, torch.Tensor], h: int, w: int, chunk: int = 16) -> torch.Tensor:
        """All positions of the output node for integer inputs [B, h*w, C]; chunked over the batch."""
        batch = next(iter(inputs.values())).shape[0]
        outputs = []
        for start in range(0, batch, chunk):
            values = self.allocate(min(chunk, batch - start), h, w, {k: v[start : start + chunk] for k, v in inputs.items()})
            for plan in self.plan(h, w):
                self.compute(plan, values, None)
            outputs.append(values[self.graph.nodes[-1].name][:-1].transpose(0, 1).clone())
        return torch.cat(outputs)


class IncrementalRun:
    """Autoregressive decoding state: after :meth:`set_pixel` for pixels < t,
    :meth:`advance` (t) computes everything pixel t's prediction needs, no more.

    Values live in ring buffers (:meth:`ExactNetwork.ring_sizes`): a few image rows per
    node instead of the whole image, which keeps large batches small in memory."""

    def __init__(self, network: ExactNetwork, batch: int, h: int, w: int, input_name: str = "x"):
        self.network = network
        self.plans = network.plan(h, w)
        key = (h, w)
        if key not in network._work:
            rows = network.ring_sizes(h, w, input_name)
            network._work[key] = (rows, network.work_items(h, w, rows))
        self.rows, self.work = network._work[key]
        self.values = network.allocate(batch, h, w, {}, purpose="incremental", rows=self.rows)
        self.output = network.graph.nodes[-1].name
        self.input_name = input_name

    def advance(self, t: int) -> torch.Tensor:
        """Run step t; returns the output node at pixel t, [batch, channels]."""
        for work in self.work[t]:
            self.network.compute(self.plans[work.node], self.values, work)
        return self.values[self.output][t % self.rows[self.output]]

    def set_pixel(self, t: int, value: torch.Tensor) -> None:
        """Make input pixel t known: ``value`` [batch, channels] (all channels of the input)."""
        row = t % self.rows[self.input_name]
        self.network._store(self.values, self.input_name, value.unsqueeze(0).to(torch.float64), slice(row, row + 1))
