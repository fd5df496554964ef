"""Shard partitions of the training rows: SISA's balanced random split and RecEraser's
interaction-based balanced partition (InBP) over pretrained MF embeddings."""
from __future__ import annotations

import logging
import math

import torch
from torch import Tensor, nn

from ...data import RecDataset
from ...models import build_model
from ...training import TrainConfig, train

__all__ = ["capacitated_assignment", "interaction_balanced_partition", "pretrain_mf", "random_partition"]

logger = logging.getLogger(__name__)


def _check_shards(num_rows: int, num_shards: int) -> None:
    if num_shards < 1 or num_rows < num_shards:
        raise ValueError(f"need 1 <= num_shards <= rows, got {num_shards} shards for {num_rows} rows")


def random_partition(num_rows: int, num_shards: int = 10, seed: int = 1024) -> Tensor:
    """SISA's partition: the shard id (int64 [num_rows]) of every training row.

    A seeded shuffle dealt into ``num_shards`` consecutive blocks whose sizes differ by at
    most one (the authors' ``data_partition_3``).
    """
    _check_shards(num_rows, num_shards)
    order = torch.randperm(num_rows, generator=torch.Generator().manual_seed(seed))
    shard = torch.empty(num_rows, dtype=torch.int64)
    # Position p of the shuffled order goes to block ⌊p·k/n⌋.
    shard[order] = torch.arange(num_rows) * num_shards // num_rows
    return shard


def capacitated_assignment(distance: Tensor, capacity: int) -> Tensor:
    """RecEraser's assignment step: shard id (int64 [n]) of each row, at most ``capacity`` per shard.

    ``distance`` [n, k]. The result is that of walking every (row, shard) pair in
    increasing distance (ties: lower row, then lower shard) and accepting a pair when its
    row is still free and its shard not full — computed in at most ``k`` vectorised rounds
    instead of a Python step per pair. Each round gives every free row its nearest open
    shard, sorts those choices by distance and ranks each within its shard: all choices
    before the first one that overflows its shard are exactly what the walk accepts (no
    shard is full until then, and a row's other pairs come after its nearest one). That
    shard is then full; every free row's nearest open pair lies further along the walk,
    so the next round carries the walk on. Raises ValueError if ``k·capacity < n``.
    """
    n, k = distance.shape
    if capacity * k < n:
        raise ValueError(f"{k} shards of capacity {capacity} cannot hold {n} rows")
    device = distance.device
    assignment = torch.full((n,), -1, dtype=torch.int64, device=device)
    room = torch.full((k,), capacity, dtype=torch.int64, device=device)
    free = torch.arange(n, device=device)
    while free.numel():
        nearest_distance, nearest = distance[free].masked_fill(room == 0, math.inf).min(1)
        order = torch.sort(nearest_distance, stable=True).indices  # free is ascending: ties go to the lower row
        chosen = nearest[order]
        # 1-based rank of each choice among its shard's choices, in walk order: [p].
        rank = nn.functional.one_hot(chosen, k).cumsum(0).gather(1, chosen[:, None]).squeeze(1)
        overflow = torch.nonzero(rank > room[chosen])
        stop = int(overflow[0]) if overflow.numel() else chosen.numel()
        assignment[free[order[:stop]]] = chosen[:stop]
        room -= torch.bincount(chosen[:stop], minlength=k)
        free = torch.sort(free[order[stop:]]).values
    return assignment


def interaction_balanced_partition(
    users: Tensor,
    items: Tensor,
    user_emb: Tensor,
    item_emb: Tensor,
    num_shards: int = 10,
    capacity_factor: float = 1.2,
    iterations: int = 50,
    seed: int = 1024,
) -> Tensor:
    """RecEraser's InBP: the shard id (int64 [n]) of every interaction ``(users[r], items[r])``.

    users, items: int64 [n]; user_emb [U, d], item_emb [I, d]: pretrained MF embeddings.
    Interaction ``r`` is the point ``(e_u, e_i)``; ``k`` anchors start at distinct random
    interactions; each iteration scores every (interaction, anchor) pair by
    ``‖e_u − a_u‖² · ‖e_i − a_i‖²`` (the authors' ``E_score2`` product; the paper's
    product of distances orders pairs the same way), assigns interactions greedily in
    increasing score with each anchor taking at most ``⌈capacity_factor·n/k⌉`` of them
    (``capacitated_assignment``; the authors accept while the count is below
    ``1.2·n/k``, which is the same bound), and moves each anchor to the mean of its
    interactions. It stops after ``iterations`` or at a fixed point (an unchanged
    assignment gives unchanged anchors, so further iterations would repeat it).

    The authors' centroid bug, fixed here: their update (``data_partition_1`` in RecEraser's
    code, copied into baiyimeng/IFRU ``utility/data_partition.py``) is
    ``np.mean(temp_u)`` over the list of assigned user embeddings without ``axis=0``:
    the mean of ALL coordinates, one scalar. From the second iteration on, every anchor
    is that scalar repeated over the d dimensions, so the partition clusters the
    interactions by their mean coordinate rather than by their embeddings. Here each
    anchor is the per-dimension mean of its interactions' user and item embeddings, the
    k-means step the RecEraser paper describes. An anchor that receives no interaction
    stays where it is (the authors' code would produce NaN).
    """
    n = users.numel()
    _check_shards(n, num_shards)
    if users.shape != items.shape or users.dim() != 1:
        raise ValueError(f"users and items must be 1-D of equal length, got {tuple(users.shape)} and {tuple(items.shape)}")
    if user_emb.dim() != 2 or item_emb.dim() != 2 or user_emb.shape[1] != item_emb.shape[1]:
        raise ValueError(f"embeddings must be [U, d] and [I, d], got {tuple(user_emb.shape)} and {tuple(item_emb.shape)}")
    if int(users.max()) >= user_emb.shape[0] or int(items.max()) >= item_emb.shape[0] or int(users.min()) < 0 or int(items.min()) < 0:
        raise ValueError("user or item ids outside the embedding tables")
    if capacity_factor < 1 or iterations < 1:
        raise ValueError(f"need capacity_factor >= 1 and iterations >= 1, got {capacity_factor} and {iterations}")
    capacity = math.ceil(capacity_factor * n / num_shards)
    user_emb, item_emb = user_emb.detach().cpu().double(), item_emb.detach().cpu().double()
    users, items = users.cpu(), items.cpu()
    user_points, item_points = user_emb[users], item_emb[items]  # [n, d] each
    start = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:num_shards]
    user_anchor, item_anchor = user_points[start], item_points[start]  # [k, d] each
    exact = "donot_use_mm_for_euclid_dist"  # cdist without the ‖a‖² − 2ab + ‖b‖² cancellation
    assignment: Tensor | None = None
    for iteration in range(1, iterations + 1):
        # Squared distances per distinct user / item ([U, k], [I, k]), then one product per row: [n, k].
        user_distance = torch.cdist(user_emb, user_anchor, compute_mode=exact).square()
        item_distance = torch.cdist(item_emb, item_anchor, compute_mode=exact).square()
        new = capacitated_assignment(user_distance[users] * item_distance[items], capacity)
        if assignment is not None and torch.equal(new, assignment):
            logger.info("InBP reached a fixed point at iteration %d", iteration)
            break
        assignment = new
        counts = torch.bincount(assignment, minlength=num_shards)[:, None]  # [k, 1]
        zeros = torch.zeros_like(user_anchor)
        user_mean = zeros.index_add(0, assignment, user_points) / counts.clamp(min=1)
        item_mean = zeros.index_add(0, assignment, item_points) / counts.clamp(min=1)
        user_anchor = torch.where(counts > 0, user_mean, user_anchor)
        item_anchor = torch.where(counts > 0, item_mean, item_anchor)
    assert assignment is not None  # iterations >= 1
    return assignment


def pretrain_mf(dataset: RecDataset, config: TrainConfig | None = None, seed: int = 1024) -> tuple[Tensor, Tensor]:
    """InBP's input: an MF (``build_model("mf")``, seed ``seed``) trained with ``train`` on all
    training rows; returns its (user [U, d], item [I, d]) embeddings on the CPU.

    ``config`` defaults to ``TrainConfig.for_model("mf", seed=seed)``.
    """
    model = build_model("mf", dataset.num_users, dataset.num_items, seed=seed)
    train(model, dataset, config or TrainConfig.for_model("mf", seed=seed), progress=False)
    table = model.embedding.detach().cpu()
    return table[: dataset.num_users].clone(), table[dataset.num_users :].clone()
