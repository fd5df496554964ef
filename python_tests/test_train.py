"""Tests of ifru_ext.train: the protocol (loss, early stopping, Retrain exclusion) on real and synthetic data."""
from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from ifru_ext.data import PRESETS, RecDataset, build_dataset, data_dir, load_dataset
from ifru_ext.data.synthetic import shaped_ratings
from ifru_ext.metrics import auc, auc_noise
from ifru_ext.models import build_model, load_checkpoint, save_checkpoint
from ifru_ext.models.trace import TrainingTrace
from ifru_ext.training import PLATEAU_TOLERANCES, SCHEDULES, TrainConfig, train
from ifru_ext.unlearning.retrain import retrain_config

BX_FILE = data_dir() / PRESETS["bookcrossing"]["file"]
needs_bx = pytest.mark.skipif(not BX_FILE.exists(), reason=f"{BX_FILE} not present")


def planted_dataset(num_users: int = 60, num_items: int = 80, n: int = 4000, seed: int = 0) -> RecDataset:
    """Ratings from a planted rank-2 preference (label = rating > 5) with 5% attacked rows."""
    rng = np.random.default_rng(seed)
    user_factors, item_factors = rng.normal(size=(num_users, 2)), rng.normal(size=(num_items, 2))
    users, items = rng.integers(0, num_users, n), rng.integers(0, num_items, n)
    affinity = (user_factors[users] * item_factors[items]).sum(1) + 0.3 * rng.normal(size=n)
    df = pd.DataFrame({"user": users.astype(str), "item": items.astype(str), "rating": np.where(affinity > 0, 8, 2)})
    return build_dataset(df, threshold=5, kcore=1, attack_fraction=0.05, source="planted")


# How far a bfloat16 copy of an epoch's table may move its validation AUC: its rounding (2⁻⁹ relative)
# swaps the order of a few of the planted set's nearly tied pairs.
TAIL_AUC_TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def planted() -> RecDataset:
    return planted_dataset()


@pytest.fixture(scope="module")
def real_slice() -> RecDataset:
    if not BX_FILE.exists():
        pytest.skip(f"{BX_FILE} not present")
    return load_dataset("bookcrossing", max_rows=100_000, kcore=5, attack_fraction=0.02)


def valid_auc(model, dataset: RecDataset) -> float:
    return auc(model.score_all(dataset.valid.users, dataset.valid.items), dataset.valid.labels)


FAST = TrainConfig(lr=1e-2, batch_size=512, max_epochs=40, patience=5)


def test_config_presets_and_overrides():
    assert TrainConfig.for_model("mf").lr == 1e-3
    assert TrainConfig.for_model("lightgcn").lr == 1e-4
    assert TrainConfig.for_model("lightgcn", "fast").lr == SCHEDULES["fast"]["lightgcn"]["lr"]
    config = TrainConfig.for_model("mf", lr=5e-3, seed=7, max_epochs=None)
    assert (config.lr, config.seed, config.max_epochs, config.batch_size, config.patience) == (5e-3, 7, 1000, 2048, 10)
    with pytest.raises(ValueError, match="unknown schedule"):
        TrainConfig.for_model("mf", "slow")
    with pytest.raises(ValueError, match="positive"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="l2"):
        TrainConfig(l2=-1.0)
    assert all(TrainConfig.for_model(model, schedule).plateau_tolerance == "paired"
               for schedule in SCHEDULES for model in SCHEDULES[schedule])
    # LightGCN's BCE presets wait as long as a run took to its best; MF's and BPR's wait a fixed patience.
    assert {(schedule, model) for schedule in SCHEDULES for model in SCHEDULES[schedule]
            if TrainConfig.for_model(model, schedule).scaled_patience} == {("paper", "lightgcn"), ("fast", "lightgcn")}
    assert not TrainConfig().scaled_patience
    assert not TrainConfig.for_model("lightgcn", scaled_patience=False).scaled_patience  # an override wins
    with pytest.raises(ValueError, match="plateau_tolerance 'loose'; choose one of paired, noise"):
        TrainConfig(plateau_tolerance="loose")


@needs_bx
@pytest.mark.parametrize("name, lr, min_auc", [("mf", 3e-3, 0.57), ("lightgcn", 1e-2, 0.51)])
def test_training_lowers_loss_and_beats_chance_on_real_slice(real_slice, name, lr, min_auc):
    model = build_model(name, real_slice.num_users, real_slice.num_items, seed=0)
    result = train(model, real_slice, replace(FAST, lr=lr), progress=False)
    losses = [record["loss"] for record in result.history]
    assert losses[result.best_epoch - 1] < losses[0] < 0.6932  # starts at log 2: logits ≈ 0
    assert result.best_valid_auc > min_auc
    assert valid_auc(model, real_slice) == result.best_valid_auc  # the best state is the one kept


def test_early_stopping_keeps_the_best_state(planted, tmp_path):
    model = build_model("mf", planted.num_users, planted.num_items, seed=0)
    # A large step size overfits quickly, so the validation AUC peaks and then falls.
    result = train(model, planted, TrainConfig(lr=0.1, batch_size=256, max_epochs=200, patience=4), progress=False)
    aucs = [record["valid_auc"] for record in result.history]
    assert result.stopped_early and result.epochs == result.best_epoch + 4 < 200
    assert aucs[result.best_epoch - 1] == max(aucs) == result.best_valid_auc
    assert aucs[-1] < result.best_valid_auc
    assert valid_auc(model, planted) == result.best_valid_auc
    assert [record["epoch"] for record in result.history] == list(range(1, result.epochs + 1))
    assert result.seconds >= sum(record["seconds"] for record in result.history) * 0.99
    # The trace keeps how the run went on past its best epoch (the horizon rule reads it), and a
    # checkpoint keeps it; a trace written before the field loads without it.
    assert model.trace.validation_tail == tuple(aucs[result.best_epoch - 1:]) and len(model.trace.validation_tail) == 5
    loaded = load_checkpoint(save_checkpoint(tmp_path / "model.pt", model, planted), planted).model
    assert loaded.trace.validation_tail == model.trace.validation_tail
    payload = {k: v for k, v in model.trace.to_payload().items() if k != "validation_tail"}
    assert TrainingTrace.from_payload(payload, tuple(model.embedding.shape)).validation_tail is None
    with pytest.raises(ValueError, match="validation_tail"):
        TrainingTrace.from_payload({**payload, "validation_tail": (0.5, 1.5)}, tuple(model.embedding.shape))
    # It keeps where the run went past its best (the trajectory horizon reads it): one snapshot per
    # epoch, each the table that epoch's validation AUC was read on (to bfloat16's precision).
    tail, per_epoch = model.trace.tail, model.trace.steps // result.best_epoch
    assert [snap.steps for snap in tail] == [model.trace.steps + per_epoch * k for k in range(1, 5)]
    later = build_model("mf", planted.num_users, planted.num_items, seed=0)
    for snap, epoch_auc in zip(tail, aucs[result.best_epoch:]):
        later.embedding.data.copy_(snap.table.float())
        assert snap.table.dtype == torch.bfloat16 and abs(valid_auc(later, planted) - epoch_auc) < TAIL_AUC_TOLERANCE
    assert all(torch.equal(a.table, b.table) and torch.equal(a.second_moment, b.second_moment) and a.steps == b.steps
               for a, b in zip(loaded.trace.tail, tail, strict=True))
    assert TrainingTrace.from_payload({k: v for k, v in payload.items() if k != "tail"},
                                      tuple(model.embedding.shape)).tail is None
    with pytest.raises(ValueError, match="tail must be snapshots after"):
        TrainingTrace.from_payload({**payload, "tail": payload["tail"][::-1]}, tuple(model.embedding.shape))
    # It keeps how the run stopped, so a Retrain rebuilt from the trace stops the same way (before the
    # field it took the defaults: patience 10 for a run trained with 4).
    assert model.trace.stopping == {"max_epochs": 200, "patience": 4, "wait_until_decelerating": True,
                                    "wait_through_plateaus": True, "plateau_tolerance": "paired",
                                    "scaled_patience": False}
    assert loaded.trace.stopping == model.trace.stopping
    # A stopping recorded before the plateau tolerance and the scaled patience was trained with the
    # paired tolerance and a fixed patience.
    before = {k: v for k, v in model.trace.stopping.items() if k not in ("plateau_tolerance", "scaled_patience")}
    assert TrainingTrace.from_payload({**payload, "stopping": before}, tuple(model.embedding.shape)).stopping == \
        model.trace.stopping
    noisy = TrainingTrace.from_payload({**payload, "stopping": {**before, "plateau_tolerance": "noise"}},
                                       tuple(model.embedding.shape))
    loaded.trace, recorded = noisy, loaded.trace
    assert retrain_config(loaded, "cpu").plateau_tolerance == "noise"
    assert not retrain_config(loaded, "cpu").scaled_patience
    loaded.trace = recorded
    config = retrain_config(loaded, "cpu")
    assert (config.max_epochs, config.patience, config.lr, config.batch_size) == (200, 4, 0.1, 256)
    older = TrainingTrace.from_payload({k: v for k, v in payload.items() if k != "stopping"}, tuple(model.embedding.shape))
    assert older.stopping is None
    loaded.trace = older
    # Before the field only the plain rule existed for plateaus: that is how such a model trained.
    assert retrain_config(loaded, "cpu").patience == TrainConfig().patience
    assert retrain_config(loaded, "cpu").wait_through_plateaus is False and TrainConfig().wait_through_plateaus
    for bad in ({"patience": 4}, {**model.trace.stopping, "patience": 0}, {**model.trace.stopping, "max_epochs": 2.5},
                {**model.trace.stopping, "plateau_tolerance": "loose"}):
        with pytest.raises(ValueError, match="stopping"):
            TrainingTrace.from_payload({**payload, "stopping": bad}, tuple(model.embedding.shape))


def test_early_stopping_waits_until_the_loss_decelerates(tmp_path):
    """LightGCN's small initial table (std 1e-4, lr 1e-4) leaves every logit near 0 for dozens of
    epochs while the loss falls faster each epoch; on MovieLens-shaped data its validation AUC
    bumps early and dips, and the plain rule returned an untrained model (measured on 60k
    training rows: epoch 4, where a Retrain by the same rule returned epoch 94). The rule counts
    epochs from the one where the loss fell fastest, once the next one falls by no more."""
    ratings = shaped_ratings(500, 800, 30000, seed=7)  # MovieLens-shaped  # 17,994 training rows, 51% positive
    path = tmp_path / "ratings.dat"
    path.write_text("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in ratings.itertuples(index=False)))
    dataset = load_dataset(path, sep="::", threshold=3, kcore=5, columns=("user", "item", "rating", "timestamp"))
    runs = {}
    for wait in (False, True):
        model = build_model("lightgcn", dataset.num_users, dataset.num_items, seed=1024)
        # Each rule on its own: a miss is every epoch not strictly better (the plain rule for plateaus),
        # and patience is fixed.
        config = TrainConfig.for_model("lightgcn", wait_until_decelerating=wait, wait_through_plateaus=False,
                                       scaled_patience=False)
        runs[wait] = model, train(model, dataset, config)
    (plain, plain_result), (waiting, waiting_result) = runs[False], runs[True]
    losses = [record["loss"] for record in waiting_result.history]
    drops = [losses[e - 1] - losses[e] for e in range(1, len(losses))]  # drops[k]: the fall into epoch k + 2
    first_decelerating = next(k + 2 for k in range(1, len(drops)) if drops[k] <= drops[k - 1])
    # Both runs are the same run up to where the plain rule stopped.
    assert [r["loss"] for r in plain_result.history] == losses[:plain_result.epochs]
    # The plain rule stopped while every epoch still fell faster than the one before, with the
    # returned model's training logits all within 0.05 of 0: it had fit nothing.
    assert plain_result.stopped_early and plain_result.epochs < first_decelerating
    with torch.no_grad():
        logits = plain.score_all(dataset.train.users, dataset.train.items)
    assert float(logits.abs().max()) < 0.05
    assert plain_result.history[plain_result.best_epoch - 1]["loss"] > 0.69  # ln 2 = 0.6931
    # Waiting, the run goes on past the deceleration and returns a model that fits its data, at
    # about the same validation AUC (0.6545 against the untrained model's 0.6548 here).
    assert waiting_result.best_epoch >= first_decelerating > plain_result.best_epoch
    assert waiting_result.history[waiting_result.best_epoch - 1]["loss"] < 0.675  # 0.6685 at epoch 94
    assert abs(waiting_result.best_valid_auc - plain_result.best_valid_auc) < 0.002
    with torch.no_grad():
        assert float(waiting.score_all(dataset.train.users, dataset.train.items).abs().max()) > 0.5  # 0.83
    # Where the plain rule's best epoch comes after the deceleration (MF here, and every model of
    # the repository's reports) both rules return the same table.
    tables = []
    for wait in (False, True):
        model = build_model("mf", dataset.num_users, dataset.num_items, seed=1024)
        train(model, dataset, TrainConfig.for_model("mf", wait_until_decelerating=wait, wait_through_plateaus=False))
        tables.append(model.embedding.detach())
    assert torch.equal(*tables)


def test_early_stopping_waits_through_a_plateau():
    """From a small table LightGCN's validation AUC can stay level to 1e-5 for tens of epochs
    before rising again. Under the plain rule an Original stopped there while its Retrain, edging
    past by gains of 1e-5, trained ~4x longer: two different models, which no estimate from the
    Original can bridge (planted:1e4 poisoned rows: forget completeness 0.32). Counting as a miss
    only an epoch below the best by more than one paired deviation of the two AUCs' difference,
    both runs cross the plateau (and run to the epoch cap: these curves still rise at 1,000)."""
    dataset = load_dataset("planted:1e4", attack_fraction=0.02, attack_seed=1)
    removal = torch.from_numpy(np.sort(np.random.default_rng(1).choice(len(dataset.train), 120, replace=False)))
    runs = {}
    for wait in (False, True):
        for rows in (None, removal):
            model = build_model("lightgcn", dataset.num_users, dataset.num_items, seed=1024)
            config = TrainConfig.for_model("lightgcn", wait_through_plateaus=wait, scaled_patience=False)
            runs[wait, rows is None] = train(model, dataset, config, removal=rows, progress=False)
    plain, plain_retrain = runs[False, True], runs[False, False]
    level, level_retrain = runs[True, True], runs[True, False]
    # The plain Original stopped on a level stretch, not on a decline: its last ten epochs lie
    # within 1e-4 of each other (the AUC's noise on these 1,933 validation rows is 0.014).
    last = [record["valid_auc"] for record in plain.history[-10:]]
    assert plain.stopped_early and max(last) - min(last) < 1e-4 and plain.best_valid_auc - min(last) < 1e-4
    # Measured: epoch 170 against its Retrain's 663.
    assert plain_retrain.best_epoch > 3 * plain.best_epoch
    # Waiting through it, the Original is the same run up to the plain stop, goes on to a better
    # validation AUC (0.6803 at epoch 965 against 0.6757), and lands near its Retrain (911).
    assert [r["valid_auc"] for r in level.history[:plain.epochs]] == [r["valid_auc"] for r in plain.history]
    assert level.best_valid_auc > plain.best_valid_auc + 0.002
    assert level.best_epoch > 4 * plain.best_epoch
    assert abs(level.best_epoch - level_retrain.best_epoch) < 0.2 * level.best_epoch


def test_training_is_deterministic_for_a_seed(planted):
    runs = []
    for _ in range(2):
        model = build_model("lightgcn", planted.num_users, planted.num_items, seed=1)
        result = train(model, planted, replace(FAST, max_epochs=6, seed=3), progress=False)
        runs.append((model.embedding.detach().clone(), [(r["loss"], r["valid_auc"]) for r in result.history]))
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    other = build_model("lightgcn", planted.num_users, planted.num_items, seed=1)
    train(other, planted, replace(FAST, max_epochs=6, seed=4), progress=False)
    assert not torch.equal(other.embedding, runs[0][0])


def test_waiting_through_plateaus_keeps_the_model_where_the_curve_falls():
    """Where the validation AUC really falls after its peak, an epoch below the best by more than
    one paired deviation of the two AUCs' difference is a miss, so the option returns the plain
    rule's model and stops a few epochs later. A tolerance of one scoring's AUC noise (0.0045 on
    these 18k validation rows) would not: measured, it ran to epoch 146 for the same model."""
    dataset = load_dataset("planted:1e5", attack_fraction=0.02, attack_seed=1)
    runs = {}
    for wait in (False, True):
        model = build_model("mf", dataset.num_users, dataset.num_items, seed=1024)
        runs[wait] = train(model, dataset, TrainConfig.for_model("mf", wait_through_plateaus=wait), progress=False)
        runs[wait, "table"] = model.embedding.detach()
    plain, waiting = runs[False], runs[True]
    assert (plain.best_epoch, plain.epochs) == (48, 58)  # measured
    assert torch.equal(runs[False, "table"], runs[True, "table"]) and waiting.best_epoch == plain.best_epoch
    assert waiting.stopped_early and plain.epochs < waiting.epochs <= plain.epochs + 10  # measured: 64
    assert [r["valid_auc"] for r in waiting.history[:plain.epochs]] == [r["valid_auc"] for r in plain.history]


@pytest.mark.parametrize("name", ["mf", "lightgcn"])
def test_a_noise_plateau_tolerance_stops_only_on_a_fall_beyond_chance(planted, name):
    """``plateau_tolerance="noise"``: an epoch is a miss only below the best by more than one
    scoring's sampling deviation (``auc_noise``: 0.020 on the planted set's 800 validation rows),
    so the run is the paired rule's up to where that one stopped, returns the same best epoch
    (the curve fell after it), and stops on the first ``patience`` epochs in a row each that far
    below, not before (measured: MF 16 → 24 epochs, LightGCN 33 → 52)."""
    noise, runs = auc_noise(planted.valid.labels), {}
    for tolerance in PLATEAU_TOLERANCES:
        model = build_model(name, planted.num_users, planted.num_items, seed=0)
        runs[tolerance] = train(model, planted, replace(FAST, max_epochs=300, plateau_tolerance=tolerance),
                                progress=False)
        runs[tolerance, "table"] = model.embedding.detach()
    paired, waiting = runs["paired"], runs["noise"]
    assert paired.stopped_early and waiting.stopped_early and waiting.epochs > paired.epochs
    assert waiting.best_epoch == paired.best_epoch and torch.equal(runs["paired", "table"], runs["noise", "table"])
    aucs = [record["valid_auc"] for record in waiting.history]
    assert aucs[:paired.epochs] == [record["valid_auc"] for record in paired.history]
    below = [value < waiting.best_valid_auc - noise for value in aucs[waiting.best_epoch:]]
    patience = FAST.patience
    assert all(below[-patience:]) and not any(all(below[k:k + patience]) for k in range(len(below) - patience))


@pytest.mark.parametrize("name", ["mf", "lightgcn"])
def test_a_scaled_patience_waits_as_long_as_the_run_took_to_its_best(planted, name):
    """``scaled_patience``: the run stops after ``max(patience, best − turning)`` misses, the turning
    epoch being where the loss first falls by no more than the epoch before (the plain rule here, so
    every epoch after the best is a miss); the model is the fixed patience's wherever the curve falls
    after its best (measured: MF best 10, turning 6, both stop at 15; LightGCN best 17, turning 6,
    stops at 28 against 22)."""
    runs = {}
    for scaled in (False, True):
        model = build_model(name, planted.num_users, planted.num_items, seed=0)
        config = replace(FAST, max_epochs=300, wait_through_plateaus=False, scaled_patience=scaled)
        runs[scaled] = train(model, planted, config, progress=False)
        runs[scaled, "table"] = model.embedding.detach()
    fixed, scaled = runs[False], runs[True]
    losses = [record["loss"] for record in scaled.history]
    turning = next(epoch - 1 for epoch in range(3, len(losses) + 1)
                   if losses[epoch - 2] - losses[epoch - 1] <= losses[epoch - 3] - losses[epoch - 2])
    assert fixed.stopped_early and scaled.stopped_early and scaled.best_epoch == fixed.best_epoch
    assert torch.equal(runs[False, "table"], runs[True, "table"])
    assert fixed.epochs == fixed.best_epoch + FAST.patience
    assert scaled.epochs == scaled.best_epoch + max(FAST.patience, scaled.best_epoch - turning)
    if name == "lightgcn":
        assert scaled.epochs > fixed.epochs  # it reached its best 11 epochs after turning: it waits 11


@pytest.mark.parametrize("name", ["mf", "lightgcn"])
def test_retrain_excludes_rows_from_the_loss_and_the_graph(planted, name):
    # Exclude the removal set plus every row of user 0: that user then never gets a
    # gradient (its graph node is isolated too), and Adam leaves a zero-gradient row alone.
    user_rows = torch.nonzero(planted.train.users == 0).flatten()
    removal = torch.unique(torch.cat([planted.removal, user_rows]))
    model = build_model(name, planted.num_users, planted.num_items, init_std=0.1, seed=0)
    initial = model.embedding.detach().clone()
    train(model, planted, replace(FAST, max_epochs=5, patience=5), removal=removal, progress=False)
    assert torch.equal(model.embedding[0], initial[0])
    assert not torch.equal(model.embedding[1], initial[1])
    if name == "lightgcn":
        expected = planted.graph(removal)
        assert torch.equal(model.graph.rowptr, expected.rowptr) and torch.equal(model.graph.col, expected.col)
        assert model.graph.degree()[0] == 0
        # Removed positive pairs that no remaining positive row repeats are not edges any more.
        kept = planted.remaining(removal)
        kept_pairs = set(zip(kept.users[kept.labels > 0].tolist(), kept.items[kept.labels > 0].tolist()))
        removed = planted.train.select(removal)
        gone = {(u, i) for u, i, y in zip(removed.users.tolist(), removed.items.tolist(), removed.labels.tolist()) if y > 0}
        gone -= kept_pairs
        assert gone
        rows, cols = model.graph.to_sparse_coo().indices()
        edges = set(zip(rows.tolist(), cols.tolist()))
        assert all((u, planted.num_users + i) not in edges for u, i in gone)
        full = planted.graph()
        assert full.nnz > expected.nnz


def test_l2_shrinks_the_embeddings(planted):
    norms = []
    for l2 in (0.0, 1e-2):
        model = build_model("mf", planted.num_users, planted.num_items, init_std=0.1, seed=0)
        train(model, planted, replace(FAST, max_epochs=5, l2=l2), progress=False)
        norms.append(model.embedding.norm().item())
    assert norms[1] < norms[0]


def test_one_log_line_per_epoch_and_progress_bar(planted, caplog, capsys):
    model = build_model("mf", planted.num_users, planted.num_items, seed=0)
    with caplog.at_level(logging.INFO, logger="ifru_ext.training.train"):
        result = train(model, planted, replace(FAST, max_epochs=3, patience=3), progress=True)
    lines = [record.getMessage() for record in caplog.records if record.name == "ifru_ext.training.train"]
    assert len(lines) == result.epochs == 3
    assert all(line.startswith(f"epoch {epoch:4d}") and "valid AUC" in line for epoch, line in zip((1, 2, 3), lines))


def test_refuses_unusable_data(planted):
    model = build_model("mf", planted.num_users, planted.num_items, seed=0)
    with pytest.raises(ValueError, match="no training rows"):
        train(model, planted, FAST, removal=torch.arange(len(planted.train)), progress=False)
    one_class = replace(planted, valid=planted.valid.select(planted.valid.labels == 1))
    with pytest.raises(ValueError, match="both labels"):
        train(model, one_class, FAST, progress=False)
