"""The sharded model: ``k`` sub-models of one backbone in a stacked layout, and the attention
aggregator that merges them (layout: the package docstring)."""
from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ...data import RecDataset
from ...graph import CSRGraph, lightgcn_graph
from ...models import DEFAULTS, GraphModel, Recommender, build_model
from ...ops import propagate
from ...training import TrainConfig

__all__ = ["FORMAT", "METHODS", "AttentionAggregator", "Method", "ShardedRecommender", "shard_graph", "stacked_graph"]

Method = Literal["sisa", "receraser"]
METHODS: tuple[Method, ...] = ("sisa", "receraser")
FORMAT = "ifru-sharded-v1"


def stacked_graph(users: Tensor, items: Tensor, labels: Tensor, block: Tensor, num_blocks: int,
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
    return stacked_graph(rows.users, rows.items, rows.labels, partition[kept], num_shards,
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


class ShardedRecommender(GraphModel):
    """``k`` sub-models of one backbone and the aggregator over them.

    Buffers (saved): ``embeddings`` [k, N, d], shard ``j``'s table; ``partition`` int64
    [n_train], each training row's shard, −1 for forgotten rows. The LightGCN graph
    (``shard_graph`` of the partition) is held like ``Recommender``'s: non-persistent
    buffers, set with ``set_graph`` (``GraphModel``'s graph handling). Parameters: ``aggregator`` only — the sub-models are
    trained per shard and frozen under the aggregator. ``train_config`` is the
    ``TrainConfig`` that trained it (unlearning retrains with it). ``shard_epochs`` (list of
    ``k`` ints) and ``aggregator_epochs``: the epochs of each part's latest training (0: not
    trained, or not known); a request's aggregator runs at most ``aggregator_epochs`` epochs.
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
        self.init_graph()
        self.aggregator = AttentionAggregator(num_shards, self.dim, torch.Generator().manual_seed(seed))
        self.shard_epochs: list[int] = [0] * num_shards
        self.aggregator_epochs = 0

    def initial_table(self, shard: int) -> Tensor:
        """Shard ``shard``'s initial table [N, d] (CPU): ``build_model``'s draw with seed ``seed + 1 + shard``."""
        generator = torch.Generator().manual_seed(self.seed + 1 + shard)
        return torch.randn(self.num_nodes, self.dim, generator=generator) * self.init_std

    @property
    def graph_nodes(self) -> int:
        """The block-diagonal graph covers every shard: ``k·N`` nodes in the stacked layout."""
        return self.num_shards * self.num_nodes

    @property
    def reference_tensor(self) -> Tensor:
        return self.embeddings

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

    def scoring_table(self) -> Tensor:
        return self.aggregated_table()

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
