"""Per-row curvature of the MF loss: the d×d blocks of the Hessian, their batched build, and
damped Newton directions from them. Used by AltEraser's block-Newton phases.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.functional import softplus

__all__ = ["GramPlan", "damped_newton_directions", "gram_blocks", "mf_hessian_blocks", "row_newton_systems"]


def row_newton_systems(table: Tensor, own: Tensor, other: Tensor, labels: Tensor,
                       rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-row loss, gradient and Hessian of ``f_v(e) = Σ_{j: own_j = v} ℓ(e · t_{other_j}, y_j)``.

    table: [N, d]; rows: sorted distinct int64 [a]; own, other: int64 [s] stacked-table rows of
    the interactions, every ``own`` in ``rows``; labels: [s]. Evaluated at ``e = table[v]`` with
    the other rows fixed: returns loss [a] (float64), gradient [a, d] and Hessian
    ``Σ_j ℓ''_j t_o t_oᵀ`` [a, d, d].
    """
    slots = torch.searchsorted(rows, own)  # own's position in rows, [s]
    partners = table[other]  # [s, d]
    logits = (table[own] * partners).sum(1)
    prob = torch.sigmoid(logits)
    # The loss in float64: Newton steps are accepted on differences of it (see _row_losses).
    exact_logits = logits.double()
    losses = softplus(exact_logits) - labels * exact_logits
    loss = torch.zeros(rows.numel(), dtype=torch.float64, device=table.device).index_add_(0, slots, losses)
    grad = table.new_zeros(rows.numel(), table.shape[1]).index_add_(0, slots, (prob - labels)[:, None] * partners)
    # ℓ'' = σ(1 − σ) ≥ 0, so H_v = X_vᵀ X_v with the rows of X_v = √ℓ''_j t_o.
    hessian = gram_blocks(slots, partners * (prob * (1 - prob)).sqrt()[:, None], rows.numel())
    return loss, grad, hessian


def gram_blocks(slots: Tensor, features: Tensor, num_rows: int) -> Tensor:
    """``Σ_{j: slot_j = v} x_j x_jᵀ`` [num_rows, d, d] for slots int64 [s], features x [s, d]."""
    return GramPlan(slots, num_rows).blocks(features)


class GramPlan:
    """The index work of ``gram_blocks`` for fixed ``slots`` [s] (int64 in [0, num_rows)), done
    once; ``blocks(features)`` then builds ``Σ_{j: slot_j = v} x_j x_jᵀ`` [num_rows, d, d].

    Rows are grouped by degree into power-of-two buckets; each bucket is one zero-padded
    batched matmul ``Xᵀ X`` (padding at most doubles the [s, d] input). That runs at BLAS
    speed instead of writing and scatter-adding an [s, d, d] tensor of outer products.
    """

    def __init__(self, slots: Tensor, num_rows: int) -> None:
        self.num_rows, self.levels = num_rows, []  # levels: (level, rows [b], positions [k], ranks [k], order [k])
        if slots.numel() == 0:
            return
        device = slots.device
        counts = torch.bincount(slots, minlength=num_rows)  # interactions per row, [num_rows]
        bucket = torch.ceil(torch.log2(counts.clamp(min=1).to(torch.float64))).to(torch.int64)  # [num_rows]
        # Rows ordered by (bucket, id) and interactions by (bucket, row): each bucket, and each
        # row inside it, is then a contiguous range.
        row_order = torch.argsort(bucket * num_rows + torch.arange(num_rows, device=device))
        order = torch.argsort(bucket[slots] * num_rows + slots, stable=True)
        sorted_slots = slots[order]
        ordered_counts = counts[row_order]
        row_start = torch.empty_like(counts)
        row_start[row_order] = torch.cumsum(ordered_counts, 0) - ordered_counts  # first sorted interaction of a row
        rank = torch.arange(slots.numel(), device=device) - row_start[sorted_slots]  # position inside its row
        levels, rows_per_level = torch.unique_consecutive(bucket[row_order], return_counts=True)
        interactions_per_level = torch.zeros_like(levels).index_add_(
            0, torch.searchsorted(levels, bucket[row_order]), ordered_counts)
        row_begin, begin = 0, 0
        for level, num_level_rows, num_level_interactions in zip(
                levels.tolist(), rows_per_level.tolist(), interactions_per_level.tolist()):  # ≤ log2(max degree) + 1
            level_rows = row_order[row_begin : row_begin + num_level_rows]
            span = slice(begin, begin + num_level_interactions)
            # Row id → index inside this bucket: rows of a bucket are sorted, so a search finds it.
            position = torch.searchsorted(level_rows, sorted_slots[span])
            self.levels.append((level, level_rows, position, rank[span], order[span]))
            row_begin, begin = row_begin + num_level_rows, begin + num_level_interactions

    def blocks(self, features: Tensor) -> Tensor:
        dim = features.shape[1]
        blocks = features.new_zeros(self.num_rows, dim, dim)
        for level, rows, position, rank, order in self.levels:
            padded = features.new_zeros(rows.numel(), 1 << level, dim)
            padded[position, rank] = features[order]
            blocks[rows] = padded.transpose(1, 2) @ padded
        return blocks


def damped_newton_directions(grad: Tensor, hessian: Tensor, damping: Tensor) -> tuple[Tensor, Tensor]:
    """``−(H_v + μ_v I)⁻¹ g_v`` for every row by one batched Cholesky factorisation.

    grad: [a, d]; hessian: [a, d, d] symmetric; damping μ: [a]. Returns the directions [a, d]
    and ``ok`` bool [a]: False where ``H_v + μ_v I`` is not numerically positive definite
    (its direction is 0; the caller raises μ_v).
    """
    eye = torch.eye(hessian.shape[-1], dtype=hessian.dtype, device=hessian.device)
    factor, info = torch.linalg.cholesky_ex(hessian + damping[:, None, None] * eye)
    ok = info == 0
    # A failed factorisation is partial garbage: solve with I instead and zero the result.
    factor = torch.where(ok[:, None, None], factor, eye)
    direction = -torch.cholesky_solve(grad.unsqueeze(-1), factor).squeeze(-1)
    return direction * ok[:, None], ok


def mf_hessian_blocks(emb: Tensor, users: Tensor, items: Tensor, labels: Tensor, shift: float) -> Tensor:
    """The d×d diagonal blocks of the MF Hessian of the mean loss at ``emb`` [N, d] → [N, d, d].

    users, items: stacked-table rows [n]; labels [n]. Block of row r:
    (1/n) Σ_{j ∋ r} ℓ''_j e_o e_oᵀ (o the other endpoint), plus ``shift``·I and a small
    ridge so rows with fewer interactions than d stay positive definite.
    """
    num_nodes, d = emb.shape
    n = max(1, users.numel())
    own, other = torch.cat((users, items)), torch.cat((items, users))
    rows = torch.arange(num_nodes, device=emb.device)
    _, _, blocks = row_newton_systems(emb, own, other, torch.cat((labels, labels)), rows)
    blocks = blocks / n
    trace_scale = blocks.diagonal(dim1=1, dim2=2).sum(1).mean() / d
    ridge = shift + 1e-3 * float(trace_scale) + 1e-12
    return blocks + ridge * torch.eye(d, dtype=emb.dtype, device=emb.device)
