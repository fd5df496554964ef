"""Synthetic power-law interaction graphs for the scaling benchmarks.

Average degrees follow BookCrossing's training graph (351k interactions over 15.8k users and
38k items: about 22 per user, 9 per item), so growing ``n`` grows the graph, not its density:
``num_users = n // 20``, ``num_items = n // 10``. Popularity is Zipf-like — items with exponent
1.0 (a few bestsellers), users with 0.8 (activity is less concentrated) — and ids are randomly
permuted so popular nodes are scattered over the table as in a real encoding.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

USERS_PER_INTERACTION = 1 / 20
ITEMS_PER_INTERACTION = 1 / 10
USER_EXPONENT = 0.8
ITEM_EXPONENT = 1.0
POSITIVE_FRACTION = 0.3


@dataclass(frozen=True)
class SyntheticInteractions:
    """``n`` distinct (user, item) pairs sorted by user, with 0/1 labels.

    users, items: int64 [n] (item ids NOT offset); labels: float32 [n].
    """

    users: Tensor
    items: Tensor
    labels: Tensor
    num_users: int
    num_items: int

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


def power_law_interactions(num_interactions: int, seed: int = 0) -> SyntheticInteractions:
    """A seeded synthetic graph with exactly ``num_interactions`` distinct pairs."""
    generator = torch.Generator().manual_seed(seed)
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
    labels = (torch.rand(num_interactions, generator=generator) < POSITIVE_FRACTION).float()
    return SyntheticInteractions(keys // num_items, keys % num_items, labels, num_users, num_items)
