"""How many segments the response needs, and where: one cell, its cached 32-snapshot Original.

Usage (from the repository root, after ``run.sh``; MODEL mf | lightgcn):
    python reports/fidelity-segments/walk.py MODEL SOURCE SCENARIO FRACTION MODELS COUNTS [OPTION=VALUE ...]

(OPTIONs: a file's loading as ``ifru fidelity`` takes it: ``header=1 columns=user,item,rating,timestamp
threshold=3 kcore=5`` for the Amazon-shaped file.)

Loads the cell's Original (``MODELS/original-…pt``, 32 snapshots) and Retrain (``MODELS/retrain-…-1.pt``)
as ``ifru fidelity`` cached them, keeps K of the snapshots (those at the interior points
``(i + 1)/(K + 1)`` of the 32) for each K in COUNTS, calibrates the default estimator for that walk
(one Retrain each, ``unlearning.calibrate`` with the cell's training rules) and answers the request
with it and uncalibrated. A count ``trained`` keeps the two the trace would have kept by default
(``SnapshotRecorder(2)`` replayed over the run's epochs): the default's walk as of the code it runs
with (``walk-mf-trained.txt`` was printed with the recorder before 2026-12-05, which picked the
first and the last snapshot it held). Prints each
walk's epochs, AUC completeness AUC_0 / 1 / 2, |AUC_0 − R|, forget completeness and the request's
seconds.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

from ifru_ext.models.checkpoint import load_checkpoint
from ifru_ext.models.trace import SnapshotRecorder
from ifru_ext.training import TrainConfig
from ifru_ext.unlearning import UnlearnConfig, calibrate

from cell import answered, request, scores


# How each OPTION=VALUE is read into ``load_dataset``'s option.
LOADING = {"header": lambda value: value == "1", "columns": lambda value: tuple(value.split(",")),
           "threshold": float, "kcore": int, "sep": str}


def trained_picks(recorded: list, best_epoch: int, per_epoch: int) -> list:
    """The snapshots among ``recorded`` nearest to those a default trace (two kept) holds: the
    recorder replayed over the run's ``best_epoch`` epochs of ``per_epoch`` steps."""
    recorder = SnapshotRecorder()
    for epoch in range(1, best_epoch + 1):
        recorder.record(epoch, epoch * per_epoch, torch.zeros(1, 1), torch.zeros(1, 1))
    return [min(recorded, key=lambda snap: abs(snap.steps - kept.steps))
            for kept in recorder.before(best_epoch * per_epoch)]


def main(model: str, source: str, scenario: str, fraction: str, models: str, counts: str, *options: str) -> None:
    torch.set_num_threads(2)
    loading = {key: LOADING[key](value) for key, value in (option.split("=", 1) for option in options)}
    dataset, removal = request(source, scenario, float(fraction), **loading)
    poisoned = scenario == "poison"
    tag = f"poison-{float(fraction)}-1" if poisoned else "clean"
    # A clean Original was saved for the data without the request (the split's hash covers the removal).
    trained_on = dataset if poisoned else dataclasses.replace(dataset, removal=removal[:0])
    original = load_checkpoint(Path(models) / f"original-{tag}.pt", trained_on, model).model
    retrain = load_checkpoint(Path(models) / f"retrain-{scenario}-{float(fraction)}-1.pt", dataset, model).model
    at_o, at_r = scores(original, dataset, removal), scores(retrain, dataset, removal)
    trace = original.trace
    recorded = list(trace.snapshots)
    print(f"{source} {model} {scenario} {fraction}: {len(recorded)} snapshots, Original AUC_0 {at_o[0]:.4f}, "
          f"Retrain {at_r[0]:.4f}", flush=True)
    train = TrainConfig.for_model(model, snapshots=len(recorded))
    per_epoch = trace.steps // trace.best_epoch  # every epoch takes the same number of steps
    for count in counts.split(","):
        k = 2 if count == "trained" else int(count)
        picks = (trained_picks(recorded, trace.best_epoch, per_epoch) if count == "trained"
                 else [recorded[round((i + 1) * len(recorded) / (k + 1)) - 1] for i in range(k)])
        original.trace = dataclasses.replace(trace, snapshots=picks, calibration=None, calibrated_for=None)
        fitted = calibrate(original, dataset, train=train)
        epochs = "/".join(str(snap.steps // per_epoch) for snap in picks)
        for label, config in (("calibrated", UnlearnConfig()), ("uncalibrated", UnlearnConfig(calibrated=False))):
            print(f"  {k + 1:3d} segments (epochs {epochs}), {label:12s} (scale {fitted.scale:.3f}): "
                  f"{answered(original, dataset, removal, config, at_o, at_r)}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
