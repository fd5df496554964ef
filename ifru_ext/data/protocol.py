"""Ratings files → binary-labelled, split, optionally attacked recommendation datasets.

The pipeline follows the protocol of the IFRU paper as implemented in the authors'
released code (docs/ARCHITECTURE.md §5), and reproduces its BookCrossing statistics exactly:

1. read the raw ratings (``read_bookcrossing`` / ``read_ratings``);
2. ``kcore``: keep users and items with ≥ k raw rows, repeated to a fixed point,
   BEFORE binarising;
3. ``binarize``: label = rating > threshold (implicit 0 ratings are negatives);
4. ``split_indices``: one seeded shuffle, 60/20/20 by interaction; ids re-encoded
   over the train part only; valid/test rows with a user or item unseen in train are
   dropped;
5. ``attack_indices``: flip the labels of a fraction of the training rows; those rows
   are the removal set ``D_r``.

Everything is vectorised with numpy/pandas; no Python loop runs per interaction
(the only per-line loop is a scan that locates the first malformed line of a file
after pandas has already reported a problem).
"""
from __future__ import annotations

import codecs
import math
import numbers
import os
from pathlib import Path
from typing import Literal, Sequence, TypedDict

import numpy as np
import pandas as pd
import torch

from .dataset import Interactions, RecDataset
from .readers import (REQUIRED_COLUMNS, inter_columns, is_atomic_file, read_atomic_header, read_bookcrossing, read_inter,
                      read_ratings)
from .synthetic import PLANTED_PREFIX, is_planted_name, planted_frame

__all__ = [
    "PAPER_ATTACK_FRACTIONS",
    "PRESETS",
    "Preset",
    "attack_indices",
    "binarize",
    "build_dataset",
    "data_dir",
    "kcore",
    "load_dataset",
    "split_indices",
]

# The paper's attack sizes (= removal sets): 2% of the training rows for MF, 1% for LightGCN.
PAPER_ATTACK_FRACTIONS = {"mf": 0.02, "lightgcn": 0.01}


# Label thresholds and k-core sizes. The BookCrossing paper text says label = rating > 6,
# but the authors' code uses > 5, and > 5 is what reproduces the paper's Table 2
# (docs/ARCHITECTURE.md §5, measured) — so the plain "bookcrossing" preset uses 5 and the
# paper-text variant is kept under its own name. Amazon-Electronics: > 4 (1–5 stars).
class Preset(TypedDict):
    """A named dataset: label threshold, k-core size, file under ``data_dir()``, reader."""

    threshold: float
    kcore: int
    file: str
    format: Literal["bookcrossing", "amazon"]


PRESETS: dict[str, Preset] = {
    "bookcrossing": Preset(threshold=5, kcore=5, file="bookcrossing/BX-Book-Ratings.csv.xz", format="bookcrossing"),
    "bookcrossing-paper-text": Preset(
        threshold=6, kcore=5, file="bookcrossing/BX-Book-Ratings.csv.xz", format="bookcrossing"
    ),
    # SNAP's headerless ratings_Electronics.csv: user,item,rating,timestamp (not bundled).
    "amazon": Preset(threshold=4, kcore=5, file="amazon/ratings_Electronics.csv", format="amazon"),
}


def _kcore_mask(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """bool [n]: rows of the k-core, for non-negative codes ``users``/``items`` int64 [n]."""
    keep = np.ones(users.shape[0], dtype=bool)
    if k <= 1:
        return keep
    num_users = int(users.max(initial=-1)) + 1
    num_items = int(items.max(initial=-1)) + 1
    while True:
        user_count = np.bincount(users[keep], minlength=num_users)
        item_count = np.bincount(items[keep], minlength=num_items)
        new_keep = keep & (user_count[users] >= k) & (item_count[items] >= k)
        if new_keep.sum() == keep.sum():
            return keep
        keep = new_keep


def kcore(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """Rows whose user and item both have ≥ k rows, repeated to a fixed point.

    Counts raw rows (any rating, duplicates included), as the authors' code does
    before binarising. The k-core is unique, so the removal order does not matter.
    Returns the kept rows in their original order, index reset.
    """
    users = pd.factorize(df["user"])[0]
    items = pd.factorize(df["item"])[0]
    return df[_kcore_mask(users, items, k)].reset_index(drop=True)


def binarize(df: pd.DataFrame, threshold: float) -> np.ndarray:
    """float32 [n]: 1 where rating > threshold, else 0 (so implicit 0 ratings are negatives)."""
    return (df["rating"].to_numpy() > threshold).astype(np.float32)


def split_indices(n: int, seed: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices (int64) of the 60/20/20 train/valid/test split of ``n`` rows.

    The authors' shuffle: ``np.random.seed(seed); np.random.shuffle(arange(n))``, which
    ``RandomState(seed).permutation`` reproduces, cut at ``int(0.6 n)`` and ``int(0.8 n)``.
    """
    order = np.random.RandomState(seed).permutation(n)
    cut_valid, cut_test = int(n * 0.6), int(n * 0.8)
    return order[:cut_valid], order[cut_valid:cut_test], order[cut_test:]


def attack_indices(n_train: int, fraction: float, seed: int | None = None) -> np.ndarray:
    """Sorted int64 indices of the training rows whose labels the attack flips.

    ``seed=None``: the authors' choice, the LAST ``n − int(n·(1 − fraction))`` rows of
    the training order (random already, since the split shuffled it); this reproduces
    their removal sets exactly. An int ``seed``: ``round(fraction·n)`` rows drawn
    without replacement by ``numpy.random.default_rng(seed)`` (for several attack
    seeds over one split). ``fraction=0`` gives an empty set.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"attack fraction must lie in [0, 1], got {fraction}")
    if seed is None:
        return np.arange(int(n_train * (1 - fraction)), n_train, dtype=np.int64)
    size = round(fraction * n_train)
    return np.sort(np.random.default_rng(seed).choice(n_train, size=size, replace=False)).astype(np.int64)


def _check_protocol_arguments(
    threshold: float, kcore: int, seed: int, attack_fraction: float, attack_seed: int | None
) -> None:
    """ValueError naming the argument for a value the protocol cannot use (NaN included)."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    if isinstance(kcore, bool) or not isinstance(kcore, numbers.Integral) or kcore < 0:
        raise ValueError(f"kcore must be an integer >= 0, got {kcore!r}")
    for name, value in (("seed", seed), ("attack_seed", attack_seed)):
        if value is None and name == "attack_seed":
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < 2**32:
            raise ValueError(f"{name} must be an integer in [0, 2**32), got {value!r}")
    if (isinstance(attack_fraction, bool) or not isinstance(attack_fraction, numbers.Real)
            or not 0.0 <= attack_fraction <= 1.0):  # NaN fails the comparison
        raise ValueError(f"attack_fraction must lie in [0, 1], got {attack_fraction!r}")


def build_dataset(
    df: pd.DataFrame,
    *,
    threshold: float,
    kcore: int,
    seed: int = 1024,
    attack_fraction: float = 0.0,
    attack_seed: int | None = None,
    source: str = "",
) -> RecDataset:
    """Run the protocol (k-core, binarise, split, re-encode, attack) on raw rows.

    ``df``: columns user, item, rating. Train keeps the shuffled order and ids are
    numbered in order of first appearance in train (as the authors' ``unique()``
    mapping); valid/test rows with an id unseen in train are dropped. The attack flips
    ``attack_indices(len(train), attack_fraction, attack_seed)``; they become ``removal``.
    """
    _check_protocol_arguments(threshold, kcore, seed, attack_fraction, attack_seed)
    # Factorise the raw ids once; the k-core, the split and the re-encoding all work on codes.
    user_codes, user_values = pd.factorize(df["user"])
    item_codes, item_values = pd.factorize(df["item"])
    keep = _kcore_mask(user_codes, item_codes, kcore)
    if not keep.any():
        raise ValueError(f"no interactions left after the {kcore}-core filter ({len(df)} raw rows)")
    user_codes, item_codes = user_codes[keep], item_codes[keep]
    labels = binarize(df, threshold)[keep]
    train_idx, valid_idx, test_idx = split_indices(len(labels), seed)

    # Re-encode over train: codes → 0..U-1 in first-appearance order, -1 when absent.
    train_users, user_first = pd.factorize(user_codes[train_idx])
    train_items, item_first = pd.factorize(item_codes[train_idx])
    user_map = np.full(len(user_values), -1, dtype=np.int64)
    user_map[user_first] = np.arange(len(user_first))
    item_map = np.full(len(item_values), -1, dtype=np.int64)
    item_map[item_first] = np.arange(len(item_first))

    def encoded(index: np.ndarray) -> Interactions:
        users, items = user_map[user_codes[index]], item_map[item_codes[index]]
        warm = (users >= 0) & (items >= 0)
        return Interactions(
            torch.from_numpy(users[warm]), torch.from_numpy(items[warm]), torch.from_numpy(labels[index][warm])
        )

    removed = attack_indices(len(train_idx), attack_fraction, attack_seed)
    train_labels = labels[train_idx]
    clean_positive_rate = float(train_labels.mean())
    train_labels[removed] = 1.0 - train_labels[removed]
    train = Interactions(
        torch.from_numpy(train_users.astype(np.int64)),
        torch.from_numpy(train_items.astype(np.int64)),
        torch.from_numpy(train_labels),
    )
    return RecDataset(
        num_users=len(user_first),
        num_items=len(item_first),
        train=train,
        valid=encoded(valid_idx),
        test=encoded(test_idx),
        removal=torch.from_numpy(removed),
        user_ids=np.asarray(user_values)[user_first],
        item_ids=np.asarray(item_values)[item_first],
        meta={
            "source": source,
            "threshold": threshold,
            "kcore": kcore,
            "seed": seed,
            "attack_fraction": attack_fraction,
            "attack_seed": attack_seed,
            "rows_raw": len(df),
            "rows_kcore": len(labels),
            "positive_rate_clean": clean_positive_rate,
        },
    )


def _check_two_classes(path: Path, df: pd.DataFrame, threshold: float) -> None:
    """ValueError when every raw row binarises to one label: the protocol trains on labelled
    rows (pointwise BCE, no negative sampling) and its AUCs need both classes."""
    positive = binarize(df, threshold).astype(bool)
    if positive.all() or not positive.any():
        kind = "positive" if positive.all() else "negative"
        raise ValueError(f"{path}: every row is a {kind} after binarising (> {threshold:g}): the protocol trains on "
                         "labelled rows and samples no negatives, so it needs both labels; check the threshold")


def data_dir() -> Path:
    """Root of the bundled data: ``$IFRU_DATA_DIR`` if set, else the package's ``datasets/``.

    The BookCrossing file ships inside the package (package data), so a non-editable
    install finds it from any working directory.
    """
    override = os.environ.get("IFRU_DATA_DIR")
    return Path(override) if override else Path(__file__).resolve().parent.parent / "datasets"


def load_dataset(
    name_or_path: str | os.PathLike[str] = "bookcrossing",
    *,
    threshold: float | None = None,
    kcore: int | None = None,
    seed: int = 1024,
    attack_fraction: float = 0.0,
    attack_seed: int | None = None,
    max_rows: int | None = None,
    user_fraction: float = 1.0,
    sep: str = ",",
    columns: Sequence[str] = REQUIRED_COLUMNS,
    header: bool = False,
    encoding: str = "utf-8",
) -> RecDataset:
    """Load a preset (a key of ``PRESETS``), a generic ratings file or a RecBole ``.inter``
    file, or generate a planted-factor dataset, then ``build_dataset``.

    A preset supplies the file (under ``data_dir()``), its reader, and defaults for
    ``threshold``/``kcore`` (explicit arguments override them). For a path,
    ``threshold`` and ``kcore`` are required and the file is read by ``read_ratings``
    with ``sep``/``columns``/``header``/``encoding``. A path ending in ``.inter`` (also
    ``.inter.gz``/``.inter.xz``) is a RecBole atomic file read by ``read_inter``: its header
    names and types the fields, so ``sep``/``columns``/``header`` must stay at their
    defaults; with a ``label:float`` field its 0/1 labels are used as they are (label > 0, so
    ``threshold`` must not be given), else ``rating:float`` is binarised with ``threshold``;
    a file with neither (implicit feedback, every row a positive) is refused, since the
    protocol trains on labelled rows and samples no negatives. ``max_rows`` keeps the first
    N raw rows (small real slices for tests). ``user_fraction`` in (0, 1] keeps every raw row
    of a random share of the raw users (drawn with ``seed``) before the protocol runs: the same
    data at a smaller scale, with each kept user's whole history (``max_rows`` cuts histories
    instead). ``attack_seed``: see ``attack_indices``.

    ``planted:<n>[:<seed>]`` (e.g. ``planted:100000``, ``planted:1e5:7``; generator seed 0 when
    absent): ``n`` power-law pairs labelled from planted low-rank factors
    (``ifru_ext.data.synthetic``), then the same protocol (60/20/20 split with ``seed``, ids
    re-encoded, the attack, ``user_fraction``). Its labels are already 0/1, so ``threshold`` must
    not be given; ``kcore`` defaults to 0 (all ``n`` rows enter the split); the file options
    (``sep``/``columns``/``header``/``encoding``) do not apply.

    Every argument is checked before the file is read: a ValueError names the first one
    out of range (a non-finite ``threshold``, ``kcore`` < 0, ``max_rows`` < 1, an empty
    ``sep``, an unknown ``encoding``, ...).
    """
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, numbers.Integral) or max_rows < 1):
        raise ValueError(f"max_rows must be a positive integer or None, got {max_rows!r}")
    if (isinstance(user_fraction, bool) or not isinstance(user_fraction, numbers.Real)
            or not 0.0 < user_fraction <= 1.0):  # NaN fails the comparison
        raise ValueError(f"user_fraction must lie in (0, 1], got {user_fraction!r}")
    if not isinstance(sep, str) or not sep:
        raise ValueError(f"sep must be a non-empty string, got {sep!r}")
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(f"encoding {encoding!r} is not a known text encoding") from None
    preset = PRESETS.get(str(name_or_path))
    if preset is not None:
        path = data_dir() / preset["file"]
        if not path.exists():
            raise FileNotFoundError(f"dataset {name_or_path!r} expects {path} (set IFRU_DATA_DIR to relocate the data)")
        threshold = preset["threshold"] if threshold is None else threshold
        kcore = preset["kcore"] if kcore is None else kcore
        _check_protocol_arguments(threshold, kcore, seed, attack_fraction, attack_seed)
        if preset["format"] == "bookcrossing":
            df = read_bookcrossing(path, max_rows=max_rows)
        else:
            df = read_ratings(path, columns=("user", "item", "rating", "timestamp"), max_rows=max_rows)
    elif is_atomic_file(name_or_path):
        path = Path(name_or_path)
        if sep != "," or tuple(columns) != REQUIRED_COLUMNS or header:
            raise ValueError(f"{path}: a RecBole .inter file names and types its fields in its header and is "
                             "tab-separated: sep=, columns= and header= do not apply")
        label = inter_columns(path, read_atomic_header(path, encoding)).values()
        if "label" in label:
            if threshold is not None:
                raise ValueError(f"{path}: the file's label field gives the 0/1 labels; threshold= does not apply")
            threshold = 0  # label > 0, i.e. label = 1
        elif "rating" not in label:
            raise ValueError(
                f"{path}: no rating or label field: implicit feedback (every row a positive) needs negative "
                "sampling, which this protocol does not do (it trains on labelled rows, docs/ARCHITECTURE.md §5); "
                "add a label:float field (1 = positive, 0 = negative) or a rating:float field"
            )
        missing = [f"{name}=" for name, value in (("threshold", threshold), ("kcore", kcore)) if value is None]
        if missing:
            raise ValueError(f"{path}: a RecBole .inter file needs {' and '.join(missing)}")
        _check_protocol_arguments(threshold, kcore, seed, attack_fraction, attack_seed)
        df = read_inter(path, encoding=encoding, max_rows=max_rows).rename(columns={"label": "rating"})
        _check_two_classes(path, df, threshold)
    elif is_planted_name(name_or_path):
        if sep != "," or tuple(columns) != REQUIRED_COLUMNS or header or encoding != "utf-8":
            raise ValueError(f"dataset {name_or_path!r} is generated, not read: sep=, columns=, header= and "
                             "encoding= do not apply")
        if threshold is not None:
            raise ValueError(f"dataset {name_or_path!r}: the generator draws 0/1 labels; threshold= does not apply")
        threshold = 0  # label > 0, i.e. label = 1
        kcore = 0 if kcore is None else kcore  # every generated row enters the split
        _check_protocol_arguments(threshold, kcore, seed, attack_fraction, attack_seed)
        df = planted_frame(str(name_or_path))
        if max_rows is not None:
            df = df.head(max_rows)
    else:
        if threshold is None or kcore is None:
            raise ValueError(f"{name_or_path!r} is not a preset {sorted(PRESETS)} nor {PLANTED_PREFIX}<n>[:<seed>]: "
                             "pass threshold and kcore (on the command line --threshold, --kcore): a label is "
                             "rating > threshold; users and items with fewer than kcore rows are dropped, repeatedly")
        _check_protocol_arguments(threshold, kcore, seed, attack_fraction, attack_seed)
        path = Path(name_or_path)
        df = read_ratings(path, sep=sep, columns=columns, header=header, encoding=encoding, max_rows=max_rows)
        _check_two_classes(path, df, threshold)
    if user_fraction < 1.0:
        df = _sample_users(df, user_fraction, seed)
    dataset = build_dataset(
        df,
        threshold=threshold,
        kcore=kcore,
        seed=seed,
        attack_fraction=attack_fraction,
        attack_seed=attack_seed,
        source=str(name_or_path),
    )
    if user_fraction < 1.0:
        dataset.meta["user_fraction"] = user_fraction
    return dataset


def _sample_users(df: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """The raw rows of a random ``fraction`` of the raw users (at least one), drawn with ``seed``."""
    users = pd.unique(df["user"])
    count = max(1, round(fraction * len(users)))
    chosen = users[np.random.default_rng(seed).permutation(len(users))[:count]]
    return df[df["user"].isin(chosen)].reset_index(drop=True)

