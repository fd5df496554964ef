"""Deletion requests → validated training-row indices: the one check every method uses."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .dataset import RecDataset
from .readers import read_ids

__all__ = ["read_request", "rows_of_raw_pairs", "validate_removal"]


def validate_removal(dataset: RecDataset, rows: Tensor | None = None, *, users: Tensor | None = None,
                     items: Tensor | None = None) -> Tensor:
    """A deletion request as sorted, distinct training-row indices int64 [r] (CPU).

    Give either ``rows`` (int64 indices into ``dataset.train``) or the encoded
    ``users`` and ``items`` [m] of the pairs to forget; every training row matching a
    pair is returned (a pair stored twice in train yields both rows). Raises ValueError
    listing up to 5 offenders per problem: non-integer or non-1-D input, indices outside
    the training set or named twice; ids out of range, a pair repeated in the request,
    or a pair absent from the training set. Nothing is modified.
    """
    if (rows is None) == (users is None and items is None):
        raise ValueError("give either rows or users= and items=")
    if rows is not None:
        return _validated_rows(dataset, rows)
    if users is None or items is None:
        raise ValueError("a request by pairs needs both users= and items=")
    return _rows_of_pairs(dataset, users, items)


def _validated_rows(dataset: RecDataset, rows: Tensor) -> Tensor:
    rows = torch.as_tensor(rows)
    if rows.dtype.is_floating_point or rows.dtype == torch.bool or rows.dim() != 1:
        raise ValueError(f"removal must be a 1-D integer tensor of training-row indices, got {rows.dtype} "
                         f"{tuple(rows.shape)}")
    rows = rows.to(torch.int64).cpu()
    n = len(dataset.train)
    outside = rows[(rows < 0) | (rows >= n)]
    if outside.numel():
        raise ValueError(f"{outside.numel()} removal indices are not training rows [0, {n}): {outside[:5].tolist()}")
    unique, counts = torch.unique(rows, return_counts=True)
    if bool((counts > 1).any()):
        raise ValueError(f"removal names rows more than once: {unique[counts > 1][:5].tolist()}")
    return unique


def _rows_of_pairs(dataset: RecDataset, users: Tensor, items: Tensor) -> Tensor:
    users, items = (torch.as_tensor(ids).reshape(-1).cpu() for ids in (users, items))
    if users.is_floating_point() or items.is_floating_point():
        raise ValueError(f"users and items must be integer ids, got {users.dtype} and {items.dtype}")
    users, items = users.to(torch.int64).numpy(), items.to(torch.int64).numpy()
    if users.shape != items.shape:
        raise ValueError(f"users and items must have equal length, got {users.shape[0]} and {items.shape[0]}")

    def listing(mask: np.ndarray) -> str:
        shown = [(int(u), int(i)) for u, i in zip(users[mask][:5], items[mask][:5])]
        return f"{int(mask.sum())} pair(s), e.g. {shown}"

    problems = []
    out_of_range = (users < 0) | (users >= dataset.num_users) | (items < 0) | (items >= dataset.num_items)
    if out_of_range.any():
        problems.append(f"ids out of range (users < {dataset.num_users}, items < {dataset.num_items}): {listing(out_of_range)}")
    # Keys are unique per pair only when in range; out-of-range pairs are reported above.
    keys = np.where(out_of_range, -1, users * dataset.num_items + items)
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    repeated = np.zeros(keys.shape[0], dtype=bool)
    repeated[first[counts > 1]] = True
    repeated &= ~out_of_range
    if repeated.any():
        problems.append(f"pairs repeated in the request: {listing(repeated)}")
    train_keys = (dataset.train.users * dataset.num_items + dataset.train.items).numpy()
    order = np.argsort(train_keys, kind="stable")
    sorted_keys = train_keys[order]
    start = np.searchsorted(sorted_keys, keys, side="left")
    stop = np.searchsorted(sorted_keys, keys, side="right")
    absent = (start == stop) & ~out_of_range
    if absent.any():
        problems.append(f"pairs not in the training set: {listing(absent)}")
    if problems:
        raise ValueError("invalid removal request: " + "; ".join(problems))
    # Expand each [start, stop) run of sorted positions without a per-pair loop.
    lengths = stop - start
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return torch.from_numpy(np.sort(order[np.repeat(start, lengths) + offsets]))


def read_request(path: str | os.PathLike[str], dataset: RecDataset, *, whole_users: bool = False) -> Tensor:
    """Training rows (sorted int64 [r]) of the deletion request in the file at ``path``, by raw ids.

    Any layout ``readers.read_ids`` reads: a RecBole atomic file (``user_id:token`` and
    ``item_id:token`` fields), a delimited file with a header naming the user and item columns
    (CURE4Rec's ``uid,iid,val[,tag]``), or header-less ``user,item`` pairs separated by commas,
    tabs or spaces. A file naming pairs forgets every training row of each pair, checked by
    ``validate_removal`` (a pair named twice or absent from the training set is refused); a
    file naming only users (a ``user_id:token`` or ``user`` column alone) — or any file with
    ``whole_users=True`` — forgets every training row of each named user (named once or more).

    Raises ValueError naming up to five ids (or pairs) the training set does not know.
    """
    path = Path(path)
    frame = read_ids(path)
    users = pd.Index(dataset.user_ids.astype(str)).get_indexer(frame["user"])
    if whole_users or "item" not in frame:
        missing = pd.unique(frame["user"][users < 0])
        if missing.size:
            raise ValueError(f"{path}: {missing.size} user(s) absent from the training set, "
                             f"e.g. {missing[:5].tolist()}")
        rows = torch.isin(dataset.train.users, torch.from_numpy(np.unique(users))).nonzero().reshape(-1)
        return validate_removal(dataset, rows)
    return rows_of_raw_pairs(dataset, frame["user"].tolist(), frame["item"].tolist(), source=str(path))


def rows_of_raw_pairs(dataset: RecDataset, users: Sequence[str], items: Sequence[str], *, source: str,
                      merge_repeats: bool = False) -> Tensor:
    """Training rows (sorted int64 [r]) of the pairs of RAW ids ``users[k], items[k]``: every
    training row of each pair (``validate_removal``). A pair named twice is refused, or counted
    once with ``merge_repeats``. Raises ValueError, prefixed with ``source``, naming up to five
    pairs whose ids the training set does not know."""
    user_codes = pd.Index(dataset.user_ids.astype(str)).get_indexer(list(users))
    item_codes = pd.Index(dataset.item_ids.astype(str)).get_indexer(list(items))
    unknown = (user_codes < 0) | (item_codes < 0)
    if unknown.any():
        shown = [(users[k], items[k]) for k in np.flatnonzero(unknown)[:5]]
        raise ValueError(f"{source}: {int(unknown.sum())} pair(s) name ids absent from the training set, e.g. {shown}")
    pairs = np.stack([user_codes, item_codes], axis=1).astype(np.int64).reshape(-1, 2)
    if merge_repeats:
        pairs = np.unique(pairs, axis=0)
    try:
        return validate_removal(dataset, users=torch.from_numpy(pairs[:, 0].copy()),
                                items=torch.from_numpy(pairs[:, 1].copy()))
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None