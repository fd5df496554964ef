"""Calibration at training time (ifru_ext.unlearning.calibration): the training response's scale,
fitted against one real Retrain, stored with the model and used by every later request."""
from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest
import torch

from ifru_ext.data import load_dataset
from ifru_ext.experiments.cache import trained_model
from ifru_ext.models import build_model, load_checkpoint, save_checkpoint
from ifru_ext.models.trace import UNRECORDED_ESTIMATOR, TrainingTrace
from ifru_ext.training import TrainConfig, train, train_new
from ifru_ext.unlearning import RetrainConfig, TableModel, UnlearnConfig, calibrate, unlearn
from ifru_ext.unlearning.calibration import calibration_rows
from ifru_ext.unlearning.response import orphaned_rows
from ifru_ext.unlearning.terms import forget_loss

from test_train import planted_dataset


def trained(dataset, name: str, seed: int = 0):
    model = build_model(name, dataset.num_users, dataset.num_items, dim=4, init_std=0.1, seed=seed).double()
    train(model, dataset, TrainConfig(lr=0.05, batch_size=256, max_epochs=8, patience=8, seed=seed), progress=False)
    return model


@pytest.fixture(scope="module")
def planted():
    return planted_dataset()


@pytest.mark.parametrize("name", ["mf", "lightgcn"])
def test_the_fitted_scale_makes_the_estimate_forget_as_much_as_retrain(planted, name):
    model = trained(planted, name)
    assert model.trace.calibration is None
    fitted = calibrate(model, planted)
    assert model.trace.calibration == fitted.scale and fitted.scale > 0
    rows = calibration_rows(model, planted, 0.02, 0)
    assert fitted.rows == rows.numel() == round(0.02 * len(planted.train))
    # Retrain (as the model was trained) and the calibrated answer on the calibration rows.
    retrained = unlearn(model, planted, rows, RetrainConfig()).model
    target = forget_loss(retrained, planted, rows, "bce")
    assert fitted.forget_loss["retrain"] == pytest.approx(target, rel=1e-12)
    answer = unlearn(model, planted, rows).model
    losses = fitted.forget_loss
    assert forget_loss(answer, planted, rows, "bce") == pytest.approx(
        target, abs=2e-3 * abs(target - losses["original"]))
    assert losses["uncalibrated"] != pytest.approx(target, abs=2e-3 * abs(target - losses["original"]))


def test_every_later_request_scales_the_response_and_keeps_orphans_exact(planted):
    model = trained(planted, "mf")
    scale = calibrate(model, planted).scale
    user = int(planted.train.users[3])
    request = torch.cat([(planted.train.users == user).nonzero().squeeze(1),
                         torch.randperm(len(planted.train), generator=torch.Generator().manual_seed(7))[:30]]).unique()
    calibrated = unlearn(model, planted, request)
    raw = unlearn(model, planted, request, method="ifru-uncalibrated")
    assert torch.equal(calibrated.changed_rows, raw.changed_rows)
    orphans = orphaned_rows(planted, request, torch.device("cpu"))
    moving = calibrated.changed_rows[~orphans[calibrated.changed_rows]]
    before = model.embedding.detach()
    torch.testing.assert_close(calibrated.model.embedding[moving] - before[moving],
                               scale * (raw.model.embedding[moving] - before[moving]), rtol=1e-9, atol=1e-12)
    assert torch.equal(calibrated.model.embedding[user], model.trace.initial[user])  # exact, not scaled
    # the nonlinear response's pair: its uncalibrated registry entry answers with the same estimator, unscaled
    nonlinear = UnlearnConfig(corrections=2)
    calibrate(model, planted, config=nonlinear)
    pair = [unlearn(model, planted, request, method=name).model.embedding for name in
            ("ifru-nonlinear", "ifru-nonlinear-uncalibrated")]
    assert not torch.equal(*pair)
    assert torch.equal(pair[1], unlearn(model, planted, request, replace(nonlinear, calibrated=False)).model.embedding)


def test_the_calibration_travels_with_the_checkpoint(planted, tmp_path):
    model = trained(planted, "mf")
    scale = calibrate(model, planted).scale
    save_checkpoint(tmp_path / "model.pt", model, planted)
    loaded = load_checkpoint(tmp_path / "model.pt", planted).model
    assert loaded.trace.calibration == scale and loaded.trace.calibrated_for == UnlearnConfig().estimator
    payload = model.trace.to_payload()
    shape = tuple(model.embedding.shape)
    # A trace written before the estimator was recorded: its scale is the earlier linear
    # response's, which no estimator of today is: the default answers without it, and says so.
    older = TrainingTrace.from_payload({k: v for k, v in payload.items() if k != "calibrated_for"}, shape)
    assert (older.calibration, older.calibrated_for) == (scale, UNRECORDED_ESTIMATOR)
    assert UnlearnConfig().estimator != UNRECORDED_ESTIMATOR
    loaded.trace = older
    request = torch.arange(0, len(planted.train), 50)
    with pytest.warns(UserWarning, match=r"fitted for the training\(corrections=0\) response.*answered uncalibrated"):
        answer = unlearn(loaded, planted, request)
    assert torch.equal(answer.model.embedding,
                       unlearn(loaded, planted, request, UnlearnConfig(calibrated=False)).model.embedding)
    payload.pop("calibration")  # a trace written before calibration existed
    payload.pop("calibrated_for")
    assert TrainingTrace.from_payload(payload, shape).calibration is None
    for bad in (0.0, -1.0, math.nan, math.inf, "2"):
        with pytest.raises(ValueError, match="calibration"):
            TrainingTrace.from_payload({**payload, "calibration": bad}, shape)
    with pytest.raises(ValueError, match="calibrated_for"):
        TrainingTrace.from_payload({**payload, "calibrated_for": "training(corrections=1)"}, shape)


def test_a_scale_fitted_for_another_estimator_is_not_used(planted):
    """The scale belongs to the estimator it was fitted for: the corrected response's scale is
    not applied to the default (a warning says so), and calibrating records the estimator."""
    model = trained(planted, "mf")
    request = torch.arange(0, len(planted.train), 50)
    corrected = UnlearnConfig(corrections=1)
    fitted = calibrate(model, planted, config=corrected)
    assert (model.trace.calibrated_for == corrected.estimator == fitted.estimator
            == "training-endpoint(corrections=1, adaptive_steps)")
    assert (UnlearnConfig().estimator == UnlearnConfig(corrections=2).estimator
            == "training-endpoint(corrections=2, adaptive_steps)")
    # ifru-fixed-steps's estimator is the default's before 2026-12-07: a checkpoint calibrated then keeps its scale for it
    assert UnlearnConfig(adaptive_steps=False).estimator == "training-endpoint(corrections=2)"
    assert UnlearnConfig(corrections=0).estimator == "training-endpoint(corrections=0)"
    assert UnlearnConfig(spillover=False).estimator != UnlearnConfig().estimator
    raw = unlearn(model, planted, request, UnlearnConfig(calibrated=False))
    with pytest.warns(UserWarning, match=r"fitted for the training-endpoint\(corrections=1, adaptive_steps\) response"):
        default = unlearn(model, planted, request)
    assert torch.equal(default.model.embedding, raw.model.embedding)
    scaled = unlearn(model, planted, request, corrected).model.embedding
    assert not torch.equal(scaled, unlearn(model, planted, request, replace(corrected, calibrated=False)).model.embedding)
    # A checkpoint calibrated before 2026-12-07 holds the fixed-step walk's scale: the default warns and names the
    # method that still uses it, and that method does.
    calibrate(model, planted, config=UnlearnConfig(adaptive_steps=False))
    with pytest.warns(UserWarning, match="answer with ifru-fixed-steps, whose scale it is"):
        unlearn(model, planted, request)
    fixed = unlearn(model, planted, request, method="ifru-fixed-steps").model.embedding
    assert not torch.equal(fixed, unlearn(model, planted, request, method="ifru-fixed-steps-uncalibrated").model.embedding)

def test_a_retrain_that_differs_by_more_than_the_removal_is_not_calibrated_against():
    # LightGCN on planted:1e4 with 2% flipped labels (paper schedule) under the plain stopping rule:
    # the Original stops on a level stretch at epoch 170 and the calibration Retrain runs past it, so
    # Retrain moves the loss of the calibration rows by +0.006 but that of the rows it kept by
    # -0.033 ± 0.003 — the runs differ by their path, not by the removal, and a fit would shrink
    # the response tenfold.
    data = load_dataset("planted:1e4", attack_fraction=0.02, attack_seed=1)
    config = TrainConfig.for_model("lightgcn", wait_through_plateaus=False, scaled_patience=False)
    model, _ = train_new("lightgcn", data, config)
    with pytest.raises(ValueError, match="no more than it moves the loss of rows it kept") as refused:
        calibrate(model, data, train=config)
    # It says how the two runs ended: the Original on the level stretch, its Retrain past it (measured: 170, 269).
    epochs = re.search(r"the model returned epoch (\d+), the Retrain epoch (\d+)", str(refused.value))
    assert epochs and int(epochs[1]) == model.trace.best_epoch and int(epochs[2]) > 1.5 * int(epochs[1])
    assert model.trace.calibration is None
    # Waiting through plateaus (the default) both runs cross that stretch, and the fit is made.
    model, _ = train_new("lightgcn", data, TrainConfig.for_model("lightgcn"))
    calibrate(model, data)
    assert model.trace.calibration is not None and model.trace.calibration > 0


def test_misuse_is_refused_with_a_clear_error(planted):
    model = trained(planted, "mf")
    for fraction in (0.0, 1.0, -0.1, 1):
        with pytest.raises(ValueError, match="fraction"):
            calibrate(model, planted, fraction=fraction)
    untrained = build_model("mf", planted.num_users, planted.num_items, dim=4, seed=0)
    with pytest.raises(ValueError, match="training trace"):
        calibrate(untrained, planted)

    class DotScores(TableModel):
        def scores(self, table, users, items):
            return (table[users] * table[items]).sum(1)

    with pytest.raises(ValueError, match="Recommender"):
        calibrate(DotScores(planted.num_users, planted.num_items, 4, seed=0), planted)


def test_a_cached_original_is_calibrated_once_and_set_aside_when_a_run_asks_for_none(planted, tmp_path):
    path, config = tmp_path / "original.pt", TrainConfig(lr=0.05, batch_size=256, max_epochs=8, patience=8)
    calibrated, _ = trained_model(path, "mf", planted, config, None, calibrated=True)
    scale = calibrated.trace.calibration
    assert scale is not None and scale > 0
    plain, _ = trained_model(path, "mf", planted, config, None)  # e.g. ifru fidelity --no-calibrate
    assert plain.trace.calibration is None and torch.equal(plain.embedding, calibrated.embedding)
    again, _ = trained_model(path, "mf", planted, config, None, calibrated=True)  # the file kept it
    assert again.trace.calibration == scale
    # A run calibrating for another estimator fits that one's scale (and the file keeps it instead).
    corrected, _ = trained_model(path, "mf", planted, config, None, calibrated=True,
                                 estimator=UnlearnConfig(corrections=1))
    assert corrected.trace.calibrated_for == "training-endpoint(corrections=1, adaptive_steps)"
    assert corrected.trace.calibration != scale
