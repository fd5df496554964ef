"""The sharded methods' answer to a request (retrain the shards holding removed rows, then
the aggregator) and their checkpoints."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...data import RecDataset
from ...models import copy_model
from ...models.checkpoint import atomic_save, read_payload
from ...training import TrainConfig
from ..base import PhaseClock, UnlearnResult
from .model import FORMAT, ShardedRecommender, shard_graph
from .training import fit_aggregator, fit_shards

__all__ = ["ShardedConfig", "load_sharded", "save_sharded", "unlearn_sharded"]


@dataclass(frozen=True)
class ShardedConfig:
    """A request retrains the affected shards with the ``TrainConfig`` the model was trained
    with (``model.train_config``), then refits the aggregator.

    ``warm_start`` (default True): the aggregator is refit from the model's current one, at
    most for as many epochs as the model's own aggregator training ran
    (``model.aggregator_epochs``; ``train_config.max_epochs`` when not known). False: a
    fresh aggregator (the Original's seed), so the answer equals the method's full Retrain
    on the remaining rows bit for bit (``train_sharded(partition=answer.partition)``).
    """

    warm_start: bool = True


def unlearn_sharded(model: ShardedRecommender, dataset: RecDataset, removal: Tensor, config: ShardedConfig,
                    clock: PhaseClock) -> UnlearnResult:
    """Runner (called by ``unlearn``): forget the validated, non-empty training rows ``removal``.

    The shards holding those rows are retrained from scratch on their remaining rows (same
    seeds, ``model.train_config`` and stopping rule as the original: each such shard is
    bit for bit the one a full Retrain of the method on the remaining rows trains, so the
    shards of a request never cost more than that Retrain's); the others are kept as they
    are. Then the aggregator is refit on all remaining rows (``ShardedConfig.warm_start``).
    ``model`` is not modified. Phases: ``shards`` and ``aggregator`` seconds (``graph`` for
    LightGCN); ``kept_rows`` holds the NUMBER OF SHARDS RETRAINED. Raises ValueError for a
    partition of another training set, or rows already forgotten.

    Why the warm start (measured on 25% of BookCrossing's users, 49,277 training rows, MF,
    one thread; an MF Retrain of 2% of the rows took 5.5 s, 32 epochs): the aggregator is
    the expensive part of both the Original and a request (~0.9 s an epoch against ~0.1 s for
    the MF backbone), and a fresh one's validation AUC is not monotone — RecEraser's
    peaked at 0.665 in epoch 3, fell to 0.556 in epoch 5 and crept back up at ~0.001 an epoch
    to 0.70 by epoch 50 — so a fresh refit either stopped in that dip (13 epochs) or, when it
    escaped it, ran 93 epochs (114 s of a 118 s request). Started from the model's
    aggregator, which the sub-models that stayed still fit, the refit needs no more epochs
    than the aggregator it replaces (the cap). The aggregator is the method's own model
    over the sub-models, not part of them: SISA's exactness is the sub-models' (each is a
    function of its shard's remaining rows alone); a warm-started aggregator's parameters
    start from ones fitted with the removed rows, as RecEraser's aggregator update would.
    ``warm_start=False`` keeps the exact answer (a fresh aggregator, the full Retrain's).
    """
    if model.partition.numel() != len(dataset.train):
        raise ValueError(f"the model's partition covers {model.partition.numel()} rows, the dataset has {len(dataset.train)}")
    partition = model.partition.cpu()
    forgotten = removal[partition[removal] < 0]
    if forgotten.numel():
        raise ValueError(f"{forgotten.numel()} rows were already forgotten: {forgotten[:5].tolist()}")
    device = model.embeddings.device
    affected = torch.unique(partition[removal]).tolist()
    unlearned = copy_model(model)
    unlearned.partition[removal.to(device)] = -1
    fit_shards(unlearned, dataset, affected, model.train_config)
    clock.lap("shards")
    if unlearned.num_layers > 0:
        unlearned.set_graph(shard_graph(dataset, unlearned.partition, unlearned.num_shards))
        clock.lap("graph")
    fit_aggregator(unlearned, dataset, model.train_config, warm_start=config.warm_start,
                   max_epochs=(model.aggregator_epochs or None) if config.warm_start else None)
    clock.lap("aggregator")
    return UnlearnResult(unlearned, model.method, kept_rows=len(affected))


def save_sharded(path: str | os.PathLike[str], model: ShardedRecommender, dataset: RecDataset,
                 meta: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (trained on ``dataset``) to ``path`` atomically; returns the path.

    A plain dict (loads with ``weights_only=True``): ``format``, ``model`` (``config()``),
    ``train`` (the ``TrainConfig`` fields), ``partition``, ``embeddings``, ``aggregator``
    (state dict), ``split_hash``, ``meta`` (plain data) and ``epochs`` (``shard_epochs`` and
    ``aggregator_epochs``; a checkpoint without it loads with zeros). The LightGCN graph is
    rebuilt on load from the partition.
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
        "epochs": {"shards": list(model.shard_epochs), "aggregator": model.aggregator_epochs},
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
        epochs = payload.get("epochs", {"shards": [0] * model.num_shards, "aggregator": 0})
        model.shard_epochs, model.aggregator_epochs = [int(e) for e in epochs["shards"]], int(epochs["aggregator"])
        if len(model.shard_epochs) != model.num_shards:
            raise ValueError(f"{len(model.shard_epochs)} shard epoch counts for {model.num_shards} shards")
    except (TypeError, ValueError, KeyError, RuntimeError) as error:
        raise ValueError(f"{path}: inconsistent sharded checkpoint: {error}") from None
    if (model.num_users, model.num_items, model.partition.numel()) != (dataset.num_users, dataset.num_items, len(dataset.train)):
        raise ValueError(f"{path}: checkpoint sizes do not match the dataset")
    model.to(device)
    if model.num_layers > 0:
        model.set_graph(shard_graph(dataset, model.partition, model.num_shards))
    return model, payload["meta"]
