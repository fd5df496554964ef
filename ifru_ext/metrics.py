"""Metrics as plain functions of scores: ROC AUC, AUC on the removal-touched subsets,
completeness, and the full-ranking metrics Recall@K, NDCG@K and HitRate@K of a block of
users' scores over every item. ``evaluation`` applies them to a model and a dataset.

Protocol (docs/ARCHITECTURE.md §5): AUC_0 on all rows of a split, AUC_1 on rows whose user OR
item appears in the removal set ``D_r``, AUC_2 on rows whose user AND item do; the
completeness coefficient is ``(m − o) / (r − o)`` per metric.
"""
from __future__ import annotations

import math
import re
from typing import Callable, Iterable, Mapping

import numpy as np
import torch
from torch import Tensor

__all__ = ["METRICS", "RANKING", "REPORTED_RANKING", "PartialAUC", "auc", "auc_noise", "auc_placements", "completeness",
           "paired_auc_sd", "parse_metrics", "ranking_cutoff", "removal_aucs", "user_ranking_metrics"]

# The paper's three test metrics, in report order.
METRICS = ("auc_0", "auc_1", "auc_2")
# Full-ranking metric kinds, named ``<kind>@K`` (docs/ARCHITECTURE.md §5).
RANKING = ("recall", "ndcg", "hr")
# The ranking metrics the experiment and fidelity reports add to every model.
REPORTED_RANKING = ("recall@20", "ndcg@20")


def auc(scores: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> float:
    """ROC AUC by the Mann–Whitney statistic: the share of (positive, negative) pairs the
    positive wins, ties counted half (the rank-sum form, ties at their average rank, to the bit:
    every count is a sum of halves, exact in float64).

    scores: [n] real; labels: [n] in {0, 1} (bool or numeric). O(n log n): each class sorted
    (``_ascending``), the positives counted against the negatives by binary search. Returns
    ``nan`` when only one class is present (AUC is undefined; ``nan`` lets sparse subsets such as
    AUC_2 report "no data" instead of failing).
    Raises ValueError for mismatched shapes, non-binary labels or NaN scores.
    """
    scores = torch.as_tensor(scores).reshape(-1).to(torch.float64)
    labels = torch.as_tensor(labels, device=scores.device).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels must have the same length, got {scores.numel()} and {labels.numel()}")
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError("labels must be 0/1")
    if bool(torch.isnan(scores).any()):
        raise ValueError("scores contain NaN")
    positive = labels == 1
    num_pos = int(positive.sum())
    num_neg = labels.numel() - num_pos
    if num_pos == 0 or num_neg == 0:
        return math.nan
    # sorted queries: the binary searches walk the negatives in order (the sum does not depend on it)
    won = _beaten(_ascending(scores[~positive]), _ascending(scores[positive])).sum().item()
    return won / (num_pos * num_neg)


def _ascending(values: Tensor) -> Tensor:
    """``values`` [n] in ascending order. On the CPU by NumPy's sort, which is vectorised
    (BookCrossing's 116,757 validation scores, float64: 0.6 ms against 9.3 ms for ``torch.sort``,
    two threads); elsewhere ``torch.sort``. The values come out the same either way."""
    if values.device.type == "cpu":
        return torch.from_numpy(np.sort(values.detach().numpy()))
    return values.sort().values


def _beaten(sorted_scores: Tensor, scores: Tensor) -> Tensor:
    """Per score of ``scores``: how many of ``sorted_scores`` (ascending) lie below it, ties counted half.
    Callers that only sum the counts pass ``scores`` sorted too: the searches then walk memory in
    order (60k queries into 139k float64 scores: 1.2 against 2.9 ms a search)."""
    return (torch.searchsorted(sorted_scores, scores, right=False)
            + torch.searchsorted(sorted_scores, scores, right=True)).to(torch.float64) / 2


class PartialAUC:
    """The AUC of scores of which only a subset changes, at the cost of that subset.

    ``auc`` sorts every score; a model update that moves a few rows changes only the scores of
    the pairs reading them. Built once from ``scores`` [n] and ``labels`` [n] (0/1; both classes
    present), ``changed(positions)`` (int64 [c], ascending, distinct) returns a function of those
    scores' new values (in ``positions`` order) giving the AUC of the whole set with them —
    exactly ``auc`` of the updated scores (ties half), in O(n log n) once and O(c log n) per
    ``changed`` and per call: the Mann–Whitney count of won (positive, negative) pairs is the
    unchanged pairs' (fixed) plus those with a changed member, counted by binary search against
    the other class's unchanged scores — its sorted scores less the changed members' old ones,
    a count being additive over a union — and among the changed ones (when most scores change,
    the whole updated set is counted instead: ``_whole``)."""

    def __init__(self, scores: Tensor, labels: Tensor):
        self.scores = scores.reshape(-1).to(torch.float64)
        self.positive = torch.as_tensor(labels, device=self.scores.device).reshape(-1) == 1
        self.ascending = {positive: _ascending(self.scores[self.positive == positive]) for positive in (True, False)}
        self.pairs = self.ascending[True].numel() * self.ascending[False].numel()
        if self.pairs == 0:
            raise ValueError("PartialAUC needs both labels among the scores")
        self.won = float(_beaten(self.ascending[False], self.ascending[True]).sum())

    def changed(self, positions: Tensor) -> Callable[[Tensor], float]:
        positions = positions.reshape(-1)
        if 2 * positions.numel() > self.scores.numel():
            return self._whole(positions)
        positive = self.positive.index_select(0, positions)
        old = self.scores.index_select(0, positions)
        leaving = {True: _ascending(old[positive]), False: _ascending(old[~positive])}  # per class, sorted
        staying = {c: self.ascending[c].numel() - leaving[c].numel() for c in (True, False)}

        def beaten_by_staying(c: bool, queries: Tensor) -> Tensor:
            return _beaten(self.ascending[c], queries) - _beaten(leaving[c], queries)

        def touching(new: Tensor) -> float:
            """Won pairs with a changed member, at scores ``new`` [c] for the changed ones."""
            pos, neg = _ascending(new[positive]), _ascending(new[~positive])  # sorted queries: ~2× faster searches
            return float(beaten_by_staying(False, pos).sum()
                         + (staying[True] * neg.numel() - beaten_by_staying(True, neg).sum())
                         + _beaten(neg, pos).sum())

        fixed = self.won - touching(old)

        def auc_with(new: Tensor) -> float:
            return (fixed + touching(new.reshape(-1).to(torch.float64))) / self.pairs

        return auc_with

    def _whole(self, changed: Tensor) -> Callable[[Tensor], float]:
        """``changed`` when most scores change: each call counts the won pairs of the whole updated
        set, one sort of its negatives and a binary search of its positives, where the subset's
        way takes ten binary searches per call (BookCrossing MF, a 2% request's answer: most
        validation pairs read a moved row). Every count is a sum of halves, exact in float64: the
        same AUC to the bit either way."""
        positives, negatives = self.positive.nonzero().squeeze(1), (~self.positive).nonzero().squeeze(1)
        scores = self.scores.clone()

        def auc_with(new: Tensor) -> float:
            scores.index_copy_(0, changed, new.reshape(-1).to(torch.float64))
            won = _beaten(_ascending(scores.index_select(0, negatives)), _ascending(scores.index_select(0, positives)))
            return float(won.sum()) / self.pairs

        return auc_with


def auc_placements(scores: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """DeLong's placement values of ``scores`` [n] against ``labels`` [n] (0/1, both present):
    for each positive the share of negatives it outranks, for each negative the share of
    positives that outrank it (ties half), float64 [n₁] and [n₀]; each has the AUC as its mean."""
    scores = torch.as_tensor(scores).reshape(-1).to(torch.float64)
    positive = torch.as_tensor(labels, device=scores.device).reshape(-1) == 1
    pos, neg = scores[positive], scores[~positive]
    if pos.numel() == 0 or neg.numel() == 0:
        raise ValueError("auc_placements needs both labels among the scores")
    of_positives = _beaten(_ascending(neg), pos) / neg.numel()
    of_negatives = 1 - _beaten(_ascending(pos), neg) / pos.numel()
    return of_positives, of_negatives


def paired_auc_sd(first: tuple[Tensor, Tensor], second: tuple[Tensor, Tensor]) -> float:
    """The standard deviation of ``AUC(first) − AUC(second)`` for two scorings of the same rows,
    from their ``auc_placements`` (DeLong, DeLong & Clarke-Pearson 1988): the sample variances of
    the per-positive and per-negative differences over their counts. Two scorings that rank the
    rows alike have a small one however small the split, so it tells a real difference between
    two nearby models from their ranking noise where ``auc_noise`` (of one scoring) cannot."""
    return math.sqrt(sum(float((a - b).var()) / a.numel() for a, b in zip(first, second)))


def auc_noise(labels: Tensor | np.ndarray) -> float:
    """The standard deviation of the AUC of a score unrelated to ``labels`` (0/1 [n]):
    ``√((n₁ + n₀ + 1) / (12 n₁ n₀))`` (Mann–Whitney under the null). Differences of AUCs on
    these labels below it are indistinguishable from noise. ``inf`` when a class is absent."""
    labels = torch.as_tensor(labels).reshape(-1)
    positives = int((labels == 1).sum())
    negatives = labels.numel() - positives
    if positives == 0 or negatives == 0:
        return math.inf
    return math.sqrt((positives + negatives + 1) / (12.0 * positives * negatives))


def removal_aucs(
    scores: Tensor,
    users: Tensor,
    items: Tensor,
    labels: Tensor,
    removed_users: Tensor,
    removed_items: Tensor,
) -> dict[str, float]:
    """AUC_0 / AUC_1 / AUC_2 of one split.

    scores, users, items, labels: [n] for the split's rows (items NOT offset);
    removed_users, removed_items: ids touched by the removal set (repeats allowed).
    AUC_1 uses rows whose user OR item is touched, AUC_2 rows whose user AND item
    are; an empty or one-class subset gives ``nan``.
    """
    user_hit = torch.isin(users, removed_users.to(users.device))
    item_hit = torch.isin(items, removed_items.to(items.device))
    labels = labels.to(scores.device)
    either, both = (user_hit | item_hit).to(scores.device), (user_hit & item_hit).to(scores.device)
    return {
        "auc_0": auc(scores, labels),
        "auc_1": auc(scores[either], labels[either]),
        "auc_2": auc(scores[both], labels[both]),
    }


def completeness(
    method: Mapping[str, float], original: Mapping[str, float], retrain: Mapping[str, float]
) -> dict[str, float]:
    """Completeness coefficient ``(m − o) / (r − o)`` for every metric in ``method``.

    1 means the method matched Retrain, 0 that it left the Original model's metric
    unchanged. ``nan`` where Retrain equals Original (the coefficient is undefined).
    Raises KeyError if ``original`` or ``retrain`` lacks one of ``method``'s metrics.
    """
    out = {}
    for name, value in method.items():
        gap = retrain[name] - original[name]
        out[name] = (value - original[name]) / gap if gap != 0 else math.nan
    return out


_RANKING_NAME = re.compile(r"(recall|ndcg|hr)@([0-9]+)")


def ranking_cutoff(name: str) -> tuple[str, int]:
    """``"recall@20"`` → ``("recall", 20)``; a ValueError naming ``name`` if it is not
    ``recall@K``, ``ndcg@K`` or ``hr@K`` with K a positive integer."""
    match = _RANKING_NAME.fullmatch(name)
    if match is None or int(match.group(2)) < 1:
        raise ValueError(f"unknown metric {name!r}: expected auc, recall@K, ndcg@K or hr@K with K a positive integer")
    return match.group(1), int(match.group(2))


def parse_metrics(names: str | Iterable[str]) -> tuple[str, ...]:
    """Canonical metric names from comma-separated text or a sequence: ``auc`` (AUC_0/1/2) and
    ``recall@K``, ``ndcg@K``, ``hr@K``. Case and surrounding spaces are ignored, ``K`` is
    written without leading zeros, repeats are dropped (first kept). A ValueError names the
    first bad entry; an empty list is a ValueError too."""
    entries = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for entry in entries:
        if not isinstance(entry, str):
            raise ValueError(f"metric names must be strings, got {entry!r}")
        name = entry.strip().lower()
        if name != "auc":
            kind, k = ranking_cutoff(name)
            name = f"{kind}@{k}"
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError("no metric given: expected auc, recall@K, ndcg@K or hr@K")
    return tuple(out)


def user_ranking_metrics(
    scores: Tensor, excluded: Tensor, relevant: Tensor, names: Iterable[str]
) -> dict[str, Tensor]:
    """Per-user full-ranking metrics of a block of ``u`` users over all items.

    scores: [u, I] real (finite); excluded: bool [u, I], items a user's ranking leaves out
    (e.g. the training items); relevant: bool [u, I], the items that count as hits (an
    excluded item is never relevant). names: canonical ``recall@K`` / ``ndcg@K`` / ``hr@K``.

    Each user's candidates (items not excluded) are ranked by descending score, ties broken
    by the LOWER item index first; the top K are compared with the relevant set ``R``:

    - ``recall@K = hits / |R|`` (LightGCN's code; not capped at K, so a user with more than
      K relevant items cannot reach 1);
    - ``ndcg@K = DCG / IDCG``, binary gains, ``DCG = Σ_{hits} 1/log2(rank + 2)`` with 0-based
      rank, IDCG the DCG of ``min(K, |R|)`` hits at the top;
    - ``hr@K = 1`` if any hit, else 0.

    A K above the number of items ranks every candidate. Returns ``{name: float64 [u]}``,
    ``nan`` for users with no relevant item (callers skip them). ``torch.topk`` of the
    largest K finds each relevant item's exact rank under the tie rule: items scoring above
    the K-th largest score are all in the top list, and ties AT that score are ordered by
    index over the whole row.
    """
    names = tuple(names)
    cutoffs = [ranking_cutoff(name) for name in names]
    if scores.dim() != 2 or excluded.shape != scores.shape or relevant.shape != scores.shape:
        raise ValueError(f"scores, excluded and relevant must share one [u, I] shape, got "
                         f"{tuple(scores.shape)}, {tuple(excluded.shape)}, {tuple(relevant.shape)}")
    if excluded.dtype != torch.bool or relevant.dtype != torch.bool:
        raise ValueError("excluded and relevant must be bool masks")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError("scores must be finite")
    num_users, num_items = scores.shape
    scores = scores if scores.is_floating_point() else scores.double()
    relevant = relevant & ~excluded
    num_relevant = relevant.sum(1)
    counted = num_relevant > 0
    if not bool(counted.any()):
        return {name: torch.full((num_users,), math.nan, dtype=torch.float64, device=scores.device) for name in names}
    depth = min(max(k for _, k in cutoffs), num_items)  # >= 1: some item is relevant
    # Excluded items sink below every candidate; they are never relevant, so their ranks do not matter.
    masked = scores.masked_fill(excluded, -math.inf)
    values, indices = torch.topk(masked, depth, dim=1)
    rows, cols = relevant.nonzero(as_tuple=True)
    score, threshold = masked[rows, cols], values[rows, -1]
    rank = torch.full_like(rows, depth)  # ``depth`` stands for "below the top ``depth``"
    above = score > threshold
    if bool(above.any()):
        # Every item scoring at least this high is in the top list: count those ranked before it.
        top, top_index, s, c = values[rows[above]], indices[rows[above]], score[above, None], cols[above, None]
        rank[above] = ((top > s) | ((top == s) & (top_index < c))).sum(1)
    tied = score == threshold
    if bool(tied.any()):
        # At the threshold the top list holds only some of the tied items: count the ties with
        # a lower index over the whole row, after every item strictly above.
        tie_rows, inverse = torch.unique(rows[tied], return_inverse=True)
        row_threshold = values[tie_rows, -1, None]
        greater = (values[tie_rows] > row_threshold).sum(1)
        ties_up_to = (masked[tie_rows] == row_threshold).cumsum(1, dtype=torch.int32)
        rank[tied] = greater[inverse] + ties_up_to[inverse, cols[tied]] - 1
    discount = 1.0 / torch.log2(torch.arange(2, depth + 2, dtype=torch.float64, device=scores.device))
    ideal = torch.cat((discount.new_zeros(1), discount.cumsum(0)))  # ideal[m]: DCG of m hits at the top
    out = {}
    for name, (kind, k) in zip(names, cutoffs):
        hit = rank < k
        hits = torch.zeros(num_users, dtype=torch.float64, device=scores.device).index_add_(0, rows, hit.double())
        if kind == "recall":
            value = hits / num_relevant
        elif kind == "hr":
            value = (hits > 0).double()
        else:
            gains = torch.where(hit, discount[rank.clamp(max=depth - 1)], 0.0)
            dcg = torch.zeros_like(hits).index_add_(0, rows, gains)
            value = dcg / ideal[num_relevant.clamp(max=min(k, depth))]
        out[name] = torch.where(counted, value, math.nan)
    return out
