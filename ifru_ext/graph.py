"""CSR graphs over the stacked user/item table, built without a dense N×N matrix.

Node ids: user ``u`` is row ``u``, item ``i`` is row ``num_users + i`` (docs/ARCHITECTURE.md §2).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class CSRGraph:
    """A square sparse matrix ``A [num_nodes, num_nodes]`` in CSR form.

    ``rowptr`` int64 [num_nodes + 1], ``col`` int64 [nnz], ``weight`` float [nnz].
    ``symmetric`` is a declaration (``A == Aᵀ``) that lets ``propagate``'s backward
    and ``hvp`` reuse ``A`` instead of transposing it; builders below set it only
    when it holds by construction.
    """

    rowptr: Tensor
    col: Tensor
    weight: Tensor
    num_nodes: int
    symmetric: bool = False

    @property
    def nnz(self) -> int:
        return int(self.col.numel())

    def degree(self) -> Tensor:
        """Row degrees (number of stored entries per row), int64 [num_nodes]."""
        return self.rowptr[1:] - self.rowptr[:-1]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "CSRGraph":
        return CSRGraph(
            self.rowptr.to(device),
            self.col.to(device),
            self.weight.to(device=device, dtype=dtype or self.weight.dtype),
            self.num_nodes,
            self.symmetric,
        )

    def to_sparse_coo(self) -> Tensor:
        """The same matrix as a coalesced ``torch.sparse_coo_tensor`` (for references)."""
        row = torch.repeat_interleave(torch.arange(self.num_nodes, device=self.col.device), self.degree())
        return torch.sparse_coo_tensor(
            torch.stack([row, self.col]), self.weight, (self.num_nodes, self.num_nodes), check_invariants=True
        ).coalesce()


def _check_interactions(users: Tensor, items: Tensor, num_users: int, num_items: int) -> None:
    if users.dim() != 1 or items.dim() != 1 or users.numel() != items.numel():
        raise ValueError(f"users and items must be 1-D of equal length, got {tuple(users.shape)} and {tuple(items.shape)}")
    if users.numel() == 0:
        return
    if int(users.min()) < 0 or int(users.max()) >= num_users:
        raise ValueError(f"user ids must lie in [0, {num_users}), got range [{int(users.min())}, {int(users.max())}]")
    if int(items.min()) < 0 or int(items.max()) >= num_items:
        raise ValueError(f"item ids must lie in [0, {num_items}), got range [{int(items.min())}, {int(items.max())}]")


def kept_rowptr(rowptr: Tensor, present: Tensor) -> Tensor:
    """The ``rowptr`` [R+1] of a CSR after keeping only its entries ``present`` (bool [nnz]), in
    order: each row's bound becomes the count of kept entries before it. O(nnz), no sort."""
    before = torch.zeros(present.numel() + 1, dtype=torch.int64, device=present.device)
    before[1:] = present.cumsum(0)
    return before.index_select(0, rowptr)


def bipartite_csr(users: Tensor, items: Tensor, num_users: int, num_items: int,
                  return_counts: bool = False) -> tuple[Tensor, ...]:
    """The 0/1 user–item adjacency in both directions, duplicates merged.

    users, items: int64 [n] (item ids NOT offset). Returns (rowptr [N+1], col [nnz]),
    columns sorted within each row, N = num_users + num_items; with ``return_counts`` also how
    many of the interactions each entry merges (int64 [nnz]).
    """
    _check_interactions(users, items, num_users, num_items)
    num_nodes = num_users + num_items
    users = users.long()
    items = items.long() + num_users
    rows = torch.cat([users, items])
    cols = torch.cat([items, users])
    # One sorted unique key per (row, col) gives CSR order and merges duplicates.
    keys, counts = torch.unique(rows * num_nodes + cols, return_counts=True)
    rows, cols = keys // num_nodes, keys % num_nodes
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=users.device)
    rowptr[1:] = torch.cumsum(torch.bincount(rows, minlength=num_nodes), 0)
    return (rowptr, cols, counts) if return_counts else (rowptr, cols)


def interaction_graph(users: Tensor, items: Tensor, num_users: int, num_items: int, dtype: torch.dtype = torch.float32) -> CSRGraph:
    """All interactions (any label) as an unweighted symmetric graph: the ``importance`` input."""
    rowptr, col = bipartite_csr(users, items, num_users, num_items)
    weight = torch.ones(col.numel(), dtype=dtype, device=col.device)
    return CSRGraph(rowptr, col, weight, num_users + num_items, symmetric=True)


def lightgcn_graph(
    users: Tensor, items: Tensor, labels: Tensor, num_users: int, num_items: int, dtype: torch.dtype = torch.float32
) -> CSRGraph:
    """LightGCN's ``Â = D^{-1/2} A D^{-1/2}`` over the POSITIVE interactions (labels > 0.5).

    users, items, labels: [n]. Zero-degree rows stay empty; no self-loops; duplicate
    positives count once (``A`` is 0/1).
    """
    if labels.shape != users.shape:
        raise ValueError(f"labels must have the shape of users {tuple(users.shape)}, got {tuple(labels.shape)}")
    positive = labels > 0.5
    rowptr, col = bipartite_csr(users[positive], items[positive], num_users, num_items)
    return normalized_graph(rowptr, col, dtype)


def normalized_graph(rowptr: Tensor, col: Tensor, dtype: torch.dtype = torch.float32) -> CSRGraph:
    """``D^{-1/2} A D^{-1/2}`` of the symmetric 0/1 pattern ``rowptr`` [N+1], ``col`` [nnz] (no
    self-loops; a row without entries stays empty): ``lightgcn_graph``'s weights, computed in
    float64 and rounded to ``dtype``."""
    num_nodes = rowptr.numel() - 1
    inv_sqrt_degree = (rowptr[1:] - rowptr[:-1]).to(torch.float64).clamp(min=1).rsqrt()
    row = torch.repeat_interleave(torch.arange(num_nodes, device=col.device), rowptr[1:] - rowptr[:-1])
    weight = (inv_sqrt_degree[row] * inv_sqrt_degree[col]).to(dtype)
    return CSRGraph(rowptr, col, weight, num_nodes, symmetric=True)


def add_self_loops(graph: CSRGraph) -> CSRGraph:
    """``A + I`` (one extra unit entry per row; the authors' Algorithm 1 adjacency)."""
    n = graph.num_nodes
    row = torch.repeat_interleave(torch.arange(n, device=graph.col.device), graph.degree())
    diagonal = torch.arange(n, device=graph.col.device)
    rows, cols = torch.cat([row, diagonal]), torch.cat([graph.col, diagonal])
    weight = torch.cat([graph.weight, torch.ones(n, dtype=graph.weight.dtype, device=graph.weight.device)])
    order = torch.argsort(rows * n + cols, stable=True)
    rowptr = torch.zeros(n + 1, dtype=torch.long, device=graph.col.device)
    rowptr[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    return CSRGraph(rowptr, cols[order], weight[order], n, graph.symmetric)
