"""Tests of BPR training (ifru_ext.training.bpr and train(loss="bpr")): the negatives' properties
(deterministic, independent of batches and of removals, never a user positive when avoidable,
uniform), the loss against hand computation, Retrain's exclusion, a real slice, checkpoints
and the command line."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from ifru_ext.cli import main
from ifru_ext.data import Interactions, RecDataset, load_dataset
from ifru_ext.evaluation import ranking
from ifru_ext.metrics import auc
from ifru_ext.models import build_model, load_checkpoint, read_checkpoint, save_checkpoint
from ifru_ext.models.trace import training_loss
from ifru_ext.training import (BPR_ROUNDS, SCHEDULES, NegativeSampler, TrainConfig, bpr_loss, bpr_negatives, bpr_rows,
                               model_arguments, train)
from ifru_ext.training import bpr as bpr_module

from test_cli import file_options, ratings_file  # noqa: F401  (a fixture)
from test_train import BX_FILE, planted_dataset

BPR = TrainConfig(lr=1e-2, batch_size=512, max_epochs=40, patience=5, loss="bpr")


@pytest.fixture(scope="module")
def planted() -> RecDataset:
    return planted_dataset()


def tiny_dataset(pairs: list[tuple[int, int, int]], num_users: int, num_items: int) -> RecDataset:
    """A dataset whose training rows are ``pairs`` (user, item, label); valid/test hold both labels."""
    users, items, labels = (torch.tensor(column, dtype=torch.int64) for column in zip(*pairs))
    train = Interactions(users, items, labels.float())
    split = Interactions(torch.tensor([0, 0]), torch.tensor([0, 1]), torch.tensor([1.0, 0.0]))
    return RecDataset(num_users, num_items, train, split, split, torch.empty(0, dtype=torch.int64),
                      np.arange(num_users).astype(str), np.arange(num_items).astype(str))


def positive_pairs(dataset: RecDataset) -> set[tuple[int, int]]:
    train = dataset.train
    return {(u, i) for u, i, y in zip(train.users.tolist(), train.items.tolist(), train.labels.tolist()) if y == 1}


# ----------------------------------------------------------------------------- negatives


def test_bpr_rows_are_the_remaining_positives(planted):
    rows = bpr_rows(planted)
    assert torch.equal(rows, torch.nonzero(planted.train.labels == 1).flatten())
    kept = bpr_rows(planted, planted.removal)
    assert set(kept.tolist()) == set(rows.tolist()) - set(planted.removal.tolist())
    with pytest.raises(ValueError, match="removal indices"):
        bpr_rows(planted, torch.tensor([len(planted.train)]))


def test_negatives_are_a_function_of_seed_epoch_and_row(planted):
    rows = bpr_rows(planted)
    sampler = NegativeSampler(planted)
    first = sampler(rows, 3, 1024)
    assert first.dtype == torch.int64 and first.shape == rows.shape
    assert torch.equal(first, bpr_negatives(planted, rows, 3, 1024))  # a fresh sampler: the same draw
    # Neither the order nor the company of a row matters: a permutation, a subset (a Retrain's
    # rows) and one row at a time give each row the same item.
    permutation = torch.randperm(rows.numel(), generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampler(rows[permutation], 3, 1024), first[permutation])
    remaining = bpr_rows(planted, planted.removal)
    assert torch.equal(sampler(remaining, 3, 1024), first[torch.isin(rows, remaining)])
    assert [int(sampler(rows[k:k + 1], 3, 1024)) for k in range(5)] == first[:5].tolist()
    # Another epoch or seed redraws (almost) every row; equal items happen at the rate 1 / items.
    for other in (sampler(rows, 4, 1024), sampler(rows, 3, 1025)):
        assert float((other == first).double().mean()) < 0.1


def test_no_user_positive_is_drawn(planted):
    rows = torch.arange(len(planted.train))  # any row may ask, a label-0 row too
    sampler, positives = NegativeSampler(planted), positive_pairs(planted)
    users = planted.train.users.tolist()
    for epoch in range(1, 4):
        negatives = sampler(rows, epoch, 7).tolist()
        assert all((u, j) not in positives for u, j in zip(users, negatives))
        assert all(0 <= j < planted.num_items for j in negatives)


def test_negatives_are_uniform_over_the_users_non_positive_items():
    # User 0 likes 6 of 20 items (a label-0 row does not exclude its item); one row, 14 000 epochs.
    pairs = [(0, i, 1) for i in (1, 4, 5, 9, 12, 17)] + [(0, 2, 0), (1, 0, 1), (1, 3, 0)]
    dataset = tiny_dataset(pairs, 2, 20)
    sampler = NegativeSampler(dataset)
    draws = torch.stack([sampler(torch.tensor([0]), epoch, 11) for epoch in range(14_000)]).flatten()
    counts = torch.bincount(draws, minlength=20).double()
    free = [i for i in range(20) if i not in (1, 4, 5, 9, 12, 17)]
    assert counts[[1, 4, 5, 9, 12, 17]].sum() == 0 and counts[2] > 0
    expected = 14_000 / len(free)
    chi2 = float(((counts[free] - expected) ** 2 / expected).sum())
    assert chi2 < 36.1  # the 0.999 quantile of chi-square with 13 degrees of freedom


def test_fallback_is_exact_when_the_rounds_run_out(monkeypatch):
    # User 0 likes every item but 3 and 7; user 1 likes every item (no negative exists).
    num_items = 12
    pairs = [(0, i, 1) for i in range(num_items) if i not in (3, 7)] + [(1, i, 1) for i in range(num_items)]
    dataset = tiny_dataset(pairs, 2, num_items)
    rows0, rows1 = torch.arange(num_items - 2), torch.arange(num_items - 2, len(pairs))
    monkeypatch.setattr(bpr_module, "BPR_ROUNDS", 1)  # nearly every row of user 0 needs the fallback
    sampler = NegativeSampler(dataset)
    draws = torch.cat([sampler(rows0, epoch, 5) for epoch in range(600)])
    counts = torch.bincount(draws, minlength=num_items)
    assert counts.sum() == counts[3] + counts[7] and abs(int(counts[3]) - int(counts[7])) < 200  # 6000 draws, sd ~ 39
    # No negative exists for user 1: its rows get the first round's candidate (necessarily a positive).
    assert bool(((sampler(rows1, 1, 5) >= 0) & (sampler(rows1, 1, 5) < num_items)).all())
    monkeypatch.undo()
    assert bpr_module.BPR_ROUNDS == BPR_ROUNDS > 1
    assert set(NegativeSampler(dataset)(rows0, 9, 5).tolist()) <= {3, 7}


# ----------------------------------------------------------------------------- loss and training


def test_bpr_loss_by_hand():
    value = bpr_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.5, 1.0]))
    assert float(value) == pytest.approx((math.log1p(math.exp(-1.5)) + math.log1p(math.exp(1.0))) / 2, rel=1e-6)


def test_first_epoch_loss_is_the_hand_computed_bpr_loss(planted):
    # One batch per epoch: epoch 1's logged loss is the BPR loss at the initial table with the
    # negatives of epoch 1, the l2 term left out of the log.
    model = build_model("mf", planted.num_users, planted.num_items, dim=4, init_std=0.5, seed=0)
    table = model.embedding.detach().double().clone()
    config = replace(BPR, batch_size=10_000, max_epochs=1, l2=0.1, seed=9)
    result = train(model, planted, config, progress=False)
    rows = bpr_rows(planted)
    negatives = bpr_negatives(planted, rows, 1, 9).tolist()
    total = 0.0
    for row, j in zip(rows.tolist(), negatives):
        u, i = int(planted.train.users[row]), int(planted.train.items[row])
        e_u, e_i, e_j = table[u], table[planted.num_users + i], table[planted.num_users + j]
        total += math.log1p(math.exp(-float(e_u @ e_i - e_u @ e_j)))
    assert result.history[0]["loss"] == pytest.approx(total / len(rows), rel=1e-5)
    assert model.trace.loss == "bpr" and model.trace.rows == len(rows) and model.trace.steps == 1


def test_bpr_training_fits_the_planted_preference(planted):
    model = build_model("lightgcn", planted.num_users, planted.num_items, init_std=0.1, graph=planted.graph(), seed=0)
    before = auc(model.score_all(planted.valid.users, planted.valid.items), planted.valid.labels)
    result = train(model, planted, BPR, progress=False)
    losses = [record["loss"] for record in result.history]
    assert losses[0] < 0.6932 and losses[result.best_epoch - 1] < losses[0]  # starts near log 2
    assert result.best_valid_auc > max(before, 0.8)
    assert training_loss(model) == "bpr"


def test_bpr_is_deterministic_and_bce_is_unchanged(planted):
    runs = []
    for loss in ("bpr", "bpr", "bce"):
        model = build_model("mf", planted.num_users, planted.num_items, seed=1)
        train(model, planted, replace(BPR, max_epochs=3, loss=loss), progress=False)
        runs.append(model.embedding.detach().clone())
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    assert TrainConfig().loss == "bce" and SCHEDULES["paper"]["mf"].get("loss", "bce") == "bce"
    with pytest.raises(ValueError, match="unknown loss"):
        TrainConfig(loss="hinge")


def test_the_bpr_schedule():
    # The recipe measured in training/train.py: BPR at lr 1e-3; LightGCN with d 64, K 2, init 0.1.
    for name in ("mf", "lightgcn"):
        config = TrainConfig.for_model(name, "bpr")
        assert (config.loss, config.lr, config.l2, config.batch_size) == ("bpr", 1e-3, 0.0, 2048)
        assert TrainConfig.for_model(name, "bpr", loss="bce").loss == "bce"  # an override wins
        assert TrainConfig.for_model(name).loss == TrainConfig.for_model(name, "fast").loss == "bce"
    assert model_arguments("lightgcn", "bpr") == {"dim": 64, "num_layers": 2, "init_std": 0.1}
    assert model_arguments("lightgcn", "bpr", dim=16, num_layers=None) == {"dim": 16, "num_layers": 2, "init_std": 0.1}
    none = {"dim": None, "num_layers": None, "init_std": None}  # build_model's defaults
    assert model_arguments("mf", "bpr") == model_arguments("lightgcn", "paper") == none


@pytest.mark.parametrize("name", ["mf", "lightgcn"])
def test_bpr_retrain_leaves_a_removed_user_untouched(planted, name):
    # Every row of user 0 removed: BPR never scores a triple of user 0, so its row keeps its
    # initial value (its items still move: they are other users' positives and negatives).
    removal = torch.unique(torch.cat([planted.removal, torch.nonzero(planted.train.users == 0).flatten()]))
    model = build_model(name, planted.num_users, planted.num_items, init_std=0.1, seed=0)
    initial = model.embedding.detach().clone()
    train(model, planted, replace(BPR, max_epochs=4), removal=removal, progress=False)
    assert torch.equal(model.embedding[0], initial[0]) and not torch.equal(model.embedding[1], initial[1])
    assert model.trace.rows == len(bpr_rows(planted, removal))


def test_bpr_refuses_data_without_positives(planted):
    model = build_model("mf", planted.num_users, planted.num_items, seed=0)
    with pytest.raises(ValueError, match="no positive"):
        train(model, planted, BPR, removal=bpr_rows(planted), progress=False)


@pytest.mark.skipif(not BX_FILE.exists(), reason=f"{BX_FILE} not present")
def test_bpr_raises_recall_and_auc_on_a_real_slice():
    """A fifth of BookCrossing's users (whole histories), MF at its default init N(0, 1e-3²): BPR
    learns which items a user rates, so full-ranking Recall@20 rises from 0.0025 to 0.037 in 15
    epochs (popularity-like at first). The AUC on the like/dislike labels moves little (0.50 →
    0.53): BookCrossing's label-0 rows are rated books too, which BPR ranks nearly as high as the
    liked ones (with init N(0, 0.1²) the random table dominates and 15 epochs leave it at 0.50)."""
    dataset = load_dataset("bookcrossing", user_fraction=0.2)
    model = build_model("mf", dataset.num_users, dataset.num_items, seed=0)

    def measured() -> tuple[float, float]:
        recall = ranking(model, dataset, "test", ("recall@20",))["recall@20"]
        return recall, auc(model.score_all(dataset.test.users, dataset.test.items), dataset.test.labels)

    recall_before, auc_before = measured()
    train(model, dataset, replace(BPR, lr=3e-3, batch_size=2048, max_epochs=15, patience=3), progress=False)
    recall_after, auc_after = measured()
    assert recall_after > max(10 * recall_before, 0.03)
    assert auc_after > max(auc_before, 0.52)


# ----------------------------------------------------------------------------- checkpoints and the CLI


def test_checkpoint_round_trip_keeps_the_loss(tmp_path, planted):
    model = build_model("lightgcn", planted.num_users, planted.num_items, seed=0)
    train(model, planted, replace(BPR, max_epochs=2), progress=False)
    path = save_checkpoint(tmp_path / "model.pt", model, planted)
    assert read_checkpoint(path)["loss"] == "bpr"
    loaded = load_checkpoint(path, planted)
    assert loaded.loss == "bpr" and loaded.model.trace.loss == "bpr"
    assert torch.equal(loaded.model.trace.initial, model.trace.initial)

    def rewrite(change) -> None:
        payload = torch.load(path, weights_only=True)
        change(payload)
        torch.save(payload, path)

    rewrite(lambda payload: payload["trace"].update(loss="bce"))  # the two records disagree
    with pytest.raises(ValueError, match="says loss 'bpr' but its training trace says 'bce'"):
        load_checkpoint(path, planted)
    rewrite(lambda payload: payload.update(trace=None))  # "bpr" and no trace
    with pytest.raises(ValueError, match=r"training trace says 'bce' \(no trace\)"):
        load_checkpoint(path, planted)
    rewrite(lambda payload: payload.update(loss="hinge"))
    with pytest.raises(ValueError, match="'loss' must be one of"):
        read_checkpoint(path)


def test_checkpoints_older_than_the_loss_load_as_bce(tmp_path, planted):
    model = build_model("mf", planted.num_users, planted.num_items, seed=0)
    train(model, planted, replace(BPR, max_epochs=1, loss="bce"), progress=False)
    path = save_checkpoint(tmp_path / "model.pt", model, planted)
    payload = torch.load(path, weights_only=True)
    del payload["loss"], payload["trace"]["loss"]
    torch.save(payload, path)
    loaded = load_checkpoint(path, planted)
    assert read_checkpoint(path)["loss"] == "bce" and loaded.loss == "bce" and loaded.model.trace.loss == "bce"


def test_cli_trains_bpr_and_records_it(tmp_path, ratings_file, capsys):  # noqa: F811  (the fixture)
    out = tmp_path / "run"
    argv = ["-q", "train", "--loss", "bpr", "--epochs", "3", "--lr", "0.01", "--batch-size", "256",
            "--out", str(out), "--no-progress", *file_options(ratings_file)]
    assert main(argv) == 0
    capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["loss"] == summary["train"]["loss"] == "bpr"
    payload = read_checkpoint(out / "model.pt")
    assert payload["loss"] == payload["trace"]["loss"] == payload["meta"]["train"]["loss"] == "bpr"
    assert main(["-q", "evaluate", "--checkpoint", str(out / "model.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test"]["auc_0"] == pytest.approx(summary["test"]["auc_0"], abs=1e-12)
    with pytest.raises(SystemExit) as exit_info:
        main([*argv[:2], "--loss", "hinge", *argv[4:]])
    assert exit_info.value.code == 2 and "invalid choice: 'hinge'" in capsys.readouterr().err
    # --schedule bpr: the loss and, for LightGCN, the recipe's architecture unless given.
    lightgcn = ["-q", "train", "--model", "lightgcn", "--schedule", "bpr", "--epochs", "1", "--no-progress",
                *file_options(ratings_file)]
    assert main([*lightgcn, "--out", str(tmp_path / "lgn")]) == 0
    assert main([*lightgcn, "--dim", "8", "--out", str(tmp_path / "lgn8")]) == 0
    for folder, dim in (("lgn", 64), ("lgn8", 8)):
        payload = read_checkpoint(tmp_path / folder / "model.pt")
        assert payload["loss"] == "bpr" and payload["meta"]["schedule"] == "bpr"
        assert (payload["model"]["dim"], payload["model"]["num_layers"], payload["model"]["init_std"]) == (dim, 2, 0.1)
