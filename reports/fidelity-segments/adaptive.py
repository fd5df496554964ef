"""``ifru-fixed-steps`` (the default until 2026-12-07; here "today") against ``ifru-adaptive`` (a segment whose
Newton corrections stall walked as shorter steps: ``UnlearnConfig(adaptive_steps=True)``, the default ``ifru`` since).

usage (repository root): python reports/fidelity-segments/adaptive.py CELL...
  CELL = stage:scenario:fraction:seed, a cached cell of reports/fidelity-endpoint/trajectory/run.sh
  (``moments_newton.cell``: its Original, Retrain and data).

Per cell, on the cached Original (no new snapshot: the same trace), the request is answered by the fixed-step walk
(with the scale stored at training time, which ``calibrate`` fitted for it when it was the default) and by ``ifru-adaptive``
uncalibrated and calibrated for itself (``calibrate``: the same 2% draw, one Retrain). Prints forget completeness,
test-AUC completeness AUC_0 / 1 / 2 (or ``|AUC_0 − R|``), the epochs past the returned one and the request's
seconds (the faster of two calls, the two estimators in the same process, one after the other).
"""
import copy
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fidelity-poison-tail"))
from moments_newton import cell, judged, references  # noqa: E402

from ifru_ext.unlearning import UnlearnConfig, calibrate, unlearn  # noqa: E402

torch.set_num_threads(2)


def answered(scenario, data, reference, model, config):
    """``judged`` of the request answered by ``config``, with the epochs past and the faster of two calls' seconds."""
    results = [unlearn(model, data, data.removal, config) for _ in range(2)]
    result = results[-1]
    return (f"{judged(scenario, data, reference, result.model)}, {result.epochs_past} past, "
            f"{min(r.seconds for r in results):.3f} s")


if __name__ == "__main__":
    adaptive = UnlearnConfig(adaptive_steps=True)
    for spec in sys.argv[1:]:
        scenario, data, original, retrain = cell(spec)
        reference = references(data, original, retrain)
        print(spec, flush=True)
        print(f"  today (stored scale {original.trace.calibration:.3f}): "
              f"{answered(scenario, data, reference, original, UnlearnConfig(adaptive_steps=False))}", flush=True)
        model = copy.deepcopy(original)
        uncalibrated = answered(scenario, data, reference, model, UnlearnConfig(adaptive_steps=True, calibrated=False))
        calibrate(model, data, config=adaptive)
        print(f"  adaptive uncalibrated: {uncalibrated}\n  adaptive (own scale {model.trace.calibration:.3f}): "
              f"{answered(scenario, data, reference, model, adaptive)}", flush=True)
