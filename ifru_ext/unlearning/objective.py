"""The remaining-data objective the warm-start methods (fine-tuning, AltEraser) re-optimise.

Both start from the trained table ``Ê`` and re-optimise the training objective over the
remaining rows,

    L_{-r}(E) = (1/m) Σ_{D_{-r}} ℓ(x_ui(E), y) + (λ/2)‖E‖²,   m = |D_{-r}|,

with ``x_ui = f_u · f_i`` and ``F = E`` (MF) or ``F = P E`` over the graph of ``D_{-r}``
(LightGCN). ``RemainingObjective`` evaluates it (with AltEraser's optional proximal term and
anchor), its exact gradient through the graph, per-row curvature scales and validation AUC.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.functional import binary_cross_entropy_with_logits

from .. import ops
from ..data import RecDataset
from ..graph import CSRGraph
from ..metrics import auc
from ..models import Recommender

__all__ = ["RemainingObjective", "ratio", "remaining_graph", "squared_weights", "within_hops"]


class RemainingObjective:
    """``Φ(E) = L_{-r}(E) + Σ_v (w_v/2)‖e_v − ê_v‖² − ⟨A, E⟩`` (mean-loss units) and validation AUC.

    ``L_{-r}`` includes ``(λ/2)‖E‖²``. The proximal weights ``w [N]`` around ``Ê`` and the
    anchor ``A [N, d]`` are optional (None: absent); ``alteraser`` sets them.
    """

    def __init__(self, model: Recommender, dataset: RecDataset, removal: Tensor, graph: CSRGraph | None,
                 l2: float) -> None:
        emb = model.embedding
        rows = dataset.remaining(removal)
        # D_{-r} as rows of the stacked table: users [m], items offset by num_users [m], labels [m].
        self.users = rows.users.to(emb.device)
        self.items = (rows.items + dataset.num_users).to(emb.device)
        self.labels = rows.labels.to(emb.device, emb.dtype)
        self.valid_users = dataset.valid.users.to(emb.device)
        self.valid_items = (dataset.valid.items + dataset.num_users).to(emb.device)
        self.valid_labels = dataset.valid.labels
        self.graph, self.num_layers, self.l2 = graph, model.num_layers, l2
        self.proximal: Tensor | None = None
        self.centre: Tensor | None = None
        self.anchor: Tensor | None = None

    def table(self, emb: Tensor) -> Tensor:
        """``F [N, d]``: ``E`` or ``P E`` over the graph of ``D_{-r}``."""
        return emb if self.num_layers == 0 else ops.propagate(emb, self.graph, self.num_layers)

    def value(self, emb: Tensor) -> Tensor:
        """``Φ(E)``, a 0-dim float64 tensor differentiable in ``emb``."""
        table = self.table(emb)
        # Accumulated in float64: the decrease a step must show can be below float32 resolution of the mean.
        logits = (table[self.users] * table[self.items]).sum(1).double()
        loss = binary_cross_entropy_with_logits(logits, self.labels.double())
        if self.l2 > 0:
            loss = loss + 0.5 * self.l2 * emb.double().pow(2).sum()
        if self.proximal is not None:
            loss = loss + 0.5 * (self.proximal[:, None] * (emb - self.centre).pow(2)).double().sum()
        if self.anchor is not None:
            loss = loss - (self.anchor * emb).double().sum()
        return loss

    def gradient(self, emb: Tensor) -> tuple[Tensor, Tensor]:
        """``(Φ(E), ∇Φ(E) [N, d])``, exact through the graph."""
        with torch.enable_grad():
            leaf = emb.detach().requires_grad_(True)
            value = self.value(leaf)
            (grad,) = torch.autograd.grad(value, leaf)
        return value.detach(), grad

    @torch.no_grad()
    def curvature_scale(self, emb: Tensor) -> Tensor:
        """``tr(B_v)/d`` [N] of the data term's row blocks at ``emb`` (mean units).

        MF: the exact ``Σ_{j ∋ v} ℓ''_j ‖e_o‖² / (d m)``. LightGCN: the trace of the block
        ``C_v = Σ_w P_wv² B_w`` the phases use. Zero for a row without remaining interactions.
        """
        table = self.table(emb)
        prob = torch.sigmoid((table[self.users] * table[self.items]).sum(1))
        curvature = prob * (1 - prob)
        trace = table.new_zeros(table.shape[0])
        trace.index_add_(0, self.users, curvature * table[self.items].pow(2).sum(1))
        trace.index_add_(0, self.items, curvature * table[self.users].pow(2).sum(1))
        trace /= table.shape[1] * self.labels.numel()
        if self.num_layers == 0:
            return trace
        squared = squared_weights(self.graph)
        return ops.propagate(trace[:, None], squared, self.num_layers)[:, 0] / (self.num_layers + 1)

    @torch.no_grad()
    def valid_auc(self, emb: Tensor) -> float:
        table = self.table(emb)
        return auc((table[self.valid_users] * table[self.valid_items]).sum(1), self.valid_labels)


def remaining_graph(model: Recommender, dataset: RecDataset, removal: Tensor) -> CSRGraph | None:
    """LightGCN's ``Â`` of ``D_{-r}`` on the model's device/dtype; None for MF."""
    if model.num_layers == 0:
        return None
    emb = model.embedding
    return dataset.graph(removal, dtype=emb.dtype).to(emb.device)


def ratio(numerator: Tensor, denominator: Tensor) -> float:
    denominator = float(denominator)
    return float(numerator) / denominator if denominator > 0 else 0.0


def squared_weights(graph: CSRGraph) -> CSRGraph:
    """``Â∘Â``: the same pattern with squared weights."""
    return CSRGraph(graph.rowptr, graph.col, graph.weight.square(), graph.num_nodes, graph.symmetric)


def within_hops(mask: Tensor, graph: CSRGraph, hops: int) -> Tensor:
    """Nodes within ``hops`` graph steps of ``mask`` (bool [N]) -> bool [N]; weights are positive, so exact."""
    return ops.propagate(mask.to(graph.weight.dtype)[:, None], graph, hops)[:, 0] > 0
