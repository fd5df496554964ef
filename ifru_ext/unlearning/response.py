"""The training-aware response: IFRU's estimate of Retrain for an early-stopped model.

Retrain is not a minimiser of ``L_{-r}``: it is Adam, run from the same initial table for
about as long as the original run, on ``D_{-r}``. The original run moves by ``−η Π ∇L(E)/n``,
Retrain by ``−η Π' ∇L_{-r}(E + δ)/n``; linearising the difference in ``δ`` with every gradient
taken at the same point ``E`` of the original run (docs/ARCHITECTURE.md §6),

    dδ/dt = −η Π' G δ + η Π g/n − η (Π' − Π) ∇L_{-r}(E)/n

in the original run's steps ``t``: ``G`` the Gauss–Newton curvature of the remaining loss
(summed over ``D_{-r}``, per ``n = |D|``: each step averages its batch over ``n`` rows; an epoch
of Retrain takes ``m/B`` steps averaging over ``m = |D_{-r}|``, the same per epoch), ``g`` the
influence right-hand side (removed terms plus, for LightGCN, the spillover), ``Π = 1/(√v̂ + ε)``
Adam's per-coordinate step scale and ``Π'`` Retrain's (``removed_share``): the removed terms'
gradient leaves at the original run's pace, and where Retrain's steps are larger (rows whose
removed terms carried most of ``v̂``) it follows the remaining gradient faster. Cut at the
snapshots of the ``TrainingTrace``, each segment of ``n_s`` steps is one implicit step at its
end ``E_s``,

    (G_s + Λ'_s + λ) δ_s = Λ'_s δ_{s−1} + ρ_s g_s/n + (ρ_s − 1)(∇L_{-r}(E_s)/n + λ E_s),

with ``Λ = 1/(η n_s Π)``, ``ρ_s = Λ'_s/Λ_s`` and ``λ`` the objective's l2, solved by
Jacobi-preconditioned CG (``G + Λ'`` is positive definite: Gauss–Newton has no negative
curvature). Directions the data constrain strongly get the Newton step; flat directions, which
an early-stopped run never travelled far along, the gradient-flow step ``η n_s Π g/n``. Every
constant comes from the model's ``TrainingTrace``; nothing is tuned.

Every term is read at ``E_s``. The segment's own displacement ``E_s − E_{s−1}`` would stand
for ``−∇L/(nΛ)`` over the whole segment (a path integral, large while the terms were still being
fitted) next to a ``Λ'`` from the gradients at its end (small once they are): on rows whose
removed terms dominate those (``Λ' ≪ Λ``) that mismatch was amplified ``Λ/Λ'``-fold, and on
BookCrossing MF's 8% requests a few hundred rare items moved to ~10× their norm and filled most
users' top-20 (Recall@20 halved); read at ``E_s``, one row moves that far and Recall@20 stays
near the Original's (genuine 8%: 0.0022 against 0.0024; reports/fidelity-endpoint).

``G_s δ_s`` stands for the remaining loss's gradient change ``(∇L_{-r}(E_s + δ_s) − ∇L_{-r}(E_s))/n``,
and Retrain's table differs from the Original's by about its own size, so the two differ: by
3× the right-hand side in the first segment of BookCrossing MF's 8% poisoned-row request (the
displacement form of the step, above). With
``corrections=k > 0`` (``ifru-corrected`` k = 1; the default and ``ifru-nonlinear`` k = 2; ``ifru-linear`` 0) each
segment solves the step's own equation by Newton: the true gradient change at ``E_s + δ`` gives
the residual, the Gauss–Newton operator there the step, kept only where it lowers the residual
(``_corrected``). A later segment starts from the previous one's answer ``δ_{s−1}`` (Retrain's
table is nearer there than at ``δ = 0``, the linear solve's start) and takes k + 1 steps; the
first starts from its linear answer and takes k. Where those steps stall (none lowers the
residual) the default walks the segment in shorter implicit steps at the same snapshot
(``adaptive_steps``, ``_walk_segment``); ``ifru-fixed-steps`` keeps the stalled answer as it is.

The default (``UnlearnConfig.horizon="auto"``, models trained with BCE whose trace recorded its
tail) goes on past the returned epoch: one more segment per epoch the run trained past its best,
read at that epoch's table and second moments, answering where the estimate of Retrain scores best
on validation (``training_response(trajectory=...)``): Retrain's own stopping rule, applied to it.

Exactness where it is free: a row whose every training interaction is removed gets no
gradient under Retrain, so it keeps its initial value; it is set to ``trace.initial``.

With ``unanchored_flow`` (``ifru-unanchored``; not the default), a row the request leaves with
remaining terms of one label only, where it had both (``unanchored_rows``), has no minimiser of the
remaining loss along it: its rows and columns of ``G`` are left out and it follows the gradient
flow at Retrain's pace (reports/fidelity-unanchored). With ``own_moments`` (LightGCN's default,
an option on MF: ``ifru-own-moments``) those rows keep their curvature, and Retrain's ``v̂`` there is
read at the candidate table inside the Newton corrections (``RetrainPace``, ``StepEquation``): their
logits saturate under Retrain, their gradients and ``v̂`` fade, and Retrain's steps grow
(reports/fidelity-own-moments).

The system is written once over loss terms (``terms.py``): each term's logit, the rows it
reads and its Jacobian there, ``ℓ' = σ(x) − y``, ``ℓ'' = σ(x)σ(−x)``. The same code answers BCE
(one term per row) and BPR (the triples of each segment's last epochs, ``y = 1``) on MF and
LightGCN, and your own model (``TableModel``: the Jacobians from autograd through its
``scores``). Dot-product terms (MF, LightGCN; BCE or BPR) apply ``G`` with the fused
``ifru::hvp_planned(gauss_newton=True)`` (``ops.plan_gauss_newton``); a ``TableModel``'s by
gathers and scatters over their Jacobians.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from .. import ops
from ..data import RecDataset
from ..graph import CSRGraph
from ..models import Recommender
from ..models.trace import TrainingTrace
from ..training.bpr import NegativeSampler, bpr_rows
from .base import SolveReport
from .objective import squared_weights, within_hops
from .solvers import conjugate_gradient
from .terms import (BPR_EPOCHS, Scorer, TermIncidence, TermOrigin, Terms, TermStatistics, bpr_terms, endpoint_sums,
                    segment_epochs)

__all__ = ["RESPONSE_FORM", "ResponsePlan", "ResponseSystem", "TermPlan", "orphaned_rows", "training_damping", "training_response",
           "training_trace"]


# The name a calibration records for this response (``UnlearnConfig.estimator``): every term
# read at the segment's end. Scales recorded as "training(...)" were fitted for the earlier
# form, which took the segment's own displacement, and do not carry over.
RESPONSE_FORM = "training-endpoint"


def training_trace(model: Recommender) -> TrainingTrace:
    """The model's trace (as stored: the estimator gathers and converts only the rows it reads);
    ValueError naming what is missing."""
    if model.trace is None:
        raise ValueError(
            "the model has no training trace (learning rate, steps, Adam's second moments, initial table), "
            "which the training-aware estimator needs: train it with ifru_ext.train (or load a checkpoint "
            "written after training with it), or use a method that does not need one (ifru-reference, ifru-validation)")
    return model.trace


def training_damping(trace: TrainingTrace, second_moment: Tensor | None = None, steps: int | None = None) -> Tensor:
    """``Λ = (√v̂ + ε) / (η T)`` [N, d]: the inverse of Adam's accumulated step scale over ``steps``
    (default the whole run) with second moments ``second_moment`` (default the returned epoch's)."""
    second_moment = trace.second_moment if second_moment is None else second_moment
    steps = trace.steps if steps is None else steps
    return (second_moment.sqrt() + trace.eps) / (trace.lr * max(steps, 1))


def orphaned_rows(dataset: RecDataset, removal: Tensor, device: torch.device, loss: str = "bce") -> Tensor:
    """bool [N]: rows that get no gradient once ``removal`` is gone (found from the removed rows'
    endpoints and their degrees: O(r), not O(n)). BCE: rows with training interactions, none of
    which remains. BPR (``removal`` its label-1 rows): users with positives, none of which
    remains — an item keeps being drawn as a negative."""
    train = dataset.train
    orphans = torch.zeros(dataset.num_users + dataset.num_items, dtype=torch.bool)
    if loss == "bpr":
        users, removed = torch.unique(train.users[removal], return_counts=True)
        incident = dataset.incident_rows(users)  # a user's stacked row is its id
        incident = incident[train.labels[incident] == 1]
        held = torch.zeros(dataset.num_users, dtype=torch.int64).index_add_(
            0, train.users[incident], torch.ones_like(incident))
        orphans[users[removed == held[users]]] = True
        return orphans.to(device)
    endpoints, removed = torch.unique(torch.cat((train.users[removal], train.items[removal] + dataset.num_users)),
                                      return_counts=True)
    orphans[endpoints[removed == dataset.degree(endpoints)]] = True
    return orphans.to(device)


def unanchored_rows(slots: Sequence[Tensor], labels: Tensor, removed_slots: Sequence[Tensor], removed_labels: Tensor,
                    rows: int) -> Tensor:
    """bool [a]: the moving rows a request leaves unanchored — rows whose remaining terms all
    carry one hard label (every one 1, or every one 0) where their terms before the request
    carried both. ``slots`` / ``removed_slots``: each column's position among the ``rows`` moving
    rows (``rows`` or more: not one of them) for the remaining / removed terms, whose labels are
    ``labels`` / ``removed_labels`` [s].

    A dot-product logit is linear in each of its rows, so a row whose remaining terms all push
    their logits one way has no minimiser of the remaining loss along it: Retrain drives those
    logits on until they saturate, where the Gauss–Newton curvature read at the Original's table
    (held near the boundary by the removed terms of the other label) would bound the step
    (reports/fidelity-unanchored). A soft label (strictly between 0 and 1) has a finite minimiser
    and anchors its rows; a row with no remaining term is an orphan, set exactly elsewhere."""

    def counts(slots_of: Sequence[Tensor], kind: Tensor) -> Tensor:
        picked = torch.cat([column[kind] for column in slots_of])
        return torch.bincount(picked, minlength=rows + 1)[:rows]

    positive, negative, soft = labels == 1, labels == 0, (labels != 0) & (labels != 1)
    kept_positive, kept_negative = counts(slots, positive), counts(slots, negative)
    held = counts(slots, soft) > 0
    one_label = (kept_positive > 0) ^ (kept_negative > 0)
    had_positive = kept_positive + counts(removed_slots, removed_labels == 1) > 0
    had_negative = kept_negative + counts(removed_slots, removed_labels == 0) > 0
    return one_label & ~held & had_positive & had_negative


class TermPlan:
    """One set of loss terms as a segment's operator reads it: the remaining terms that reach a
    moving row (``operator``) and the removed ones (``removed``), in the plan's local ids, with
    the position of each column's rows among the moving rows (``slots``: ``a`` = the extra zero
    row of a row that does not move). ``multiplicity``: for dot-product terms (no scorer; None
    for a ``TableModel``), the one multiplicity every term has (BCE 1, BPR ``1/E``,
    ``bpr_terms``), with which ``ops.plan_gauss_newton`` applies them in one fused pass.
    ``unanchored``: bool [a], the moving rows the request leaves unanchored (``unanchored_rows``),
    when the plan reads them apart (``ResponsePlan.unanchored_flow`` or ``own_moments``) and there is
    one; else None. With ``own_moments``: ``own_rows`` int64 [o], their positions among the moving
    rows, and on LightGCN ``own_terms``, the remaining terms whose squared gradients reach them
    through ``P∘P`` (an endpoint within ``K`` hops on the original graph): a candidate's own
    moments read those terms only (BookCrossing LightGCN 1%: 157 of 29,026 moving rows)."""

    def __init__(self, plan: "ResponsePlan", terms: Terms, gone: Tensor) -> None:
        self.operator, self.removed = terms.subset(~gone), terms.subset(gone)
        moving = plan.rows.numel()
        slot = torch.where(plan.position >= 0, plan.position, moving)

        def slots_of(terms: Terms) -> tuple[Tensor, ...]:
            return tuple(slot.index_select(0, column) for column in terms.columns)

        self.slots = slots_of(self.operator)
        self.unanchored = None
        if (plan.unanchored_flow or plan.own_moments) and self.operator.dot_products:
            unanchored = unanchored_rows(self.slots, self.operator.labels, slots_of(self.removed), self.removed.labels,
                                         moving)
            self.unanchored = unanchored if bool(unanchored.any()) else None  # checked once, not per segment
        self.own_rows = self.own_terms = None
        if plan.own_moments and self.unanchored is not None:
            self.own_rows = self.unanchored.nonzero().squeeze(1)
            if plan.num_layers > 0:
                seeds = torch.zeros(plan.num_nodes, dtype=torch.bool, device=self.own_rows.device)
                seeds[plan.rows.index_select(0, self.own_rows)] = True
                near = within_hops(seeds, plan.old_graph, plan.num_layers)
                reaching = near.index_select(0, self.operator.columns[0])
                for column in self.operator.columns[1:]:
                    reaching |= near.index_select(0, column)
                self.own_terms = self.operator.subset(reaching)
        weights, self.multiplicity = self.operator.weights, None
        if self.operator.scorer is None:
            if weights is not None and weights.numel() and not bool((weights == weights[0]).all()):
                raise ValueError("the fused Gauss–Newton operator needs one multiplicity for all terms")
            self.multiplicity = 1.0 if weights is None or weights.numel() == 0 else float(weights[0])
        # Dot-product terms (BCE pairs, BPR triples) on MF (``moving_sums``): the moving rows' sums
        # over their terms in one pass (``incidence``). LightGCN's system reads those rows of the
        # sums on every row the terms read instead, which its remaining gradient needs anyway
        # (``ResponsePlan.term_statistics``). The removed terms likewise (``removed_incidence``): MF
        # reads their sums on the moving rows only, and sums on every row of the table would cost
        # its size (BookCrossing MF 2%: 4–9 ms of output for 14k entries, per segment).
        self.moving_sums = self.operator.dot_products and plan.num_layers == 0
        self.removed_incidence = TermIncidence.grouped(self.removed, slots_of(self.removed), moving, plan.num_nodes) \
            if self.moving_sums else None
        self._incidence: TermIncidence | None = None
        self._gauss_newton: ops.HVPPlan | None = None

    def incidence(self, plan: "ResponsePlan", emb: Tensor) -> TermIncidence:
        """MF (``moving_sums``): the remaining terms' incidence on the moving rows, as their
        Gauss–Newton plan groups them (``ops.HVPPlan.incidence``; the plan is built at the local
        table ``emb`` if no segment has built it yet): the one counting sort serves both, where a
        sort of their own cost the request ~10% (BookCrossing MF 2%, 349k entries)."""
        if self._incidence is None:
            structure = self._gauss_newton if self._gauss_newton is not None else self.gauss_newton(plan, emb)
            self._incidence = TermIncidence(self.operator, *structure.incidence(), plan.num_nodes)
        return self._incidence

    def gauss_newton(self, plan: "ResponsePlan", emb: Tensor) -> ops.HVPPlan:
        """The fused Gauss–Newton operator of the remaining dot-product terms (``multiplicity`` set)
        at the local table ``emb`` of ``plan`` (this term set's): ``(w/n) Σ ℓ'' JᵀJ`` for terms of
        multiplicity ``w``, the mean over ``n/w`` terms, restricted to the moving rows. Its index
        work is done by the first segment and shared by the later ones (``HVPPlan.at``): the terms
        and rows are the same. LightGCN's ``F = P emb`` is the plan's own (``ResponsePlan.table``),
        which the segment's sums at ``emb`` have propagated already (BookCrossing LightGCN, a 1%
        request: 10 of its 27 propagations were these again)."""
        if self._gauss_newton is not None:
            return self._gauss_newton.at(emb, plan.table(emb) if plan.num_layers > 0 else None)
        keep = torch.zeros(plan.num_nodes, dtype=torch.bool, device=emb.device)
        keep[plan.rows] = True
        users, items, *negatives = self.operator.columns
        self._gauss_newton = ops.plan_gauss_newton(emb, users, items, round(1.0 / (plan.scale * self.multiplicity)),
                                                   plan.new_graph, plan.num_layers, keep=keep,
                                                   neg_items=negatives[0] if negatives else None)
        return self._gauss_newton


class ResponsePlan:
    """What stays fixed across the segments of one request: the moving rows, the loss terms each
    piece of the operator needs, and where each row they read sits among the moving rows.

    ``keep`` bool [N]: the rows that move. MF needs the remaining terms that read a moving row;
    LightGCN those within ``K`` hops of one or of a removed row's endpoint (through the new
    graph: every term whose prediction the graph change reaches, so the spillover is exact).
    BCE's terms are the training rows, found from the dataset's node→rows index, so the plan
    reads only the request's neighbourhood, and are the same in every segment. BPR's are the
    triples of each segment's last epochs (``terms.segment_epochs``; ``trace`` required), one
    term set per segment. MF works on a local table: the ``L`` rows those terms read
    (``nodes``), gathered per segment, so nothing the request does not touch is read;
    LightGCN's propagation needs the whole table (``nodes`` None, local = global ids).
    ``scorer``: a model's own scores (``TableModel``, MF-like: no graph) instead of dot products.
    ``unanchored_flow``: each segment's operator leaves out the curvature of the rows the request
    leaves unanchored (``unanchored_rows``; dot-product terms only), so they follow the gradient
    flow at Retrain's pace. ``own_moments``: Retrain's second moments on those rows are read at the
    candidate table (``RetrainPace``); the plan finds them (``TermPlan.unanchored``).
    """

    def __init__(self, dataset: RecDataset, removal: Tensor, keep: Tensor, num_layers: int,
                 new_graph: CSRGraph | None, old_graph: CSRGraph | None, device: torch.device,
                 dtype: torch.dtype, trace: TrainingTrace | None = None, scorer: Scorer | None = None,
                 epochs: int | None = BPR_EPOCHS, unanchored_flow: bool = False, own_moments: bool = False) -> None:
        self.num_layers, self.new_graph, self.old_graph, self.dtype = num_layers, new_graph, old_graph, dtype
        self.unanchored_flow, self.own_moments = unanchored_flow, own_moments
        self.loss = "bce" if trace is None else trace.loss
        self.global_rows = keep.nonzero().squeeze(1)  # moving rows, global ids [a]
        self.num_global = keep.numel()
        train = dataset.train
        reach = keep
        if num_layers > 0:
            seeds = keep.clone()
            seeds[torch.cat((train.users[removal.cpu()], train.items[removal.cpu()] + dataset.num_users)).to(keep.device)] = True
            reach = within_hops(seeds, new_graph, num_layers)
        # Per term set (global ids): (columns, labels, weights, removed, origin).
        if self.loss == "bpr":
            # Time runs in the original run's steps, each averaging its batch over n⁺ triples per epoch.
            self.scale = 1.0 / len(bpr_rows(dataset))
            sampler = NegativeSampler(dataset)
            sets = []
            for epochs_of in segment_epochs(trace, epochs):
                columns, gone, weights = bpr_terms(dataset, removal, reach, epochs_of, trace.seed, sampler)
                sets.append((tuple(c.to(device) for c in columns), torch.ones(gone.numel(), dtype=dtype, device=device),
                             weights.to(device, dtype), gone.to(device), None))
        else:
            self.scale = 1.0 / len(train)  # per n: time runs in the original run's steps
            # The training rows that reach a moving row [m], and which of them are removed.
            incident = dataset.incident_rows(reach.nonzero().squeeze(1))
            removed = torch.zeros(len(train), dtype=torch.bool)
            removed[removal.cpu()] = True
            gone = removed.index_select(0, incident)
            columns = (train.users.index_select(0, incident).to(device),
                       (train.items.index_select(0, incident) + dataset.num_users).to(device))
            # On the whole table (LightGCN) the terms' every-row sums group them by the dataset's index.
            origin = TermOrigin(dataset, incident) if num_layers > 0 else None
            sets = [(columns, train.labels.index_select(0, incident).to(device, dtype), None, gone.to(device), origin)]
        self.nodes = None
        if num_layers == 0:  # a mask and a lookup table over the N rows: O(N + s), no sort
            read = torch.zeros(self.num_global, dtype=torch.bool, device=device)
            read[self.global_rows] = True
            for columns, *_ in sets:
                for column in columns:
                    read[column] = True
            self.nodes = read.nonzero().squeeze(1)
            self.local_id = torch.full((self.num_global,), -1, dtype=torch.int64, device=device)
            self.local_id[self.nodes] = torch.arange(self.nodes.numel(), device=device)
        self.rows = self.localise(self.global_rows)  # moving rows, local ids [a]
        self.num_nodes = self.num_global if self.nodes is None else self.nodes.numel()
        self.position = torch.full((self.num_nodes,), -1, dtype=torch.int64, device=device)
        self.position[self.rows] = torch.arange(self.rows.numel(), device=device)
        self.term_plans = [TermPlan(self, Terms(tuple(self.localise(c) for c in columns), labels, weights, scorer, origin),
                                    gone) for columns, labels, weights, gone, origin in sets]
        self._memo_of, self._memo_version, self._memo = None, -1, {}
        self._squared_old_graph: CSRGraph | None = None

    def memo(self, emb: Tensor, key: object, compute: Callable[[], object]) -> object:
        """``compute()`` once per local table ``emb`` (the last one only): a segment's operator,
        removed share and influence read the same propagated tables and the same terms' sums."""
        if self._memo_of is not emb or self._memo_version != emb._version:
            self._memo_of, self._memo_version, self._memo = emb, emb._version, {}
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def terms(self, segment: int = 0) -> TermPlan:
        """The term set of ``segment`` (0-based; BCE has one for every segment)."""
        return self.term_plans[min(segment, len(self.term_plans) - 1)]

    def localise(self, nodes: Tensor) -> Tensor:
        """Global stacked-table ids [k] (every one among ``nodes``) -> local ids [k]."""
        return nodes if self.nodes is None else self.local_id.index_select(0, nodes)

    def local(self, table: Tensor) -> Tensor:
        """The plan's rows [L, d] of a global ``table`` [N, d] (any stored dtype, e.g. a
        bfloat16 snapshot) in the plan's dtype. (Rows are gathered with ``index_select`` here and
        throughout the request path: PyTorch's advanced indexing runs the same gather 4–10× slower
        on CPU.)"""
        return (table if self.nodes is None else table.index_select(0, self.nodes.to(table.device))).to(self.dtype)

    def moving(self, table: Tensor) -> Tensor:
        """The moving rows [a, d] of a global ``table`` [N, d], in the plan's dtype."""
        return table.index_select(0, self.global_rows.to(table.device)).to(self.dtype)

    def propagated_rows(self, table: Tensor, graph: CSRGraph | None, table_rows: Tensor | None = None,
                        out_rows: Tensor | None = None) -> Tensor:
        """``(P table)[rows]`` [a, d] over ``graph``'s ``num_layers`` layers for a local ``table``
        [L, d] (``table[rows]`` without layers): only the moving rows (``out_rows`` [o] of them,
        local ids, when given) are summed. ``table_rows`` (LightGCN): ``table`` is [k, d] on these
        rows (ascending), zero on the others."""
        out_rows = self.rows if out_rows is None else out_rows
        if self.num_layers == 0:
            return table.index_select(0, out_rows)
        return ops.propagate_rows(table, graph, self.num_layers, x_rows=table_rows, out_rows=out_rows)

    def scatter(self, compact: Tensor) -> Tensor:
        """A global [N, d] table, zero off the moving rows, from ``compact`` [a, d]."""
        return compact.new_zeros(self.num_global, compact.shape[1]).index_copy_(0, self.global_rows, compact)

    def table(self, emb: Tensor, graph: CSRGraph | None = None, propagated: Tensor | None = None) -> Tensor:
        """``F`` [L, d] at the local table ``emb``: ``E``, or ``P E`` over ``graph`` (default the new
        one: the remaining data; ``memo``-ised, and ``propagated`` when the caller holds it already)."""
        if self.num_layers == 0:
            return emb
        graph = graph or self.new_graph
        return self.memo(emb, ("table", graph is self.old_graph), lambda: ops.propagate(emb, graph, self.num_layers)
                         if propagated is None else propagated)

    def term_sums(self, terms: Terms, emb: Tensor, graph: CSRGraph | None = None, squared: bool = False
                  ) -> tuple[Tensor, Tensor | None]:
        """``Σ_j ℓ'_j ∂x_j/∂F`` of ``terms`` at the scoring table ``F = table(emb, graph)``;
        ``squared``: the sum of the per-term gradients' coordinate-wise squares instead
        (``removed_share``). Returns the sums [k, d] and the rows they are on: dot-product terms'
        on the rows they read (``term_rows``), a scorer's on every row (None, [L, d]). Dot-product
        terms' sums (both kinds, one pass), or the slopes and Jacobians of a scorer's terms, are
        ``memo``-ised per terms and graph."""
        if terms.dot_products:
            statistics = self.term_statistics(terms, emb, graph)
            return statistics.squared if squared else statistics.gradient, self.term_rows(terms)
        logits, jacobian = self.evaluated(terms, emb, graph)
        slope = torch.sigmoid(logits) - terms.labels[:, None]  # ℓ' [s, 1]
        if squared:
            slope, jacobian = slope.square(), [j.square() for j in jacobian]
        slope = terms.weighted(slope)
        return endpoint_sums(self.num_nodes, terms.columns, [slope * j for j in jacobian]), None

    def term_gradient(self, terms: Terms, emb: Tensor, graph: CSRGraph | None = None, squared: bool = False) -> Tensor:
        """``term_sums`` on every row of the table, [L, d]."""
        return self.every_row(*self.term_sums(terms, emb, graph, squared))

    def every_row(self, sums: Tensor, rows: Tensor | None) -> Tensor:
        """``sums`` [k, d] on ``rows`` (None: already every row) as a table [L, d], zero elsewhere."""
        return sums if rows is None else sums.new_zeros(self.num_nodes, sums.shape[1]).index_copy_(0, rows, sums)

    def summed(self, first: Tensor, first_rows: Tensor | None, second: Tensor, second_rows: Tensor | None
               ) -> tuple[Tensor, Tensor | None]:
        """``first + second`` for sums [k, d] each on its rows (ascending; None: every row), on the
        union of their rows: the same bits as adding them on every row."""
        if first_rows is None or second_rows is None:
            return self.every_row(first, first_rows) + self.every_row(second, second_rows), None
        rows = torch.unique(torch.cat((first_rows, second_rows)))  # sorted
        total = first.new_zeros(rows.numel(), first.shape[1])
        total.index_add_(0, torch.searchsorted(rows, first_rows), first)
        return total.index_add_(0, torch.searchsorted(rows, second_rows), second), rows

    def term_rows(self, terms: Terms) -> Tensor | None:
        """The rows [k] (ascending) that ``term_statistics`` sums dot-product ``terms`` on: the rows
        they read, or None for every row (``TermIncidence.touched``)."""
        return terms.incidence(self.num_nodes).touched().rows

    def on_moving(self, sums: Tensor, rows: Tensor | None) -> Tensor:
        """``sums`` [k, d] on ``rows`` (ascending; None: every row), zero elsewhere, read on the
        moving rows [a, d]."""
        if rows is None:
            return sums.index_select(0, self.rows)
        at = self.position.index_select(0, rows)  # each row's place among the moving rows, −1 off them
        kept = (at >= 0).nonzero().squeeze(1)
        return sums.new_zeros(self.rows.numel(), sums.shape[1]).index_copy_(0, at.index_select(0, kept),
                                                                             sums.index_select(0, kept))

    def evaluated(self, terms: Terms, emb: Tensor, graph: CSRGraph | None = None) -> tuple[Tensor, tuple[Tensor, ...]]:
        """``terms.evaluate`` (a scorer's terms) at ``F = table(emb, graph)``: the logits [s, 1] and
        Jacobians, ``memo``-ised per terms and graph (a segment's operator and removed share read the
        operator's, its influence and removed share the removed terms')."""
        table = self.table(emb, graph)
        return self.memo(emb, ("evaluated", id(terms), graph is self.old_graph), lambda: terms.evaluate(table))

    def term_statistics(self, terms: Terms, emb: Tensor, graph: CSRGraph | None = None) -> TermStatistics:
        """Dot-product ``terms``' sums [k, d] on the rows they read (``term_rows``) at ``F =
        table(emb, graph)``, one pass (``TermIncidence.touched``), ``memo``-ised per terms and graph."""
        table = self.table(emb, graph)
        return self.memo(emb, ("term sums", id(terms), graph is self.old_graph),
                         lambda: terms.incidence(self.num_nodes).touched().statistics(table))

    def moving_statistics(self, terms: "TermPlan", emb: Tensor, removed: bool = False) -> TermStatistics:
        """MF: the remaining (``removed``: the removed) dot-product terms' sums on the moving rows
        only [a, d] at the local table ``emb`` (``TermIncidence``), ``memo``-ised: a segment's
        operator reads the remaining ones for its preconditioner, slopes and squares, and a Newton
        correction for the true gradient at ``E + δ`` — the same pass at the same table; the
        influence and the removed share read the removed ones."""
        incidence = terms.removed_incidence if removed else terms.incidence(self, emb)
        return self.memo(emb, ("moving sums", id(terms), removed), lambda: incidence.statistics(emb, self.rows))

    def removed_gradient(self, emb: Tensor, segment: int = 0) -> Tensor:
        """MF's influence right-hand side on the moving rows [a, d] at the local table ``emb``:
        ``Σ_{j ∈ D_r, j ∋ v} ℓ'_j ∂x_j/∂f_v`` (MF has no spillover: only the removed terms)."""
        terms = self.terms(segment)
        if terms.moving_sums:  # dot products: the moving rows' sums only
            return self.moving_statistics(terms, emb, removed=True).gradient
        return self.term_gradient(terms.removed, emb).index_select(0, self.rows)

    def influence(self, emb: Tensor, segment: int = 0, spillover: bool = True) -> Tensor:
        """The influence right-hand side ``g = ∇L_d + ∇L_s`` (docs §4; sums) on the moving rows
        [a, d] at the local table ``emb``. LightGCN: ``P_oldᵀ ∇_F L(F_old)`` over the removed and
        the plan's remaining terms minus ``P_newᵀ ∇_F L(F_new)`` over the remaining ones; a
        remaining term outside the plan reads rows the graph change does not reach, so its two
        parts cancel exactly and it is left out."""
        if self.num_layers == 0:
            return self.removed_gradient(emb, segment)
        plan = self.terms(segment)
        scattered, rows = self.term_sums(plan.removed, emb, self.old_graph)
        if spillover:
            scattered, rows = self.summed(scattered, rows, *self.term_sums(plan.operator, emb, self.old_graph))
        gradient = self.propagated_rows(scattered, self.old_graph, rows)  # Pᵀ = P: the graph is symmetric
        return gradient - self.remaining_gradient(emb, segment) if spillover else gradient

    def remaining_gradient(self, emb: Tensor, segment: int = 0, system: "ResponseSystem | None" = None) -> Tensor:
        """``∇L_{-r}`` (a sum) on the moving rows [a, d] at the local table ``emb``: the plan's
        remaining terms, which are every remaining term reaching a moving row (LightGCN:
        ``P_newᵀ ∇_F L(P_new E)``; ``memo``-ised: the influence's spillover reads it too).
        ``system``: the segment's operator at ``emb``, whose slopes MF reads instead of evaluating
        the terms again (as ``removed_share`` does)."""

        def compute() -> Tensor:
            if system is not None and self.num_layers == 0:  # MF: the operator at ``emb`` has the slopes
                return system.remaining_gradient()
            if self.terms(segment).moving_sums:  # MF dot products: the moving rows' sums only
                return self.moving_statistics(self.terms(segment), emb).gradient
            sums, rows = self.term_sums(self.terms(segment).operator, emb)
            return self.propagated_rows(sums, self.new_graph, rows)

        return self.memo(emb, ("remaining", segment), compute)

    @property
    def squared_old_graph(self) -> CSRGraph | None:
        """``P∘P`` of the original graph (LightGCN; ``removed_share``), built once per request."""
        if self._squared_old_graph is None and self.num_layers > 0:
            self._squared_old_graph = squared_weights(self.old_graph)
        return self._squared_old_graph

    def squared_gradients(self, emb: Tensor, segment: int = 0, removed: bool = False,
                          system: "ResponseSystem | None" = None) -> Tensor:
        """``Σ_{j ∋ v} ℓ'_j² (∂x_j/∂f_v)²`` [a, d] on the moving rows at the local table ``emb``: the
        removed terms' (``removed``) or the remaining ones', over the ORIGINAL graph (LightGCN carries
        the squares to the base rows through ``P∘P``, cross terms of different paths dropped). MF's
        remaining terms' come from the operator at the same table (``system``) when given, else from
        the pass that gives their gradient there (``moving_statistics``)."""
        plan = self.terms(segment)
        if not removed and system is not None and self.num_layers == 0:
            return system.remaining_squares()
        if plan.moving_sums:
            return self.moving_statistics(plan, emb, removed=removed).squared
        sums, rows = self.term_sums(plan.removed if removed else plan.operator, emb, self.old_graph, squared=True)
        return self.propagated_rows(sums, self.squared_old_graph, rows)

    def own_squares(self, emb: Tensor, segment: int = 0) -> Tensor:
        """``squared_gradients`` of the remaining terms on the own rows only (``TermPlan.own_rows``)
        [o, d] at the local table ``emb``: MF reads them off the pass that gives the remaining
        gradient there; LightGCN sums only the terms that reach them (``TermPlan.own_terms``)."""
        plan = self.terms(segment)
        if plan.moving_sums:
            return self.moving_statistics(plan, emb).squared.index_select(0, plan.own_rows)
        sums, rows = self.term_sums(plan.own_terms, emb, self.old_graph, squared=True)
        return self.propagated_rows(sums, self.squared_old_graph, rows, self.rows.index_select(0, plan.own_rows))

    def removed_share(self, emb: Tensor, system: "ResponseSystem | None" = None, segment: int = 0) -> Tensor:
        """ρ [a, d] on the moving rows: the removed terms' share of each coordinate's squared
        per-term gradients (``squared_gradients``).

        Adam's ``v̂`` of a coordinate is the running mean over steps of its squared batch
        gradients, and a row's terms rarely share a batch. Retrain's epoch has ``m/B`` steps
        instead of ``n/B`` and lacks the removed terms' hits, so its ``v̂`` is ``v̂ (1 − ρ) n/m``:
        on rows whose removed terms dominated their gradients (ρ above the average, e.g.
        poisoned rows) Retrain takes larger steps. Per term the gradient at row ``v`` is
        ``ℓ' ∂x/∂f_v`` (BCE at ``f_u``: ``ℓ' f_i``), over the ORIGINAL graph.
        """
        return self.removed_and_total(emb, system, segment)[0]

    def removed_and_total(self, emb: Tensor, system: "ResponseSystem | None" = None, segment: int = 0
                          ) -> tuple[Tensor, Tensor]:
        """``removed_share`` ρ [a, d] and the squared per-term gradients of every term [a, d] (1
        where there are none) it is the share of."""
        gone = self.squared_gradients(emb, segment, removed=True)
        total = gone + self.squared_gradients(emb, segment, system=system)  # ≥ gone ≥ 0: where 0, so is gone: ρ = 0/1
        total.masked_fill_(total == 0, 1.0)
        return gone / total, total

    def system(self, emb: Tensor, diagonal: Tensor | None = None, segment: int = 0) -> "ResponseSystem":
        """The operator ``G + diag(diagonal)`` of ``segment``'s terms at the local table ``emb``
        [L, d] (``local``); ``diagonal`` [a, d] on the moving rows (or later, by ``set_diagonal``)."""
        return ResponseSystem(self, emb, diagonal, segment)


class ResponseSystem:
    """``v ↦ (G + Λ + λ) v`` on the moving rows, Jacobi-preconditioned, in compact coordinates:
    vectors are ``[a, d]`` over the plan's moving rows (sorted).

    ``G = Σ_j ℓ''_j J_jᵀ J_j / n`` over the segment's remaining terms, ``J_j`` the term's
    Jacobian (``Terms.evaluate``); LightGCN's is ``Pᵀ G(F) P`` through the new graph over the
    terms within ``K`` hops. Restricted to the moving rows, a product reads only the terms that
    reach one, so an iteration costs what the request touches. Dot products (BCE pairs, BPR
    triples): the fused ``ops.plan_gauss_newton`` (its index work done once per request,
    ``TermPlan.gauss_newton``); a ``TableModel``'s scores: gathers and scatters over their
    Jacobians. The
    preconditioner is ``G``'s diagonal plus the damping (dot products: ``TermIncidence.statistics``
    over the moving rows, with the remaining gradient and squares in the same pass): CG then needs about twice the
    iterations of an inverted d×d block preconditioner, whose blocks, factorisations and
    batched products cost more than those iterations (BookCrossing MF, 2%, CG to 1e-4: 29 against 13, the
    same δ to 3e-5).
    """

    def __init__(self, plan: ResponsePlan, emb: Tensor, diagonal: Tensor | None = None, segment: int = 0) -> None:
        self.plan = plan
        self.terms = terms = plan.terms(segment)
        operator = terms.operator
        self._emb, self._emb_version, self._fused = emb, emb._version, None
        # F: E for MF and a TableModel, P E for LightGCN (the fused plan propagated it already).
        self.table = plan.table(emb, propagated=None if plan.num_layers == 0 else self.fused.propagated)
        # diag(G)_v = Σ_{j ∋ v} ℓ''_j (∂x_j/∂f_v)² / n per coordinate (MF; the self-path share
        # 1/(K+1)² of it for LightGCN): with the damping, the Jacobi preconditioner. ℓ''/n and
        # ℓ'² per term summed against the squared Jacobians (dot products: ``TermIncidence.statistics``,
        # which applies the terms' multiplicity).
        if terms.moving_sums:  # MF
            self.moving_statistics = plan.moving_statistics(terms, self.table)
            curvature_sums = self.moving_statistics.curvature * plan.scale
        elif operator.dot_products:  # LightGCN: at this table, as the remaining gradient reads them
            curvature_sums = plan.on_moving(plan.term_statistics(operator, emb).curvature,
                                            plan.term_rows(operator)) * plan.scale
        else:
            logits, self.jacobian = plan.evaluated(operator, emb)
            self.prob = torch.sigmoid(logits)
            self.weight = operator.weighted(self.prob * (1 - self.prob) * plan.scale)  # ℓ''/n [s, 1]
            self.squared = tuple(j.square() for j in self.jacobian)
            curvature_sums = self.slot_sums([self.weight * s for s in self.squared])
        self.curvature_diagonal = curvature_sums / (plan.num_layers + 1) ** 2
        # Rows the request leaves unanchored follow the gradient flow: their rows and columns of G
        # are left out (G restricted to the other rows stays positive semi-definite), so their
        # equations are the damping alone. [a, 1], or None.
        self.anchored = None
        if terms.unanchored is not None and plan.unanchored_flow:
            self.anchored = (~terms.unanchored).to(self.curvature_diagonal.dtype)[:, None]
            self.curvature_diagonal = self.curvature_diagonal * self.anchored
        if diagonal is not None:
            self.set_diagonal(diagonal)

    @property
    def fused(self) -> ops.HVPPlan | None:
        """The fused Gauss–Newton operator at this system's table (dot-product terms; None for a
        ``TableModel``'s), built by the first product (LightGCN: with the system, whose ``F`` it
        propagates): a segment whose Newton steps start from the previous segment's answer reads
        its own system's diagonal and slopes, never its products (BookCrossing MF, 8% poisoned rows,
        ``ifru-trajectory``: 4 of 20 operators unused, ~2.3 ms each)."""
        if self._fused is None and self.terms.multiplicity is not None:
            if self._emb._version != self._emb_version:
                raise RuntimeError("ResponseSystem: its table was modified in place before its first product")
            self._fused = self.terms.gauss_newton(self.plan, self._emb)
        return self._fused

    def set_diagonal(self, diagonal: Tensor) -> None:
        """The damping ``Λ + λ`` [a, d] on the moving rows, and the preconditioner with it."""
        self.diagonal = diagonal
        self.inverse_diagonal = (self.curvature_diagonal + diagonal).reciprocal_()

    def remaining_squares(self) -> Tensor:
        """``Σ_{j ∈ D_{-r}, j ∋ v} ℓ'_j² (∂x_j/∂f_v)²`` [a, d] at this table (MF: ``removed_share``'s
        remaining part, from the Jacobians the operator already holds)."""
        if self.terms.moving_sums:
            return self.moving_statistics.squared
        operator = self.terms.operator
        slope = operator.weighted((self.prob - operator.labels[:, None]).square())
        return self.slot_sums([slope * s for s in self.squared])

    def remaining_gradient(self) -> Tensor:
        """``Σ_{j ∈ D_{-r}, j ∋ v} ℓ'_j ∂x_j/∂f_v`` [a, d] at this table (MF:
        ``ResponsePlan.remaining_gradient`` from the logits the operator already holds)."""
        if self.terms.moving_sums:
            return self.moving_statistics.gradient
        operator = self.terms.operator
        slope = operator.weighted(self.prob - operator.labels[:, None])
        return self.slot_sums([slope * j for j in self.jacobian])

    def slot_sums(self, values: list[Tensor]) -> Tensor:
        """Per-term values [s, d], one per column, summed onto the moving rows [a, d] (rows that do
        not move dropped)."""
        return endpoint_sums(self.plan.rows.numel() + 1, self.terms.slots, values)[:-1]

    def apply(self, v: Tensor) -> Tensor:
        if self.anchored is not None:
            return self.curvature_product(v * self.anchored).mul_(self.anchored).addcmul_(self.diagonal, v)
        return self.curvature_product(v).addcmul_(self.diagonal, v)

    def curvature_product(self, v: Tensor) -> Tensor:
        """``G v`` [a, d] for ``v`` [a, d] on the moving rows (a fresh tensor)."""
        if self.fused is not None:
            return self.fused.local(v)
        # A TableModel (no graph): G v = Σ ℓ'' (J v) Jᵀ, J v = Σ_c J_c·v_{slot c}, v read at the
        # terms' slots (the extra zero row for a row that does not move).
        padded = torch.cat((v, v.new_zeros(1, v.shape[1])))
        jv = sum((padded.index_select(0, slots) * jacobian).sum(1, keepdim=True)
                 for slots, jacobian in zip(self.terms.slots, self.jacobian))
        return self.slot_sums([self.weight * jv * j for j in self.jacobian])

    def precondition(self, r: Tensor) -> Tensor:
        return r * self.inverse_diagonal

    def solve(self, rhs: Tensor, tol: float, max_iter: int, select: Callable[[Tensor], float] | None = None
              ) -> tuple[Tensor, SolveReport]:
        """``(G + Λ + λ)⁻¹ rhs`` [a, d] on the moving rows for ``rhs`` [a, d]; ``select``
        (optional) scores iterates as global tables (``ResponsePlan.scatter``). The residual
        reported is CG's recursion's: on BookCrossing's requests (MF 0.1 / 2 / 8%, LightGCN 1%)
        it equals the one recomputed from the answer to 6 digits, and recomputing it took one
        more product per request (LightGCN 1%: ~5% of the request)."""
        return conjugate_gradient(self.apply, rhs, tol=tol, max_iter=max_iter, preconditioner=self.precondition,
                                  select=None if select is None else (lambda t: select(self.plan.scatter(t))),
                                  true_residual=False)


class RetrainPace:
    """Retrain's pace over one segment of the run, on the moving rows [a, d]: its damping ``Λ'``
    (Adam's accumulated step scale over the segment's ``steps`` with Retrain's ``v̂``, inverted) and
    the step's drive ``ρ g/n + (ρ − 1)(∇L_{-r}(E_s)/n + λ E_s)``, ``ρ = Λ'/Λ`` (module docstring).

    Retrain's ``v̂`` is the Original's ``moment`` without the removed terms' share of the squared
    per-term gradients at the segment's table (``ResponsePlan.removed_share``), times ``n/m``
    (``retrain_moment``, ``retrain_damping`` and ``drive`` [a, d]). ``own_rows``
    (``UnlearnConfig.own_moments``; int64 [o] positions among the moving rows, or None): on some rows —
    the ones the request leaves unanchored, whose remaining terms all carry one label — the share is read at
    the candidate table instead (``at``): without the removed terms their logits saturate, their
    gradients and Retrain's own ``v̂`` fade, and Retrain's steps grow past what the Original's table
    says (reports/fidelity-poison-tail). Other rows keep the segment table's pace to the bit.

    ``at_table`` [L, d] the segment's local table, ``system`` its operator there, ``moment`` [a, d]
    the Original's ``v̂`` at the segment's end, ``removed`` the removed terms per epoch, ``gradient``
    [a, d] the influence right-hand side (a sum)."""

    def __init__(self, plan: ResponsePlan, trace: TrainingTrace, at_table: Tensor, segment: int,
                 system: "ResponseSystem", moment: Tensor, steps: int, removed: int, gradient: Tensor) -> None:
        n = round(1.0 / plan.scale)
        self.trace, self.steps, self.moment, self.boost, self.scale = trace, steps, moment, n / (n - removed), plan.scale
        self.damping = training_damping(trace, moment, steps)  # the Original's Λ [a, d]
        share, self.total = plan.removed_and_total(at_table, system, segment)
        self.kept_share = 1 - share
        self.gradient = gradient
        self.remaining = (plan.remaining_gradient(at_table, segment, system) * plan.scale
                          + trace.l2 * at_table.index_select(0, plan.rows))
        self.own_rows = plan.terms(segment).own_rows
        self.retrain_moment, self.retrain_damping, self.drive = self._paced(self.kept_share)

    def _paced(self, kept_share: Tensor, rows: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Retrain's ``v̂``, ``Λ'`` and the drive for the remaining terms' share ``kept_share`` [a, d] of
        ``v̂`` (on the moving rows ``rows`` [o] only, ``kept_share`` [o, d], when given)."""
        def on(values: Tensor) -> Tensor:
            return values if rows is None else values.index_select(0, rows)

        retrain_moment = on(self.moment) * kept_share * self.boost
        retrain_damping = training_damping(self.trace, retrain_moment, self.steps)
        pace = retrain_damping / on(self.damping)  # Π/Π' per coordinate
        return retrain_moment, retrain_damping, pace * on(self.gradient) * self.scale + (pace - 1) * on(self.remaining)

    def at(self, own_squares: Tensor) -> tuple[Tensor, Tensor]:
        """``(Λ', drive)`` [a, d] each with the own rows' ``v̂`` read from the remaining terms'
        squared per-term gradients ``own_squares`` [o, d] there at the candidate table; every other
        row keeps the segment table's."""
        rows = self.own_rows
        _, retrain_damping, drive = self._paced(own_squares / self.total.index_select(0, rows), rows)
        return self.retrain_damping.index_copy(0, rows, retrain_damping), self.drive.index_copy(0, rows, drive)


class StepEquation:
    """One implicit step over ``length`` of a segment from ``previous`` [a, d] (None: δ = 0), on
    the moving rows: ``diagonal ⊙ δ + (∇L_{-r}(E + δ) − ∇L_{-r}(E))/n = rhs`` with the damping over
    the step ``Λ'/length`` (``pace``), ``diagonal = Λ'/length + λ`` and ``rhs = drive + (Λ'/length) ⊙
    previous``. Both are fixed (``start``) unless the pace reads Retrain's ``v̂`` at the candidate
    (``reads_candidate``; ``at``)."""

    def __init__(self, pace: RetrainPace, length: float, previous: Tensor | None, l2: float) -> None:
        self.pace, self.length, self.previous, self.l2 = pace, length, previous, l2
        self.start = self._terms(pace.retrain_damping, pace.drive)
        self.reads_candidate = pace.own_rows is not None

    def _terms(self, damping: Tensor, drive: Tensor) -> tuple[Tensor, Tensor]:
        damping = damping if self.length == 1.0 else damping / self.length
        return (drive if self.previous is None else drive + damping * self.previous), damping + self.l2

    def at(self, plan: ResponsePlan, moved: Tensor, segment: int) -> tuple[Tensor, Tensor]:
        """``(rhs, diagonal)`` [a, d] each at the candidate local table ``moved`` (``reads_candidate``)."""
        return self._terms(*self.pace.at(plan.own_squares(moved, segment)))


# A correction that does not reduce the step equation's residual is halved, at most this often,
# before the corrections stop: Newton's step is only sure to help close to the answer.
_BACKTRACKS = 4


def _corrected(plan: ResponsePlan, at: Tensor, segment: int, rhs: Tensor, diagonal: Tensor, delta: Tensor,
               corrections: int, tol: float, max_iter: int, lap: Callable[[str], None], give_up_far: bool = False,
               reread: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None) -> tuple[Tensor, SolveReport, int]:
    """``delta`` [a, d] after up to ``corrections`` Newton steps on one segment's equation
    ``diagonal ⊙ δ + (∇L_{-r}(E + δ) − ∇L_{-r}(E))/n = rhs`` at the local table ``at``. A step is
    solved to the linear solve's absolute accuracy (``tol ‖rhs‖``; none is taken once the
    equation holds to it) and kept only where it reduces the equation's residual (halved up to
    ``_BACKTRACKS`` times, else the corrections stop). Returns δ, a report (None without a step:
    its residual is the equation's at δ relative to ``rhs``, ``converged`` when within ``tol``,
    ``stalled`` when no step lowered it, else ``max_iter``: the steps ran out first; the last
    solve's own residual is relative to the residual it solved for, and says nothing about the
    equation) and the CG iterations spent. ``give_up_far``: a start no nearer than δ = 0 (its
    residual at least ``rhs``'s) is reported ``stalled`` without a step (an adaptive walk retakes
    the step shorter instead of spending corrections on it). ``reread`` (``StepEquation.at``): the
    equation's ``(rhs, diagonal)`` depend on the candidate, read at each candidate local table
    (``rhs``, ``diagonal``: δ = 0's); the Newton step leaves that dependence out."""
    remaining = plan.remaining_gradient(at, segment)
    # The local table at E + δ: one copy of ``at`` whose moving rows each evaluation overwrites in
    # place (copying the whole table per evaluation was ~5% of a nonlinear request). The operator
    # of a step is built at it and used before the next evaluation edits it; the plan's memo and
    # the operator's table check follow its version.
    moved, start = at.clone(), at.index_select(0, plan.rows)
    start_norm = float(rhs.norm())

    def residual_at(candidate: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        moved.index_copy_(0, plan.rows, start + candidate)
        change = (plan.remaining_gradient(moved, segment) - remaining) * plan.scale
        here, diagonal_here = (rhs, diagonal) if reread is None else reread(moved)
        return here - diagonal_here * candidate - change, here, diagonal_here

    residual, rhs, diagonal = residual_at(delta)
    rhs_norm = start_norm if reread is None else float(rhs.norm())
    norm, iterations, report, stalled = residual.norm(), 0, None, False
    if give_up_far and float(norm) >= start_norm:  # no nearer than δ = 0, whose residual is its rhs
        return delta, SolveReport(0, float(norm) / rhs_norm, "stalled"), 0
    for step in range(1, corrections + 1):
        accuracy = tol * rhs_norm
        if float(norm) <= accuracy:
            break
        system = plan.system(moved, diagonal, segment)
        lap("operator")
        correction, report = system.solve(residual, accuracy / float(norm), max_iter)
        iterations += report.iterations
        lap("solve")
        for _ in range(_BACKTRACKS + 1):
            trial, trial_rhs, trial_diagonal = residual_at(delta + correction)
            trial_norm = trial.norm()
            if trial_norm < norm:  # ``moved`` now holds E + δ + correction
                delta, residual, norm, rhs, diagonal = delta + correction, trial, trial_norm, trial_rhs, trial_diagonal
                rhs_norm = rhs_norm if reread is None else float(rhs.norm())
                break
            correction = correction / 2
        else:
            stalled = True
            break
    if report is not None:
        report = SolveReport(report.iterations, float(norm) / rhs_norm,
                             "converged" if float(norm) <= tol * rhs_norm else "stalled" if stalled else "max_iter")
    return delta, report, iterations


# A segment whose Newton corrections stall is walked in shorter implicit steps, down to this
# fraction of it (``_walk_segment``).
_SHORTEST_STEP = 1 / 16


def _implicit_step(plan: ResponsePlan, at: Tensor, segment: int, system: "ResponseSystem", equation: StepEquation,
                   corrections: int, tol: float, max_iter: int, lap: Callable[[str], None],
                   select: Callable[[Tensor], float] | None = None, give_up_far: bool = False
                   ) -> tuple[Tensor, SolveReport, int]:
    """One implicit step, ``equation`` (``StepEquation``: from ``previous``, None: δ = 0), at the
    local table ``at``: ``δ`` [a, d] solving ``(G + Λ' + λ) δ = Λ' δ_prev + drive`` (the equation at
    its start, linearised), with ``corrections`` Newton steps on its own equation (``_corrected``).
    A step after the first starts its Newton steps (``corrections + 1``) from ``previous``, where
    Retrain's table is nearer than at δ = 0 (the linear solve's start); if no step lowers the
    residual there, the linear solve and its corrections answer instead. Returns δ, the report
    (``stalled`` where the corrections could not lower the equation's residual; ``give_up_far``: as
    ``_corrected``'s) and the CG iterations spent."""
    rhs, diagonal = equation.start
    system.set_diagonal(diagonal)
    previous = equation.previous
    reread = (lambda moved: equation.at(plan, moved, segment)) if equation.reads_candidate else None
    delta, report, iterations = previous, None, 0
    if corrections and select is None and previous is not None:
        delta, report, iterations = _corrected(plan, at, segment, rhs, system.diagonal, previous, corrections + 1,
                                               tol, max_iter, lap, give_up_far, reread)
    if delta is previous:
        delta, report = system.solve(rhs, tol, max_iter, select)
        iterations += report.iterations
        lap("solve")
        if corrections and select is None:
            delta, corrected, extra = _corrected(plan, at, segment, rhs, system.diagonal, delta, corrections,
                                                 tol, max_iter, lap, give_up_far, reread)
            report, iterations = corrected or report, iterations + extra
    return delta, report, iterations


def _walk_segment(plan: ResponsePlan, at: Tensor, segment: int, system: "ResponseSystem", pace: RetrainPace,
                  l2: float, previous: Tensor | None, corrections: int, tol: float, max_iter: int,
                  lap: Callable[[str], None], select: Callable[[Tensor], float] | None = None,
                  adaptive: bool = False) -> tuple[Tensor, SolveReport, int]:
    """``δ`` [a, d] at the end of one segment from ``previous`` (None: δ = 0), Retrain's pace over
    the whole segment ``pace``: one implicit step (``_implicit_step``), or with ``adaptive`` as many
    as its Newton corrections need. Returns δ, the last step's report and the CG iterations spent.

    The step is implicit Euler over the whole segment, and where the remaining loss is far from
    linear over that distance its corrections stall — the first segment, from the initial table to
    the first snapshot, read where the terms are already fitted, on a large request: on the
    100K-shaped file's 8% poisoned-row request its linear answer's residual was 1.03 of the
    equation's at δ = 0, and stayed there with two corrections or ten. ``adaptive`` then walks the
    segment as an adaptive implicit integrator does: a step that stalls (``_corrected``: no Newton
    step lowers its residual, or it starts no nearer than δ = 0) is taken again at half the
    length (``Λ'`` doubled; the same table, drive and operator: no new snapshot), down to
    ``_SHORTEST_STEP`` of the segment, and the rest of the segment in steps of the length that
    held. A step that stalls at the shortest length is kept as it is."""
    length, position, iterations = 1.0, 0.0, 0
    delta = previous
    while position < 1.0:
        length = min(length, 1.0 - position)
        retakable = adaptive and length > _SHORTEST_STEP  # a stalled step may still be halved
        answer, report, spent = _implicit_step(plan, at, segment, system, StepEquation(pace, length, delta, l2),
                                               corrections, tol, max_iter, lap, select, give_up_far=retakable)
        iterations += spent
        if retakable and report.status == "stalled":
            length /= 2
            continue
        delta, position = answer, position + length
    return delta, report, iterations


def training_response(emb: Tensor, trace: TrainingTrace, plan: ResponsePlan, removed: int,
                      gradient: Callable[[Tensor, int], Tensor], tol: float, max_iter: int,
                      lap: Callable[[str], None], select: Callable[[Tensor], float] | None = None,
                      corrections: int = 0, validation: Callable[[Tensor], float] | None = None,
                      trajectory: Callable[[int, Tensor], float] | None = None, adaptive_steps: bool = False
                      ) -> tuple[Tensor, SolveReport, int]:
    """``δ`` [a, d] on the plan's moving rows, segment by segment along the run.

    ``emb``: the trained table [N, d]; ``removed``: ``r`` (the removed terms per epoch: rows for
    BCE, positives for BPR); ``gradient(F, segment)``: the influence right-hand side on the
    moving rows [a, d] at a local table [L, d] (``ResponsePlan.local``) for a 0-based segment;
    ``select`` (optional, last segment only) scores iterates. Only the plan's rows of the trace's
    tables are read. Returns ``δ`` and a report summing the CG iterations of every segment.

    ``corrections``: Newton steps per segment on the step's own equation. The linear system
    stands for the remaining loss's gradient change ``(∇L_{-r}(E + δ) − ∇L_{-r}(E))/n`` by
    ``G δ``; Retrain's table differs from the Original's by about its own size, so the two
    differ (BookCrossing MF, 8% poisoned rows: by 3× the right-hand side in the first segment of
    the displacement form).
    Each correction evaluates the true change at ``E + δ`` and solves the step's Newton system
    there (the Gauss–Newton operator at ``E + δ``) for the residual (a selected iterate is kept
    as selected). A segment after the first starts its Newton steps (``corrections + 1``) from
    the previous segment's answer instead of its linear answer: the same equation from a nearer
    start, one solve fewer (BookCrossing MF, 8% poisoned rows, k = 2: forget completeness 0.824
    against 0.821 in 1.13 s against 1.41 s).

    ``validation`` (optional): the validation AUC of the answer a ``δ`` gives; with it the
    response runs on past the returned epoch by Retrain's stopping rule (``_extended``).

    ``trajectory`` (optional; not with ``validation``): ``trajectory(k, δ)``, the validation AUC
    of the answer ``δ`` gives on the table the run reached ``k`` epochs past the returned one
    (``trace.tail``; k = 0 the returned table). With it the response goes on along the run's own
    tail, one segment per epoch (each read at that epoch's table and second moments, as the
    recorded ones), and stops at the first epoch whose answer scores no higher than the best so
    far: Retrain's early stopping, applied to the estimate of Retrain at each epoch. Returns δ,
    the report and the epoch past the returned one it answers at (0 without ``trajectory``).

    ``adaptive_steps``: a segment whose implicit step stalls is walked in shorter steps
    (``_walk_segment``); without it every segment is one step.
    """
    delta, iterations, report = None, 0, None
    segments = trace.segments()
    recorded = len(segments)
    if trajectory is not None:
        segments = segments + trace.tail_segments()
    best: tuple[float, int, Tensor, SolveReport] | None = None  # trajectory: score, epoch past the returned one, δ
    for number, (steps, table, second_moment) in enumerate(segments, start=1):
        at = plan.local(emb if table is None else table)
        system = plan.system(at, segment=number - 1)
        pace = RetrainPace(plan, trace, at, number - 1, system, plan.moving(second_moment), steps, removed,
                           gradient(at, number - 1))
        lap("operator")
        # The returned epoch's segment's report is the request's; only its iterates may be selected.
        selecting = select is not None and number == recorded
        delta, report, extra = _walk_segment(plan, at, number - 1, system, pace, trace.l2, delta, corrections, tol,
                                             max_iter, lap, select if selecting else None, adaptive_steps)
        iterations += extra
        if trajectory is not None and number >= recorded:
            score = trajectory(number - recorded, delta)
            lap("trajectory")
            if best is not None and not score > best[0]:
                break
            best = (score, number - recorded, delta, report)
    if best is not None:
        _, epochs_past, delta, report = best
        return delta, SolveReport(iterations, report.residual, report.status), epochs_past
    if validation is not None:
        # the last segment ends at the returned epoch: its system, second moments and drive carry on
        delta, extra = _extended(trace, system, pace.retrain_moment, pace.drive, delta, validation, tol, max_iter)
        iterations += extra
        lap("solve")
    return delta, SolveReport(iterations, report.residual, report.status), 0


def _extended(trace: TrainingTrace, system: "ResponseSystem", retrain_moment: Tensor, drive: Tensor, delta: Tensor,
              validation: Callable[[Tensor], float], tol: float, max_iter: int) -> tuple[Tensor, int]:
    """``δ`` [a, d] at the epoch Retrain's early stopping would return, and the CG iterations spent.

    Retrain stops where its own validation AUC peaks, and without ``D_r`` that can be later than
    the Original's peak (a clean run keeps improving where a poisoned one has stopped: BookCrossing
    MF, 8% flipped labels, 1.4–1.7× the epochs; reports/fidelity-endpoint/horizon). Linearised,
    Retrain's table after epoch ``T + k`` is the Original's there plus the response ``δ_k``;
    only the Original's validation AUC there is known (``trace.validation_tail``, the epochs it
    ran past its best before its patience ran out), so Retrain's curve is read as that plus the
    answer's own change, ``tail[k] + AUC(δ_k)``, followed while it rises (Retrain's patience reads
    a noisy curve; this one is the smooth linearised answer plus the recorded tail, and on every
    request measured it rose to a single peak and fell from there).
    ``δ_k`` continues the last segment one epoch at a time from the returned table (its operator,
    second moments and drive ``drive`` [a, d]), one implicit step each:
    ``(G + Λ'_1 + λ) δ_k = Λ'_1 δ_{k−1} + drive`` with ``Λ'_1`` Retrain's damping over one epoch
    (``retrain_moment`` [a, d] its v̂). ``k = 0`` is the recorded horizon, so the rule can only
    lengthen the response, never veto it."""
    tail = trace.validation_tail
    epoch_steps = max(round(trace.steps / max(trace.best_epoch, 1)), 1)
    damping = training_damping(trace, retrain_moment, epoch_steps)
    system.set_diagonal(damping + trace.l2)
    best, best_score, iterations = delta, tail[0] + validation(delta), 0
    for epoch_after in range(1, len(tail)):
        current, report = system.solve(drive + damping * best, tol, max_iter)
        iterations += report.iterations
        score = tail[epoch_after] + validation(current)
        if not score > best_score:
            break
        best, best_score = current, score
    return best, iterations
