"""Today's default walking the run more finely: does a finer walk reach the poisoned-row AUC bar?

usage (repository root): python reports/fidelity-segments/default_walk.py [--corrections C] [--linear L] K[,K...] CELL...
  CELL = stage:scenario:fraction:seed, a cached cell of reports/fidelity-endpoint/trajectory/run.sh
  (``moments_newton.cell``: its Original, Retrain and data). ``--corrections C``: the default with C Newton
  corrections per segment instead of its two (``UnlearnConfig(corrections=C)``; calibrated for itself only).
  ``--linear L``: the first L segments take the linear step, without Newton corrections (the later ones and
  the tail keep them; ``response._corrected`` wrapped for the probe; calibrated for itself only).

Per cell the Original is trained again with the same ``TrainConfig`` keeping K snapshots instead of two
(``TrainConfig.snapshots``; the same run: its returned table is checked equal to the cached Original's, so
the cell's Retrain still stands), and the request is answered by today's default (``ifru``: two Newton
corrections per segment, then the run's tail) three ways: uncalibrated; with the cached Original's stored
scale (fitted for three segments); and calibrated for itself (``calibrate``: its 2% draw, one Retrain). K = 2
is the cached Original itself. Prints forget completeness, test-AUC completeness AUC_0 / 1 / 2 (or
``|AUC_0 − R|``), the epochs past the returned one and the request's seconds.
"""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fidelity-poison-tail"))
from moments_newton import cell, judged, references  # noqa: E402

from ifru_ext.training import TrainConfig, train_new  # noqa: E402
from ifru_ext.unlearning import UnlearnConfig, calibrate, response, unlearn  # noqa: E402

torch.set_num_threads(2)


def answered(scenario, data, reference, result):
    """``moments_newton.judged`` of an answer, with the epochs past the returned one and its seconds."""
    return f"{judged(scenario, data, reference, result.model)}, {result.epochs_past} past, {result.seconds:.2f} s"


def linear_first(segments):
    """``response._corrected`` leaving the first ``segments`` (0-based index below it) at their linear answer."""
    corrected = response._corrected

    def wrapper(plan, at, segment, rhs, diagonal, delta, *rest):
        if segment < segments:
            return delta, None, 0
        return corrected(plan, at, segment, rhs, diagonal, delta, *rest)

    return wrapper


def walked(original, data, snapshots):
    """The cached ``original``'s run again with ``snapshots`` kept (the same returned table, checked)."""
    name = "lightgcn" if original.num_layers > 0 else "mf"
    config = dataclasses.replace(TrainConfig.for_model(name), snapshots=snapshots)
    again, _ = train_new(name, data, config)
    if not torch.equal(again.embedding.detach(), original.embedding.detach()):
        raise RuntimeError("the run trained again returned another table: the cell's Retrain does not stand for it")
    return again


if __name__ == "__main__":
    arguments = sys.argv[1:]
    corrections = linear = None
    while arguments[0] in ("--corrections", "--linear"):
        if arguments[0] == "--corrections":
            corrections = int(arguments[1])
        else:
            linear = int(arguments[1])
            response._corrected = linear_first(linear)
        arguments = arguments[2:]
    estimator = UnlearnConfig() if corrections is None else UnlearnConfig(corrections=corrections)
    uncalibrated = dataclasses.replace(estimator, calibrated=False)
    counts = [int(k) for k in arguments[0].split(",")]
    for spec in arguments[1:]:
        scenario, data, original, retrain = cell(spec)
        reference = references(data, original, retrain)
        stored = original.trace.calibration, original.trace.calibrated_for
        print(spec, flush=True)
        for snapshots in counts:
            model = original if snapshots == len(original.trace.snapshots) else walked(original, data, snapshots)
            parts = [f"uncalibrated {answered(scenario, data, reference, unlearn(model, data, data.removal, uncalibrated))}"]
            if corrections is None and linear is None:  # the stored scale was fitted for today's default
                model.trace.calibration, model.trace.calibrated_for = stored
                parts.append(f"three segments' scale {stored[0]:.3f}: "
                             f"{answered(scenario, data, reference, unlearn(model, data, data.removal, estimator))}")
            if model is not original or corrections is not None or linear is not None:
                calibrate(model, data, config=estimator)
                parts.append(f"own scale {model.trace.calibration:.3f}: "
                             f"{answered(scenario, data, reference, unlearn(model, data, data.removal, estimator))}")
            if model is original:  # the cached Original keeps its stored scale for the next estimator
                model.trace.calibration, model.trace.calibrated_for = stored
            print(f"  {len(model.trace.segments())} segments:\n    " + "\n    ".join(parts), flush=True)
