"""Tests of ifru_ext.sharded (SISA, RecEraser): partitions, shard bookkeeping, unlearning, checkpoints.

End-to-end runs use a real BookCrossing slice with short schedules (the sub-models of
a 17k-row slice stop within a few epochs anyway).
"""
from __future__ import annotations

import copy
import math

import pytest
import torch

from ifru_ext.data import PRESETS, RecDataset, data_dir, load_dataset
from ifru_ext.metrics import auc
from ifru_ext.unlearning.sharded import (
    ShardedRecommender,
    capacitated_assignment,
    interaction_balanced_partition,
    load_sharded,
    pretrain_mf,
    random_partition,
    save_sharded,
    shard_graph,
    train_sharded,
)
from ifru_ext.unlearning import unlearn
from ifru_ext.training import TrainConfig

BX_FILE = data_dir() / PRESETS["bookcrossing"]["file"]
needs_bx = pytest.mark.skipif(not BX_FILE.exists(), reason=f"{BX_FILE} not present")

# First 100k raw rows, 3-core: 16,971 training rows, 340 attacked (2%).
SLICE = {"name_or_path": "bookcrossing", "max_rows": 100_000, "kcore": 3, "attack_fraction": 0.02}
FAST_MF = TrainConfig.for_model("mf", max_epochs=15, patience=3)
# LightGCN's paper lr (1e-4) needs hundreds of epochs; 1e-2 reaches its plateau in a few.
FAST_LIGHTGCN = TrainConfig.for_model("lightgcn", lr=1e-2, max_epochs=15, patience=3)
# "Noise" for validation AUC on this slice (5,329 validation rows).
AUC_NOISE = 0.01


def valid_auc(model, dataset: RecDataset) -> float:
    return auc(model.score_all(dataset.valid.users, dataset.valid.items), dataset.valid.labels)


@pytest.fixture(scope="module")
def real_slice() -> RecDataset:
    if not BX_FILE.exists():
        pytest.skip(f"{BX_FILE} not present")
    return load_dataset(**SLICE)


@pytest.fixture(scope="module")
def sisa_mf(real_slice):
    model, seconds = train_sharded(real_slice, "mf", "sisa", config=FAST_MF)
    return model, seconds


# --------------------------------------------------------------------------- partitions


def test_random_partition_is_a_balanced_deterministic_cover():
    partition = random_partition(1003, 10, seed=5)
    counts = torch.bincount(partition, minlength=10)
    assert partition.dtype == torch.int64 and partition.shape == (1003,)
    assert counts.sum() == 1003 and set(counts.tolist()) <= {100, 101}
    assert torch.equal(partition, random_partition(1003, 10, seed=5))
    assert not torch.equal(partition, random_partition(1003, 10, seed=6))
    for rows, shards in [(5, 10), (10, 0)]:
        with pytest.raises(ValueError, match="num_shards"):
            random_partition(rows, shards)


def greedy_walk(distance: torch.Tensor, capacity: int) -> torch.Tensor:
    """RecEraser's assignment as the authors write it: every pair in increasing distance, one at a time."""
    n, k = distance.shape
    pairs = sorted((float(distance[r, s]), r, s) for r in range(n) for s in range(k))
    assignment, counts = [-1] * n, [0] * k
    for _, row, shard in pairs:
        if assignment[row] < 0 and counts[shard] < capacity:
            assignment[row] = shard
            counts[shard] += 1
    return torch.tensor(assignment)


@pytest.mark.parametrize("n, k, capacity, ties", [(200, 5, 48, False), (301, 7, 52, False), (150, 4, 45, True)])
def test_capacitated_assignment_equals_the_greedy_walk(n, k, capacity, ties):
    distance = torch.rand(n, k, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    if ties:  # many equal distances: the tie order (row, then shard) must match too
        distance = (distance * 4).round()
    assignment = capacitated_assignment(distance, capacity)
    assert torch.equal(assignment, greedy_walk(distance, capacity))
    assert int(torch.bincount(assignment, minlength=k).max()) <= capacity
    with pytest.raises(ValueError, match="cannot hold"):
        capacitated_assignment(distance, n // k - 1)


def planted_clusters(seed: int, k: int = 4, dim: int = 8, per_cluster: int = 200, ids_per_cluster: int = 40):
    """Interactions in k clusters; cluster c's users and items sit near ±2·e_{c//2}.

    The centres differ only in direction: every embedding has the same mean coordinate
    (≈ 0) and norm (≈ 2), so only per-dimension anchors can tell the clusters apart.
    """
    gen = torch.Generator().manual_seed(seed)
    centres = torch.zeros(k, dim)
    centres[torch.arange(k), torch.arange(k) // 2] = torch.tensor([2.0, -2.0]).repeat(k // 2)
    user_emb = centres.repeat_interleave(ids_per_cluster, 0) + 0.1 * torch.randn(k * ids_per_cluster, dim, generator=gen)
    item_emb = centres.repeat_interleave(ids_per_cluster, 0) + 0.1 * torch.randn(k * ids_per_cluster, dim, generator=gen)
    cluster = torch.arange(k).repeat_interleave(per_cluster)
    users = cluster * ids_per_cluster + torch.randint(0, ids_per_cluster, (k * per_cluster,), generator=gen)
    items = cluster * ids_per_cluster + torch.randint(0, ids_per_cluster, (k * per_cluster,), generator=gen)
    return users, items, user_emb, item_emb, cluster


def purity(partition: torch.Tensor, cluster: torch.Tensor, k: int) -> float:
    """Share of rows in their shard's majority cluster."""
    confusion = torch.zeros(k, k, dtype=torch.long).index_put_((partition, cluster), torch.ones_like(partition),
                                                                accumulate=True)
    return float(confusion.max(1).values.sum()) / partition.numel()


def scalar_anchor_partition(users, items, user_emb, item_emb, k: int, seed: int, iterations: int = 50) -> torch.Tensor:
    """The authors' InBP with their centroid update (``np.mean`` without an axis: one scalar per anchor)."""
    capacity = math.ceil(1.2 * users.numel() / k)
    start = torch.randperm(users.numel(), generator=torch.Generator().manual_seed(seed))[:k]
    user_anchor, item_anchor = user_emb[users[start]].double(), item_emb[items[start]].double()
    for _ in range(iterations):
        distance = (torch.cdist(user_emb.double(), user_anchor).square()[users]
                    * torch.cdist(item_emb.double(), item_anchor).square()[items])
        partition = capacitated_assignment(distance, capacity)
        user_anchor = torch.stack([user_emb[users[partition == j]].double().mean().expand(user_emb.shape[1]) for j in range(k)])
        item_anchor = torch.stack([item_emb[items[partition == j]].double().mean().expand(item_emb.shape[1]) for j in range(k)])
    return partition


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interaction_balanced_partition_recovers_planted_clusters(seed):
    users, items, user_emb, item_emb, cluster = planted_clusters(seed)
    partition = interaction_balanced_partition(users, items, user_emb, item_emb, num_shards=4, seed=seed)
    assert purity(partition, cluster, 4) == 1.0
    assert torch.equal(partition, interaction_balanced_partition(users, items, user_emb, item_emb, num_shards=4, seed=seed))
    # The authors' scalar anchors cannot separate clusters that differ only in direction.
    assert purity(scalar_anchor_partition(users, items, user_emb, item_emb, 4, seed), cluster, 4) < 0.7


def test_interaction_balanced_partition_rejects_bad_input():
    users, items, user_emb, item_emb, _ = planted_clusters(0)
    with pytest.raises(ValueError, match="capacity_factor"):
        interaction_balanced_partition(users, items, user_emb, item_emb, num_shards=4, capacity_factor=0.9)
    with pytest.raises(ValueError, match="outside"):
        interaction_balanced_partition(users, items, user_emb[:10], item_emb, num_shards=4)
    with pytest.raises(ValueError, match="equal length"):
        interaction_balanced_partition(users, items[:-1], user_emb, item_emb, num_shards=4)


# --------------------------------------------------------------------------- models


@needs_bx
def test_block_diagonal_propagation_equals_each_shards_own(real_slice):
    n = len(real_slice.train)
    partition = random_partition(n, 4, seed=3)
    partition[real_slice.removal] = -1  # forgotten rows leave every graph
    model = ShardedRecommender("lightgcn", "sisa", real_slice.num_users, real_slice.num_items, partition, 4, init_std=0.1)
    model.set_graph(shard_graph(real_slice, partition, 4))
    tables = model.shard_tables()
    assert tables.shape == (4, real_slice.num_users + real_slice.num_items, 32)
    for shard in range(4):
        alone = model.shard_model(shard, real_slice)
        kept = partition == shard
        assert alone.graph.nnz == 2 * int(torch.unique(
            real_slice.train.users[kept & (real_slice.train.labels > 0.5)] * real_slice.num_items
            + real_slice.train.items[kept & (real_slice.train.labels > 0.5)]).numel())
        assert torch.equal(tables[shard], alone.propagated().detach())
    assert model.graph.nnz == sum(model.shard_model(j, real_slice).graph.nnz for j in range(4))


# --------------------------------------------------------------------------- SISA on MF


@needs_bx
def test_sisa_original_uses_the_random_partition_and_beats_chance(real_slice, sisa_mf):
    model, seconds = sisa_mf
    n = len(real_slice.train)
    assert torch.equal(model.partition, random_partition(n, 10, seed=1024))
    assert model.graph is None and seconds > 0
    assert valid_auc(model, real_slice) > 0.58


@needs_bx
def test_unlearning_retrains_only_the_shards_holding_removed_rows(real_slice, sisa_mf):
    model, _ = sisa_mf
    before_embeddings, before_partition = model.embeddings.clone(), model.partition.clone()
    before_scores = model.score_all(real_slice.valid.users, real_slice.valid.items)
    removed = real_slice.removal
    request = removed[torch.isin(model.partition[removed], torch.tensor([0, 3]))]
    result = unlearn(model, real_slice, request)

    # The input model is untouched.
    assert torch.equal(model.embeddings, before_embeddings) and torch.equal(model.partition, before_partition)
    assert torch.equal(model.score_all(real_slice.valid.users, real_slice.valid.items), before_scores)
    unlearned = result.model
    # Exact bookkeeping: the request leaves its shards, every other row keeps its shard.
    assert bool((unlearned.partition[request] == -1).all())
    others = torch.ones(len(real_slice.train), dtype=torch.bool)
    others[request] = False
    assert torch.equal(unlearned.partition[others], before_partition[others])
    assert int((unlearned.partition >= 0).sum()) == len(real_slice.train) - request.numel()
    for shard in range(10):
        same = torch.equal(unlearned.embeddings[shard], before_embeddings[shard])
        assert same == (shard not in (0, 3)), shard
    assert (result.kept_rows, result.num_removed, result.method) == (2, request.numel(), "sisa")
    assert set(result.phases) == {"shards", "aggregator"} and result.seconds >= sum(result.phases.values())
    # A shard's retraining does not depend on which shards retrain beside it.
    alone = unlearn(model, real_slice, request[model.partition[request] == 0])
    assert alone.kept_rows == 1 and torch.equal(alone.model.embeddings[0], unlearned.embeddings[0])


@needs_bx
def test_unlearning_the_attack_does_not_lower_validation_auc(real_slice, sisa_mf):
    model, _ = sisa_mf
    result = unlearn(model, real_slice, real_slice.removal)
    assert result.kept_rows == 10  # 340 random rows touch every shard
    assert bool((result.model.partition[real_slice.removal] == -1).all())
    assert valid_auc(result.model, real_slice) >= valid_auc(model, real_slice) - AUC_NOISE


@needs_bx
def test_empty_and_invalid_requests(real_slice, sisa_mf):
    model, _ = sisa_mf
    unchanged = unlearn(model, real_slice, torch.zeros(0, dtype=torch.int64))
    assert unchanged.model is not model and unchanged.kept_rows == 0
    assert torch.equal(unchanged.model.embeddings, model.embeddings)
    for key, value in model.aggregator.state_dict().items():
        assert torch.equal(unchanged.model.aggregator.state_dict()[key], value)
    n = len(real_slice.train)
    for bad, message in [(torch.tensor([0, n]), "not training rows"), (torch.tensor([4, 4]), "more than once"),
                         (torch.tensor([0.0, 1.0]), "integer")]:
        with pytest.raises(ValueError, match=message):
            unlearn(model, real_slice, bad)
    forgotten = copy.deepcopy(model)
    forgotten.partition[torch.tensor([7, 9])] = -1
    with pytest.raises(ValueError, match="already forgotten"):
        unlearn(forgotten, real_slice, torch.tensor([1, 7, 9]))
    other = load_dataset(**{**SLICE, "max_rows": 50_000})
    with pytest.raises(ValueError, match="partition covers"):
        unlearn(model, other, torch.tensor([0]))


@needs_bx
def test_save_load_round_trip_and_refusals(tmp_path, real_slice, sisa_mf):
    model, seconds = sisa_mf
    path = save_sharded(tmp_path / "sub" / "sisa.pt", model, real_slice, meta={"seconds": seconds})
    loaded, meta = load_sharded(path, real_slice)
    assert meta == {"seconds": seconds} and loaded.config() == model.config()
    assert loaded.train_config == model.train_config and torch.equal(loaded.partition, model.partition)
    users, items = real_slice.test.users, real_slice.test.items
    assert torch.equal(loaded.score_all(users, items), model.score_all(users, items))
    other = load_dataset(**{**SLICE, "attack_fraction": 0.01})
    with pytest.raises(ValueError, match="another dataset split"):
        load_sharded(path, other)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        load_sharded(tmp_path / "junk.pt", real_slice)
    with pytest.raises(FileNotFoundError):
        load_sharded(tmp_path / "missing.pt", real_slice)


# --------------------------------------------------------------------------- RecEraser, LightGCN


@needs_bx
def test_receraser_mf_partition_and_unlearning(real_slice):
    pretrained = pretrain_mf(real_slice, FAST_MF)
    users, items = real_slice.train.users, real_slice.train.items
    partition = interaction_balanced_partition(users, items, *pretrained)
    capacity = math.ceil(1.2 * len(real_slice.train) / 10)
    counts = torch.bincount(partition, minlength=10)
    assert counts.sum() == len(real_slice.train) and int(counts.min()) > 0 and int(counts.max()) <= capacity
    model, _ = train_sharded(real_slice, "mf", "receraser", config=FAST_MF, pretrained=pretrained)
    assert torch.equal(model.partition, partition)  # the same seed gives the same partition
    result = unlearn(model, real_slice, real_slice.removal)
    assert valid_auc(result.model, real_slice) >= valid_auc(model, real_slice) - AUC_NOISE


@needs_bx
def test_sisa_lightgcn_unlearning_and_round_trip(tmp_path, real_slice):
    model, _ = train_sharded(real_slice, "lightgcn", "sisa", config=FAST_LIGHTGCN)
    assert model.graph.nnz == shard_graph(real_slice, model.partition, 10).nnz
    result = unlearn(model, real_slice, real_slice.removal)
    unlearned = result.model
    # The unlearned shards propagate over graphs without the forgotten rows.
    assert torch.equal(unlearned.graph.col, shard_graph(real_slice, unlearned.partition, 10).col.to(unlearned.graph.col))
    assert unlearned.graph.nnz < model.graph.nnz and set(result.phases) == {"shards", "graph", "aggregator"}
    assert valid_auc(unlearned, real_slice) >= valid_auc(model, real_slice) - AUC_NOISE
    loaded, _ = load_sharded(save_sharded(tmp_path / "lightgcn.pt", unlearned, real_slice), real_slice)
    users, items = real_slice.test.users, real_slice.test.items
    assert torch.equal(loaded.score_all(users, items), unlearned.score_all(users, items))
