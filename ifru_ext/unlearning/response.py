"""The training-aware linear response: IFRU's estimate of Retrain for an early-stopped model.

Retrain is not a minimiser of ``L_{-r}``: it is Adam, run from the same initial table for
about as long as the original run, on ``D_{-r}``. Linearising both runs around the original
trajectory (docs/ARCHITECTURE.md §6), their difference ``δ`` follows

    dδ/dt = −η Π' (G δ − g/n) + (Π'/Π − 1) dE/dt

in the original run's steps ``t``: ``G`` the Gauss–Newton curvature of the remaining loss
(summed over ``D_{-r}``, per ``n = |D|``: each step averages its batch over ``n`` rows; an epoch
of Retrain takes ``m/B`` steps averaging over ``m = |D_{-r}|``, the same per epoch), ``g`` the
influence right-hand side (removed terms plus, for LightGCN, the spillover), ``Π = 1/(√v̂ + ε)``
Adam's per-coordinate step scale and ``Π'`` Retrain's (``removed_gradient_share``), ``dE/dt``
the run's own velocity. Cut at the snapshots of the ``TrainingTrace``, each segment of
``n_s`` steps is one implicit step,

    (G_s + Λ'_s) δ_s = Λ'_s δ_{s−1} + g_s/n + (Λ_s − Λ'_s)(E_s − E_{s−1}),   Λ = 1/(η n_s Π),

solved by preconditioned CG (``G + Λ'`` is positive definite: Gauss–Newton has no negative
curvature). Directions the data constrain strongly get the Newton step ``G⁻¹g/n``; flat
directions, which an early-stopped run never travelled far along, the gradient-flow step
``η n_s Π g/n``. Every constant comes from the model's ``TrainingTrace``; nothing is tuned.

Exactness where it is free: a row whose every training interaction is removed gets no
gradient under Retrain, so it keeps its initial value; it is set to ``trace.initial``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .. import ops
from ..data import RecDataset
from ..graph import CSRGraph
from ..models import Recommender
from ..models.trace import TrainingTrace
from .base import SolveReport
from .curvature import GramPlan
from .objective import squared_weights
from .solvers import conjugate_gradient

__all__ = ["ResponsePlan", "ResponseSystem", "orphaned_rows", "training_damping", "training_response",
           "training_trace"]


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


def orphaned_rows(dataset: RecDataset, removal: Tensor, device: torch.device) -> Tensor:
    """bool [N]: rows with training interactions, none of which remains after ``removal``
    (found from the removed rows' endpoints and their degrees: O(r), not O(n))."""
    train = dataset.train
    endpoints, removed = torch.unique(torch.cat((train.users[removal], train.items[removal] + dataset.num_users)),
                                      return_counts=True)
    orphans = torch.zeros(dataset.num_users + dataset.num_items, dtype=torch.bool)
    orphans[endpoints[removed == dataset.degree(endpoints)]] = True
    return orphans.to(device)


def endpoint_sums(num_rows: int, users: Tensor, items: Tensor, to_users: Tensor, to_items: Tensor) -> Tensor:
    """``out [num_rows, d]`` with ``to_users[j]`` added at row ``users[j]`` and ``to_items[j]`` at
    ``items[j]``: the scatter every per-interaction sum of the estimator ends in."""
    out = to_users.new_zeros(num_rows, to_users.shape[1])
    out.index_add_(0, users, to_users)
    out.index_add_(0, items, to_items)
    return out


class ResponsePlan:
    """What stays fixed across the segments of one request: the moving rows, the interactions
    each piece of the operator needs, and where each endpoint sits among the moving rows.

    ``keep`` bool [N]: the rows that move. MF needs the remaining interactions with an
    endpoint on a moving row; LightGCN those within ``K`` hops of one (through the new graph).
    The interactions come from the dataset's node→rows index, so the plan reads only the
    request's neighbourhood. MF works on a local table: the ``L`` rows those interactions
    touch (``nodes``), gathered per segment, so nothing the request does not touch is read;
    LightGCN's propagation needs the whole table (``nodes`` None, local = global ids).
    """

    def __init__(self, dataset: RecDataset, removal: Tensor, keep: Tensor, num_layers: int,
                 new_graph: CSRGraph | None, old_graph: CSRGraph | None, device: torch.device,
                 dtype: torch.dtype) -> None:
        self.num_layers, self.new_graph, self.old_graph, self.dtype = num_layers, new_graph, old_graph, dtype
        self.scale = 1.0 / len(dataset.train)  # per n: time runs in the original run's steps
        self.global_rows = keep.nonzero().squeeze(1)  # moving rows, global ids [a]
        self.num_global = keep.numel()
        reach = keep
        if num_layers > 0:
            reach = ops.propagate(keep.to(dtype)[:, None], new_graph, num_layers)[:, 0] > 0
        # The training rows that reach a moving row [m], and which of them are removed.
        incident = dataset.incident_rows(reach.nonzero().squeeze(1))
        gone = torch.isin(incident, removal.cpu())
        train = dataset.train
        users, items = train.users[incident].to(device), (train.items[incident] + dataset.num_users).to(device)
        labels = train.labels[incident].to(device, dtype)
        gone = gone.to(device)
        self.nodes = torch.unique(torch.cat((self.global_rows, users, items))) if num_layers == 0 else None
        self.rows = self.localise(self.global_rows)  # moving rows, local ids [a]
        self.num_nodes = self.num_global if self.nodes is None else self.nodes.numel()
        self.position = torch.full((self.num_nodes,), -1, dtype=torch.int64, device=device)
        self.position[self.rows] = torch.arange(self.rows.numel(), device=device)
        users, items = self.localise(users), self.localise(items)
        # Operator: the remaining interactions that reach a moving row, [s]; the removed ones [g].
        self.users, self.items, self.labels = users[~gone], items[~gone], labels[~gone]
        self.removed_users, self.removed_items, self.removed_labels = users[gone], items[gone], labels[gone]
        # Compact endpoints: the position of each endpoint among the moving rows, or a (= the
        # index of an extra zero row) for an endpoint that does not move.
        slot = torch.where(self.position >= 0, self.position, self.rows.numel())
        self.user_slots, self.item_slots = slot[self.users], slot[self.items]
        if num_layers == 0:
            # MF: G on the moving rows is its d×d diagonal blocks (both directions of the
            # interactions whose own endpoint moves) plus the cross terms of the interactions
            # whose two endpoints both move.
            own, other = torch.cat((self.users, self.items)), torch.cat((self.items, self.users))
            moving_own = self.position[own] >= 0
            self.block_pick = moving_own.nonzero().squeeze(1)  # into the doubled [2s] interactions
            self.block_other = other[moving_own]
            self.gram = GramPlan(self.position[own[moving_own]], self.rows.numel())
            self.cross = ((self.user_slots < self.rows.numel()) & (self.item_slots < self.rows.numel())).nonzero().squeeze(1)

    def localise(self, nodes: Tensor) -> Tensor:
        """Global stacked-table ids [k] (every one among ``nodes``) -> local ids [k]."""
        return nodes if self.nodes is None else torch.searchsorted(self.nodes, nodes)

    def local(self, table: Tensor) -> Tensor:
        """The plan's rows [L, d] of a global ``table`` [N, d] (any stored dtype, e.g. a
        bfloat16 snapshot) in the plan's dtype."""
        return (table if self.nodes is None else table[self.nodes.to(table.device)]).to(self.dtype)

    def moving(self, table: Tensor) -> Tensor:
        """The moving rows [a, d] of a global ``table`` [N, d], in the plan's dtype."""
        return table[self.global_rows.to(table.device)].to(self.dtype)

    def scatter(self, compact: Tensor) -> Tensor:
        """A global [N, d] table, zero off the moving rows, from ``compact`` [a, d]."""
        full = compact.new_zeros(self.num_global, compact.shape[1])
        full[self.global_rows] = compact
        return full

    def table(self, emb: Tensor) -> Tensor:
        """``F`` [L, d] of the remaining data: ``E``, or ``P E`` over the new graph."""
        return emb if self.num_layers == 0 else ops.propagate(emb, self.new_graph, self.num_layers)

    def removed_gradient(self, emb: Tensor) -> Tensor:
        """MF's influence right-hand side on the moving rows [a, d] at the local table ``emb``:
        ``Σ_{j ∈ D_r, j ∋ v} ℓ'_j f_o`` (MF has no spillover: only the removed terms)."""
        f_users, f_items = emb[self.removed_users], emb[self.removed_items]
        slope = torch.sigmoid((f_users * f_items).sum(1, keepdim=True)) - self.removed_labels[:, None]  # ℓ'
        return endpoint_sums(self.num_nodes, self.removed_users, self.removed_items,
                             slope * f_items, slope * f_users)[self.rows]

    def removed_share(self, emb: Tensor, system: "ResponseSystem | None" = None) -> Tensor:
        """ρ [a, d] on the moving rows: the removed rows' share of each coordinate's squared
        per-row gradients.

        Adam's ``v̂`` of a coordinate is the running mean over steps of its squared batch
        gradients, and a row's interactions rarely share a batch. Retrain's epoch has ``m/B``
        steps instead of ``n/B`` and lacks the removed rows' hits, so its ``v̂`` is
        ``v̂ (1 − ρ) n/m``: on rows whose removed interactions dominated their gradients (ρ
        above the average, e.g. poisoned rows) Retrain takes larger steps. Per interaction
        the gradient at ``f_u`` is ``ℓ' f_i`` (at ``f_i``, ``ℓ' f_u``), over the ORIGINAL graph;
        LightGCN carries the squares to the base rows through ``P∘P`` (cross terms of
        different paths dropped).
        """
        table = emb if self.num_layers == 0 else ops.propagate(emb, self.old_graph, self.num_layers)

        def squares(users: Tensor, items: Tensor, labels: Tensor) -> Tensor:
            f_users, f_items = table[users], table[items]
            slope = (torch.sigmoid((f_users * f_items).sum(1, keepdim=True)) - labels[:, None]).square()  # ℓ'²
            out = endpoint_sums(self.num_nodes, users, items, slope * f_items.square(), slope * f_users.square())
            if self.num_layers > 0:
                out = ops.propagate(out, squared_weights(self.old_graph), self.num_layers)
            return out[self.rows]

        gone = squares(self.removed_users, self.removed_items, self.removed_labels)
        # MF's remaining part comes from the operator at the same table (``system``), when given.
        remaining = system.remaining_squares() if system is not None and self.num_layers == 0 else \
            squares(self.users, self.items, self.labels)
        total = gone + remaining
        return torch.where(total > 0, gone / total.where(total > 0, torch.ones_like(total)), torch.zeros_like(total))

    def system(self, emb: Tensor, diagonal: Tensor | None = None) -> "ResponseSystem":
        """The operator ``G + diag(diagonal)`` at the local table ``emb`` [L, d] (``local``);
        ``diagonal`` [a, d] on the moving rows (or later, by ``set_diagonal``)."""
        return ResponseSystem(self, self.table(emb), diagonal)


class ResponseSystem:
    """``v ↦ (G + Λ + λ) v`` on the moving rows, preconditioned, in compact coordinates:
    vectors are ``[a, d]`` over the plan's moving rows (sorted).

    MF: ``G`` restricted to the moving rows is exactly its d×d diagonal blocks (built once per
    segment by batched matmuls) plus the cross terms of the interactions whose two endpoints
    both move, so an iteration costs what the request touches. LightGCN: ``Pᵀ G_MF(F) P``
    through the new graph over the interactions within ``K`` hops. MF is preconditioned by its
    inverted damped blocks, LightGCN by its MF diagonal.
    """

    def __init__(self, plan: ResponsePlan, table: Tensor, diagonal: Tensor | None = None) -> None:
        self.plan, self.table = plan, table
        self.f_users, self.f_items = table[plan.users], table[plan.items]
        self.prob = torch.sigmoid((self.f_users * self.f_items).sum(1, keepdim=True))
        self.weight = self.prob * (1 - self.prob) * plan.scale  # ℓ''/n [s, 1]
        # diag(G)_v = Σ_{j ∋ v} ℓ''_j f_o² / n per coordinate (MF; the self-path share 1/(K+1)²
        # of it for LightGCN): with the damping, the Jacobi preconditioner.
        self.squared_users, self.squared_items = self.f_users.square(), self.f_items.square()
        self.curvature_diagonal = self.slot_sums(self.weight * self.squared_items,
                                                 self.weight * self.squared_users) / (plan.num_layers + 1) ** 2
        if plan.num_layers == 0:
            weights = torch.cat((self.weight, self.weight))[plan.block_pick]
            self.blocks = plan.gram.blocks(table[plan.block_other] * weights.sqrt())  # G's diagonal blocks [a, d, d]
            cross = plan.cross
            self.cross_users, self.cross_items = plan.user_slots[cross], plan.item_slots[cross]
            self.cross_f_users, self.cross_f_items = self.f_users[cross], self.f_items[cross]
            self.cross_weight = self.weight[cross]
        if diagonal is not None:
            self.set_diagonal(diagonal)

    def set_diagonal(self, diagonal: Tensor) -> None:
        """The damping ``Λ + λ`` [a, d] on the moving rows, and the preconditioner with it: MF
        inverts its damped diagonal blocks (once; a batched matmul per iteration, and CG needs
        about half the iterations of the Jacobi preconditioner LightGCN uses)."""
        self.diagonal = diagonal
        if self.plan.num_layers == 0:
            damped = self.blocks.clone()
            damped.diagonal(dim1=1, dim2=2).add_(diagonal)
            # SPD (Λ > 0): (L Lᵀ)⁻¹ = L⁻ᵀ L⁻¹, one batched triangular solve and one batched
            # matmul (a quarter faster than cholesky_inverse's per-block LAPACK calls).
            lower = torch.linalg.cholesky(damped)
            identity = torch.eye(lower.shape[-1], dtype=lower.dtype, device=lower.device).expand_as(lower)
            inverse_lower = torch.linalg.solve_triangular(lower, identity, upper=False)
            self.inverse_blocks = inverse_lower.transpose(1, 2) @ inverse_lower
        else:
            self.inverse_diagonal = 1.0 / (self.curvature_diagonal + diagonal)

    def remaining_squares(self) -> Tensor:
        """``Σ_{j ∈ D_{-r}, j ∋ v} ℓ'_j² f_o²`` [a, d] at this table (MF: ``removed_share``'s
        remaining part, from the gathers the operator already made)."""
        slope = (self.prob - self.plan.labels[:, None]).square()
        return self.slot_sums(slope * self.squared_items, slope * self.squared_users)

    def slot_sums(self, to_users: Tensor, to_items: Tensor) -> Tensor:
        """Per-interaction terms [s, d] summed onto the moving rows [a, d] (non-moving endpoints dropped)."""
        plan = self.plan
        return endpoint_sums(plan.rows.numel() + 1, plan.user_slots, plan.item_slots, to_users, to_items)[:-1]

    def apply(self, v: Tensor) -> Tensor:
        plan = self.plan
        if plan.num_layers == 0:
            out = torch.bmm(self.blocks, v.unsqueeze(-1)).squeeze(-1) + self.diagonal * v
            # G_ui = ℓ'' f_i f_uᵀ: (Gv)_u += ℓ''(f_u·v_i) f_i and (Gv)_i += ℓ''(f_i·v_u) f_u.
            to_users = self.cross_weight * (self.cross_f_users * v[self.cross_items]).sum(1, keepdim=True)
            to_items = self.cross_weight * (self.cross_f_items * v[self.cross_users]).sum(1, keepdim=True)
            out.index_add_(0, self.cross_users, to_users * self.cross_f_items)
            out.index_add_(0, self.cross_items, to_items * self.cross_f_users)
            return out
        pv = ops.propagate(self.expand(v), plan.new_graph, plan.num_layers)  # P v (P symmetric: the graph is)
        # Gauss–Newton of the BCE: Σ ℓ'' (J v)(Jᵀ ·), J v = v_u·f_i + f_u·v_i.
        jv = (pv[plan.users] * self.f_items).sum(1, keepdim=True) + (self.f_users * pv[plan.items]).sum(1, keepdim=True)
        weighted = self.weight * jv
        out = endpoint_sums(plan.num_nodes, plan.users, plan.items, weighted * self.f_items, weighted * self.f_users)
        return ops.propagate(out, plan.new_graph, plan.num_layers)[plan.rows] + self.diagonal * v

    def precondition(self, r: Tensor) -> Tensor:
        if self.plan.num_layers == 0:
            return torch.bmm(self.inverse_blocks, r.unsqueeze(-1)).squeeze(-1)
        return r * self.inverse_diagonal

    def solve(self, rhs: Tensor, tol: float, max_iter: int,
              select: Callable[[Tensor], float] | None = None) -> tuple[Tensor, SolveReport]:
        """``(G + Λ + λ)⁻¹ rhs`` [a, d] on the moving rows for ``rhs`` [a, d]; ``select``
        (optional) scores iterates as global tables (``ResponsePlan.scatter``), as
        ``conjugate_gradient``'s."""
        return conjugate_gradient(self.apply, rhs, tol=tol, max_iter=max_iter, preconditioner=self.precondition,
                                  select=None if select is None else (lambda t: select(self.plan.scatter(t))))

    def expand(self, compact: Tensor) -> Tensor:
        """The local table [L, d], zero off the moving rows, from ``compact`` [a, d]."""
        full = self.table.new_zeros(self.table.shape)
        full[self.plan.rows] = compact
        return full


def training_response(emb: Tensor, trace: TrainingTrace, plan: ResponsePlan, removed: int,
                      gradient: Callable[[Tensor], Tensor], tol: float, max_iter: int,
                      lap: Callable[[str], None], select: Callable[[Tensor], float] | None = None
                      ) -> tuple[Tensor, SolveReport]:
    """``δ`` [a, d] on the plan's moving rows, segment by segment along the run.

    ``emb``: the trained table [N, d]; ``removed``: ``r``; ``gradient(F)``: the influence
    right-hand side on the moving rows [a, d] at a local table [L, d] (``ResponsePlan.local``);
    ``select`` (optional, last segment only) scores iterates. Only the plan's rows of the trace's
    tables are read. Returns ``δ`` and a report summing the CG iterations of every segment.
    """
    n = round(1.0 / plan.scale)
    delta, previous, iterations, report = None, plan.local(trace.initial), 0, None
    segments = trace.segments()
    for number, (steps, table, second_moment) in enumerate(segments, start=1):
        at = plan.local(emb if table is None else table)
        moment = plan.moving(second_moment)
        damping = training_damping(trace, moment, steps)  # on the moving rows, [a, d]
        system = plan.system(at)
        share = plan.removed_share(at, system)
        retrain_damping = training_damping(trace, moment * (1 - share) * (n / (n - removed)), steps)
        system.set_diagonal(retrain_damping + trace.l2)
        rhs = gradient(at) * plan.scale + (damping - retrain_damping) * (at - previous)[plan.rows]
        if delta is not None:
            rhs = rhs + retrain_damping * delta
        lap("operator")
        delta, report = system.solve(rhs, tol, max_iter, select if number == len(segments) else None)
        iterations += report.iterations
        previous = at
        lap("solve")
    return delta, SolveReport(iterations, report.residual, report.status)
