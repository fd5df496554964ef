"""tail_newton.py OUT FRACTION USER_FRACTION [CAP...]: a probe, not part of the package.

Newton steps per tail epoch for ifru-trajectory on a cached poisoned-row cell of run.sh (OUT: its
runs/trajectory-<stage>-t, seed 1): each segment past the returned epoch gets at most CAP Newton steps
(0: the linear step only); the answer's forget and test-AUC_0 completeness, and the best of three warm
requests."""
import sys, time, torch
from ifru_ext.data import load_dataset
from ifru_ext.models import load_checkpoint
from ifru_ext.evaluation import evaluate, forget_loss
from ifru_ext.unlearning import unlearn, response
torch.set_num_threads(2)
out, fraction, frac_users = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
opts = {} if frac_users == 1 else {"user_fraction": frac_users}
data = load_dataset("bookcrossing", attack_fraction=fraction, attack_seed=1, **opts)
original = load_checkpoint(f"{out}/original-poison-{fraction:g}-1.pt", data).model
retrain = load_checkpoint(f"{out}/retrain-poison-{fraction:g}-1.pt", data).model
rows = data.removal
lo, lr = forget_loss(original, data, rows), forget_loss(retrain, data, rows)
auc = lambda m: evaluate(m, data, splits=("test",))["test"]["auc_0"]
ao, ar = auc(original), auc(retrain)
recorded = len(original.trace.segments())
corrected = response._corrected
for cap in [None] + [int(c) for c in sys.argv[4:]]:
    def capped(plan, at, segment, rhs, diagonal, delta, corrections, *rest):
        if cap is not None and segment >= recorded:
            corrections = min(corrections, cap)
        return corrected(plan, at, segment, rhs, diagonal, delta, corrections, *rest)
    response._corrected = capped
    unlearn(original, data, rows, method="ifru-trajectory")
    times = []
    for _ in range(3):
        s = time.perf_counter()
        r = unlearn(original, data, rows, method="ifru-trajectory")
        times.append(time.perf_counter() - s)
    m = r.model
    changed = "all" if r.changed_rows is None else r.changed_rows.numel()
    print(f"cap {cap}: forget {(forget_loss(m, data, rows) - lo) / (lr - lo):.3f} AUC {(auc(m) - ao) / (ar - ao):.3f} "
          f"{min(times)*1e3:.0f} ms iters {r.solve.iterations} changed {changed}",
          {k: round(v * 1e3) for k, v in r.phases.items()})
response._corrected = corrected
