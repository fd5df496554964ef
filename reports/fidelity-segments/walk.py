"""How many segments LightGCN's response needs: one cell, its cached 32-snapshot Original.

Usage (from the repository root, after ``run.sh lightgcn``):
    python reports/fidelity-segments/walk.py SOURCE SCENARIO FRACTION MODELS COUNTS

Loads the cell's Original (``MODELS/original-…pt``, 32 snapshots) and Retrain (``MODELS/retrain-…-1.pt``)
as ``ifru fidelity`` cached them, keeps K of the snapshots (evenly spread among the 32) for each K in
COUNTS, calibrates the default estimator for that walk (one Retrain each, ``unlearning.calibrate``
with the cell's training rules) and answers the request with it and uncalibrated. Prints forget
completeness, AUC completeness AUC_0 / 1 / 2 and |AUC_0 − R|, and the request's seconds.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

from ifru_ext.models.checkpoint import load_checkpoint
from ifru_ext.training import TrainConfig
from ifru_ext.unlearning import UnlearnConfig, calibrate, unlearn

from cell import completeness, request, scores


def main(source: str, scenario: str, fraction: str, models: str, counts: str) -> None:
    torch.set_num_threads(2)
    dataset, removal = request(source, scenario, float(fraction))
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
            answer = unlearn(original, dataset, removal, config)
            at_m = scores(answer.model, dataset, removal)
            done = completeness(at_m, at_o, at_r)
            print(f"  {k + 1:3d} segments, {label:12s} (scale {fitted.scale:.3f}): forget completeness {done[3]:.2f}, "
                  f"AUC completeness {done[0]:.2f} / {done[1]:.2f} / {done[2]:.2f}, |AUC_0 - R| "
                  f"{abs(at_m[0] - at_r[0]):.4f}, {answer.seconds:.2f} s", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
