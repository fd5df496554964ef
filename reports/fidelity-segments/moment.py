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
import dataclasses, sys, torch
from ifru_ext.data import load_dataset
from ifru_ext.evaluation import evaluate, forget_loss
from ifru_ext.experiments.cache import train_new
from ifru_ext.experiments.fidelity import request_rows
from ifru_ext.training import TrainConfig
from ifru_ext.unlearning import UnlearnConfig, unlearn, response, influence
from ifru_ext.unlearning.response import training_damping, _corrected
from ifru_ext.unlearning.base import SolveReport
torch.set_num_threads(2)
MODE = {"refresh": 0}

def self_consistent_response(emb, trace, plan, removed, gradient, tol, max_iter, lap, select=None, corrections=0, validation=None):
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

influence.training_response = self_consistent_response
source, scenario, fraction, k = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
poisoned = scenario == "poison"
ds = load_dataset(source, attack_fraction=fraction if poisoned else 0.0, **({"attack_seed": 1} if poisoned else {}))
config = TrainConfig.for_model("mf", snapshots=k)
original, _ = train_new("mf", ds, config, None)
removal = ds.removal if poisoned else request_rows(ds, scenario, fraction, 1)
if not poisoned: ds = dataclasses.replace(ds, removal=removal)
retrain, _ = train_new("mf", ds, config, removal)
def scores(model):
    test = evaluate(model, ds, splits=("test",), metrics=("auc",))["test"]
    return [test["auc_0"], test["auc_1"], test["auc_2"], forget_loss(model, ds, removal)]
o, r = scores(original), scores(retrain)
print(f"{source} {scenario} {fraction} snapshots {k}: O {o[0]:.4f} R {r[0]:.4f}")
for refresh in (0, 1):  # 0: the product's answer
    MODE["refresh"] = refresh
    for corr in (0, 2):
        ans = unlearn(original, ds, removal, UnlearnConfig(calibrated=False, corrections=corr))
        m = scores(ans.model)
        done = [(a - b) / (c - b) for a, b, c in zip(m, o, r)]
        print(f"  refresh {refresh} k={corr}: AUC {done[0]:.2f}/{done[1]:.2f}/{done[2]:.2f} |AUC0-R| {abs(m[0]-r[0]):.4f} forget {done[3]:.2f} {ans.seconds:.2f}s", flush=True)
