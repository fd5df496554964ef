"""continued.py SCENARIO FRACTION SEED K [USER_FRACTION [DATASET]]: a probe, not an estimator of the package.

MF on DATASET (default bookcrossing). Trains the Original (best epoch T), its Retrain, and the same run
on to epoch T + K with early stopping off and a snapshot at every epoch (snapshots = T + K + 1). Then
answers the request (uncalibrated) three ways, timed warm: the default linear response over the
Original's recorded segments; the same with nonlinear steps (corrections=2); and one nonlinear response
over the recorded segments continued by one segment per later epoch up to T + K. Each later epoch's
answer is a prefix of that last response (the table at T + k plus the response's answer after that
epoch's segment; orphaned rows at their initial value); each is scored on validation, and the one
Retrain's own rule would keep (the best validation AUC) is marked."""
import dataclasses
import sys
import time

import torch

from ifru_ext.data import load_dataset
from ifru_ext.evaluation import evaluate, forget_loss
from ifru_ext.experiments.fidelity import request_rows
from ifru_ext.models import copy_model
from ifru_ext.training import TrainConfig, train_new
from ifru_ext.training import early_stopping
from ifru_ext.unlearning import UnlearnConfig, response, unlearn

torch.set_num_threads(2)
scenario, fraction, seed, K = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
user_fraction = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
options = {} if user_fraction == 1.0 else {"user_fraction": user_fraction}
name = sys.argv[6] if len(sys.argv) > 6 else "bookcrossing"
if scenario == "poison":
    data = load_dataset(name, attack_fraction=fraction, attack_seed=seed, **options)
else:
    clean = load_dataset(name, **options)
    data = dataclasses.replace(clean, removal=request_rows(clean, scenario, fraction, seed))
rows = data.removal
config = TrainConfig.for_model("mf")
original, run = train_new("mf", data, config)
T = run.best_epoch
start = time.perf_counter()
retrain, retrain_run = train_new("mf", data, config, removal=rows)
retrain_seconds = time.perf_counter() - start
loss_o, loss_r = forget_loss(original, data, rows), forget_loss(retrain, data, rows)


def test_auc(model) -> float:
    return evaluate(model, data, splits=("test",))["test"]["auc_0"]


auc_o, auc_r = test_auc(original), test_auc(retrain)


def completeness(model) -> str:
    forget = (forget_loss(model, data, rows) - loss_o) / (loss_r - loss_o)
    return f"forget {forget:.3f} AUC {(test_auc(model) - auc_o) / (auc_r - auc_o):.2f}"


# The same run on past its best: every update accepted, a snapshot at every epoch.
accept = early_stopping.EarlyStopping.update
early_stopping.EarlyStopping.update = lambda self, step, score, state, _=False, tolerance=None: accept(
    self, step, score, state, True, tolerance)
longer, longer_run = train_new("mf", data, dataclasses.replace(config, max_epochs=T + K, patience=10**6,
                                                               snapshots=T + K + 1))
early_stopping.EarlyStopping.update = accept
assert longer_run.best_epoch == T + K
per_epoch = longer.trace.steps / (T + K)
snapshot_at = {round(s.steps / per_epoch): s for s in longer.trace.snapshots}
recorded = [round(s.steps / per_epoch) for s in original.trace.snapshots]  # the Original's own segment ends
longer.trace = dataclasses.replace(longer.trace, snapshots=[snapshot_at[e] for e in recorded + list(range(T, T + K))])


def timed(model, config: UnlearnConfig):
    unlearn(model, data, rows, config=config)
    start = time.perf_counter()
    result = unlearn(model, data, rows, config=config)
    return result, time.perf_counter() - start


linear, linear_s = timed(original, UnlearnConfig(calibrated=False))
nonlinear, nonlinear_s = timed(original, UnlearnConfig(calibrated=False, corrections=2))
continued, continued_s = timed(longer, UnlearnConfig(calibrated=False, corrections=2))

# Each segment's answer, read off the continued response's Newton steps (the last call per segment).
answers, held = {}, {}
corrected = response._corrected


def keep(plan, at, segment, *args):
    out = corrected(plan, at, segment, *args)
    answers[segment], held["plan"] = out[0].clone(), plan
    return out


response._corrected = keep
unlearn(longer, data, rows, config=UnlearnConfig(calibrated=False, corrections=2))
response._corrected = corrected
moving = held["plan"].global_rows
orphans = response.orphaned_rows(data, rows, longer.embedding.device).nonzero().squeeze(1)
prefixes = []
for k in range(K + 1):
    table = longer.embedding.detach() if k == K else snapshot_at[T + k].table.float()
    answer = copy_model(longer)
    with torch.no_grad():
        values = table.clone().index_add_(0, moving, answers[len(recorded) + k].to(table.dtype))
        values[orphans] = longer.trace.initial[orphans].to(values.dtype)
        answer.embedding.copy_(values)
    prefixes.append((k, evaluate(answer, data, splits=("valid",))["valid"]["auc_0"], completeness(answer)))
pick = max(prefixes, key=lambda p: p[1])[0]
print(f"{name} users {user_fraction:g} {scenario} {fraction:g} seed {seed}: Original's epoch {T}, Retrain's "
      f"{retrain_run.best_epoch} ({retrain_seconds:.2f} s)")
print(f"  linear, recorded horizon            {linear_s * 1e3:7.0f} ms  {completeness(linear.model)}")
print(f"  nonlinear, recorded horizon         {nonlinear_s * 1e3:7.0f} ms  {completeness(nonlinear.model)}")
print(f"  nonlinear, continued to T + {K:<2d}      {continued_s * 1e3:7.0f} ms  {completeness(continued.model)}")
for k, valid, text in prefixes:
    print(f"    epoch T + {k:<2d} valid AUC {valid:.4f}  {text}{'  <- best validation' if k == pick else ''}")
