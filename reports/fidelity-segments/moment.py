"""Retrain's Adam scale read at the answer instead of at the Original's table: a probe.

Usage (from the repository root):
    python reports/fidelity-segments/moment.py SOURCE SCENARIO FRACTION SNAPSHOTS

The response reads Retrain's second moments as the Original's scaled by the remaining terms' share
of the squared per-term gradients at the snapshot, ``v̂ (1 − ρ) n/m`` (``ResponsePlan.removed_share``).
Retrain's own gradients are those at its table, ``E_s + δ``: with ``refresh 1`` each segment is solved
once more with that share read at ``E_s + δ`` (the remaining terms' squares there over the
Original's total at ``E_s``), the linear response (k=0) and two Newton corrections (k=2),
uncalibrated. MF; ``refresh 0`` is the product's answer (a check). A copy of the response's loop,
patched in for ``influence.training_response``.
"""
from __future__ import annotations

import sys

import torch

from ifru_ext.unlearning import UnlearnConfig, influence, unlearn
from ifru_ext.unlearning.base import SolveReport
from ifru_ext.unlearning.response import _corrected, training_damping

from cell import completeness, mf_pair, request, scores

MODE = {"refresh": 0}  # segments solved again with the share read at E_s + δ


def self_consistent_response(emb, trace, plan, removed, gradient, tol, max_iter, lap, select=None, corrections=0,
                             validation=None):
    n = round(1.0 / plan.scale)
    delta, iterations, report = None, 0, None
    for number, (steps, table, second_moment) in enumerate(trace.segments(), start=1):
        seg = number - 1
        at = plan.local(emb if table is None else table)
        moment = plan.moving(second_moment)
        damping = training_damping(trace, moment, steps)
        system = plan.system(at, segment=seg)
        terms = plan.terms(seg)
        gone = plan.moving_statistics(terms, at, removed=True).squared
        total = gone + system.remaining_squares()
        total = total.masked_fill(total == 0, 1.0)
        g = gradient(at, seg) * plan.scale
        remaining = plan.remaining_gradient(at, seg, system) * plan.scale + trace.l2 * at.index_select(0, plan.rows)
        previous = delta
        ratio = (total - gone) / total  # 1 - share, at E_s
        for refresh in range(MODE["refresh"] + 1):
            retrain_moment = moment * ratio * (n / (n - removed))
            retrain_damping = training_damping(trace, retrain_moment, steps)
            system.set_diagonal(retrain_damping + trace.l2)
            pace = retrain_damping / damping
            drive = pace * g + (pace - 1) * remaining
            rhs = drive if previous is None else drive + retrain_damping * previous
            if corrections and previous is not None:
                start = delta if refresh else previous
                new, rep, extra = _corrected(plan, at, seg, rhs, system.diagonal, start, corrections + 1, tol, max_iter, lambda _: None)
                iterations += extra
                if new is start and refresh == 0:
                    new, rep = system.solve(rhs, tol, max_iter)
                    new, rep2, extra = _corrected(plan, at, seg, rhs, system.diagonal, new, corrections, tol, max_iter, lambda _: None)
                    rep = rep2 or rep
            elif refresh == 0 or not corrections:
                new, rep = system.solve(rhs, tol, max_iter)
                if corrections:
                    new, rep2, extra = _corrected(plan, at, seg, rhs, system.diagonal, new, corrections, tol, max_iter, lambda _: None)
                    rep = rep2 or rep
            else:
                new, rep, extra = _corrected(plan, at, seg, rhs, system.diagonal, delta, corrections, tol, max_iter, lambda _: None)
            delta, report = new, rep or report
            # Retrain's own squared gradients at its table estimate E_s + δ, over the Original's total
            moved = at.index_copy(0, plan.rows, at.index_select(0, plan.rows) + delta)
            ratio = plan.moving_statistics(terms, moved).squared / total
    return delta, SolveReport(iterations, report.residual if report else 0.0, report.status if report else "converged")


def main(source: str, scenario: str, fraction: str, snapshots: str) -> None:
    torch.set_num_threads(2)
    influence.training_response = self_consistent_response
    dataset, removal = request(source, scenario, float(fraction))
    original, _, at_o, at_r = mf_pair(dataset, removal, int(snapshots))
    print(f"{source} {scenario} {float(fraction)} snapshots {snapshots}: O {at_o[0]:.4f} R {at_r[0]:.4f}")
    for refresh in (0, 1):  # 0: the product's answer
        MODE["refresh"] = refresh
        for corrections in (0, 2):
            answer = unlearn(original, dataset, removal, UnlearnConfig(calibrated=False, corrections=corrections))
            at_m = scores(answer.model, dataset, removal)
            done = completeness(at_m, at_o, at_r)
            print(f"  refresh {refresh} k={corrections}: AUC {done[0]:.2f}/{done[1]:.2f}/{done[2]:.2f} |AUC0-R| "
                  f"{abs(at_m[0] - at_r[0]):.4f} forget {done[3]:.2f} {answer.seconds:.2f}s", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
