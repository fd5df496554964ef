"""Probe (not in the product): Retrain's Adam second moments read at the answer instead of at the
Original's table, by fixed-point passes per segment, answering uncalibrated.

The default response takes Retrain's v̂ on a segment as the Original's without the removed terms'
share, ``v̂ (1 − ρ) n/m``, at the segment's end E_s. Retrain's v̂ at its own end reflects its own
gradients there, at E_s + δ_s. Each pass here re-reads the remaining terms' squared per-term
gradients at E_s + δ_s (MF: ``TermIncidence`` sums on the moving rows; LightGCN: every row over
the new graph, carried to the base rows through P∘P as ``removed_share`` does), sets
``v̂' = v̂ · S_{-r}(E_s + δ_s) / S(E_s) · n/m`` and solves the segment again.

Usage (from the repository root, with the cell's models cached by `ifru fidelity`):
    python reports/fidelity-poison-tail/moments_probe.py {amazon|bookcrossing-mf-8} OUT CORRECTIONS PASSES...
"""
from __future__ import annotations

import sys

import torch

from ifru_ext import ops
from ifru_ext.data import load_dataset
from ifru_ext.evaluation import evaluate, forget_loss
from ifru_ext.models import load_checkpoint
from ifru_ext.unlearning import influence, unlearn
from ifru_ext.unlearning.base import SolveReport
from ifru_ext.unlearning.objective import squared_weights
from ifru_ext.unlearning.response import _corrected, training_damping

from anatomy import FILES, TAIL_LOSS  # this folder's reader options and tail threshold (run as a script)

# cell -> (dataset, its reading options, share of the rows flipped); seed 1's flips.
CELLS = {"amazon": ("runs/fill/amazon.csv", FILES["amazon"], "0.02"), "bookcrossing-mf-8": ("bookcrossing", FILES["preset"], "0.08")}
PASSES = [0]
CORRECTIONS = [0]  # Newton corrections after each linear solve (ifru-nonlinear: 2)
# Global ids of the users with a removed row Retrain's loss puts above 10 (the tail), and per
# segment and pass: the median over them of Retrain's step scale over the Original's,
# sqrt(v̂ / v̂'), and of their step's row norm |δ_s|.
TAIL: dict[str, object] = {"users": None, "log": []}


def remaining_squares(plan, segment, table, graph):
    """S_{-r} [a, d] on the moving rows at the local ``table``: the remaining terms' squared per-term gradients."""
    terms = plan.terms(segment)
    if plan.num_layers == 0:
        return plan.moving_statistics(terms, table).squared
    out = plan.term_gradient(terms.operator, table, graph, squared=True)
    return ops.propagate(out, squared_weights(graph), plan.num_layers).index_select(0, plan.rows)


def total_squares(plan, segment, table, system):
    """S [a, d] at the Original's ``table``: every term's, removed ones included, over the old graph."""
    terms = plan.terms(segment)
    if plan.num_layers == 0:
        return plan.moving_statistics(terms, table, removed=True).squared + system.remaining_squares()
    out = plan.term_gradient(terms.operator, table, plan.old_graph, squared=True) + \
        plan.term_gradient(terms.removed, table, plan.old_graph, squared=True)
    return ops.propagate(out, squared_weights(plan.old_graph), plan.num_layers).index_select(0, plan.rows)


def training_response(emb, trace, plan, removed, gradient, tol, max_iter, lap, select=None, corrections=0,
                      validation=None):
    """``response.training_response`` (no selection, corrections or horizon) with PASSES[0] passes."""
    n = round(1.0 / plan.scale)
    delta, iterations, report = None, 0, None
    for number, (steps, table, second_moment) in enumerate(trace.segments(), start=1):
        at = plan.local(emb if table is None else table)
        moment = plan.moving(second_moment)
        damping = training_damping(trace, moment, steps)
        system = plan.system(at, segment=number - 1)
        retrain_moment = moment * (1 - plan.removed_share(at, system, number - 1)) * (n / (n - removed))
        drive_g = gradient(at, number - 1) * plan.scale
        remaining = (plan.remaining_gradient(at, number - 1, system) * plan.scale
                     + trace.l2 * at.index_select(0, plan.rows))
        previous = delta
        for attempt in range(PASSES[0] + 1):
            if attempt:
                moved = at.index_copy(0, plan.rows, at.index_select(0, plan.rows) + delta)
                total = total_squares(plan, number - 1, at, system)
                ratio = remaining_squares(plan, number - 1, moved, plan.new_graph) / total.masked_fill(total == 0, 1.0)
                retrain_moment = moment * ratio * (n / (n - removed))
            retrain_damping = training_damping(trace, retrain_moment, steps)
            system.set_diagonal(retrain_damping + trace.l2)
            pace = retrain_damping / damping
            rhs = pace * drive_g + (pace - 1) * remaining
            if previous is not None:
                rhs = rhs + retrain_damping * previous
            delta, report = system.solve(rhs, tol, max_iter)
            iterations += report.iterations
            if CORRECTIONS[0]:
                delta, corrected, extra = _corrected(plan, at, number - 1, rhs, system.diagonal, delta, CORRECTIONS[0],
                                                     tol, max_iter, lap)
                report, iterations = corrected or report, iterations + extra
            slots = plan.position.index_select(0, plan.localise(TAIL["users"]))
            slots = slots[slots >= 0]
            TAIL["log"].append((number, attempt, float((moment / retrain_moment).sqrt().index_select(0, slots).median()),
                                float(delta.index_select(0, slots).norm(dim=1).median())))
    lap("solve")
    return delta, SolveReport(iterations, report.residual, report.status)


def main(cell: str, out: str, corrections: str, *passes: str) -> None:
    CORRECTIONS[0] = int(corrections)
    source, options, fraction = CELLS[cell]
    dataset = load_dataset(source, attack_fraction=float(fraction), attack_seed=1, **options)
    removal = dataset.removal
    original = load_checkpoint(f"{out}/original-poison-{fraction}-1.pt", dataset).model
    retrain = load_checkpoint(f"{out}/retrain-poison-{fraction}-1.pt", dataset).model
    loss_o, loss_r = forget_loss(original, dataset, removal), forget_loss(retrain, dataset, removal)
    auc_o, auc_r = (evaluate(m, dataset, splits=("test",), metrics=("auc",))["test"]["auc_0"] for m in (original, retrain))
    removed = dataset.train.select(removal)
    with torch.no_grad():
        retrain_loss = torch.nn.functional.binary_cross_entropy_with_logits(
            retrain.score_all(removed.users, removed.items).double(), removed.labels.double(), reduction="none")
    TAIL["users"] = torch.unique(removed.users[retrain_loss > TAIL_LOSS])
    print(f"{cell}: {TAIL['users'].numel()} users with a removed row whose Retrain loss exceeds {TAIL_LOSS:g}")
    influence.training_response = training_response
    for count in map(int, passes):
        PASSES[0] = count
        result = unlearn(original, dataset, removal, method="ifru-uncalibrated")
        loss = forget_loss(result.model, dataset, removal)
        auc = evaluate(result.model, dataset, splits=("test",), metrics=("auc",))["test"]["auc_0"]
        print(f"{cell}, {CORRECTIONS[0]} corrections, {count} passes: forget loss {loss:.3f} (O {loss_o:.3f}, R {loss_r:.3f}), completeness "
              f"{(loss - loss_o) / (loss_r - loss_o):.3f}; AUC_0 {auc:.4f} (O {auc_o:.4f}, R {auc_r:.4f}), completeness "
              f"{(auc - auc_o) / (auc_r - auc_o):.2f}; {result.solve.iterations} CG iterations, {result.seconds:.2f} s")
        for segment, attempt, scale, step in TAIL["log"]:
            print(f"  segment {segment}, pass {attempt}: those users' median sqrt(v/v') {scale:.2f}, |delta| {step:.3f}")
        TAIL["log"].clear()


if __name__ == "__main__":
    main(*sys.argv[1:])
