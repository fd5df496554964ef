"""SISA and RecEraser: the sharded-retraining baselines of the paper (DESIGN.md §6).

Both split the training rows into ``k`` shards (10 in the paper), train one sub-model of
the backbone (MF or LightGCN) per shard on that shard's rows only, and train an attention
aggregator on top that merges the ``k`` sub-models into one recommender. A request to
forget rows retrains, from scratch, only the shards that hold them (on their remaining
rows), then the aggregator (on all remaining rows). The methods differ only in the
partition, as in the authors' code (baiyimeng/IFRU, ``eraser_*.py`` with ``part_type``):

- ``sisa``: a balanced random partition (``random_partition``);
- ``receraser``: RecEraser's interaction-based balanced partition (InBP,
  ``interaction_balanced_partition``) over the embeddings of a pretrained MF.

Both use the same aggregator (``AttentionAggregator``, the authors' ``Model/Eraser.py``).

Layout. Shard ``j``'s table is ``embeddings[j]`` [N, d] (users, then items, like a
``Recommender``). Training and propagation use the *stacked* layout [k·U + k·I, d]: the
users of every shard, then the items of every shard, so shard ``j``'s user ``u`` is row
``j·U + u`` and its item ``i`` is row ``k·U + j·I + i``. In that layout the ``k``
sub-models are one recommender with ``k·U`` users and ``k·I`` items whose interactions
never cross shards: ``lightgcn_graph`` builds the block-diagonal graph of every shard
(each with its own degrees) in one call, one ``propagate`` runs all shards, and one gather
scores a batch that mixes shards.

Sub-models follow ``ifru_ext.train``'s protocol per shard (mean BCE, Adam, batches of
``batch_size``, early stop on that sub-model's whole-validation AUC, best state kept),
and every optimiser step takes one batch from each shard still training. Shard ``j``
draws its initial table and its batch order from its own seed (``seed + 1 + j``), and
Adam keeps per-shard state, so a shard's training does not depend on which other shards
train beside it: retraining reproduces an unchanged shard bit for bit.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn.functional import binary_cross_entropy_with_logits

from .checkpoint import atomic_save, read_payload
from .data import RecDataset
from .graph import CSRGraph, lightgcn_graph
from .metrics import auc
from .models import DEFAULTS, Recommender, build_model
from .ops import propagate
from .train import TrainConfig, check_validation, shuffled_batches, train
from .unlearn import PhaseClock, UnlearnResult, check_removal

__all__ = [
    "FORMAT",
    "METHODS",
    "AttentionAggregator",
    "ShardedRecommender",
    "capacitated_assignment",
    "interaction_balanced_partition",
    "load_sharded",
    "pretrain_mf",
    "random_partition",
    "save_sharded",
    "shard_graph",
    "train_sharded",
    "unlearn_sharded",
]

logger = logging.getLogger(__name__)

Method = Literal["sisa", "receraser"]
METHODS: tuple[Method, ...] = ("sisa", "receraser")
FORMAT = "ifru-sharded-v1"


# --------------------------------------------------------------------------- partitions


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


# --------------------------------------------------------------------------- models


def _stacked_graph(users: Tensor, items: Tensor, labels: Tensor, block: Tensor, num_blocks: int,
                   num_users: int, num_items: int) -> CSRGraph:
    """Block-diagonal ``Â`` over the stacked layout [B·U + B·I]: row r in block ``block[r]``."""
    return lightgcn_graph(users + block * num_users, items + block * num_items, labels,
                          num_blocks * num_users, num_blocks * num_items)


def shard_graph(dataset: RecDataset, partition: Tensor, num_shards: int) -> CSRGraph:
    """The block-diagonal LightGCN graph of all shards in the stacked layout [k·U + k·I].

    Block ``j`` is ``lightgcn_graph`` of the positive rows with ``partition == j``;
    rows marked −1 (forgotten) are left out.
    """
    partition = partition.cpu()
    kept = partition >= 0
    rows = dataset.train.select(kept)
    return _stacked_graph(rows.users, rows.items, rows.labels, partition[kept], num_shards,
                          dataset.num_users, dataset.num_items)


def _to_stacked(tables: Tensor, num_users: int) -> Tensor:
    """[B, N, d] per-block tables → the stacked layout [B·U + B·I, d]."""
    d = tables.shape[-1]
    return torch.cat([tables[:, :num_users].reshape(-1, d), tables[:, num_users:].reshape(-1, d)])


def _from_stacked(stacked: Tensor, num_blocks: int, num_users: int) -> Tensor:
    """The stacked layout [B·U + B·I, d] → per-block tables [B, N, d]."""
    d = stacked.shape[-1]
    users = stacked[: num_blocks * num_users].view(num_blocks, num_users, d)
    items = stacked[num_blocks * num_users :].view(num_blocks, -1, d)
    return torch.cat([users, items], dim=1)


class AttentionAggregator(nn.Module):
    """The authors' aggregator (baiyimeng/IFRU ``Model/Eraser.py``, after RecEraser).

    For the ``k`` shard embeddings ``x_j`` [d] of one user (or item)::

        z_j = x_j W_j + b_j                          per-shard transform, shared by users and items
        α_j = softmax_j( hᵀ ReLU(z_j W_a + c_a) )     attention; users and items have their own W_a, c_a, h
        aggregate = Σ_j α_j z_j

    and a pair's logit is the dot product of the user's and the item's aggregates. The
    attention width is ``a = d // 2``. Initialised as the authors' code: Xavier-uniform
    ``W`` [k, d, d] and ``b`` [k, d] (fans from those shapes), truncated-normal ``W_a``
    with std ``√(2/(a + d))``, ``c_a = 0``, ``h = 0.01``. The activation is ReLU as in
    that code.
    """

    def __init__(self, num_shards: int, dim: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        width = max(1, dim // 2)
        self.transform_weight = nn.Parameter(nn.init.xavier_uniform_(torch.empty(num_shards, dim, dim), generator=generator))
        self.transform_bias = nn.Parameter(nn.init.xavier_uniform_(torch.empty(num_shards, dim), generator=generator))
        std = math.sqrt(2.0 / (width + dim))
        for side in ("user", "item"):
            weight = nn.init.trunc_normal_(torch.empty(dim, width), std=std, generator=generator)
            self.register_parameter(f"{side}_attention_weight", nn.Parameter(weight))
            self.register_parameter(f"{side}_attention_bias", nn.Parameter(torch.zeros(width)))
            self.register_parameter(f"{side}_attention_vector", nn.Parameter(torch.full((width,), 0.01)))

    def forward(self, shard_rows: Tensor, side: Literal["user", "item"]) -> Tensor:
        """Aggregate [B, d] of the shard embeddings ``shard_rows`` [k, B, d] of B users or items."""
        z = torch.baddbmm(self.transform_bias[:, None, :], shard_rows, self.transform_weight)  # [k, B, d]
        weight = getattr(self, f"{side}_attention_weight")
        bias, vector = getattr(self, f"{side}_attention_bias"), getattr(self, f"{side}_attention_vector")
        attention = torch.softmax(torch.relu(nn.functional.linear(z, weight.T, bias)) @ vector, dim=0)  # [k, B]
        return (attention[..., None] * z).sum(0)


class ShardedRecommender(nn.Module):
    """``k`` sub-models of one backbone and the aggregator over them.

    Buffers (saved): ``embeddings`` [k, N, d], shard ``j``'s table; ``partition`` int64
    [n_train], each training row's shard, −1 for forgotten rows. The LightGCN graph
    (``shard_graph`` of the partition) is held like ``Recommender``'s: non-persistent
    buffers, set with ``set_graph``. Parameters: ``aggregator`` only — the sub-models are
    trained per shard and frozen under the aggregator. ``train_config`` is the
    ``TrainConfig`` that trained it (unlearning retrains with it).
    """

    def __init__(
        self,
        backbone: str,
        method: Method,
        num_users: int,
        num_items: int,
        partition: Tensor,
        num_shards: int,
        dim: int | None = None,
        num_layers: int | None = None,
        init_std: float | None = None,
        seed: int = 1024,
        train_config: TrainConfig | None = None,
    ) -> None:
        super().__init__()
        if backbone not in DEFAULTS:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(DEFAULTS)}")
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
        defaults = DEFAULTS[backbone]
        self.backbone, self.method, self.seed = backbone, method, seed
        self.num_users, self.num_items, self.num_shards = num_users, num_items, num_shards
        self.dim = defaults["dim"] if dim is None else dim
        self.num_layers = defaults["num_layers"] if num_layers is None else num_layers
        self.init_std = defaults["init_std"] if init_std is None else init_std
        if (backbone == "mf") != (self.num_layers == 0):
            raise ValueError(f"{backbone} cannot have num_layers={self.num_layers}")
        if partition.dtype != torch.int64 or partition.dim() != 1:
            raise ValueError(f"partition must be int64 [n], got {partition.dtype} {tuple(partition.shape)}")
        if partition.numel() and (int(partition.min()) < -1 or int(partition.max()) >= num_shards):
            raise ValueError(f"partition values must lie in [-1, {num_shards})")
        self.train_config = train_config or TrainConfig.for_model(backbone, seed=seed)
        self.register_buffer("embeddings", torch.stack([self.initial_table(j) for j in range(num_shards)]))
        self.register_buffer("partition", partition.clone())
        self.register_buffer("graph_rowptr", None, persistent=False)
        self.register_buffer("graph_col", None, persistent=False)
        self.register_buffer("graph_weight", None, persistent=False)
        self.aggregator = AttentionAggregator(num_shards, self.dim, torch.Generator().manual_seed(seed))

    @property
    def num_nodes(self) -> int:
        """``N = U + I``, the rows of one shard's table."""
        return self.num_users + self.num_items

    def initial_table(self, shard: int) -> Tensor:
        """Shard ``shard``'s initial table [N, d] (CPU): ``build_model``'s draw with seed ``seed + 1 + shard``."""
        generator = torch.Generator().manual_seed(self.seed + 1 + shard)
        return torch.randn(self.num_nodes, self.dim, generator=generator) * self.init_std

    @property
    def graph(self) -> CSRGraph | None:
        """The block-diagonal graph [k·U + k·I] on the model's device, or None (MF, or not set)."""
        if self.graph_rowptr is None:
            return None
        size = self.num_shards * self.num_nodes
        return CSRGraph(self.graph_rowptr, self.graph_col, self.graph_weight, size, symmetric=True)

    def set_graph(self, graph: CSRGraph | None) -> None:
        """Use ``graph`` (``shard_graph(dataset, partition, k)``); MF ignores it."""
        if graph is not None and graph.num_nodes != self.num_shards * self.num_nodes:
            raise ValueError(f"graph has {graph.num_nodes} nodes, the shards need {self.num_shards * self.num_nodes}")
        if self.num_layers == 0 or graph is None:
            self.graph_rowptr = self.graph_col = self.graph_weight = None
            return
        graph = graph.to(self.embeddings.device, self.embeddings.dtype)
        self.graph_rowptr, self.graph_col, self.graph_weight = graph.rowptr, graph.col, graph.weight

    @torch.no_grad()
    def shard_tables(self) -> Tensor:
        """Every sub-model's scoring table ``F_j`` [k, N, d] (``E_j``, or ``P_j E_j`` for LightGCN)."""
        if self.num_layers == 0:
            return self.embeddings
        graph = self.graph
        if graph is None:
            raise RuntimeError("LightGCN shards have no graph: call model.set_graph(shard_graph(...)) first")
        stacked = propagate(_to_stacked(self.embeddings, self.num_users), graph, self.num_layers)
        return _from_stacked(stacked, self.num_shards, self.num_users)

    def aggregated_table(self, tables: Tensor | None = None) -> Tensor:
        """The aggregated table [N, d] from ``tables`` [k, N, d] (default ``shard_tables()``)."""
        if tables is None:
            tables = self.shard_tables()
        return torch.cat([self.aggregator(tables[:, : self.num_users], "user"),
                          self.aggregator(tables[:, self.num_users :], "item")])

    @torch.no_grad()
    def score_all(self, users: Tensor, items: Tensor, chunk_size: int = 1 << 16) -> Tensor:
        """Logits [n] for users, items int64 [n] (items NOT offset), on the model's device."""
        table = self.aggregated_table()
        users, items = users.to(table.device), items.to(table.device)
        out = table.new_empty(users.numel())
        for start in range(0, users.numel(), chunk_size):
            stop = start + chunk_size
            out[start:stop] = Recommender.pair_logits(table, self.num_users, users[start:stop], items[start:stop])
        return out

    def shard_model(self, shard: int, dataset: RecDataset) -> Recommender:
        """Sub-model ``shard`` as a standalone backbone, with its own graph for LightGCN."""
        model = build_model(self.backbone, self.num_users, self.num_items, self.dim, self.num_layers, self.init_std)
        with torch.no_grad():
            model.embedding.copy_(self.embeddings[shard].cpu())
        if self.num_layers > 0:
            rows = dataset.train.select(self.partition.cpu() == shard)
            model.set_graph(lightgcn_graph(rows.users, rows.items, rows.labels, self.num_users, self.num_items))
        return model

    def config(self) -> dict[str, Any]:
        """Plain values that rebuild this architecture (with a partition): ``ShardedRecommender(**config, partition=...)``."""
        return {
            "backbone": self.backbone,
            "method": self.method,
            "num_users": self.num_users,
            "num_items": self.num_items,
            "num_shards": self.num_shards,
            "dim": self.dim,
            "num_layers": self.num_layers,
            "init_std": self.init_std,
            "seed": self.seed,
        }

    def extra_repr(self) -> str:
        return f"{self.method}, backbone={self.backbone}, num_shards={self.num_shards}, dim={self.dim}"


# --------------------------------------------------------------------------- training


def _scoring_table(tables: list[Tensor], num_users: int, graph: CSRGraph | None, num_layers: int) -> Tensor:
    """Scoring table [B·U + B·I, d] of the shard tables ``tables`` (B × [N, d]) in the stacked layout."""
    stacked = torch.cat([table[:num_users] for table in tables] + [table[num_users:] for table in tables])
    return stacked if graph is None else propagate(stacked, graph, num_layers)


def _validation_pairs_seen(dataset: RecDataset, users: Tensor, items: Tensor) -> Tensor:
    """bool [n_valid]: validation pairs whose user and item both occur in (users, items) [m].

    All True when those pairs lack one of the labels (their AUC would be undefined).
    """
    device = users.device
    seen_users = torch.zeros(dataset.num_users, dtype=torch.bool, device=device)
    seen_items = torch.zeros(dataset.num_items, dtype=torch.bool, device=device)
    seen_users[users], seen_items[items] = True, True
    mask = seen_users[dataset.valid.users.to(device)] & seen_items[dataset.valid.items.to(device)]
    labels = dataset.valid.labels.to(device)[mask]
    if not bool((labels == 0).any() and (labels == 1).any()):
        return torch.ones_like(mask)
    return mask


def _fit_shards(model: ShardedRecommender, dataset: RecDataset, shards: Sequence[int], config: TrainConfig) -> None:
    """Train sub-models ``shards`` from their initial tables on their rows of ``model.partition``.

    Other shards are untouched. Each epoch is one shuffled pass over every training
    shard's rows, one batch per shard per optimiser step; a shard stops after
    ``config.patience`` epochs without a better validation AUC (or at ``max_epochs``)
    and keeps its best table. A shard left without rows keeps its initial table.

    A shard is judged on the validation pairs whose user and item both occur in its rows:
    elsewhere its scores are untrained near-zero noise, and the whole-validation AUC of a
    one-tenth model hovers at 0.50–0.51, so early stopping on it is stopping on noise
    (measured on BookCrossing: a shard ran 204 epochs for a best AUC of 0.506).
    """
    device = model.embeddings.device
    num_users, num_items = model.num_users, model.num_items
    partition = model.partition
    train_rows = dataset.train
    users, items, labels = (t.to(device) for t in (train_rows.users, train_rows.items, train_rows.labels))
    valid_users, valid_items = dataset.valid.users.to(device), dataset.valid.items.to(device)
    rows = {j: torch.nonzero(partition == j).squeeze(1) for j in shards}  # training-row indices per shard
    for j in shards:
        model.embeddings[j] = model.initial_table(j).to(device)
    training = [j for j in shards if rows[j].numel()]
    if not training:
        return
    valid_mask = {j: _validation_pairs_seen(dataset, users[rows[j]], items[rows[j]]) for j in training}
    tables = {j: nn.Parameter(model.embeddings[j].clone()) for j in training}
    generators = {j: torch.Generator().manual_seed(config.seed + 1 + j) for j in training}
    # Adam keeps per-parameter state, and skips a parameter whose grad is None: per-shard Adam.
    optimizer = torch.optim.Adam(list(tables.values()), lr=config.lr, fused=True)
    best = {j: (-math.inf, 0) for j in training}  # (AUC, epoch)
    laid_out: list[int] = []  # the shards the blocks below were laid out for
    epoch = 0
    while training:
        epoch += 1
        if training != laid_out:  # a shard stopped: re-lay the blocks over the ones still training
            laid_out, num_blocks = list(training), len(training)
            block = torch.full((model.num_shards,), -1, dtype=torch.int64, device=device)
            block[torch.tensor(laid_out, device=device)] = torch.arange(num_blocks, device=device)
            graph = None
            if model.num_layers > 0:
                shard_rows = torch.cat([rows[j] for j in laid_out])
                graph = _stacked_graph(users[shard_rows], items[shard_rows], labels[shard_rows],
                                       block[partition[shard_rows]], num_blocks, num_users, num_items)

        batches = {j: shuffled_batches(rows[j].numel(), config.batch_size, generators[j], device) for j in laid_out}
        for step in range(max(len(b) for b in batches.values())):
            members = [j for j in laid_out if step < len(batches[j])]
            picked = [rows[j][batches[j][step]] for j in members]
            index = torch.cat(picked)
            row_block = block[partition[index]]
            # The sum of each shard's mean over its own batch: per-shard gradients, one backward.
            weight = torch.cat([torch.full((p.numel(),), 1.0 / p.numel(), device=device) for p in picked])
            table = _scoring_table([tables[j] for j in laid_out], num_users, graph, model.num_layers)
            logits = Recommender.pair_logits(table, num_blocks * num_users,
                                             users[index] + row_block * num_users, items[index] + row_block * num_items)
            loss = (binary_cross_entropy_with_logits(logits, labels[index], reduction="none") * weight).sum()
            if config.l2 > 0:
                loss = loss + 0.5 * config.l2 * sum(tables[j].pow(2).sum() for j in members)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for j in laid_out:
                if j not in members:  # out of batches this epoch: no step, no Adam state change
                    tables[j].grad = None
            optimizer.step()

        with torch.no_grad():
            table = _scoring_table([tables[j] for j in laid_out], num_users, graph, model.num_layers)
            for j in laid_out:
                position = int(block[j])
                scores = Recommender.pair_logits(table, num_blocks * num_users, valid_users + position * num_users,
                                                 valid_items + position * num_items)
                valid_auc = auc(scores[valid_mask[j]], dataset.valid.labels[valid_mask[j].cpu()])
                if valid_auc > best[j][0]:
                    best[j] = (valid_auc, epoch)
                    model.embeddings[j] = tables[j].detach()
                if epoch - best[j][1] >= config.patience or epoch == config.max_epochs:
                    training.remove(j)
                    logger.info("shard %d: best validation AUC %.4f at epoch %d of %d", j, best[j][0], best[j][1], epoch)


def _fit_aggregator(model: ShardedRecommender, dataset: RecDataset, config: TrainConfig) -> None:
    """Train a fresh aggregator (seed ``model.seed``) on the remaining rows, sub-models frozen.

    Adam, mean BCE, shuffled batches, early stop on the whole-validation AUC, best state kept.
    """
    device = model.embeddings.device
    model.aggregator = AttentionAggregator(model.num_shards, model.dim, torch.Generator().manual_seed(model.seed)).to(device)
    kept = (model.partition >= 0).cpu()
    rows = dataset.train.select(kept)
    users, items, labels = (t.to(device) for t in (rows.users, rows.items + model.num_users, rows.labels))
    valid_users, valid_items = dataset.valid.users.to(device), dataset.valid.items.to(device)
    tables = model.shard_tables()  # [k, N, d], frozen
    optimizer = torch.optim.Adam(model.aggregator.parameters(), lr=config.lr, fused=True)
    generator = torch.Generator().manual_seed(config.seed)
    best_auc, best_epoch, best_state = -math.inf, 0, None
    for epoch in range(1, config.max_epochs + 1):
        for batch in shuffled_batches(len(rows), config.batch_size, generator, device):
            logits = (model.aggregator(tables[:, users[batch]], "user")
                      * model.aggregator(tables[:, items[batch]], "item")).sum(1)
            loss = binary_cross_entropy_with_logits(logits, labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            table = model.aggregated_table(tables)
            valid_auc = auc(Recommender.pair_logits(table, model.num_users, valid_users, valid_items), dataset.valid.labels)
        if valid_auc > best_auc:
            best_auc, best_epoch = valid_auc, epoch
            best_state = {key: value.detach().clone() for key, value in model.aggregator.state_dict().items()}
        if epoch - best_epoch >= config.patience:
            break
    assert best_state is not None  # at least one epoch ran
    model.aggregator.load_state_dict(best_state)
    logger.info("aggregator: best validation AUC %.4f at epoch %d of %d", best_auc, best_epoch, epoch)


def train_sharded(
    dataset: RecDataset,
    backbone: str = "mf",
    method: Method = "sisa",
    num_shards: int = 10,
    *,
    seed: int = 1024,
    config: TrainConfig | None = None,
    device: str | None = None,
    partition: Tensor | None = None,
    pretrained: tuple[Tensor, Tensor] | None = None,
    capacity_factor: float = 1.2,
    iterations: int = 50,
    dim: int | None = None,
    num_layers: int | None = None,
    init_std: float | None = None,
) -> tuple[ShardedRecommender, float]:
    """The method's Original: partition all training rows, train every sub-model, then the aggregator.

    ``config``: ``TrainConfig`` for sub-models and aggregator (default
    ``TrainConfig.for_model(backbone, seed=seed)``; ``l2`` applies to the sub-models,
    the aggregator has none, as in the authors' code). ``device``: where to train
    (default ``config.device``); it is stored in ``model.train_config``.
    ``partition``: shard id int64 [n_train] to use instead of computing one.
    ``pretrained``: (user [U, d], item [I, d]) embeddings for RecEraser's partition
    (default ``pretrain_mf(dataset, seed=seed)`` on ``config.device``, counted in the
    time). ``dim``/``num_layers``/``init_std`` default to ``models.DEFAULTS``. Returns
    the model and the wall seconds of the whole call.
    """
    start = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    check_validation(dataset)
    config = config or TrainConfig.for_model(backbone, seed=seed)
    if device is not None:
        config = replace(config, device=device)
    n = len(dataset.train)
    if partition is None:
        if method == "sisa":
            partition = random_partition(n, num_shards, seed)
        else:
            if pretrained is None:
                pretrained = pretrain_mf(dataset, TrainConfig.for_model("mf", seed=seed, device=config.device), seed)
            partition = interaction_balanced_partition(dataset.train.users, dataset.train.items, *pretrained,
                                                       num_shards, capacity_factor, iterations, seed)
    partition = torch.as_tensor(partition).cpu()
    if partition.shape != (n,):
        raise ValueError(f"partition must have one shard id per training row ({n}), got shape {tuple(partition.shape)}")
    if int(partition.min()) < 0:
        raise ValueError("a partition of all training rows cannot mark rows as removed (-1)")
    model = ShardedRecommender(backbone, method, dataset.num_users, dataset.num_items, partition, num_shards, dim,
                               num_layers, init_std, seed, config)
    model.to(config.device)
    _fit_shards(model, dataset, range(num_shards), config)
    if model.num_layers > 0:
        model.set_graph(shard_graph(dataset, model.partition, num_shards))
    _fit_aggregator(model, dataset, config)
    return model, time.perf_counter() - start


def unlearn_sharded(model: ShardedRecommender, dataset: RecDataset, removal: Tensor) -> UnlearnResult:
    """Forget the training rows ``removal`` (int64 indices into ``dataset.train``).

    The shards holding those rows are retrained from scratch on their remaining rows
    (same seeds and ``model.train_config`` as the original), the others are kept as they
    are, and the aggregator is retrained on all remaining rows. ``model`` is not
    modified. Phases: ``shards`` and ``aggregator`` seconds (``graph`` for LightGCN);
    ``kept_rows`` holds the NUMBER OF SHARDS RETRAINED. An empty request returns an
    unchanged copy. Raises ValueError for invalid indices (``check_removal``), a
    partition of another training set, or rows already forgotten.
    """
    start = time.perf_counter()
    removal = check_removal(dataset, removal)
    if model.partition.numel() != len(dataset.train):
        raise ValueError(f"the model's partition covers {model.partition.numel()} rows, the dataset has {len(dataset.train)}")
    if removal.numel() == 0:
        return UnlearnResult(copy.deepcopy(model), model.method, time.perf_counter() - start)
    partition = model.partition.cpu()
    forgotten = removal[partition[removal] < 0]
    if forgotten.numel():
        raise ValueError(f"{forgotten.numel()} rows were already forgotten: {forgotten[:5].tolist()}")
    device = model.embeddings.device
    clock = PhaseClock(device, start)
    lap = clock.lap

    affected = torch.unique(partition[removal]).tolist()
    unlearned = copy.deepcopy(model)
    unlearned.partition[removal.to(device)] = -1
    _fit_shards(unlearned, dataset, affected, model.train_config)
    lap("shards")
    if unlearned.num_layers > 0:
        unlearned.set_graph(shard_graph(dataset, unlearned.partition, unlearned.num_shards))
        lap("graph")
    _fit_aggregator(unlearned, dataset, model.train_config)
    lap("aggregator")
    return UnlearnResult(unlearned, model.method, time.perf_counter() - start, clock.phases,
                         kept_rows=len(affected), removed=int(removal.numel()))


# --------------------------------------------------------------------------- checkpoints


def save_sharded(path: str | os.PathLike[str], model: ShardedRecommender, dataset: RecDataset,
                 meta: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (trained on ``dataset``) to ``path`` atomically; returns the path.

    A plain dict (loads with ``weights_only=True``): ``format``, ``model`` (``config()``),
    ``train`` (the ``TrainConfig`` fields), ``partition``, ``embeddings``, ``aggregator``
    (state dict), ``split_hash`` and ``meta`` (plain data). The LightGCN graph is rebuilt
    on load from the partition.
    """
    payload = {
        "format": FORMAT,
        "model": model.config(),
        "train": asdict(model.train_config),
        "partition": model.partition.detach().cpu(),
        "embeddings": model.embeddings.detach().cpu(),
        "aggregator": {key: value.detach().cpu() for key, value in model.aggregator.state_dict().items()},
        "split_hash": dataset.split_hash,
        "meta": dict(meta or {}),
    }
    return atomic_save(payload, path)


def load_sharded(path: str | os.PathLike[str], dataset: RecDataset,
                 device: torch.device | str = "cpu") -> tuple[ShardedRecommender, dict[str, Any]]:
    """Load a model written by ``save_sharded`` for ``dataset``; returns (model, meta).

    Raises FileNotFoundError for a missing file and ValueError for a file that is not an
    intact sharded checkpoint, or one of another dataset split (``split_hash``).
    """
    fields = {"model": dict, "train": dict, "partition": Tensor, "embeddings": Tensor, "aggregator": dict,
              "split_hash": str, "meta": dict}
    payload = read_payload(path, FORMAT, fields)
    if payload["split_hash"] != dataset.split_hash:
        raise ValueError(f"{path}: checkpoint belongs to another dataset split (split hash {payload['split_hash'][:12]}…, "
                         f"this dataset {dataset.split_hash[:12]}…)")
    try:
        model = ShardedRecommender(**payload["model"], partition=payload["partition"],
                                   train_config=TrainConfig(**payload["train"]))
        model.embeddings.copy_(payload["embeddings"])
        model.aggregator.load_state_dict(payload["aggregator"])
    except (TypeError, ValueError, KeyError, RuntimeError) as error:
        raise ValueError(f"{path}: inconsistent sharded checkpoint: {error}") from None
    if (model.num_users, model.num_items, model.partition.numel()) != (dataset.num_users, dataset.num_items, len(dataset.train)):
        raise ValueError(f"{path}: checkpoint sizes do not match the dataset")
    model.to(device)
    if model.num_layers > 0:
        model.set_graph(shard_graph(dataset, model.partition, model.num_shards))
    return model, payload["meta"]
