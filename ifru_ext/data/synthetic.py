"""Synthetic interaction graphs: power-law pairs, with coin-flip or planted-factor labels.

Pairs (``power_law_pairs``). Average degrees follow BookCrossing's training graph (351k
interactions over 15.8k users and 38k items: about 22 per user, 9 per item), so growing ``n``
grows the graph, not its density: ``num_users = n // 20``, ``num_items = n // 10``. Popularity
is Zipf-like — items with exponent 1.0 (a few bestsellers), users with 0.8 (activity is less
concentrated) — and ids are randomly permuted so popular nodes are scattered over the table as
in a real encoding. The scaling benchmarks (bench/) use these pairs with coin-flip labels
(``power_law_interactions``: no signal, only the graph's shape matters there).

Planted factors (``planted_interactions``), for fidelity experiments, where the labels must
carry signal a recommender can learn. Generator parameters (fixed, documented, not fitted to
any real dataset):

- true user and item factors of rank ``PLANTED_RANK`` = 4, every entry drawn from
  N(0, 1/sqrt(rank)), so a user·item score ``z = u·v`` has variance about 1;
- label ~ Bernoulli(sigmoid(``PLANTED_SCALE``·z + b)) with ``PLANTED_SCALE`` = 4;
- the bias ``b`` is solved on the generated logits (bisection) so that the expected positive
  rate ``mean(sigmoid(scale·z + b))`` equals ``POSITIVE_FRACTION`` = 0.3 at any size; the
  drawn rate then sits within sampling noise (±2·sqrt(0.21/n)) of it.

``load_dataset("planted:<n>[:<seed>]")`` turns ``planted_interactions(n, seed)`` into a
``RecDataset`` through the real data's protocol (``PLANTED_PREFIX``, ``parse_planted_name``).
Its 60/20/20 split keeps 60% of the rows for training, so the training graph is sparser than the
generated one (about 12 rows per user and 6 per item, against BookCrossing's 22 and 9), and the
valid/test rows of users or items absent from training are dropped (3–4% of them at 1e4).

Everything is seeded by one ``torch.Generator``; the same (n, seed) gives the same data.

Public-looking ratings files (``shaped_ratings``), a second family for the fidelity suite,
shaped like public rating sets rather than like BookCrossing: every user rates at least a
minimum of items with a heavy-tailed (log-normal) activity on top, item popularity is Zipf-like,
and a rating is 1-5, rounded from ``mean + b_u + b_i + 1.2 u·v + ε`` (rank-8 factors, ε ~ N(0,
0.8²)). ``MOVIELENS_SHAPE``: at least 20 ratings per user (MovieLens' collection rule), mean 3.55,
about half of the ratings above 3; ``AMAZON_SHAPE``: at least 5 (a 5-core), a steeper item head,
mean 4.3, about three quarters above 3. The parameters are chosen to look like those sets, not
fitted to any data. Seeded by ``numpy.random.default_rng``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

__all__ = [
    "AMAZON_SHAPE",
    "MOVIELENS_SHAPE",
    "PLANTED_PREFIX",
    "PLANTED_RANK",
    "PLANTED_SCALE",
    "POSITIVE_FRACTION",
    "RatingsShape",
    "SyntheticInteractions",
    "is_planted_name",
    "parse_planted_name",
    "planted_frame",
    "planted_interactions",
    "power_law_interactions",
    "power_law_pairs",
    "shaped_ratings",
    "zipf_ids",
]

USERS_PER_INTERACTION = 1 / 20
ITEMS_PER_INTERACTION = 1 / 10
USER_EXPONENT = 0.8
ITEM_EXPONENT = 1.0
POSITIVE_FRACTION = 0.3
PLANTED_RANK = 4
PLANTED_SCALE = 4.0
PLANTED_PREFIX = "planted:"
# Sizes a planted dataset may take: below the minimum the power-law pairs crowd a tiny table
# (and a 60/20/20 split leaves few warm test rows); the maximum bounds the memory of a typo.
PLANTED_MIN_INTERACTIONS = 1_000
PLANTED_MAX_INTERACTIONS = 100_000_000


@dataclass(frozen=True)
class SyntheticInteractions:
    """``n`` distinct (user, item) pairs sorted by user, with 0/1 labels.

    users, items: int64 [n] (item ids NOT offset); labels: float32 [n]. ``logits``: float64 [n],
    the planted ``scale·u·v + b`` the labels were drawn from (None for coin-flip labels).
    """

    users: Tensor
    items: Tensor
    labels: Tensor
    num_users: int
    num_items: int
    logits: Tensor | None = None

    @property
    def num_nodes(self) -> int:
        return self.num_users + self.num_items


def zipf_ids(count: int, num_ids: int, exponent: float, permutation: Tensor, generator: torch.Generator) -> Tensor:
    """``count`` ids in [0, num_ids) with P(rank r) ∝ (r + 1)^-exponent, int64 [count].

    Inverse-CDF sampling of the continuous power law on [1, num_ids + 1) (O(count), no
    search over a table), floored to ranks; ``permutation [num_ids]`` maps ranks to ids.
    """
    uniform = torch.rand(count, generator=generator, dtype=torch.float64)
    if exponent == 1.0:
        x = torch.pow(num_ids + 1.0, uniform)
    else:
        one_minus = 1.0 - exponent
        x = torch.pow(1.0 + uniform * ((num_ids + 1.0) ** one_minus - 1.0), 1.0 / one_minus)
    ranks = (x.floor_().long() - 1).clamp_(0, num_ids - 1)
    return permutation[ranks]


def power_law_pairs(num_interactions: int, generator: torch.Generator) -> tuple[Tensor, Tensor, int, int]:
    """Exactly ``num_interactions`` distinct power-law pairs drawn from ``generator``.

    Returns users, items (int64 [n], sorted user-major, item ids not offset), num_users, num_items.
    """
    num_users = max(1, int(num_interactions * USERS_PER_INTERACTION))
    num_items = max(1, int(num_interactions * ITEMS_PER_INTERACTION))
    if num_interactions > num_users * num_items:
        raise ValueError(f"{num_interactions} distinct pairs do not fit {num_users} users × {num_items} items")
    user_of_rank = torch.randperm(num_users, generator=generator)
    item_of_rank = torch.randperm(num_items, generator=generator)
    # Keys user * num_items + item, sorted and unique. Popular users × popular items collide,
    # so each batch draws the shortfall plus a quarter of n until enough distinct pairs exist.
    keys = torch.empty(0, dtype=torch.long)
    while keys.numel() < num_interactions:
        draw = num_interactions - keys.numel() + num_interactions // 4
        users = zipf_ids(draw, num_users, USER_EXPONENT, user_of_rank, generator)
        items = zipf_ids(draw, num_items, ITEM_EXPONENT, item_of_rank, generator)
        keys = torch.unique(torch.cat([keys, users * num_items + items]))
        del users, items
    # Keep a uniformly random subset of exactly n pairs, back in sorted (user-major) order.
    chosen = torch.randperm(keys.numel(), generator=generator)[:num_interactions]
    keys = keys[chosen.sort().values]
    return keys // num_items, keys % num_items, num_users, num_items


def power_law_interactions(num_interactions: int, seed: int = 0) -> SyntheticInteractions:
    """A seeded synthetic graph with exactly ``num_interactions`` distinct pairs and coin-flip
    labels (positive with probability ``POSITIVE_FRACTION``, no signal): the benchmarks' graphs."""
    generator = torch.Generator().manual_seed(seed)
    users, items, num_users, num_items = power_law_pairs(num_interactions, generator)
    labels = (torch.rand(num_interactions, generator=generator) < POSITIVE_FRACTION).float()
    return SyntheticInteractions(users, items, labels, num_users, num_items)


def _bias_for_rate(scores: Tensor, rate: float) -> float:
    """``b`` with mean(sigmoid(scores + b)) = ``rate`` (bisection; the mean is increasing in b)."""
    low, high = -float(scores.max()) - 40.0, -float(scores.min()) + 40.0
    for _ in range(100):
        middle = 0.5 * (low + high)
        if float(torch.sigmoid(scores + middle).mean()) < rate:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def planted_interactions(num_interactions: int, seed: int = 0, *, rank: int = PLANTED_RANK,
                         scale: float = PLANTED_SCALE, positive_fraction: float = POSITIVE_FRACTION
                         ) -> SyntheticInteractions:
    """Power-law pairs labelled from planted rank-``rank`` factors (module docstring).

    Factors and labels come after the pairs from the same seeded generator, so the pairs are
    those of ``power_law_interactions(num_interactions, seed)``.
    """
    if not 0.0 < positive_fraction < 1.0:  # NaN fails too
        raise ValueError(f"positive_fraction must lie in (0, 1), got {positive_fraction!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be a positive integer, got {rank!r}")
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    generator = torch.Generator().manual_seed(seed)
    users, items, num_users, num_items = power_law_pairs(num_interactions, generator)
    std = rank ** -0.25  # entries N(0, 1/sqrt(rank)): var(u·v) = rank · (1/sqrt(rank))² = 1
    user_factors = torch.randn(num_users, rank, generator=generator, dtype=torch.float64) * std
    item_factors = torch.randn(num_items, rank, generator=generator, dtype=torch.float64) * std
    scores = scale * (user_factors[users] * item_factors[items]).sum(1)
    logits = scores + _bias_for_rate(scores, positive_fraction)
    uniform = torch.rand(num_interactions, generator=generator, dtype=torch.float64)
    labels = (uniform < torch.sigmoid(logits)).float()
    return SyntheticInteractions(users, items, labels, num_users, num_items, logits)


def is_planted_name(name: object) -> bool:
    """Whether a dataset name asks for a planted-factor dataset (``planted:<n>[:<seed>]``)."""
    return isinstance(name, str) and name.startswith(PLANTED_PREFIX)


def _parse_count(text: str, name: str) -> int:
    """``text`` as an integer (``100000`` or ``1e5``), else ValueError naming ``name``."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not value.is_integer():
        raise ValueError(f"dataset {name!r}: the interaction count {text!r} is not an integer "
                         f"(expected {PLANTED_PREFIX}<n>[:<seed>], e.g. {PLANTED_PREFIX}100000 or {PLANTED_PREFIX}1e5:7)")
    return int(value)


def parse_planted_name(name: str) -> tuple[int, int]:
    """(num_interactions, generator seed) of ``planted:<n>[:<seed>]`` (seed 0 when absent).

    ``n`` may be written ``100000`` or ``1e5``; ValueError naming the dataset and the part
    that is wrong (not an integer, out of range, a bad seed, extra fields).
    """
    if not is_planted_name(name):
        raise ValueError(f"dataset {name!r} is not a planted-factor name ({PLANTED_PREFIX}<n>[:<seed>])")
    fields = name[len(PLANTED_PREFIX):].split(":")
    if len(fields) > 2 or not fields[0]:
        raise ValueError(f"dataset {name!r}: expected {PLANTED_PREFIX}<n>[:<seed>], e.g. {PLANTED_PREFIX}100000:7")
    count = _parse_count(fields[0], name)
    if not PLANTED_MIN_INTERACTIONS <= count <= PLANTED_MAX_INTERACTIONS:
        raise ValueError(f"dataset {name!r}: the interaction count must lie in "
                         f"[{PLANTED_MIN_INTERACTIONS}, {PLANTED_MAX_INTERACTIONS}], got {count}")
    seed = 0
    if len(fields) == 2:
        try:
            seed = int(fields[1])
        except ValueError:
            seed = -1
        if not 0 <= seed < 2**63:
            raise ValueError(f"dataset {name!r}: the generator seed must be an integer >= 0, got {fields[1]!r}")
    return count, seed


def planted_frame(name: str) -> pd.DataFrame:
    """The raw rows of ``planted:<n>[:<seed>]``: columns user, item, rating (the 0/1 label)."""
    count, seed = parse_planted_name(name)
    data = planted_interactions(count, seed)
    return pd.DataFrame({"user": data.users.numpy(), "item": data.items.numpy(), "rating": data.labels.numpy()})


@dataclass(frozen=True)
class RatingsShape:
    """How ``shaped_ratings`` draws a public-looking ratings file (module docstring): every user
    rates at least ``min_ratings`` items plus a log-normal(0, ``activity_sigma``) share of the rest,
    items are drawn with Zipf weights ``rank^-item_exponent``, and a rating rounds
    ``mean_rating + b_u + b_i + 1.2 u·v + ε`` to 1-5 (biases N(0, ``user_bias_std``²), N(0,
    ``item_bias_std``²); rank-8 factors; ε ~ N(0, 0.8²))."""

    min_ratings: int
    activity_sigma: float
    item_exponent: float
    mean_rating: float
    user_bias_std: float
    item_bias_std: float


# MovieLens: at least 20 ratings per user (its collection rule), about half of them above 3.
MOVIELENS_SHAPE = RatingsShape(min_ratings=20, activity_sigma=1.0, item_exponent=0.9, mean_rating=3.55,
                               user_bias_std=0.4, item_bias_std=0.5)
# Amazon reviews after a 5-core: many users with few ratings, a steeper head of items, mostly 4-5 stars
# (about three quarters above 3).
AMAZON_SHAPE = RatingsShape(min_ratings=5, activity_sigma=1.3, item_exponent=1.0, mean_rating=4.3,
                            user_bias_std=0.5, item_bias_std=0.5)


def shaped_ratings(num_users: int, num_items: int, num_ratings: int, seed: int = 0,
                   shape: RatingsShape = MOVIELENS_SHAPE) -> pd.DataFrame:
    """About ``num_ratings`` ratings drawn as ``shape`` says: columns user and item (1-based ids as
    strings), rating (1-5) and timestamp, grouped by user. A user rates at most half of the items."""
    least = shape.min_ratings
    if num_users <= 0 or num_items < 2 * least or num_ratings < least * num_users:
        raise ValueError(f"shaped_ratings needs users > 0, items >= {2 * least} and at least {least} ratings per "
                         f"user; got {num_users}, {num_items}, {num_ratings}")
    rng = np.random.default_rng(seed)
    extra = rng.lognormal(mean=0.0, sigma=shape.activity_sigma, size=num_users)  # activity above the minimum
    spare = num_ratings - least * num_users
    activity = np.minimum(np.round(least + extra * spare / extra.sum()), num_items // 2).astype(int)
    popularity = rng.permutation(1.0 / np.arange(1, num_items + 1) ** shape.item_exponent)
    popularity /= popularity.sum()
    rank = 8
    user_factors = rng.normal(size=(num_users, rank)) / np.sqrt(rank)
    item_factors = rng.normal(size=(num_items, rank)) / np.sqrt(rank)
    user_bias, item_bias = rng.normal(0, shape.user_bias_std, num_users), rng.normal(0, shape.item_bias_std, num_items)
    parts = []
    for user in range(num_users):
        items = rng.choice(num_items, size=activity[user], replace=False, p=popularity)
        score = (shape.mean_rating + user_bias[user] + item_bias[items]
                 + 1.2 * (item_factors[items] @ user_factors[user]) + rng.normal(0, 0.8, items.size))
        ratings = np.clip(np.round(score), 1, 5).astype(int)
        times = 874724710 + rng.integers(0, 10**7, size=items.size)
        parts.append(pd.DataFrame({"user": str(user + 1), "item": (items + 1).astype(str), "rating": ratings,
                                   "timestamp": times}))
    return pd.concat(parts, ignore_index=True)
