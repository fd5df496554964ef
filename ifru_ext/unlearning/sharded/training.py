"""Training the sharded model: every sub-model on its shard's rows (batched across shards),
then the aggregator on all remaining rows, each stopped early when its validation AUC stops
beating its best by more than that AUC's noise (``auc_noise``)."""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor, nn
from torch.nn.functional import binary_cross_entropy_with_logits

from ...data import RecDataset
from ...graph import CSRGraph
from ...metrics import auc, auc_noise
from ...models import Recommender
from ...ops import propagate
from ...training import EarlyStopping, TrainConfig, check_validation, shuffled_batches, snapshot
from .model import METHODS, AttentionAggregator, Method, ShardedRecommender, shard_graph, stacked_graph
from .partition import interaction_balanced_partition, pretrain_mf, random_partition

__all__ = ["fit_aggregator", "fit_shards", "train_sharded"]

logger = logging.getLogger(__name__)


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


def fit_shards(model: ShardedRecommender, dataset: RecDataset, shards: Sequence[int], config: TrainConfig) -> None:
    """Train sub-models ``shards`` from their initial tables on their rows of ``model.partition``;
    the epochs each ran go to ``model.shard_epochs``.

    Other shards are untouched. Each epoch is one shuffled pass over every training
    shard's rows, one batch per shard per optimiser step; a shard stops after
    ``config.patience`` epochs without a better validation AUC (or at ``max_epochs``)
    and keeps its best table. A shard left without rows keeps its initial table.

    A shard is judged on the validation pairs whose user and item both occur in its rows:
    elsewhere its scores are untrained near-zero noise, and the whole-validation AUC of a
    one-tenth model hovers at 0.50–0.51, so early stopping on it is stopping on noise
    (measured on BookCrossing: a shard ran 204 epochs for a best AUC of 0.506). And an
    epoch counts as an improvement only when it beats the shard's best by more than the
    AUC's noise on those pairs (``auc_noise``): a shard whose AUC only fluctuates stops
    after ``patience`` epochs instead of whenever the fluctuations happen to end (25% of
    BookCrossing's users: one shard ran 623 epochs for a best AUC of 0.507).
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
        model.shard_epochs[j] = 0
    training = [j for j in shards if rows[j].numel()]
    if not training:
        return
    valid_mask = {j: _validation_pairs_seen(dataset, users[rows[j]], items[rows[j]]) for j in training}
    tables = {j: nn.Parameter(model.embeddings[j].clone()) for j in training}
    generators = {j: torch.Generator().manual_seed(config.seed + 1 + j) for j in training}
    # Adam keeps per-parameter state, and skips a parameter whose grad is None: per-shard Adam.
    optimizer = torch.optim.Adam(list(tables.values()), lr=config.lr, fused=True)
    # Each shard's best table is copied into model.embeddings[j] when it improves.
    stoppers = {j: EarlyStopping(config.patience, auc_noise(dataset.valid.labels[valid_mask[j].cpu()]))
                for j in training}
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
                graph = stacked_graph(users[shard_rows], items[shard_rows], labels[shard_rows],
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
                stoppers[j].update(epoch, valid_auc, lambda: model.embeddings[j].copy_(tables[j].detach()))
                if stoppers[j].should_stop(epoch) or epoch == config.max_epochs:
                    training.remove(j)
                    model.shard_epochs[j] = epoch
                    logger.info("shard %d: best validation AUC %.4f at epoch %d of %d", j, stoppers[j].best_score,
                                stoppers[j].best_step, epoch)


def _aggregate_pairs(model: ShardedRecommender, tables: Tensor, users: Tensor, items: Tensor) -> Tensor:
    """Aggregated logits [n] of the pairs (users, items) [n] (items NOT offset), ``tables`` [k, N, d].

    The aggregator runs once per distinct user and item of the pairs (a batch of 2048 rows
    of 25% of BookCrossing's users holds ~940 users and ~1,630 items; the validation split
    2,457 users and 5,947 of 7,298 items), not once per pair or per table row.
    """
    user_ids, user_of = torch.unique(users, return_inverse=True)
    item_ids, item_of = torch.unique(items, return_inverse=True)
    user_rows = model.aggregator(tables[:, user_ids], "user")
    item_rows = model.aggregator(tables[:, item_ids + model.num_users], "item")
    return (user_rows.index_select(0, user_of) * item_rows.index_select(0, item_of)).sum(-1)


def fit_aggregator(model: ShardedRecommender, dataset: RecDataset, config: TrainConfig, *,
                   warm_start: bool = False, max_epochs: int | None = None) -> None:
    """Train the aggregator on the remaining rows, sub-models frozen; the epochs run go to
    ``model.aggregator_epochs``.

    A fresh aggregator (seed ``model.seed``), or with ``warm_start`` the model's current one.
    Adam, mean BCE, shuffled batches (seed ``config.seed``), best state kept. It stops like
    a shard: after ``config.patience`` epochs without beating its best whole-validation AUC by
    more than that AUC's noise (``auc_noise`` of the validation labels, 0.0049 on 25% of
    BookCrossing's users), or at ``min(config.max_epochs, max_epochs)``. With ``min_delta =
    0`` a slowly creeping aggregator ran 93 epochs of a request (RecEraser, 25% of
    BookCrossing's users: 114 s against 13 epochs for the Original it answered). The warm start's
    own state is not a candidate: the returned aggregator has trained on the remaining rows.
    """
    device = model.embeddings.device
    if not warm_start:
        model.aggregator = AttentionAggregator(model.num_shards, model.dim,
                                               torch.Generator().manual_seed(model.seed)).to(device)
    cap = config.max_epochs if max_epochs is None else min(config.max_epochs, max_epochs)
    if cap < 1:
        raise ValueError(f"the aggregator needs at least one epoch, got a cap of {cap}")
    kept = (model.partition >= 0).cpu()
    rows = dataset.train.select(kept)
    users, items, labels = (t.to(device) for t in (rows.users, rows.items, rows.labels))
    valid_users, valid_items = dataset.valid.users.to(device), dataset.valid.items.to(device)
    tables = model.shard_tables()  # [k, N, d], frozen
    optimizer = torch.optim.Adam(model.aggregator.parameters(), lr=config.lr, fused=True)
    generator = torch.Generator().manual_seed(config.seed)
    stopper = EarlyStopping(config.patience, auc_noise(dataset.valid.labels))
    for epoch in range(1, cap + 1):
        for batch in shuffled_batches(len(rows), config.batch_size, generator, device):
            loss = binary_cross_entropy_with_logits(_aggregate_pairs(model, tables, users[batch], items[batch]),
                                                    labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            valid_auc = auc(_aggregate_pairs(model, tables, valid_users, valid_items), dataset.valid.labels)
        stopper.update(epoch, valid_auc, lambda: snapshot(model.aggregator))
        if stopper.should_stop(epoch):
            break
    assert stopper.best_state is not None  # at least one epoch ran
    model.aggregator.load_state_dict(stopper.best_state)
    model.aggregator_epochs = epoch
    logger.info("aggregator: best validation AUC %.4f at epoch %d of %d", stopper.best_score, stopper.best_step, epoch)


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
    ``partition``: shard id int64 [n_train] to use instead of computing one; rows marked −1
    are left out, so a model's partition after a request trains the method's full Retrain
    (every shard from its initial table and a fresh aggregator on the remaining rows).
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
    if config.loss != "bce":
        raise ValueError(f"the sharded methods train BCE sub-models and aggregator; a {config.loss!r} TrainConfig "
                         "cannot be honoured")
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
    if not bool((partition >= 0).any()):
        raise ValueError("the partition leaves no training row to train on")
    model = ShardedRecommender(backbone, method, dataset.num_users, dataset.num_items, partition, num_shards, dim,
                               num_layers, init_std, seed, config)
    model.to(config.device)
    fit_shards(model, dataset, range(num_shards), config)
    if model.num_layers > 0:
        model.set_graph(shard_graph(dataset, model.partition, num_shards))
    fit_aggregator(model, dataset, config)
    return model, time.perf_counter() - start
