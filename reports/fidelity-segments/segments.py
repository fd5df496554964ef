"""How finely must the training response walk the run? One cell, every epoch recorded.

Usage (from the repository root):
    python reports/fidelity-segments/segments.py SOURCE MODEL SCENARIO FRACTION [EVERY] [COUNTS]

Trains the cell's Original (``TrainConfig.for_model(MODEL)``; SCENARIO ``poison`` flips FRACTION of
the labels with attack seed 1, ``genuine`` / ``users`` draw the request with seed 1 as ``ifru
fidelity`` does) keeping a snapshot of every EVERY-th epoch (default 1) beside the trace's own, and
its Retrain. Then answers the request, uncalibrated, with the linear response (``lin``) and with two
Newton corrections per segment (``k2``, ``ifru-nonlinear``'s equation), walking the run along:

- ``as trained``: the trace's own snapshots (``TrainConfig.snapshots``, by default 2, evenly spread epochs);
- ``even K``: K snapshots nearest to K evenly spread steps;
- ``loss K``: the first snapshots where the mean training loss has fallen by 1/(K+1), 2/(K+1), ...
  of its fall over the run (MF only).

A pick with fewer distinct snapshots than K (a run of fewer epochs) uses every one. Prints test-AUC
completeness AUC_0 / 1 / 2, |AUC_0 − R|, forget completeness and the request's seconds.
"""
from __future__ import annotations

import dataclasses
import sys
import time

import torch

from ifru_ext.experiments.cache import train_new
from ifru_ext.models import trace as trace_module
from ifru_ext.training import TrainConfig
from ifru_ext.unlearning import UnlearnConfig

from cell import answered, request, scores


def main(source: str, model_name: str, scenario: str, fraction: str, every: str = "1", counts: str = "2,8,32") -> None:
    torch.set_num_threads(2)
    dataset, removal = request(source, scenario, float(fraction))
    recorded: list[trace_module.Snapshot] = []
    record = trace_module.SnapshotRecorder.record

    def record_every(self, epoch, steps, table, second_moment):
        if epoch % int(every) == 0:
            recorded.append(trace_module.Snapshot(steps, table.detach().to(torch.bfloat16),
                                                  second_moment.detach().to(torch.bfloat16)))
        return record(self, epoch, steps, table, second_moment)

    config = TrainConfig.for_model(model_name)
    trace_module.SnapshotRecorder.record = record_every
    start = time.time()
    original, result = train_new(model_name, dataset, config, None)
    trace_module.SnapshotRecorder.record = record
    trace = original.trace
    print(f"Original: best epoch {result.best_epoch}, {trace.steps} steps, {time.time() - start:.0f} s", flush=True)
    retrain, _ = train_new(model_name, dataset, config, removal)
    snapshots = [snap for snap in recorded if 0 < snap.steps < trace.steps]
    at_o, at_r = scores(original, dataset, removal), scores(retrain, dataset, removal)
    print(f"{source} {model_name} {scenario} {fraction}, {removal.numel()} rows: Original AUC_0 {at_o[0]:.4f}, forget loss "
          f"{at_o[3]:.4f}; Retrain {at_r[0]:.4f}, {at_r[3]:.4f}; {len(snapshots)} snapshots", flush=True)
    train = dataset.train

    def training_loss(table: torch.Tensor) -> float:  # MF: the logits are the rows' dot products
        table = table.float()
        logits = (table[train.users] * table[train.items + dataset.num_users]).sum(1)
        return float(torch.nn.functional.binary_cross_entropy_with_logits(logits, train.labels.float()))

    def nearest(steps: float) -> trace_module.Snapshot:
        return min(snapshots, key=lambda snap: abs(snap.steps - steps))

    def even(k: int) -> list[trace_module.Snapshot]:
        return [nearest((i + 1) * trace.steps / (k + 1)) for i in range(k)]

    losses = [training_loss(snap.table) for snap in snapshots] if model_name == "mf" else []
    first, last = (training_loss(trace.initial), training_loss(original.embedding.detach())) if losses else (0, 0)

    def by_loss(k: int) -> list[trace_module.Snapshot]:
        picks = []
        for i in range(k):
            target = first - (i + 1) / (k + 1) * (first - last)
            picks.append(next((snap for snap, loss in zip(snapshots, losses) if loss <= target), snapshots[-1]))
        return picks

    picks = {"as trained": list(trace.snapshots)}
    for k in (int(c) for c in counts.split(",")):
        picks[f"even {k}"] = even(k)
        if losses:
            picks[f"loss {k}"] = by_loss(k)
    for name, chosen in picks.items():
        chosen = sorted({snap.steps: snap for snap in chosen}.values(), key=lambda snap: snap.steps)
        original.trace = dataclasses.replace(trace, snapshots=chosen, calibration=None, calibrated_for=None)
        for label, estimator in (("lin", UnlearnConfig(calibrated=False)),
                                 ("k2", UnlearnConfig(calibrated=False, corrections=2))):
            print(f"  {name:10s} {label:3s} {len(chosen) + 1:3d} segments: "
                  f"{answered(original, dataset, removal, estimator, at_o, at_r)}", flush=True)
    if losses:
        shown = list(zip(snapshots, losses))[:: max(1, len(snapshots) // 10)]
        print(f"  training loss: initial {first:.4f}, returned {last:.4f}, at steps "
              + ", ".join(f"{snap.steps}: {loss:.3f}" for snap, loss in shown))


if __name__ == "__main__":
    main(*sys.argv[1:])
