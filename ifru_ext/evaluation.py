"""Evaluation: a model's AUC_0/1/2 on a dataset's splits (docs/ARCHITECTURE.md §5)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .data import RecDataset
from .metrics import removal_aucs

__all__ = ["evaluate", "removal_auc"]


def removal_auc(
    scores: Tensor | Callable[[Tensor, Tensor], Tensor],
    dataset: RecDataset,
    split: str = "test",
) -> dict[str, float]:
    """``removal_aucs`` on ``dataset``'s ``split`` ("train", "valid" or "test").

    ``scores``: the split's scores [n], or a function ``(users, items) -> scores [n]``
    called on the split's rows. The touched users/items come from ``dataset.removal``.
    """
    if split not in ("train", "valid", "test"):
        raise ValueError(f"split must be 'train', 'valid' or 'test', got {split!r}")
    rows = getattr(dataset, split)
    values = torch.as_tensor(scores(rows.users, rows.items) if callable(scores) else scores)
    if values.shape != rows.labels.shape:
        raise ValueError(f"expected {len(rows)} scores for the {split} split, got {tuple(values.shape)}")
    removed_users, removed_items = dataset.touched()
    return removal_aucs(values, rows.users, rows.items, rows.labels, removed_users, removed_items)


def evaluate_model(model, dataset: "RecDataset", splits: tuple[str, ...] = ("valid", "test")) -> dict[str, dict[str, float]]:
    """AUC_0/1/2 of a recommender (anything with ``score_all(users, items)``) on ``splits``."""
    return {
        split: removal_auc(model.score_all(getattr(dataset, split).users, getattr(dataset, split).items).cpu(), dataset, split)
        for split in splits
    }


def evaluate(model, dataset: RecDataset, splits: tuple[str, ...] = ("valid", "test")) -> dict[str, dict[str, float]]:
    """AUC_0/1/2 of a recommender (anything with ``score_all(users, items)``) on ``splits``."""
    return {
        split: removal_auc(model.score_all(getattr(dataset, split).users, getattr(dataset, split).items).cpu(), dataset, split)
        for split in splits
    }
