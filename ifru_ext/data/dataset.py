"""The dataset containers: one split of interactions, and a split, encoded, possibly
attacked dataset (notation: docs/ARCHITECTURE.md §2)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..graph import CSRGraph, bipartite_csr, interaction_graph, kept_rowptr, normalized_graph

__all__ = ["Interactions", "NodeIncidence", "RecDataset"]


@dataclass(frozen=True, eq=False)  # tensors have no boolean ==
class Interactions:
    """One split: ``users`` int64 [n], ``items`` int64 [n] (NOT offset by num_users),
    ``labels`` float32 [n] in {0, 1}."""

    users: Tensor
    items: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.users.numel())

    def select(self, index: Tensor) -> "Interactions":
        """The rows picked by ``index`` (int64 indices or a bool mask [n])."""
        return Interactions(self.users[index], self.items[index], self.labels[index])


class NodeIncidence(NamedTuple):
    """The rows of a split (the training rows unless said) at each node of the stacked table
    (users, then items offset by the number of users), grouped by node: a CSR with one entry per
    (node, row it is an endpoint of)."""

    rowptr: Tensor  # int64 [N+1]: node v's entries are [rowptr[v], rowptr[v+1])
    rows: Tensor    # int64 [2n]: each entry's row of the split
    ends: Tensor    # int64 [2n]: which endpoint of its row the node is (0 the user, 1 the item)


@dataclass(frozen=True, eq=False)
class RecDataset:
    """A split, encoded, possibly attacked dataset (docs/ARCHITECTURE.md §2 notation).

    ``train`` holds the labels the model is trained on (flipped on ``removal`` when
    attacked); ``removal`` int64 [r] indexes train rows, the removal set ``D_r``.
    ``user_ids`` / ``item_ids`` give the raw id of each encoded user / item.
    ``meta`` records provenance (source, threshold, kcore, seeds, raw row counts).
    """

    num_users: int
    num_items: int
    train: Interactions
    valid: Interactions
    test: Interactions
    removal: Tensor
    user_ids: np.ndarray
    item_ids: np.ndarray
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("train", "valid", "test"):
            split: Interactions = getattr(self, name)
            if split.users.dtype != torch.int64 or split.items.dtype != torch.int64 or split.labels.dtype != torch.float32:
                raise ValueError(f"{name}: users/items must be int64 and labels float32")
            if not split.users.shape == split.items.shape == split.labels.shape or split.users.dim() != 1:
                raise ValueError(f"{name}: users, items, labels must be 1-D of equal length")
        if self.removal.dtype != torch.int64 or self.removal.dim() != 1:
            raise ValueError(f"removal must be int64 [r], got {self.removal.dtype} {tuple(self.removal.shape)}")
        if self.removal.numel() and (int(self.removal.min()) < 0 or int(self.removal.max()) >= len(self.train)):
            raise ValueError(f"removal indices must lie in [0, {len(self.train)})")

    @cached_property
    def split_hash(self) -> str:
        """sha256 hex over sizes and every split tensor: refuses checkpoints of another split."""
        digest = hashlib.sha256(f"ifru-split-v1 {self.num_users} {self.num_items}".encode())
        named = {f"{s}.{f}": getattr(getattr(self, s), f) for s in ("train", "valid", "test") for f in ("users", "items", "labels")}
        named["removed"] = self.removal  # the key is part of the hash format: kept
        for name, tensor in named.items():
            array = tensor.detach().cpu().contiguous().numpy()
            digest.update(f"{name} {array.dtype} {array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def remaining(self, removal: Tensor | None = None) -> Interactions:
        """Training rows minus the rows indexed by ``removal`` (int64 [r]; repeats allowed)."""
        if removal is None:
            return self.train
        return self.train.select(~self._removed(removal))

    def _removed(self, removal: Tensor) -> Tensor:
        """bool [n]: the training rows ``removal`` (int64 [r]; repeats allowed) indexes; ValueError
        for an index outside the training rows."""
        removal = torch.as_tensor(removal, dtype=torch.int64).cpu()
        if removal.numel() and (int(removal.min()) < 0 or int(removal.max()) >= len(self.train)):
            raise ValueError(f"removal indices must lie in [0, {len(self.train)})")
        removed = torch.zeros(len(self.train), dtype=torch.bool)
        removed[removal] = True
        return removed

    def graph(self, removal: Tensor | None = None, dtype: torch.dtype = torch.float32) -> CSRGraph:
        """LightGCN's ``Â`` [N, N] over the training positives, minus the rows ``removal``: the
        positives' adjacency is built once per dataset (``_positive_adjacency``), and a removal
        drops the entries all of whose positive rows it removes, in O(nnz) with no sort
        (BookCrossing, a 1% request: ~13 ms rebuilding it from the remaining rows). The same
        graph as ``graph.lightgcn_graph`` of ``remaining(removal)``, to the bit."""
        rowptr, keys, count = self._positive_adjacency
        num_nodes = self.num_users + self.num_items
        if removal is not None:
            gone = (self._removed(removal) & (self.train.labels > 0.5)).nonzero().squeeze(1)
            if gone.numel():
                users, items = self.train.users[gone], self.train.items[gone] + self.num_users
                entries = torch.searchsorted(keys, torch.cat((users * num_nodes + items, items * num_nodes + users)))
                count = count.index_add(0, entries, torch.full_like(entries, -1))
                present = count > 0
                rowptr, keys = kept_rowptr(rowptr, present), keys[present]
        return normalized_graph(rowptr, keys % num_nodes, dtype)

    @cached_property
    def _positive_adjacency(self) -> tuple[Tensor, Tensor, Tensor]:
        """The training positives' 0/1 adjacency, both directions (``graph.bipartite_csr``):
        (rowptr int64 [N+1], each entry's key ``row·N + col`` int64 [nnz], ascending, and how
        many positive rows it merges int64 [nnz]). Built once per dataset."""
        positive = self.train.labels > 0.5
        rowptr, col, count = bipartite_csr(self.train.users[positive], self.train.items[positive], self.num_users,
                                           self.num_items, return_counts=True)
        row = torch.repeat_interleave(torch.arange(rowptr.numel() - 1), rowptr.diff())
        return rowptr, row * (self.num_users + self.num_items) + col, count

    def interaction_graph(self, dtype: torch.dtype = torch.float64) -> CSRGraph:
        """Every training interaction (any label) as a 0/1 symmetric graph (Algorithm 1); built
        once per dataset and dtype, so a request does not pay for the whole graph again."""
        if dtype not in self._interaction_graphs:
            self._interaction_graphs[dtype] = interaction_graph(self.train.users, self.train.items, self.num_users,
                                                                self.num_items, dtype)
        return self._interaction_graphs[dtype]

    @cached_property
    def _interaction_graphs(self) -> dict[torch.dtype, CSRGraph]:
        return {}

    @cached_property
    def node_incidence(self) -> "NodeIncidence":
        """Each stacked-table node's training rows, grouped by node (``NodeIncidence``), within a
        node by the row's other endpoint (then by row): the order in which ``ops.pair_sums`` reads
        the table in address order. Built once per dataset (one O(n log n) sort); a request reads
        its every-row grouping from it in O(n) (``unlearning.TermIncidence.from_dataset``)."""
        return _incidence(self.train, self.num_users, self.num_items)

    @cached_property
    def validation_incidence(self) -> "NodeIncidence":
        """``node_incidence`` of the validation rows: which validation pairs read each node (an
        answer's validation AUC re-scores only the pairs of the rows it moves). Built once."""
        return _incidence(self.valid, self.num_users, self.num_items)

    def degree(self, nodes: Tensor) -> Tensor:
        """Training rows incident to each of ``nodes`` (stacked-table ids, int64 [k]) -> int64 [k]."""
        rowptr = self.node_incidence.rowptr
        nodes = nodes.cpu()
        return rowptr[nodes + 1] - rowptr[nodes]

    def incident_rows(self, nodes: Tensor, split: str = "train") -> Tensor:
        """Sorted distinct rows of ``split`` ("train" | "valid") with an endpoint in ``nodes``
        (stacked-table ids, users then items offset by ``num_users``; int64 [k]) -> int64 [m]
        (on the CPU). Costs what the nodes touch, not the dataset, until they touch a large share
        of it (then one O(n) mark of the split's rows beats sorting them): a request's plan reads
        only its own neighbourhood."""
        if split not in ("train", "valid"):
            raise ValueError(f"split must be 'train' or 'valid', got {split!r}")
        rowptr, rows, _ = self.node_incidence if split == "train" else self.validation_incidence
        size = len(self.train) if split == "train" else len(self.valid)
        nodes = nodes.cpu()
        counts = rowptr[nodes + 1] - rowptr[nodes]
        # Entry t of the output block of node k reads rows[rowptr[k] + t].
        starts = torch.repeat_interleave(rowptr[nodes] - (torch.cumsum(counts, 0) - counts), counts)
        found = rows.index_select(0, starts + torch.arange(starts.numel()))
        if _sorting_beats_a_pass(found.numel(), size):
            return torch.unique(found)  # a sort of the few rows found: k log k
        # Many rows (a large request, LightGCN's reach): a mark per row and one scan, O(n + k),
        # instead of sorting them (BookCrossing's training rows, 690k found: 3.5 against 23 ms).
        marked = torch.zeros(size, dtype=torch.bool)
        marked[found] = True
        return marked.nonzero().squeeze(1)

    def sorting_beats_a_pass(self, count: int) -> bool:
        """Whether sorting ``count`` entries (``count log count``) costs less than one pass over the
        training rows: the test by which a request's index work sorts what it found or reads the
        dataset's grouping instead (``incident_rows``, ``unlearning.TermIncidence``)."""
        return _sorting_beats_a_pass(count, len(self.train))

    def touched(self) -> tuple[Tensor, Tensor]:
        """Sorted distinct (users int64 [a], items int64 [b]) appearing in the removal set."""
        return torch.unique(self.train.users[self.removal]), torch.unique(self.train.items[self.removal])

    def stats(self) -> dict[str, object]:
        """Sizes and rates: the numbers docs/ARCHITECTURE.md §5 quotes, plus provenance from ``meta``.

        ``positive_rate`` is over the training labels as trained (after the attack);
        ``meta["positive_rate_clean"]`` (from ``build_dataset``) is before it.
        """
        users, items = self.touched()
        return {
            **self.meta,
            "train": len(self.train),
            "valid": len(self.valid),
            "test": len(self.test),
            "users": self.num_users,
            "items": self.num_items,
            "positive_rate": float(self.train.labels.mean()) if len(self.train) else float("nan"),
            "removed": int(self.removal.numel()),
            "removed_users": int(users.numel()),
            "removed_items": int(items.numel()),
        }


def _incidence(split: Interactions, num_users: int, num_items: int) -> NodeIncidence:
    """``split``'s rows grouped by stacked-table node, within a node by the row's other endpoint
    (then by row): one O(n log n) sort (``RecDataset.node_incidence``)."""
    num_nodes = num_users + num_items
    users, items = split.users, split.items + num_users
    nodes, other = torch.cat((users, items)), torch.cat((items, users))
    order = torch.argsort(nodes * num_nodes + other, stable=True)  # entry c·n + j: row j seen from end c
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.int64)
    rowptr[1:] = torch.cumsum(torch.bincount(nodes, minlength=num_nodes), 0)
    size = max(len(split), 1)
    return NodeIncidence(rowptr, order % size, torch.div(order, size, rounding_mode="floor"))


def _sorting_beats_a_pass(count: int, rows: int) -> bool:
    """Whether sorting ``count`` entries (``count log count``) costs less than one pass over ``rows``."""
    return 4 * count * count.bit_length() < rows
