"""BPR's triples: the positive rows it trains on, one reproducible negative item per positive
per epoch, and the loss (docs/ARCHITECTURE.md §5, "BPR").

BPR trains on the label-1 rows of ``dataset.train`` (minus a ``removal``); rows with label 0
are not used. Each epoch pairs every positive row ``(u, i)`` with one item ``j`` drawn
uniformly from the items that are NOT among ``u``'s training positives, and minimises the mean
over the triples of ``−log σ(f_u·f_i − f_u·f_j)`` (plus ``(λ/2)‖E‖²`` in ``train``).

The negative of a row is a pure function of ``(seed, epoch, row index in dataset.train)``: a
counter-based hash (splitmix64), never a generator's state. So it does not depend on the batch
order, on which other rows a Retrain leaves out, or on how many rows are drawn at once, and the
unlearning side can rebuild the triples of any epoch (``bpr_negatives``). For the same reason
the items excluded are the user's positives in the WHOLE training split, removed rows
included: Original and Retrain draw the same negative for every row they share.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn.functional import softplus

from ..data import RecDataset

__all__ = ["BPR_ROUNDS", "NegativeSampler", "bpr_loss", "bpr_negatives", "bpr_rows"]

# Hash rounds tried per row before the exact fallback: a round hits one of the user's positives
# with probability (positives / items), so 32 rounds leave a row unresolved with probability
# below 1e-9 for a user holding half the items (BookCrossing: at most a few percent).
BPR_ROUNDS = 32

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment


def _mix_int(x: int) -> int:
    """splitmix64's finaliser on a Python int (a bijection of 64-bit words)."""
    x &= _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _mix(x: np.ndarray) -> np.ndarray:
    """The same finaliser on a uint64 array (numpy array arithmetic wraps modulo 2^64)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def bpr_rows(dataset: RecDataset, removal: Tensor | None = None) -> Tensor:
    """The rows BPR trains on: sorted int64 indices into ``dataset.train`` of the label-1 rows
    not in ``removal`` (int64 train indices or None)."""
    keep = dataset.train.labels == 1
    if removal is not None:
        removal = torch.as_tensor(removal, dtype=torch.int64).cpu()
        if removal.numel() and (int(removal.min()) < 0 or int(removal.max()) >= len(dataset.train)):
            raise ValueError(f"removal indices must lie in [0, {len(dataset.train)})")
        keep[removal] = False
    return torch.nonzero(keep).flatten()


class NegativeSampler:
    """``sampler(rows, epoch, seed)``: the BPR negative item of each training row, for one dataset.

    Built once per dataset (it sorts the training positives as keys ``user·I + item``). For
    round ``r = 0, 1, …, BPR_ROUNDS − 1`` the candidate of row ``k`` is ``h_r mod I`` with
    ``h_r = splitmix64 output r of the stream seeded by (seed, epoch, k)``; the first candidate
    that is not one of the user's training positives is taken. A row still unresolved after
    ``BPR_ROUNDS`` rounds takes the ``(h mod m)``-th (0-based, ascending) of the user's ``m``
    non-positive items, drawn with the next round's hash: exact, so the draw is uniform over
    the user's non-positive items either way (up to the modulo bias ``I/2^64``). A user whose
    positives cover every item has no negative: its rows get the round-0 candidate (a positive).
    """

    def __init__(self, dataset: RecDataset) -> None:
        train = dataset.train
        positive = (train.labels == 1).numpy()
        self.num_items = dataset.num_items
        self.users = train.users.numpy()
        self.keys = np.unique(self.users[positive] * self.num_items + train.items.numpy()[positive])

    def _is_positive(self, keys: np.ndarray) -> np.ndarray:
        """Per key ``user·I + item``, whether the pair is a training positive."""
        if self.keys.size == 0:
            return np.zeros(keys.size, dtype=bool)
        at = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
        return self.keys[at] == keys

    def _count_up_to(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Per pair, how many of the user's positives are ≤ the item."""
        low = np.searchsorted(self.keys, users * self.num_items)
        return np.searchsorted(self.keys, users * self.num_items + items, side="right") - low

    def __call__(self, rows: Tensor, epoch: int, seed: int) -> Tensor:
        """int64 [len(rows)] items (not offset) for ``rows`` (int64 indices into ``dataset.train``)."""
        index = torch.as_tensor(rows, dtype=torch.int64).cpu().numpy()
        if index.size and (index.min() < 0 or index.max() >= self.users.size):
            raise ValueError(f"rows must lie in [0, {self.users.size})")
        base = _mix_int(_mix_int(_mix_int(seed) + _GOLDEN) ^ (epoch & _MASK))
        # Each row's own splitmix64 stream: state_k = mix(base ^ k), output r = mix(state_k + (r+1)·γ).
        state = _mix(np.uint64(base) ^ index.astype(np.uint64))
        users = self.users[index]
        out = np.empty(index.size, dtype=np.int64)
        todo = np.arange(index.size)
        first = None
        for r in range(BPR_ROUNDS):
            if todo.size == 0:
                break
            candidate = (_mix(state[todo] + np.uint64((r + 1) * _GOLDEN & _MASK)) % np.uint64(self.num_items)).astype(np.int64)
            if first is None:
                first = candidate
            hit = self._is_positive(users[todo] * self.num_items + candidate)
            out[todo[~hit]] = candidate[~hit]
            todo = todo[hit]
        if todo.size:
            self._fallback(out, todo, users, state, first)
        return torch.from_numpy(out)

    def _fallback(self, out: np.ndarray, todo: np.ndarray, users: np.ndarray, state: np.ndarray,
                  first: np.ndarray) -> None:
        """The exact draw for the rows ``todo`` (positions) still unresolved after the rounds."""
        u = users[todo]
        held = self._count_up_to(u, np.full(u.size, self.num_items - 1))  # the user's positives
        free = self.num_items - held
        none = free == 0
        out[todo[none]] = first[todo[none]]  # round 0 drew for every position
        todo, u, free = todo[~none], u[~none], free[~none]
        if todo.size == 0:
            return
        step = np.uint64((BPR_ROUNDS + 1) * _GOLDEN & _MASK)
        rank = (_mix(state[todo] + step) % free.astype(np.uint64)).astype(np.int64)
        # The rank-th non-positive item j is the least fixed point of j = rank + #{p ≤ j}.
        item = rank.copy()
        while True:
            nxt = rank + self._count_up_to(u, item)
            if np.array_equal(nxt, item):
                break
            item = nxt
        out[todo] = item


def bpr_negatives(dataset: RecDataset, rows: Tensor, epoch: int, seed: int) -> Tensor:
    """The negative items (int64, not offset) of training ``rows`` at ``epoch`` (1-based, as
    ``train`` counts) of a run seeded by ``seed``: the triples of that epoch are
    ``(train.users[rows], train.items[rows], bpr_negatives(...))``. See ``NegativeSampler``."""
    return NegativeSampler(dataset)(rows, epoch, seed)


def bpr_loss(positive: Tensor, negative: Tensor) -> Tensor:
    """Mean over triples of ``−log σ(x_ui − x_uj)`` from the logits of the positive and the
    negative pair of each triple."""
    return softplus(negative - positive).mean()
