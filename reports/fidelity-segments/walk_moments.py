"""The finer walk and the second-moments probe together, on LightGCN's Amazon-shaped poisoned cells.

usage (repository root): python reports/fidelity-segments/walk_moments.py [--unanchored-only] K CELL...
  CELL = stage:scenario:fraction:seed, a cached cell of reports/fidelity-endpoint/trajectory/run.sh
  (``moments_newton.cell``).

Each alone took part of the Amazon-shaped LightGCN gap (forget completeness 0.74 → 0.84 with nine segments,
``default_walk_lightgcn.txt``; 0.74 → 0.87 with Retrain's second moments read at its own table,
``../fidelity-poison-tail/moments_newton.py``). Per cell the Original is trained again keeping K snapshots
(``default_walk.walked``: the same returned table, checked) and the request is answered by the probe's
estimator (``moments_newton.own_moments_response`` swapped in for today's loop) uncalibrated and calibrated
for itself (``calibrate``: its 2% draw, one Retrain). Prints forget completeness, test-AUC completeness
AUC_0 / 1 / 2, the epochs past the returned one and the request's seconds. ``--unanchored-only``: Retrain's
own v̂ only on the moving rows the request leaves with remaining terms of one label (``response.unanchored_rows``),
today's removed-share v̂ on the rest (``moments_newton.OWN_MOMENT_ROWS``).
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fidelity-poison-tail"))
from default_walk import answered, walked  # noqa: E402
import moments_newton  # noqa: E402
from moments_newton import cell, own_moments_response, references  # noqa: E402

from ifru_ext.unlearning import UnlearnConfig, calibrate, influence, response, unlearn  # noqa: E402

torch.set_num_threads(2)

if __name__ == "__main__":
    arguments = sys.argv[1:]
    if arguments[0] == "--unanchored-only":  # Retrain's own v̂ only on the rows the request leaves with one label
        moments_newton.OWN_MOMENT_ROWS, arguments = "unanchored", arguments[1:]
    snapshots = int(arguments[0])
    for spec in arguments[1:]:
        scenario, data, original, retrain = cell(spec)
        reference = references(data, original, retrain)
        model = walked(original, data, snapshots)
        influence.training_response = own_moments_response
        # the probe walks each segment in one step: ifru-fixed-steps's config (the default until 2026-12-07)
        uncalibrated = unlearn(model, data, data.removal, UnlearnConfig(adaptive_steps=False, calibrated=False))
        calibrate(model, data, config=UnlearnConfig(adaptive_steps=False))
        calibrated = unlearn(model, data, data.removal, UnlearnConfig(adaptive_steps=False))
        influence.training_response = response.training_response
        rows = "on the rows left with one label" if moments_newton.OWN_MOMENT_ROWS == "unanchored" else "everywhere"
        print(f"{spec}\n  {len(model.trace.segments())} segments, Retrain's own second moments {rows}:\n"
              f"    uncalibrated {answered(scenario, data, reference, uncalibrated)}\n"
              f"    own scale {model.trace.calibration:.3f}: {answered(scenario, data, reference, calibrated)}", flush=True)
