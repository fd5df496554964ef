"""Evaluation: a model's AUC_0/1/2 and full-ranking Recall@K / NDCG@K / HitRate@K on a
dataset's splits (docs/ARCHITECTURE.md §5), and what a request should have changed: the loss
on the forgotten rows and how well that loss tells them from unseen rows (membership
inference; docs/ARCHITECTURE.md §6)."""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch import Tensor

from .data import RecDataset
from .metrics import REPORTED_RANKING, auc, parse_metrics, ranking_cutoff, removal_aucs, user_ranking_metrics
from .models.trace import training_loss
from .unlearning import terms

__all__ = ["RANKING_CHUNK", "evaluate", "forget_loss", "membership_auc", "ranking", "removal_auc"]

# Users scored per block in full ranking: a [RANKING_CHUNK, num_items] score block at a time
# (BookCrossing: 512 × 37,992 float32 scores, 78 MB).
RANKING_CHUNK = 512


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


def _pair_keys(users: Tensor, items: Tensor, num_items: int) -> Tensor:
    """One int64 key per (user, item) pair, ordered by user then item."""
    return users.to(torch.int64) * num_items + items.to(torch.int64)


def _block_mask(keys: Tensor, users: Tensor, num_items: int, device: torch.device) -> Tensor:
    """bool [len(users), num_items]: the pairs of sorted ``keys`` whose user is in sorted ``users``."""
    low, high = torch.searchsorted(keys, torch.stack((users[0] * num_items, (users[-1] + 1) * num_items)))
    part = keys[low:high]
    row = torch.searchsorted(users, part // num_items)
    inside = users[row.clamp(max=users.numel() - 1)] == part // num_items
    mask = torch.zeros(users.numel(), num_items, dtype=torch.bool, device=device)
    mask[row[inside].to(device), (part[inside] % num_items).to(device)] = True
    return mask


def _score_block(model, table: Tensor | None, users: Tensor, num_users: int, num_items: int) -> Tensor:
    """Scores [len(users), num_items] of ``users`` against every item: user rows × item rows of the
    scoring table (items offset by ``num_users``), else ``score_all`` over the users × items grid."""
    if table is not None:
        return table[users.to(table.device)] @ table[num_users:].T
    grid_users = users.repeat_interleave(num_items)
    grid_items = torch.arange(num_items).repeat(users.numel())
    return model.score_all(grid_users, grid_items).reshape(users.numel(), num_items)


@torch.no_grad()
def ranking(
    model, dataset: RecDataset, split: str = "test", names: Iterable[str] = REPORTED_RANKING,
    chunk_size: int = RANKING_CHUNK,
) -> dict[str, float]:
    """Full-ranking ``recall@K`` / ``ndcg@K`` / ``hr@K`` (``user_ranking_metrics``) of ``model`` on
    ``split`` ("valid" or "test"): the mean over the split's users that have a relevant item.

    Each user ranks every item except the EXCLUDED ones: every item of the user's training rows
    (``dataset.train``, any label, the removal set's rows included: the same candidates for every
    model of the dataset, Original, Retrain or unlearned) and, for the test split, the user's
    validation items (any label). The relevant items are the split's label-1 items that are
    candidates; a user without one is skipped. ``model``: anything with ``scoring_table()`` ([N, d],
    items offset by ``num_users``) or else ``score_all(users, items)``; ``chunk_size`` users are
    scored at a time, a [chunk_size, num_items] block.
    """
    names = tuple(names)
    for name in names:
        ranking_cutoff(name)
    if split not in ("valid", "test"):
        raise ValueError(f"ranking metrics are computed on 'valid' or 'test', got split {split!r}")
    if not chunk_size >= 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    num_users, num_items = dataset.num_users, dataset.num_items
    seen = (dataset.train, dataset.valid) if split == "test" else (dataset.train,)
    excluded = torch.unique(torch.cat([_pair_keys(rows.users, rows.items, num_items) for rows in seen]))
    rows = getattr(dataset, split)
    positive = rows.labels == 1
    relevant = torch.unique(_pair_keys(rows.users[positive], rows.items[positive], num_items))
    relevant = relevant[~torch.isin(relevant, excluded)]
    users = torch.unique(relevant // num_items)
    if users.numel() == 0:
        return {name: math.nan for name in names}
    table = model.scoring_table() if hasattr(model, "scoring_table") else None
    if table is not None and table.shape[0] != num_users + num_items:
        raise ValueError(f"the scoring table has {table.shape[0]} rows, the dataset {num_users} + {num_items}")
    sums = dict.fromkeys(names, 0.0)
    for start in range(0, users.numel(), chunk_size):
        chunk = users[start:start + chunk_size]
        scores = _score_block(model, table, chunk, num_users, num_items)
        values = user_ranking_metrics(scores, _block_mask(excluded, chunk, num_items, scores.device),
                                      _block_mask(relevant, chunk, num_items, scores.device), names)
        for name in names:
            sums[name] += float(values[name].sum())  # every user of the chunk has a relevant item
    return {name: total / users.numel() for name, total in sums.items()}


def evaluate(
    model, dataset: RecDataset, splits: tuple[str, ...] = ("valid", "test"), metrics: str | Iterable[str] = ("auc",),
    chunk_size: int = RANKING_CHUNK,
) -> dict[str, dict[str, float]]:
    """``{split: {metric: value}}`` of a recommender (anything with ``score_all(users, items)``).

    ``metrics``: names as ``parse_metrics`` reads them (a list or comma-separated text):
    ``auc`` gives ``auc_0``, ``auc_1``, ``auc_2`` (``removal_auc``), ``recall@K``, ``ndcg@K``,
    ``hr@K`` the full-ranking metrics of ``ranking`` (splits "valid" and "test" only), keyed by
    their names, in the order given. The default is the AUCs alone. A bad name is a ValueError
    naming it.
    """
    names = parse_metrics(metrics)
    ranked = tuple(name for name in names if name != "auc")
    out = {}
    for split in splits:
        ranked_values = ranking(model, dataset, split, ranked, chunk_size) if ranked else {}
        values: dict[str, float] = {}
        for name in names:
            if name == "auc":
                values.update(removal_auc(lambda users, items: model.score_all(users, items).cpu(), dataset, split))
            else:
                values[name] = ranked_values[name]
        out[split] = values
    return out


def _row_losses(model, users: Tensor, items: Tensor, labels: Tensor) -> Tensor:
    """Per-row BCE [n] (float64) of the model's logits against ``labels``."""
    logits = model.score_all(users, items).double().cpu()
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.double().cpu(), reduction="none")


def forget_loss(model, dataset: RecDataset, removal: Tensor) -> float:
    """Mean training loss on the training rows ``removal``: BCE with the labels the model was
    trained on, or for a BPR model its expected BPR loss on the removed positives
    (``unlearning.terms.forget_loss``, the number ``unlearn``'s evidence reports too).

    Retrain never saw them, so for it they are unseen data and the loss rises; an
    unlearned model should move it the same way.
    """
    rows = torch.as_tensor(removal, dtype=torch.int64)
    if rows.numel() == 0:
        raise ValueError("forget_loss needs a non-empty removal")
    return terms.forget_loss(model, dataset, rows, training_loss(model))


def membership_auc(model, dataset: RecDataset, removal: Tensor) -> float:
    """Loss-based membership inference: the AUC of ``−loss`` separating the rows ``removal``
    (scored with their trained labels) from the test rows. 0.5: they look unseen."""
    rows = dataset.train.select(torch.as_tensor(removal, dtype=torch.int64))
    test = dataset.test
    member = -_row_losses(model, rows.users, rows.items, rows.labels)
    unseen = -_row_losses(model, test.users, test.items, test.labels)
    labels = torch.cat((torch.ones_like(member), torch.zeros_like(unseen)))
    return auc(torch.cat((member, unseen)), labels)
