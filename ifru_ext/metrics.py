"""Metrics as plain functions of scores: ROC AUC, AUC on the removal-touched subsets, and
completeness. ``evaluation`` applies them to a model and a dataset.

Protocol (docs/ARCHITECTURE.md §5): AUC_0 on all rows of a split, AUC_1 on rows whose user OR
item appears in the removal set ``D_r``, AUC_2 on rows whose user AND item do; the
completeness coefficient is ``(m − o) / (r − o)`` per metric.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch
from torch import Tensor

__all__ = ["METRICS", "auc", "completeness", "removal_aucs"]

# The paper's three test metrics, in report order.
METRICS = ("auc_0", "auc_1", "auc_2")


def auc(scores: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> float:
    """ROC AUC by the Mann–Whitney rank statistic, ties given their average rank.

    scores: [n] real; labels: [n] in {0, 1} (bool or numeric). O(n log n), on the
    tensors' device. Returns ``nan`` when only one class is present (AUC is undefined;
    ``nan`` lets sparse subsets such as AUC_2 report "no data" instead of failing).
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
    sorted_scores, order = torch.sort(scores)
    _, group, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    # The tie group ending at 1-based rank e with c members has average rank e − (c − 1)/2.
    ends = torch.cumsum(counts, 0).to(torch.float64)
    average_rank = (ends - (counts - 1).to(torch.float64) / 2)[group]
    positive_rank_sum = average_rank[positive[order]].sum().item()
    return (positive_rank_sum - num_pos * (num_pos + 1) / 2) / (num_pos * num_neg)


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
