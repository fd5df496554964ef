"""Probe: Retrain's Adam second moments read at Retrain's own table, next to today's default.

"Today's default" is the default of the day this probe ran, ``ifru-fixed-steps`` since 2026-12-07 (every
segment one implicit step, as the probe's loop walks them).

Today's default reads Retrain's v̂ for a segment from the Original's, less the removed terms' share of
the squared per-term gradients at the Original's table E_s (``ResponsePlan.removed_share``). Retrain's
Adam normalises by its own gradients, though: where they fade (a row the request leaves with one label
saturates its logits) its v̂ falls and its steps grow. This probe reads the remaining terms' squares at
the candidate E_s + δ inside each segment's Newton steps (MF: the same ``pair_sums`` pass that gives
the residual; LightGCN: through P∘P as ``removed_share`` does), so v̂' = v̂ · S_rem(E_s + δ) / S_all(E_s)
· n/m, and the step equation becomes

    δ_s − δ_{s−1} = ∇L(E_s)/(n Λ_s) − ∇L_{-r}(E_s + δ_s)/(n Λ'_s(δ_s))

(Retrain's own preconditioned gradient at its own table, less the Original's step), solved by the same
Newton steps (Jacobian G + Λ'(δ_k), the dependence of Λ' on δ left out). It is a copy of
``response.training_response``'s loop with that change, swapped in for the probe only.

usage (repository root): python reports/fidelity-own-moments/own_moments.py CELL...
  CELL = stage:scenario:fraction:seed, the cached models of reports/fidelity-endpoint/trajectory/run.sh
  (runs/trajectory-<stage>-t; LightGCN stages lightgcn-<name>), whose Originals carry the scale
  ``calibrate`` fitted for today's estimator. Per cell, both estimators: uncalibrated, and calibrated —
  today's with that stored scale, the probe's with ``calibrate`` run again for it (its 2% draw, one
  Retrain); ``--stored-scale``: the probe's with today's scale too (no Retrain).
"""
import dataclasses
import os
import sys

import torch

from ifru_ext.data import load_dataset
from ifru_ext.evaluation import evaluate, forget_loss
from ifru_ext.experiments.fidelity import request_rows
from ifru_ext.models import load_checkpoint
from ifru_ext.unlearning import UnlearnConfig, calibrate, response, unlearn
from ifru_ext.unlearning import influence
from ifru_ext.unlearning.base import SolveReport
from ifru_ext.unlearning.response import _BACKTRACKS, training_damping, unanchored_rows

torch.set_num_threads(2)
MOVIELENS = dict(sep="::", columns=("user", "item", "rating", "timestamp"), threshold=3, kcore=5)
AMAZON = dict(header=True, columns=("user", "item", "rating", "timestamp"), threshold=3, kcore=5)
DATA = {"full": ("bookcrossing", {}), "users-0.25": ("bookcrossing", {"user_fraction": 0.25}),
        "users-0.5": ("bookcrossing", {"user_fraction": 0.5}),
        "ml100k": ("runs/plateaus/100k.dat", MOVIELENS), "ml1m": ("runs/plateaus/1m.dat", MOVIELENS),
        "amazon": ("runs/amazon-shaped/ratings.csv", AMAZON), "amazon-sparse": ("runs/amazon-sparse/ratings.csv", AMAZON),
        "movielens-new": ("runs/movielens-new/ratings.dat", MOVIELENS), "1e4": ("planted:1e4", {}),
        "movielens-wide": ("runs/movielens-wide/ratings.dat", MOVIELENS),
        "amazon-new": ("runs/amazon-new/ratings.csv", AMAZON)}


def squares(plan, segment, table, removed):
    """The removed (or remaining) terms' squared per-term gradients on the moving rows at ``table``."""
    terms = plan.terms(segment)
    if terms.moving_sums:
        return plan.moving_statistics(terms, table, removed=removed).squared
    sums, rows = plan.term_sums(terms.removed if removed else terms.operator, table, plan.old_graph, squared=True)
    return plan.propagated_rows(sums, plan.squared_old_graph, rows)


# Where Retrain's v̂ is read at E + δ: "all" moving rows, or "unanchored": only the rows the request leaves
# with remaining terms of one label (``response.unanchored_rows``), today's removed-share v̂ on the rest.
OWN_MOMENT_ROWS = "all"


def unanchored_mask(plan, segment):
    """float [a, 1]: 1 on the moving rows ``segment``'s request leaves unanchored (``response.unanchored_rows``)."""
    terms, moving = plan.terms(segment), plan.rows.numel()
    slot = torch.where(plan.position >= 0, plan.position, moving)
    removed_slots = tuple(slot.index_select(0, column) for column in terms.removed.columns)
    rows = unanchored_rows(terms.slots, terms.operator.labels, removed_slots, terms.removed.labels, moving)
    return rows.to(plan.dtype)[:, None]


def own_moments_response(emb, trace, plan, removed, gradient, tol, max_iter, lap, select=None, corrections=0,
                         validation=None, trajectory=None, adaptive_steps=False):
    """``response.training_response`` (no ``select`` / ``validation`` / ``adaptive_steps``) with Retrain's v̂
    read at E + δ."""
    if adaptive_steps:
        raise ValueError("the second-moments probe walks each segment in one step (adaptive_steps=False)")
    n = round(1.0 / plan.scale)
    delta, iterations, report, best = None, 0, None, None
    segments = trace.segments()
    recorded = len(segments)
    if trajectory is not None:
        segments = segments + trace.tail_segments()
    for number, (steps, table, second_moment) in enumerate(segments, start=1):
        segment = number - 1
        at = plan.local(emb if table is None else table)
        moment = plan.moving(second_moment)
        damping = training_damping(trace, moment, steps)
        system = plan.system(at, segment=segment)
        kept_at_start = squares(plan, segment, at, False)
        own = unanchored_mask(plan, segment) if OWN_MOMENT_ROWS == "unanchored" else None
        total = squares(plan, segment, at, True) + kept_at_start
        total = total.masked_fill(total == 0, 1.0)
        drive_gradient = gradient(at, segment) * plan.scale
        remaining_at = plan.remaining_gradient(at, segment, system)
        remaining = remaining_at * plan.scale + trace.l2 * at.index_select(0, plan.rows)
        previous = delta
        moved, start = at.clone(), at.index_select(0, plan.rows)

        def equation(kept):
            """The step's right-hand side and diagonal with Retrain's v̂ from the remaining squares ``kept``."""
            retrain_damping = training_damping(trace, moment * (kept / total) * (n / (n - removed)), steps)
            pace = retrain_damping / damping
            rhs = pace * drive_gradient + (pace - 1) * remaining
            return (rhs if previous is None else rhs + retrain_damping * previous), retrain_damping + trace.l2

        def residual_at(candidate):
            moved.index_copy_(0, plan.rows, start + candidate)
            change = (plan.remaining_gradient(moved, segment) - remaining_at) * plan.scale
            kept = squares(plan, segment, moved, False)
            rhs, diagonal = equation(kept if own is None else own * kept + (1 - own) * kept_at_start)
            return rhs - diagonal * candidate - change, rhs, diagonal

        if previous is None:  # the linear answer at v̂' read at E_s first, as today's
            rhs, diagonal = equation(kept_at_start)
            system.set_diagonal(diagonal)
            delta, report = system.solve(rhs, tol, max_iter)
            iterations += report.iterations
            newton_steps = corrections
        else:
            delta, newton_steps = previous, corrections + 1
        residual, rhs, diagonal = residual_at(delta)
        norm = residual.norm()
        for _ in range(newton_steps):
            accuracy = tol * float(rhs.norm())
            if float(norm) <= accuracy:
                break
            correction, report = plan.system(moved, diagonal, segment).solve(residual, accuracy / float(norm), max_iter)
            iterations += report.iterations
            for _ in range(_BACKTRACKS + 1):
                candidate = delta + correction
                trial, trial_rhs, trial_diagonal = residual_at(candidate)
                if trial.norm() < norm:
                    delta, residual, rhs, diagonal, norm = candidate, trial, trial_rhs, trial_diagonal, trial.norm()
                    break
                correction = correction / 2
            else:
                break
        if trajectory is not None and number >= recorded:
            score = trajectory(number - recorded, delta)
            if best is not None and not score > best[0]:
                break
            best = (score, number - recorded, delta, report)
    epochs_past = 0
    if best is not None:
        _, epochs_past, delta, report = best
    return delta, SolveReport(iterations, report.residual, report.status), epochs_past


ESTIMATORS = {"today": response.training_response, "own moments": own_moments_response}


def cell(spec):
    stage, scenario, fraction, seed = spec.split(":")
    fraction, seed = float(fraction), int(seed)
    name, options = DATA[stage.removeprefix("lightgcn-")]
    where = f"runs/trajectory-{stage}-t"
    if not os.path.exists(f"{where}/retrain-{scenario}-{fraction:g}-{seed}.pt"):
        where = f"runs/scaled-{stage}-t"  # the LightGCN cells trained again under the scaled patience (same models)
    if scenario == "poison":
        data = load_dataset(name, attack_fraction=fraction, attack_seed=seed, **options)
        original = load_checkpoint(f"{where}/original-poison-{fraction:g}-{seed}.pt", data).model
    else:
        clean = load_dataset(name, **options)
        original = load_checkpoint(f"{where}/original-clean.pt", clean).model
        data = dataclasses.replace(clean, removal=request_rows(clean, scenario, fraction, seed))
    retrain = load_checkpoint(f"{where}/retrain-{scenario}-{fraction:g}-{seed}.pt", data).model
    return scenario, data, original, retrain


def references(data, original, retrain):
    """The Original's and Retrain's test metrics and forget loss, which every answer of a cell is set against."""
    return {name: (evaluate(model, data, splits=("test",))["test"], forget_loss(model, data, data.removal))
            for name, model in (("o", original), ("r", retrain))}


def completeness(data, reference, model):
    """Forget completeness, test-AUC completeness per AUC_k and |AUC_0 − R| of ``model`` against ``reference``."""
    (test_o, loss_o), (test_r, loss_r) = reference["o"], reference["r"]
    test, loss = evaluate(model, data, splits=("test",))["test"], forget_loss(model, data, data.removal)
    auc = {k: (test[k] - test_o[k]) / (test_r[k] - test_o[k]) for k in ("auc_0", "auc_1", "auc_2")}
    return (loss - loss_o) / (loss_r - loss_o), auc, abs(test["auc_0"] - test_r["auc_0"])


def judged(scenario, data, reference, model):
    forget, auc, gap = completeness(data, reference, model)
    shown = " / ".join(f"{auc[k]:.2f}" for k in auc) if scenario == "poison" else f"|AUC_0 − R| {gap:.4f}"
    return f"forget {forget:.3f}, AUC {shown}"


if __name__ == "__main__":
    STORED_ONLY = "--stored-scale" in sys.argv
    for spec in (arg for arg in sys.argv[1:] if not arg.startswith("--")):
        scenario, data, original, retrain = cell(spec)
        reference = references(data, original, retrain)
        stored = original.trace.calibration, original.trace.calibrated_for
        parts = []
        for label, estimator in ESTIMATORS.items():
            influence.training_response = estimator
            uncalibrated = unlearn(original, data, data.removal, method="ifru-fixed-steps-uncalibrated")
            if estimator is response.training_response:  # the stored scale: calibrate's fit for today's estimator
                original.trace.calibration, original.trace.calibrated_for = stored
            elif STORED_ONLY:  # today's scale for both (no calibration Retrain)
                label += " (today's scale)"
            else:  # the product's calibration (its 2% draw and one Retrain), fitted for this estimator
                calibrate(original, data, config=UnlearnConfig(adaptive_steps=False))
            calibrated = unlearn(original, data, data.removal, method="ifru-fixed-steps")
            parts.append(f"{label}: uncalibrated {judged(scenario, data, reference, uncalibrated.model)}; "
                         f"scale {original.trace.calibration:.3f} "
                         f"{judged(scenario, data, reference, calibrated.model)} "
                         f"({calibrated.solve.iterations} CG iterations, {calibrated.epochs_past} epochs past)")
        influence.training_response = response.training_response
        print(spec, "\n  " + "\n  ".join(parts), flush=True)
