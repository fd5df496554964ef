"""How many segments LightGCN's response needs: one cell, its cached 32-snapshot Original.

Usage (from the repository root, after ``run.sh lightgcn``):
    python reports/fidelity-segments/walk.py SOURCE SCENARIO FRACTION MODELS COUNTS [OPTION=VALUE ...]

(OPTIONs: a file's loading as ``ifru fidelity`` takes it: ``header=1 columns=user,item,rating,timestamp
threshold=3 kcore=5`` for the Amazon-shaped file.)

Loads the cell's Original (``MODELS/original-…pt``, 32 snapshots) and Retrain (``MODELS/retrain-…-1.pt``)
as ``ifru fidelity`` cached them, keeps K of the snapshots (those at the interior points
``(i + 1)/(K + 1)`` of the 32) for each K in COUNTS, calibrates the default estimator for that walk
(one Retrain each, ``unlearning.calibrate`` with the cell's training rules) and answers the request
with it and uncalibrated. Prints AUC completeness AUC_0 / 1 / 2, |AUC_0 − R|, forget completeness
and the request's seconds.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

from ifru_ext.models.checkpoint import load_checkpoint
from ifru_ext.training import TrainConfig
from ifru_ext.unlearning import UnlearnConfig, calibrate

from cell import answered, request, scores


# How each OPTION=VALUE is read into ``load_dataset``'s option.
LOADING = {"header": lambda value: value == "1", "columns": lambda value: tuple(value.split(",")),
           "threshold": float, "kcore": int, "sep": str}


def main(source: str, scenario: str, fraction: str, models: str, counts: str, *options: str) -> None:
    torch.set_num_threads(2)
    loading = {key: LOADING[key](value) for key, value in (option.split("=", 1) for option in options)}
    dataset, removal = request(source, scenario, float(fraction), **loading)
    tag = "clean" if scenario != "poison" else f"poison-{float(fraction)}-1"
    original = load_checkpoint(Path(models) / f"original-{tag}.pt", dataset, "lightgcn").model
    retrain = load_checkpoint(Path(models) / f"retrain-{scenario}-{float(fraction)}-1.pt", dataset, "lightgcn").model
    at_o, at_r = scores(original, dataset, removal), scores(retrain, dataset, removal)
    trace = original.trace
    recorded = list(trace.snapshots)
    print(f"{source} lightgcn {scenario} {fraction}: {len(recorded)} snapshots, Original AUC_0 {at_o[0]:.4f}, "
          f"Retrain {at_r[0]:.4f}", flush=True)
    train = TrainConfig.for_model("lightgcn", snapshots=len(recorded))
    for k in (int(c) for c in counts.split(",")):
        picks = [recorded[round((i + 1) * len(recorded) / (k + 1)) - 1] for i in range(k)] if k else []
        original.trace = dataclasses.replace(trace, snapshots=picks, calibration=None, calibrated_for=None)
        fitted = calibrate(original, dataset, train=train)
        for label, config in (("calibrated", UnlearnConfig()), ("uncalibrated", UnlearnConfig(calibrated=False))):
            print(f"  {k + 1:3d} segments, {label:12s} (scale {fitted.scale:.3f}): "
                  f"{answered(original, dataset, removal, config, at_o, at_r)}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
