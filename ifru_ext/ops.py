"""Typed wrappers over ``torch.ops.ifru.*`` plus their fake (meta) kernels and autograd.

Shapes: ``N`` nodes (users then items in one stacked table), ``d`` embedding width,
``n`` interactions, ``nnz`` stored CSR entries. The maths of every op: README "Op reference".

Derivatives (docs/ARCHITECTURE.md §3): ``propagate`` is differentiable in ``x`` (reverse
mode, any order). Every other derivative raises ``NotImplementedError`` naming the op and
the argument instead of coming back as zeros or None: a gradient with respect to
``propagate``'s ``weight``, any gradient through ``propagate_rows``, ``hvp``, ``bpr_hvp``, ``hvp_planned``, ``gauss_newton_weights``,
``pair_sums``, ``triple_sums``, ``importance`` or ``csr_transpose`` (when backward reaches them), and forward-mode AD
(``torch.func.jvp``/``jacfwd``, ``torch.autograd.forward_ad``) through any op.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable, Sequence

import torch
import torch.autograd.forward_ad as forward_ad
from torch import Tensor

from . import _C  # noqa: F401  (loading the library registers the ops)
from .graph import CSRGraph

# The largest num_layers propagate, hvp and bpr_hvp accept: kMaxLayers in csrc/checks.h, where the
# bound is enforced (README "Errors"). Each layer is one full SpMM.
MAX_LAYERS = 64


def _graph_args(graph: CSRGraph | None) -> tuple[Tensor | None, Tensor | None, Tensor | None, bool]:
    """(rowptr, col, weight, symmetric) of an optional graph, as hvp and bpr_hvp take them."""
    if graph is None:
        return None, None, None, False
    return graph.rowptr, graph.col, graph.weight, graph.symmetric


def propagate(x: Tensor, graph: CSRGraph, num_layers: int) -> Tensor:
    """``(1/(K+1)) Σ_{k=0..K} A^k x`` for ``x [N, d]`` → ``[N, d]``, ``0 ≤ K ≤ MAX_LAYERS``;
    differentiable in ``x`` (reverse mode)."""
    return torch.ops.ifru.propagate(graph.rowptr, graph.col, graph.weight, x, num_layers, graph.symmetric)


def propagate_rows(x: Tensor, graph: CSRGraph, num_layers: int, x_rows: Tensor | None = None,
                   out_rows: Tensor | None = None) -> Tensor:
    """``propagate``'s ``P X`` on some rows: ``(P X)[out_rows]`` → ``[M, d]``, where ``X [N, d]`` is
    ``x [R, d]`` on ``x_rows`` (int64 [R], strictly ascending) and zero on every other row
    (``x_rows`` None: ``x`` is ``X``) and ``out_rows`` is int64 [M] (None: all ``N`` rows). The first
    and last layers read and write only those rows (an unlearning request's vectors live on the rows
    that move); the same sums as ``propagate`` and a gather. Not differentiable."""
    return torch.ops.ifru.propagate_rows(graph.rowptr, graph.col, graph.weight, x, x_rows, out_rows, num_layers)


def hvp(
    emb: Tensor,
    v: Tensor,
    users: Tensor,
    items: Tensor,
    labels: Tensor,
    graph: CSRGraph | None = None,
    num_layers: int = 0,
    l2: float = 0.0,
    keep: Tensor | None = None,
) -> Tensor:
    """``H v`` of the mean BCE-with-logits loss (+ ``l2/2·‖E‖²``) at ``emb``.

    emb, v: [N, d]; users, items: int64 [n] rows of the stacked table (items offset by the
    number of users); labels: [n] in [0, 1]; keep: bool [N] restricts to ``H_φφ v_φ``.
    With ``graph`` and ``num_layers ≥ 1`` this is the exact LightGCN ``Pᵀ H_MF(P E) P v``.
    """
    rowptr, col, weight, symmetric = _graph_args(graph)
    return torch.ops.ifru.hvp(emb, v, users, items, labels, rowptr, col, weight, num_layers, l2, keep, symmetric)


def bpr_hvp(
    emb: Tensor,
    v: Tensor,
    users: Tensor,
    pos_items: Tensor,
    neg_items: Tensor,
    graph: CSRGraph | None = None,
    num_layers: int = 0,
    l2: float = 0.0,
    keep: Tensor | None = None,
) -> Tensor:
    """``H v`` of the mean BPR loss ``mean_j softplus(−f_u·(f_i − f_k))`` (+ ``l2/2·‖E‖²``) at ``emb``.

    emb, v: [N, d]; users, pos_items, neg_items: int64 [n], one (u, i, k) triple per entry, rows of
    the stacked table (items offset by the number of users); keep: bool [N] restricts to
    ``H_φφ v_φ``. With ``graph`` and ``num_layers ≥ 1`` this is the exact LightGCN
    ``Pᵀ H_BPR(P E) P v``.
    """
    rowptr, col, weight, symmetric = _graph_args(graph)
    return torch.ops.ifru.bpr_hvp(
        emb, v, users, pos_items, neg_items, rowptr, col, weight, num_layers, l2, keep, symmetric
    )


def _all_finite(t: Tensor) -> bool:
    """No NaN or infinity in ``t``: one ``aminmax`` pass (NaN propagates, and the extremes are
    infinite iff some entry is), where ``isfinite(t).all()`` takes five."""
    if t.numel() == 0:
        return True
    low, high = torch.aminmax(t)
    return math.isfinite(float(low)) and math.isfinite(float(high))


class HVPPlan:
    """``H v`` of ``hvp`` or ``bpr_hvp`` at a fixed ``emb``, prepared once per request.

    Built by ``plan_hvp`` / ``plan_bpr_hvp`` (which take ``hvp``'s / ``bpr_hvp``'s arguments
    without ``v``): the grouping of the interactions by row restricted to what ``H_φφ v_φ`` reads
    (``torch.ops.ifru.hvp_plan``), the labels of those interactions, ``F = P E`` for LightGCN, and
    the checks of every argument, all done here once. A call is then ``torch.ops.ifru.hvp_planned``:
    O(1) checks, and for MF work proportional to the interactions with an endpoint in ``keep``.

    ``plan(v)`` takes and returns ``[N, d]`` and equals ``hvp(emb, v, ...)`` (``v`` read as zero
    outside ``keep``, the result zero there); ``plan.local(v_rows)`` takes and returns ``[R, d]``,
    the values on ``plan.rows`` (``keep``'s rows, ascending; all rows without ``keep``), and touches
    no other row: a solver that keeps its vectors on ``rows`` pays nothing per call for the others.
    The plan is of ``emb``'s values when it was built: after an in-place edit of ``emb`` a call
    raises ``RuntimeError`` (build a new plan, or ``plan.at(emb)``: the same interactions and rows at
    another table, the index work shared). ``plan_gauss_newton`` builds one for the
    Gauss–Newton part of ``hvp`` (``gauss_newton``, labels not needed) with its own divisor.
    """

    def __init__(self, emb: Tensor, users: Tensor, items: Tensor, neg_items: Tensor | None, labels: Tensor | None,
                 graph: CSRGraph | None, num_layers: int, l2: float, keep: Tensor | None, op: str,
                 gauss_newton: bool = False, divisor: int | None = None):
        if emb.dim() != 2:
            raise RuntimeError(f"{op}: emb must be 2-D [N, d], got shape {list(emb.shape)}")
        rowptr, col, _, _ = _graph_args(graph)
        plan = torch.ops.ifru.hvp_plan(users, items, neg_items, keep, emb.shape[0], rowptr, col, num_layers)
        self.rows, self._inner_rows, self.interactions, self._ends, self._incidence_rowptr, self._incidence_slot = plan
        if labels is not None:
            if labels.shape != users.shape:
                raise RuntimeError(f"{op}: labels must have shape [n] = [{users.numel()}], got {list(labels.shape)}")
            if labels.numel() and not (0 <= float(labels.min()) and float(labels.max()) <= 1):  # NaN fails too
                raise ValueError(f"{op}: labels must lie in [0, 1] (no NaN)")
            labels = labels.index_select(0, self.interactions)
        if divisor is not None and divisor <= 0:
            raise ValueError(f"{op}: divisor must be a positive int, got {divisor}")
        self.labels, self.gauss_newton = labels, gauss_newton
        self.num_interactions = users.numel() if divisor is None else divisor
        self.graph, self.num_layers, self.l2 = graph, num_layers, l2
        self._set_table(emb, op)

    def _set_table(self, emb: Tensor, op: str, propagated: Tensor | None = None) -> None:
        """Hold ``emb`` (checked finite), ``F = P emb`` (``propagated`` when the caller holds it) and,
        for the Gauss–Newton part, each planned interaction's ``ℓ''/n`` at ``F``: fixed during a
        solve, so evaluated once here, not on every call (``ifru::gauss_newton_weights``;
        BookCrossing MF, a 2% request's operator: the product ~25% faster, the same bits)."""
        if not _all_finite(emb):
            raise ValueError(f"{op}: emb contains NaN or infinity")
        self.emb = emb
        self._emb_version = emb._version  # a plan holds emb (and F = P emb): an in-place edit voids it
        self.propagated = self.gauss_newton_weights = None
        if self.graph is not None and self.num_layers > 0:
            if propagated is None:
                with torch.no_grad():
                    propagated = propagate(emb, self.graph, self.num_layers)
            elif propagated.shape != emb.shape or propagated.dtype != emb.dtype or propagated.device != emb.device:
                raise RuntimeError(f"{op}: propagated must match emb ({list(emb.shape)}, {emb.dtype}, {emb.device}), "
                                   f"got {list(propagated.shape)}, {propagated.dtype}, {propagated.device}")
            self.propagated = propagated
        if self.gauss_newton:
            table = emb if self.propagated is None else self.propagated
            self.gauss_newton_weights = torch.ops.ifru.gauss_newton_weights(table, self._ends, self.num_interactions)

    def at(self, emb: Tensor, propagated: Tensor | None = None) -> "HVPPlan":
        """The same operator at another table ``emb`` of this one's shape, dtype and device: the
        index work (``hvp_plan``: the interactions grouped by row, every index checked) is shared,
        only ``emb`` is checked and ``F = P emb`` propagated (a solve per snapshot of a run reuses
        one plan). ``propagated``: ``F = P emb`` over the plan's graph and layers when the caller
        holds it already (LightGCN's training response propagates each table once for its sums;
        not recomputed to check it), else propagated here."""
        if emb.shape != self.emb.shape or emb.dtype != self.emb.dtype or emb.device != self.emb.device:
            raise RuntimeError(f"HVPPlan.at: emb must match the plan's table ({list(self.emb.shape)}, {self.emb.dtype}, "
                               f"{self.emb.device}), got {list(emb.shape)}, {emb.dtype}, {emb.device}")
        moved = copy.copy(self)
        moved._set_table(emb, "HVPPlan.at", propagated)
        return moved

    @property
    def num_rows(self) -> int:
        return self.rows.numel()

    def incidence(self) -> tuple[Tensor, Tensor, Tensor]:
        """The plan's interactions as seen from its inner rows (``keep``'s rows for MF), each
        (row, interaction) once: a CSR over the inner rows in ascending order, ``rowptr`` [R'+1],
        and per entry the interaction (``term``, an index into the ``users`` the plan was built
        from) [m] and the endpoint the row is of it (``end``: 0 the user, 1 the item, 2 the
        negative item of a triple) [m]. A row's entries follow the plan's order: the interactions
        grouped by user, then ascending index. The counting sort ``hvp_plan`` did is reused, so a
        caller that needs the grouping too (the response's per-row sums) builds none of its own."""
        slot = self._incidence_slot  # 2p (pair p seen from its user) or 2p + 1 (from its item)
        rowptr = torch.cat((self._incidence_rowptr.index_select(0, self._inner_rows),
                            self._incidence_rowptr.new_tensor([slot.numel()])))
        if self._ends.shape[1] == 2:  # pairs: p is the interaction, the slot's last bit its end
            return rowptr, self.interactions.index_select(0, slot >> 1), slot & 1
        pair = slot >> 1  # triples: pair p = 2j + q joins the user and item q of interaction j
        interaction, second, item_side = pair >> 1, pair & 1, (slot & 1) == 1
        # a triple lists its user under both of its pairs: the first is kept
        first = item_side | (second == 0)
        row = torch.repeat_interleave(torch.arange(self._inner_rows.numel(), device=slot.device), rowptr.diff(),
                                      output_size=slot.numel())
        rowptr = torch.cat((rowptr.new_zeros(1),
                            torch.bincount(row[first], minlength=self._inner_rows.numel()).cumsum(0)))
        end = torch.where(item_side, 1 + second, 0)[first]
        return rowptr, self.interactions.index_select(0, interaction[first]), end

    def local(self, v_rows: Tensor) -> Tensor:
        """``(H v)[rows]`` for ``v_rows [R, d]``, ``v`` on ``rows`` (zero elsewhere) → ``[R, d]``."""
        if self.emb._version != self._emb_version:
            raise RuntimeError("HVPPlan: emb was modified in place after the plan was built (its F = P emb and the "
                               "checks are of the old values): build a new plan for the new emb")
        rowptr, col, weight, symmetric = _graph_args(self.graph)
        return torch.ops.ifru.hvp_planned(
            self.emb, v_rows, self.rows, self._inner_rows, self._ends, self._incidence_rowptr, self._incidence_slot,
            self.labels, self.num_interactions, rowptr, col, weight, self.num_layers, self.l2, self.propagated,
            symmetric, self.gauss_newton, self.gauss_newton_weights,
        )

    def __call__(self, v: Tensor) -> Tensor:
        """``H v`` for ``v [N, d]`` → ``[N, d]``, as ``hvp``/``bpr_hvp`` with this plan's arguments."""
        if v.shape != self.emb.shape:
            raise RuntimeError(f"ifru::hvp_planned: v must have shape [N, d] = {list(self.emb.shape)}, "
                               f"got {list(v.shape)}")
        if self.num_rows == self.emb.shape[0]:
            return self.local(v)
        out = self.local(v.index_select(0, self.rows))
        return torch.zeros_like(self.emb, memory_format=torch.contiguous_format).index_copy_(0, self.rows, out)


def plan_hvp(
    emb: Tensor,
    users: Tensor,
    items: Tensor,
    labels: Tensor,
    graph: CSRGraph | None = None,
    num_layers: int = 0,
    l2: float = 0.0,
    keep: Tensor | None = None,
) -> HVPPlan:
    """``hvp``'s arguments without ``v``, prepared once: ``plan(v) == hvp(emb, v, users, items, labels,
    graph, num_layers, l2, keep)``."""
    return HVPPlan(emb, users, items, None, labels, graph, num_layers, l2, keep, "plan_hvp")


def plan_gauss_newton(
    emb: Tensor,
    users: Tensor,
    items: Tensor,
    divisor: int,
    graph: CSRGraph | None = None,
    num_layers: int = 0,
    l2: float = 0.0,
    keep: Tensor | None = None,
    neg_items: Tensor | None = None,
) -> HVPPlan:
    """The Gauss–Newton part of ``hvp``, prepared once: ``plan(v) = Pᵀ (1/divisor) Σ_j ℓ''_j J_jᵀ J_j P v
    + l2 v`` over the interactions ``(users[j], items[j])`` [n] at ``F = P emb``, ``x_j = f_u·f_i``
    (with ``neg_items`` [n], ``bpr_hvp``'s triples: ``x_j = f_u·(f_i − f_k)``), ``ℓ'' = σ(x)σ(−x)``
    (labels do not enter; positive semi-definite). ``divisor``: the count the sum is averaged over
    (e.g. the full training set when only the interactions a request touches are passed)."""
    return HVPPlan(emb, users, items, neg_items, None, graph, num_layers, l2, keep, "plan_gauss_newton",
                   gauss_newton=True, divisor=divisor)


def plan_bpr_hvp(
    emb: Tensor,
    users: Tensor,
    pos_items: Tensor,
    neg_items: Tensor,
    graph: CSRGraph | None = None,
    num_layers: int = 0,
    l2: float = 0.0,
    keep: Tensor | None = None,
) -> HVPPlan:
    """``bpr_hvp``'s arguments without ``v``, prepared once: ``plan(v) == bpr_hvp(emb, v, users, pos_items,
    neg_items, graph, num_layers, l2, keep)``."""
    return HVPPlan(emb, users, pos_items, neg_items, None, graph, num_layers, l2, keep, "plan_bpr_hvp")


def pair_sums(rows_table: Tensor, table: Tensor, rowptr: Tensor, col: Tensor, labels: Tensor,
              weight: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Per-row sums over dot-product pair terms, one pass: row ``r`` of ``rows_table`` [a, d] pairs
    with the rows ``table[col[k]]`` ([L, d]) of its CSR entries ``k`` (``rowptr`` [a+1], ``col`` [e]),
    each a term ``x = rows_table[r]·t`` with label ``labels[k]`` and multiplicity ``weight[k]``
    (None: 1). With ``p = σ(x)``, returns ``(Σ w (p − y) t, Σ w (p − y)² t², Σ w p(1 − p) t²)``
    [a, d] each: the terms' gradient, squared per-term gradients and Gauss–Newton diagonal at
    the rows."""
    return torch.ops.ifru.pair_sums(rows_table, table, rowptr, col, labels, weight)


def triple_sums(table: Tensor, users: Tensor, items: Tensor, negatives: Tensor, labels: Tensor,
                weight: Tensor | None, rowptr: Tensor, col: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``pair_sums`` for BPR's triple terms, one pass: term ``j`` has the logit
    ``x = t_u·t_i − t_u·t_k`` on ``table`` [L, d] (``users``, ``items``, ``negatives`` [s]), label
    ``labels[j]`` and multiplicity ``weight[j]`` (None: 1). Row ``r`` of the CSR (``rowptr`` [a+1],
    ``col`` [e] in [0, 3s)) sums its entries ``col[k] = 3j + c``, term ``j`` seen from its column ``c``
    (0 user, 1 item, 2 negative), whose Jacobian there is ``J = t_i − t_k``, ``t_u`` or ``−t_u``.
    Returns ``(Σ w (p − y) J, Σ w (p − y)² J⊙J, Σ w p(1 − p) J⊙J)`` [a, d] each."""
    return torch.ops.ifru.triple_sums(table, users, items, negatives, labels, weight, rowptr, col)


def importance(graph: CSRGraph, seed_counts: Tensor, ratios: Sequence[float]) -> tuple[Tensor, Tensor]:
    """Algorithm 1: ``seed_counts [N]`` (removed interactions per node), ``ratios`` = (a_0..a_K).

    Returns the final scores [N] and the kept-row mask (bool [N]); the top ``round(a_k·|S_k|)``
    of each hop are kept, ties to the lower index. A ``symmetric`` graph's hops read its own
    rows (no transpose is built).
    """
    return torch.ops.ifru.importance(graph.rowptr, graph.col, seed_counts, list(ratios), graph.symmetric)


def csr_transpose(graph: CSRGraph) -> CSRGraph:
    """``Aᵀ`` (stable: transposed rows list source rows in ascending order)."""
    rowptr, col, weight = torch.ops.ifru.csr_transpose(graph.rowptr, graph.col, graph.weight)
    return CSRGraph(rowptr, col, weight, graph.num_nodes, graph.symmetric)


def with_cuda() -> bool:
    """Whether this build compiled the CUDA kernels."""
    return torch.ops.ifru.with_cuda()


# ---------------------------------------------------------------- fake kernels
# Shapes only (torch.compile, opcheck), with the checks a trace cannot defer to the real
# kernel: every tensor on the op's device and num_layers within its bound.


def _check_devices(op: str, device: torch.device, **tensors: Tensor | None) -> None:
    for name, tensor in tensors.items():
        if tensor is not None and tensor.device != device:
            raise RuntimeError(f"{op}: {name} is on {tensor.device} but the op runs on {device}")


def _check_num_layers(op: str, num_layers: int) -> None:
    if not 0 <= num_layers <= MAX_LAYERS:
        raise ValueError(f"{op}: num_layers must lie in [0, {MAX_LAYERS}], got {num_layers}")


@torch.library.register_fake("ifru::propagate")
def _propagate_fake(rowptr, col, weight, x, num_layers, symmetric=False):
    _check_devices("ifru::propagate", x.device, rowptr=rowptr, col=col, weight=weight)
    _check_num_layers("ifru::propagate", num_layers)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.register_fake("ifru::propagate_rows")
def _propagate_rows_fake(rowptr, col, weight, x, x_rows, out_rows, num_layers):
    _check_devices("ifru::propagate_rows", x.device, rowptr=rowptr, col=col, weight=weight, x_rows=x_rows,
                   out_rows=out_rows)
    _check_num_layers("ifru::propagate_rows", num_layers)
    return x.new_empty(rowptr.shape[0] - 1 if out_rows is None else out_rows.shape[0], x.shape[1])


@torch.library.register_fake("ifru::hvp")
def _hvp_fake(emb, v, users, items, labels, rowptr, col, weight, num_layers, l2, keep, symmetric=False):
    _check_devices("ifru::hvp", emb.device, v=v, users=users, items=items, labels=labels, rowptr=rowptr, col=col,
                   weight=weight, keep=keep)
    _check_num_layers("ifru::hvp", num_layers)
    return torch.empty_like(emb, memory_format=torch.contiguous_format)


@torch.library.register_fake("ifru::bpr_hvp")
def _bpr_hvp_fake(emb, v, users, pos_items, neg_items, rowptr, col, weight, num_layers, l2, keep, symmetric=False):
    _check_devices("ifru::bpr_hvp", emb.device, v=v, users=users, pos_items=pos_items, neg_items=neg_items,
                   rowptr=rowptr, col=col, weight=weight, keep=keep)
    _check_num_layers("ifru::bpr_hvp", num_layers)
    return torch.empty_like(emb, memory_format=torch.contiguous_format)


@torch.library.register_fake("ifru::hvp_plan")
def _hvp_plan_fake(users, items, neg_items, keep, num_nodes, rowptr=None, col=None, num_layers=0):
    _check_devices("ifru::hvp_plan", users.device, items=items, neg_items=neg_items, keep=keep, rowptr=rowptr, col=col)
    _check_num_layers("ifru::hvp_plan", num_layers)
    ctx = torch.library.get_ctx()
    rows, inner_rows, interactions, incidences = (ctx.new_dynamic_size() for _ in range(4))
    new = users.new_empty
    num_ends = 2 if neg_items is None else 3
    return new(rows), new(inner_rows), new(interactions), new(2, num_ends, interactions), new(num_nodes + 1), new(incidences)


@torch.library.register_fake("ifru::hvp_planned")
def _hvp_planned_fake(emb, v, rows, inner_rows, ends, incidence_rowptr, incidence_slot, labels, num_interactions,
                      rowptr, col, weight, num_layers, l2, propagated=None, symmetric=False, gauss_newton=False,
                      gauss_newton_weights=None):
    _check_devices("ifru::hvp_planned", emb.device, v=v, rows=rows, inner_rows=inner_rows, ends=ends,
                   incidence_rowptr=incidence_rowptr, incidence_slot=incidence_slot, labels=labels, rowptr=rowptr,
                   col=col, weight=weight, propagated=propagated, gauss_newton_weights=gauss_newton_weights)
    _check_num_layers("ifru::hvp_planned", num_layers)
    return emb.new_empty(rows.shape[0], emb.shape[1])


@torch.library.register_fake("ifru::gauss_newton_weights")
def _gauss_newton_weights_fake(table, ends, num_interactions):
    _check_devices("ifru::gauss_newton_weights", table.device, ends=ends)
    return table.new_empty(ends.shape[2])


@torch.library.register_fake("ifru::_gather_floor")
def _gather_floor_fake(table, index):
    _check_devices("ifru::_gather_floor", table.device, index=index)
    return table.new_empty(table.shape[1])


@torch.library.register_fake("ifru::pair_sums")
def _pair_sums_fake(rows_table, table, rowptr, col, labels, weight=None):
    _check_devices("ifru::pair_sums", table.device, rows_table=rows_table, rowptr=rowptr, col=col, labels=labels,
                   weight=weight)
    return tuple(table.new_empty(rows_table.shape[0], table.shape[1]) for _ in range(3))


@torch.library.register_fake("ifru::triple_sums")
def _triple_sums_fake(table, users, items, negatives, labels, weight, rowptr, col):
    _check_devices("ifru::triple_sums", table.device, users=users, items=items, negatives=negatives, labels=labels,
                   weight=weight, rowptr=rowptr, col=col)
    return tuple(table.new_empty(rowptr.shape[0] - 1, table.shape[1]) for _ in range(3))


@torch.library.register_fake("ifru::importance")
def _importance_fake(rowptr, col, seed_counts, ratios, symmetric=False):
    _check_devices("ifru::importance", seed_counts.device, rowptr=rowptr, col=col)
    return torch.empty_like(seed_counts), torch.empty_like(seed_counts, dtype=torch.bool)


@torch.library.register_fake("ifru::csr_transpose")
def _csr_transpose_fake(rowptr, col, weight):
    _check_devices("ifru::csr_transpose", rowptr.device, col=col, weight=weight)
    return torch.empty_like(rowptr), torch.empty_like(col), torch.empty_like(weight)


# ---------------------------------------------------------------- autograd


def _propagate_setup_context(ctx, inputs, output):
    rowptr, col, weight, _, num_layers, symmetric = inputs
    ctx.save_for_backward(rowptr, col, weight)
    ctx.num_layers, ctx.symmetric = num_layers, symmetric


def _propagate_backward(ctx, grad):
    if ctx.needs_input_grad[2]:
        raise NotImplementedError(
            "ifru::propagate: no gradient with respect to weight (only x is differentiable; the graph is a "
            "constant): pass weight.detach()"
        )
    # d/dx of P x is Pᵀ, and Pᵀ = mean of (Aᵀ)^k: the same op on the transposed matrix.
    rowptr, col, weight = ctx.saved_tensors
    if not ctx.symmetric:
        rowptr, col, weight = torch.ops.ifru.csr_transpose(rowptr, col, weight)
    grad_x = torch.ops.ifru.propagate(rowptr, col, weight, grad, ctx.num_layers, ctx.symmetric)
    return None, None, None, grad_x, None, None


# Why an op has no derivative, for the error raised when one is asked of it.
_NOT_DIFFERENTIABLE = {
    "propagate_rows": "a forward-only restriction of propagate; differentiate propagate instead",
    "hvp": "a Hessian-vector product with no backward; differentiate ifru_ext.plain's formulation instead",
    "bpr_hvp": "a Hessian-vector product with no backward; differentiate the BPR loss with autograd instead",
    "hvp_plan": "an index structure",
    "hvp_planned": "a Hessian-vector product with no backward; differentiate ifru_ext.plain's formulation instead",
    "gauss_newton_weights": "per-interaction weights the Gauss–Newton product reads at a fixed table",
    "pair_sums": "per-row statistics the unlearning estimator reads at a fixed table",
    "triple_sums": "per-row statistics the unlearning estimator reads at a fixed table",
    "_gather_floor": "a benchmark probe",
    "importance": "Algorithm 1 is a discrete selection",
    "csr_transpose": "a permutation of the entries with no backward",
}


def _no_backward(name: str) -> Callable[..., Any]:
    arguments = [argument.name for argument in getattr(torch.ops.ifru, name).default._schema.arguments]

    def backward(ctx, *grads):
        wanted = [arg for arg, needed in zip(arguments, ctx.needs_input_grad) if needed]
        raise NotImplementedError(
            f"ifru::{name}: not differentiable ({_NOT_DIFFERENTIABLE[name]}), but a gradient with respect to "
            f"{', '.join(wanted)} was asked: pass detached tensors or call it under torch.no_grad()"
        )

    return backward


def _no_setup_context(ctx, inputs, output):
    pass


def _refuse_forward_ad(name: str, arguments: Sequence[str], args: Sequence[Any]) -> None:
    """NotImplementedError when an argument carries a forward-mode tangent (jvp, jacfwd, fwAD)."""
    if forward_ad._current_level < 0:  # no dual level entered: nothing can carry a tangent
        return
    for arg, value in zip(arguments, args):
        if isinstance(value, Tensor) and forward_ad.unpack_dual(value).tangent is not None:
            raise NotImplementedError(
                f"ifru::{name}: forward-mode AD (torch.func.jvp/jacfwd, torch.autograd.forward_ad) is not "
                f"supported, but {arg} has a tangent: use reverse mode (torch.autograd.grad, torch.func.vjp/jacrev)"
            )


# The torch.library autograd registration is one Python kernel on the Autograd key; this
# library holds ours, which refuses forward-mode tangents (torch.library has no hook for
# them: without one, the tangent is silently dropped) before the reverse-mode kernel that
# torch.library.register_autograd would have registered.
_LIBRARY = torch.library.Library("ifru", "IMPL")


def _register_autograd(name: str, backward: Callable[..., Any], setup_context: Callable[..., Any]) -> None:
    op = getattr(torch.ops.ifru, name).default
    try:  # the kernel torch.library.register_autograd builds (a private helper, stable since torch 2.4)
        from torch._library.autograd import Info, make_autograd_impl

        reverse_mode = make_autograd_impl(op, Info(backward, setup_context))
    except (ImportError, AttributeError, TypeError):  # another torch: reverse mode only, tangents dropped
        torch.library.register_autograd(f"ifru::{name}", backward, setup_context=setup_context)
        return
    arguments = [argument.name for argument in op._schema.arguments]

    def autograd_kernel(keyset, *args):
        _refuse_forward_ad(name, arguments, args)
        return reverse_mode(keyset, *args)

    _LIBRARY.impl(name, autograd_kernel, "Autograd", with_keyset=True)


_register_autograd("propagate", _propagate_backward, _propagate_setup_context)
for _name in _NOT_DIFFERENTIABLE:
    _register_autograd(_name, _no_backward(_name), _no_setup_context)
