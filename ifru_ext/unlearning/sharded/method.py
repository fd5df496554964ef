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
    """SISA / RecEraser take no request options: a request retrains the affected shards with the
    ``TrainConfig`` the model was trained with (``model.train_config``)."""


def unlearn_sharded(model: ShardedRecommender, dataset: RecDataset, removal: Tensor, config: ShardedConfig,
                    clock: PhaseClock) -> UnlearnResult:
    """Runner (called by ``unlearn``): forget the validated, non-empty training rows ``removal``.

    The shards holding those rows are retrained from scratch on their remaining rows
    (same seeds and ``model.train_config`` as the original), the others are kept as they
    are, and the aggregator is retrained on all remaining rows. ``model`` is not
    modified. Phases: ``shards`` and ``aggregator`` seconds (``graph`` for LightGCN);
    ``kept_rows`` holds the NUMBER OF SHARDS RETRAINED. Raises ValueError for a partition
    of another training set, or rows already forgotten.
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
    fit_aggregator(unlearned, dataset, model.train_config)
    clock.lap("aggregator")
    return UnlearnResult(unlearned, model.method, kept_rows=len(affected))


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
