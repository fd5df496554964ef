"""combined.py OUT FRACTION USER_FRACTION SEED: a diagnostic, not an estimator.

Do the two options that each close part of the poisoned 8% gap add up? On one draw of an
`ifru fidelity` poisoned-row run cached in OUT (MF, BCE: the Original and Retrain), answers the
request with `ifru`, `ifru-horizon` (horizon="validation"), `ifru-nonlinear` (corrections=2) and
both at once, each calibrated for itself (one Retrain of a random 2% each, as `calibrate` does), and
prints each answer's forget completeness and test AUC_0 completeness against the cached Retrain."""
import sys, copy, time, torch
torch.set_num_threads(2)
from ifru_ext.data import load_dataset
from ifru_ext.evaluation import evaluate, forget_loss
from ifru_ext.models.checkpoint import load_checkpoint
from ifru_ext.unlearning import UnlearnConfig, unlearn
from ifru_ext.unlearning.calibration import calibrate
out, fraction, uf, seed = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
data = load_dataset("bookcrossing", user_fraction=uf, attack_fraction=fraction, attack_seed=seed)
original = load_checkpoint(f"{out}/original-poison-{fraction:g}-{seed}.pt", data).model
retrain = load_checkpoint(f"{out}/retrain-poison-{fraction:g}-{seed}.pt", data).model
rows = data.removal
lo, lr = forget_loss(original, data, rows), forget_loss(retrain, data, rows)
auc = lambda m: evaluate(m, data, splits=("test",), metrics=("auc",))["test"]["auc_0"]
a_o, a_r = auc(original), auc(retrain)
print(f"poison {fraction:g} users {uf:g} seed {seed}: test AUC O {a_o:.4f} R {a_r:.4f}")
for name, cfg in (("ifru", UnlearnConfig()), ("horizon", UnlearnConfig(horizon="validation")),
                  ("nonlinear", UnlearnConfig(corrections=2)),
                  ("horizon+nonlinear", UnlearnConfig(corrections=2, horizon="validation"))):
    model = copy.deepcopy(original)
    cal = calibrate(model, data, config=cfg)
    t = time.perf_counter(); res = unlearn(model, data, rows, cfg); sec = time.perf_counter() - t
    fc = (forget_loss(res.model, data, rows) - lo) / (lr - lo)
    print(f"  {name:18s} scale {cal.scale:.3f}  forget completeness {fc:.3f}  AUC_0 completeness "
          f"{(auc(res.model) - a_o) / (a_r - a_o):.3f}  {sec:.2f} s", flush=True)
