"""Forget and test-AUC completeness of the training response with k Newton corrections per segment,
on one cached `ifru fidelity` cell (MF, BookCrossing, the Original, Retrain and request of that cell):

    .venv/bin/python reports/fidelity-endpoint/corrections/sweep.py OUT SCENARIO FRACTION SEED [USER_FRACTION]

OUT is the cell's `--out` folder (its `original-*.pt` and `retrain-*.pt`); USER_FRACTION its
`--user-fraction` (default 1). Prints the default
(calibrated, k = 0), the uncalibrated response for k = 0..3, then calibrates the Original for
k = 2 (one more Retrain of a random calibration request, as `ifru fidelity --calibrate` does for
the default) and prints that answer with its scale.
"""
from __future__ import annotations

import dataclasses
import sys
import time
import warnings

from ifru_ext.data import load_dataset
from ifru_ext.evaluation import evaluate, forget_loss
from ifru_ext.experiments.fidelity import request_rows
from ifru_ext.models import load_checkpoint
from ifru_ext.unlearning import UnlearnConfig, unlearn
from ifru_ext.unlearning.calibration import calibrate

warnings.simplefilter("ignore")  # "answered uncalibrated" when the scale belongs to another k
out, scenario, fraction, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
user_fraction = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
if scenario == "poison":
    trained_on = dataset = load_dataset("bookcrossing", attack_fraction=fraction, attack_seed=seed,
                                        user_fraction=user_fraction)
    original_path = f"{out}/original-poison-{fraction:g}-{seed}.pt"
else:
    trained_on = load_dataset("bookcrossing", attack_fraction=0.0, user_fraction=user_fraction)
    dataset = dataclasses.replace(trained_on, removal=request_rows(trained_on, scenario, fraction, seed))
    original_path = f"{out}/original-clean.pt"
original = load_checkpoint(original_path, trained_on).model
retrain = load_checkpoint(f"{out}/retrain-{scenario}-{fraction:g}-{seed}.pt", dataset).model
removal = dataset.removal


def auc(model) -> float:
    return evaluate(model, dataset, splits=("test",), metrics=("auc",))["test"]["auc_0"]


loss_o, loss_r, auc_o, auc_r = forget_loss(original, dataset, removal), forget_loss(retrain, dataset, removal), \
    auc(original), auc(retrain)
print(f"{scenario} {fraction:g} seed {seed}: forget loss O {loss_o:.4f} R {loss_r:.4f}, "
      f"AUC_0 O {auc_o:.4f} R {auc_r:.4f}", flush=True)


def report(label: str, config: UnlearnConfig) -> None:
    start = time.perf_counter()
    answer = unlearn(original, dataset, removal, config=config)
    seconds = time.perf_counter() - start
    loss, test_auc = forget_loss(answer.model, dataset, removal), auc(answer.model)
    print(f"  {label}: forget completeness {(loss - loss_o) / (loss_r - loss_o):.3f}  "
          f"|AUC_0 - R| {abs(test_auc - auc_r):.4f}  AUC_0 completeness {(test_auc - auc_o) / (auc_r - auc_o):.3f}  "
          f"{seconds:.2f} s", flush=True)


report(f"default (calibrated, scale {original.trace.calibration:.3f}, k=0)", UnlearnConfig())
for k in range(4):
    report(f"uncalibrated k={k}", UnlearnConfig(calibrated=False, corrections=k))
calibrate(original, trained_on, config=UnlearnConfig(corrections=2))
report(f"calibrated for k=2 (scale {original.trace.calibration:.3f})", UnlearnConfig(corrections=2))
