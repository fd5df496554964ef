"""Evaluation: a model's AUC_0/1/2 on a dataset's splits (docs/ARCHITECTURE.md §5), and what
a request should have changed: the loss on the forgotten rows and how well that loss tells
them from unseen rows (membership inference; docs/ARCHITECTURE.md §6)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .data import RecDataset
from .metrics import auc, removal_aucs

__all__ = ["evaluate", "forget_loss", "membership_auc", "removal_auc"]


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


def _row_losses(model, users: Tensor, items: Tensor, labels: Tensor) -> Tensor:
    """Per-row BCE [n] (float64) of the model's logits against ``labels``."""
    logits = model.score_all(users, items).double().cpu()
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.double().cpu(), reduction="none")


def forget_loss(model, dataset: RecDataset, removal: Tensor) -> float:
    """Mean BCE on the training rows ``removal`` with the labels the model was trained on.

    Retrain never saw them, so for it they are unseen data and the loss rises; an
    unlearned model should move it the same way.
    """
    rows = dataset.train.select(torch.as_tensor(removal, dtype=torch.int64))
    if len(rows) == 0:
        raise ValueError("forget_loss needs a non-empty removal")
    return float(_row_losses(model, rows.users, rows.items, rows.labels).mean())


def membership_auc(model, dataset: RecDataset, removal: Tensor) -> float:
    """Loss-based membership inference: the AUC of ``−loss`` separating the rows ``removal``
    (scored with their trained labels) from the test rows. 0.5: they look unseen."""
    rows = dataset.train.select(torch.as_tensor(removal, dtype=torch.int64))
    test = dataset.test
    member = -_row_losses(model, rows.users, rows.items, rows.labels)
    unseen = -_row_losses(model, test.users, test.items, test.labels)
    labels = torch.cat((torch.ones_like(member), torch.zeros_like(unseen)))
    return auc(torch.cat((member, unseen)), labels)
