"""The training-aware linear response: IFRU's estimate of Retrain for an early-stopped model.

Retrain is not a minimiser of ``L_{-r}``: it is Adam, run from the same initial table for
about as long as the original run, on ``D_{-r}``. Linearising both runs around the trained
table ``Ê`` (docs/ARCHITECTURE.md §4), the difference ``δ`` between them follows
``dδ/dt = −η Π (G δ − g/m)`` with ``G`` the Gauss–Newton curvature of the remaining mean loss,
``g`` the influence right-hand side (removed terms plus, for LightGCN, the spillover),
``m = |D_{-r}|``, and ``Π = diag(1/(√v̂ + ε))`` Adam's per-coordinate step scale. After
``τ = η·T`` (learning rate × optimiser steps of the training run) that gives
``δ = (I − e^{−τΠG}) G⁻¹ g/m``, whose resolvent form

    δ = (G + Λ)⁻¹ g/m,    Λ = diag(√v̂ + ε) / (η T)

is solved by CG (``G + Λ`` is positive definite: Gauss–Newton has no negative curvature).
Directions the data constrain strongly (large ``G``) get the Newton step ``G⁻¹g/m``; flat
directions, which an early-stopped run never travelled, get the gradient-flow step
``τ Π g/m``. Every constant comes from the model's ``TrainingTrace``; nothing is tuned.

Exactness where it is free: a row whose every training interaction is removed gets no
gradient under Retrain, so it keeps its initial value; it is set to ``trace.initial``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .. import ops
from ..data import RecDataset
from ..graph import CSRGraph
from ..models import Recommender
from ..models.trace import TrainingTrace
from .base import SolveReport
from .solvers import conjugate_gradient

__all__ = ["ResponseSystem", "orphaned_rows", "training_damping", "training_response_system"]


def training_trace(model: Recommender) -> TrainingTrace:
    """The model's trace on its device and dtype; ValueError naming what is missing."""
    if model.trace is None:
        raise ValueError(
            "the model has no training trace (learning rate, steps, Adam's second moments, initial table), "
            "which the training-aware estimator needs: train it with ifru_ext.train (or load a checkpoint "
            "written after training with it), or use a method that does not need one (ifru-reference, ifru-validation)")
    emb = model.embedding
    return model.trace.to(emb.device, emb.dtype)


def training_damping(trace: TrainingTrace) -> Tensor:
    """``Λ = (√v̂ + ε) / (η T)`` [N, d]: the inverse of Adam's accumulated step scale."""
    return (trace.second_moment.sqrt() + trace.eps) / (trace.lr * max(trace.steps, 1))


def orphaned_rows(dataset: RecDataset, removal: Tensor, device: torch.device) -> Tensor:
    """bool [N]: rows with training interactions, none of which remains after ``removal``."""
    users, items = dataset.train.users, dataset.train.items + dataset.num_users
    num_nodes = dataset.num_users + dataset.num_items
    kept = torch.ones(len(dataset.train), dtype=torch.bool)
    kept[removal] = False
    before = torch.bincount(torch.cat((users, items)), minlength=num_nodes)
    after = torch.bincount(torch.cat((users[kept], items[kept])), minlength=num_nodes)
    return ((before > 0) & (after == 0)).to(device)


@dataclass
class ResponseSystem:
    """``v ↦ (G + Λ + λ) v`` on the rows ``keep`` [N] bool; ``scale = 1/m``."""

    table: Tensor  # F [N, d] at Ê (propagated over the new graph for LightGCN)
    users: Tensor  # [s] stacked rows of the remaining interactions the operator needs
    items: Tensor  # [s]
    curvature: Tensor  # ℓ'' [s] at F
    graph: CSRGraph | None
    num_layers: int
    keep: Tensor  # bool [N]
    diagonal: Tensor  # Λ + λ, [N, d]
    scale: float  # 1/m

    def propagate(self, x: Tensor) -> Tensor:
        return x if self.num_layers == 0 else ops.propagate(x, self.graph, self.num_layers)

    def apply(self, v: Tensor) -> Tensor:
        v = v * self.keep[:, None]
        pv = self.propagate(v)  # P v (P symmetric: the LightGCN graph is)
        f_u, f_i = self.table[self.users], self.table[self.items]
        # Gauss–Newton of the mean BCE: Σ ℓ'' (J v)(Jᵀ ·), J v = v_u·f_i + f_u·v_i.
        jv = (pv[self.users] * f_i).sum(1) + (f_u * pv[self.items]).sum(1)
        weighted = (self.curvature * jv)[:, None]
        out = torch.zeros_like(pv)
        out.index_add_(0, self.users, weighted * f_i)
        out.index_add_(0, self.items, weighted * f_u)
        out = self.propagate(out) * self.scale
        return (out + self.diagonal * v) * self.keep[:, None]

    def solve(self, rhs: Tensor, tol: float, max_iter: int) -> tuple[Tensor, SolveReport]:
        return conjugate_gradient(self.apply, rhs * self.keep[:, None], tol=tol, max_iter=max_iter)


def training_response_system(model: Recommender, dataset: RecDataset, removal: Tensor, keep: Tensor,
                             new_graph: CSRGraph | None, trace: TrainingTrace) -> ResponseSystem:
    """The response operator of ``model`` for ``removal`` on rows ``keep`` (bool [N]).

    Only the remaining interactions that can reach a kept row are gathered: for MF those
    with an endpoint in ``keep``, for LightGCN those with an endpoint within ``K`` hops of it.
    """
    emb = model.embedding.detach()
    num_layers = model.num_layers
    rows = dataset.remaining(removal)
    users = rows.users.to(emb.device)
    items = (rows.items + dataset.num_users).to(emb.device)
    table = emb if num_layers == 0 else ops.propagate(emb, new_graph, num_layers)
    reach = keep
    if num_layers > 0:
        reach = ops.propagate(keep.to(emb.dtype)[:, None], new_graph, num_layers)[:, 0] > 0
    needed = reach[users] | reach[items]
    users, items = users[needed], items[needed]
    prob = torch.sigmoid((table[users] * table[items]).sum(1))
    diagonal = training_damping(trace) + trace.l2
    return ResponseSystem(table, users, items, prob * (1 - prob), new_graph, num_layers, keep, diagonal,
                          1.0 / max(len(rows), 1))
