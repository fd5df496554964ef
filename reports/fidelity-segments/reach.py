"""Does the nonlinear response step further than Adam can? One cell, its Original keeping 32 snapshots.

Usage (from the repository root):
    python reports/fidelity-segments/reach.py SOURCE SCENARIO FRACTION SNAPSHOTS [--segments]

Trains the cell's MF Original (``TrainConfig.for_model("mf", snapshots=SNAPSHOTS)``; the request drawn
as ``ifru fidelity`` draws seed 1) and its Retrain, then answers uncalibrated with the linear response
(k=0) and two Newton corrections per segment (k=2), each as it is and with every segment's answer
projected onto Adam's reach: Retrain's table moves a coordinate by at most about η per step, as the
Original's does, so over a segment of ``n_s`` steps ending at snapshot ``E_s``

    δ_s ∈ δ_{s−1} − (E_s − E_{s−1}) ± η n_s        (E_0 the initial table, δ_0 = 0),

the per-segment form of the box the estimator applies to the whole run (``η T`` around the initial
table). A probe, not the product: the projection is patched into a copy of
``response.training_response``. ``--segments`` also prints, per segment, the largest change of δ
against the reach ``2 η n_s`` two Adam runs can differ by (uncorrected runs).
"""
from __future__ import annotations

import inspect
import sys

import torch

from ifru_ext.unlearning import UnlearnConfig, influence, response, unlearn

from cell import completeness, mf_pair, request, scores

PROJECT = {"on": False}
STATE: dict = {}
STEPS: list = []


def segment_end(plan, trace, at, steps, delta):
    """Record the segment's answer and, with PROJECT on, project it onto Adam's reach."""
    rows = at.index_select(0, plan.rows)
    previous_table = STATE.get("table", plan.moving(trace.initial))
    previous = STATE.get("delta", torch.zeros_like(delta))
    if PROJECT["on"]:
        centre, reach = previous - (rows - previous_table), trace.lr * steps
        delta = torch.minimum(torch.maximum(delta, centre - reach), centre + reach)
    STEPS.append((steps, float((delta - previous).abs().max()), 2 * trace.lr * steps))
    STATE["table"], STATE["delta"] = rows, delta
    return delta


def patched_response():
    source = inspect.getsource(response.training_response)
    source = source.replace("    segments = trace.segments()\n", "    segments = trace.segments()\n    STATE.clear()\n")
    source = source.replace("            if delta is not previous:\n                continue",
                            "            if delta is not previous:\n"
                            "                delta = segment_end(plan, trace, at, steps, delta)\n                continue")
    last = "            report, iterations = corrected or report, iterations + extra\n"
    assert last in source
    source = source.replace(last, last + "        delta = segment_end(plan, trace, at, steps, delta)\n")
    namespace = {**vars(response), "segment_end": segment_end, "STATE": STATE}
    exec(source, namespace)
    return namespace["training_response"]


def main(source: str, scenario: str, fraction: str, snapshots: str, *flags: str) -> None:
    torch.set_num_threads(2)
    influence.training_response = patched_response()
    dataset, removal = request(source, scenario, float(fraction))
    original, _, at_o, at_r = mf_pair(dataset, removal, int(snapshots))
    print(f"{source} {scenario} {fraction}, {snapshots} snapshots: Original AUC_0 {at_o[0]:.4f}, Retrain {at_r[0]:.4f}")
    for projected in (False, True):
        PROJECT["on"] = projected
        for corrections in (0, 2):
            STEPS.clear()
            answer = unlearn(original, dataset, removal, UnlearnConfig(calibrated=False, corrections=corrections))
            at_m = scores(answer.model, dataset, removal)
            done = completeness(at_m, at_o, at_r)
            print(f"  {'projected' if projected else 'as is':9s} k={corrections}: AUC completeness {done[0]:.2f} / "
                  f"{done[1]:.2f} / {done[2]:.2f}, |AUC_0 - R| {abs(at_m[0] - at_r[0]):.4f}, forget completeness "
                  f"{done[3]:.2f}", flush=True)
            if "--segments" in flags and not projected:
                for number, (steps, step, reach) in enumerate(STEPS, start=1):
                    print(f"    segment {number:2d}, {steps:4d} steps: largest change of δ {step:8.4f}, reach {reach:.4f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
