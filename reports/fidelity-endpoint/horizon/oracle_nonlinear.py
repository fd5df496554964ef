"""oracle_nonlinear.py OUT DATASET FRACTION SEEDS [USER_FRACTION]: a diagnostic, not an estimator.

For each poisoned-row draw (SEEDS, comma-separated) of an `ifru fidelity` run cached in OUT (MF, BCE),
the uncalibrated training response four ways: with the Original's trace as recorded or with its steps
(and its snapshots') scaled by the epoch at which the draw's Retrain stopped over the Original's (the
oracle of oracle.py: only a Retrain knows it), each linear (corrections=0) or with each segment's step
solved as its nonlinear equation (corrections=2, ifru-nonlinear's). Prints forget completeness and
test-AUC_0 completeness of each."""
import copy
import dataclasses
import sys

import torch

from ifru_ext.data import load_dataset
from ifru_ext.evaluation import evaluate
from ifru_ext.models.checkpoint import load_checkpoint
from ifru_ext.models.trace import Snapshot
from ifru_ext.unlearning import UnlearnConfig, unlearn
from ifru_ext.unlearning.terms import forget_loss

torch.set_num_threads(2)
out, name, fraction = sys.argv[1], sys.argv[2], float(sys.argv[3])
seeds = [int(s) for s in sys.argv[4].split(",")]
user_fraction = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0


def test_auc(model, data) -> float:
    return evaluate(model, data, splits=("test",), metrics=("auc",))["test"]["auc_0"]


for seed in seeds:
    options = {"name_or_path": name, **({"user_fraction": user_fraction} if user_fraction != 1.0 else {})}
    data = load_dataset(**options, attack_fraction=fraction, attack_seed=seed)
    cell = f"poison-{fraction:g}-{seed}"
    original = load_checkpoint(f"{out}/original-{cell}.pt", data).model
    retrain = load_checkpoint(f"{out}/retrain-{cell}.pt", data).model
    rows = data.removal
    loss_o, loss_r = forget_loss(original, data, rows, "bce"), forget_loss(retrain, data, rows, "bce")
    auc_o, auc_r = test_auc(original, data), test_auc(retrain, data)
    ratio = retrain.trace.best_epoch / original.trace.best_epoch
    cells = []
    for label, scale in (("recorded", 1.0), ("oracle", ratio)):
        model = copy.deepcopy(original)
        trace = model.trace
        model.trace = dataclasses.replace(trace, steps=round(trace.steps * scale), snapshots=[
            Snapshot(round(s.steps * scale), s.table, s.second_moment) for s in trace.snapshots])
        for corrections in (0, 2):
            answer = unlearn(model, data, rows, config=UnlearnConfig(corrections=corrections, calibrated=False)).model
            forget = (forget_loss(answer, data, rows, "bce") - loss_o) / (loss_r - loss_o)
            auc_completeness = (test_auc(answer, data) - auc_o) / (auc_r - auc_o)
            cells.append(f"{label} k={corrections}: forget {forget:.3f} AUC_0 {auc_completeness:.2f}")
    print(name, f"users {user_fraction:g}", cell, f"epochs O/R {original.trace.best_epoch}/{retrain.trace.best_epoch}",
          " | ".join(cells), flush=True)
