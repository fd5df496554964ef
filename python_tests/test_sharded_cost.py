"""What a SISA / RecEraser request costs against training: a request runs no more optimiser
steps than the method's full Retrain on the remaining rows, its aggregator no more epochs than
the Original's, and its answer stays exact where it claims to be (retrained shards are the
full Retrain's bit for bit, untouched shards stay as they were, equal seeds give equal answers).

On the real BookCrossing slice of test_sharded.py, with the default epoch cap (1000), so the
stopping rules, not a cap, end every run.
"""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from ifru_ext.data import PRESETS, RecDataset, data_dir, load_dataset
from ifru_ext.training import TrainConfig
from ifru_ext.unlearning import unlearn
from ifru_ext.unlearning.sharded import ShardedConfig, load_sharded, save_sharded, train_sharded

BX_FILE = data_dir() / PRESETS["bookcrossing"]["file"]
pytestmark = pytest.mark.skipif(not BX_FILE.exists(), reason=f"{BX_FILE} not present")

SLICE = {"name_or_path": "bookcrossing", "max_rows": 100_000, "kcore": 3, "attack_fraction": 0.02}
# The MF preset's lr, batch and epoch cap; patience 3 keeps the test short.
CONFIG = TrainConfig.for_model("mf", patience=3)


@contextlib.contextmanager
def counted_steps():
    """Counts every optimiser step taken inside the block: yields a one-element list."""
    count = [0]
    handle = register_optimizer_step_post_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    try:
        yield count
    finally:
        handle.remove()


def aggregator_state(model) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.aggregator.state_dict().items()}


@pytest.fixture(scope="module")
def real_slice() -> RecDataset:
    return load_dataset(**SLICE)


@pytest.fixture(scope="module")
def original(real_slice):
    with counted_steps() as steps:
        model, _ = train_sharded(real_slice, "mf", "sisa", config=CONFIG)
    return model, steps[0]


@pytest.fixture(scope="module")
def genuine(real_slice) -> torch.Tensor:
    """2% of the training rows drawn at random (they touch every shard)."""
    n = len(real_slice.train)
    rows = np.random.default_rng(0).choice(n, size=round(0.02 * n), replace=False)
    return torch.from_numpy(np.sort(rows).astype(np.int64))


def test_the_original_records_what_its_training_ran(original):
    model, steps = original
    assert model.aggregator_epochs > CONFIG.patience and all(e > CONFIG.patience for e in model.shard_epochs)
    assert max(model.shard_epochs) < CONFIG.max_epochs and model.aggregator_epochs < CONFIG.max_epochs
    assert steps > 0


def test_a_request_costs_no_more_than_the_methods_full_retrain(real_slice, original, genuine):
    model, original_steps = original
    with counted_steps() as request_steps:
        result = unlearn(model, real_slice, genuine)
    answer = result.model
    assert result.kept_rows == model.num_shards  # 2% random rows touch every shard
    with counted_steps() as retrain_steps:
        retrain, _ = train_sharded(real_slice, "mf", "sisa", config=CONFIG, partition=answer.partition)
    # The shards of the request are the full Retrain's, run for run.
    assert torch.equal(answer.embeddings, retrain.embeddings)
    assert answer.shard_epochs == retrain.shard_epochs
    # The same shards ran the same epochs: the shard part of the request is the Retrain's work.
    aggregator_batches = -(-int((answer.partition >= 0).sum()) // CONFIG.batch_size)
    request_shard_steps = request_steps[0] - answer.aggregator_epochs * aggregator_batches
    assert request_shard_steps == retrain_steps[0] - retrain.aggregator_epochs * aggregator_batches > 0
    # The warm-started aggregator runs no longer than the Original's did (its cap).
    assert 0 < answer.aggregator_epochs <= model.aggregator_epochs


def test_the_exact_request_is_the_full_retrain(real_slice, original, genuine):
    model, _ = original
    with counted_steps() as request_steps:
        exact = unlearn(model, real_slice, genuine, ShardedConfig(warm_start=False)).model
    with counted_steps() as retrain_steps:
        retrain, _ = train_sharded(real_slice, "mf", "sisa", config=CONFIG, partition=exact.partition)
    assert torch.equal(exact.embeddings, retrain.embeddings)
    for key, value in aggregator_state(retrain).items():
        assert torch.equal(exact.aggregator.state_dict()[key], value), key
    assert exact.aggregator_epochs == retrain.aggregator_epochs
    assert request_steps[0] == retrain_steps[0]  # every shard retrained: the same work


def test_one_users_request_retrains_only_their_shards_deterministically(real_slice, original):
    model, _ = original
    counts = torch.bincount(real_slice.train.users, minlength=real_slice.num_users)
    user = int(torch.nonzero(counts == 5)[0])
    request = torch.nonzero(real_slice.train.users == user).squeeze(1)
    affected = set(model.partition[request].tolist())
    first, second = unlearn(model, real_slice, request), unlearn(model, real_slice, request)
    assert first.kept_rows == len(affected) < model.num_shards
    for shard in range(model.num_shards):
        kept = torch.equal(first.model.embeddings[shard], model.embeddings[shard])
        assert kept == (shard not in affected), shard
        assert first.model.shard_epochs[shard] == second.model.shard_epochs[shard]
    assert torch.equal(first.model.embeddings, second.model.embeddings)
    for key, value in aggregator_state(first.model).items():
        assert torch.equal(second.model.aggregator.state_dict()[key], value), key
    assert 0 < first.model.aggregator_epochs <= model.aggregator_epochs
    users, items = real_slice.test.users, real_slice.test.items
    assert torch.equal(first.model.score_all(users, items), second.model.score_all(users, items))


def test_checkpoints_keep_the_epoch_counts(tmp_path, real_slice, original):
    model, _ = original
    loaded, _ = load_sharded(save_sharded(tmp_path / "sisa.pt", model, real_slice), real_slice)
    assert (loaded.shard_epochs, loaded.aggregator_epochs) == (model.shard_epochs, model.aggregator_epochs)
    # A checkpoint written before the counts were kept loads with zeros: the cap is then max_epochs.
    payload = torch.load(tmp_path / "sisa.pt", weights_only=True)
    del payload["epochs"]
    torch.save(payload, tmp_path / "old.pt")
    old, _ = load_sharded(tmp_path / "old.pt", real_slice)
    assert (old.shard_epochs, old.aggregator_epochs) == ([0] * model.num_shards, 0)
