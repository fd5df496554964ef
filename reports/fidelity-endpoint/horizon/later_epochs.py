"""Does the response from the Original's own later epochs (trained on past its best with early stopping off)
land nearer Retrain on poisoned rows? Usage: later_epochs.py MODEL SCENARIO FRACTION SEED K [METHOD] [USER_FRACTION]"""
import sys, dataclasses, torch, math, time
from ifru_ext.data import load_dataset
from ifru_ext.training import TrainConfig, train_new
from ifru_ext.training import early_stopping as ES
from ifru_ext.unlearning import unlearn
from ifru_ext.evaluation import evaluate, forget_loss
model_name, scenario, frac, seed, K = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
method = sys.argv[6] if len(sys.argv) > 6 else "ifru-uncalibrated"
users = float(sys.argv[7]) if len(sys.argv) > 7 else 1.0
kw = {} if users == 1.0 else {"user_fraction": users}
if scenario == "poison":
    ds = load_dataset("bookcrossing", attack_fraction=frac, attack_seed=seed, **kw)
else:
    from ifru_ext.experiments.fidelity import request_rows
    clean = load_dataset("bookcrossing", **kw)
    ds = dataclasses.replace(clean, removal=request_rows(clean, scenario, frac, seed))
removal = ds.removal
config = TrainConfig.for_model(model_name)
t0 = time.time()
orig, res = train_new(model_name, ds, config)
T = res.best_epoch
retrain, rres = train_new(model_name, ds, config, removal=removal)
retrain2, _ = train_new(model_name, ds, dataclasses.replace(config, seed=config.seed + 1), removal=removal)
def ev(m):
    e = evaluate(m, ds, splits=("valid", "test"))
    return e["valid"]["auc_0"], e["test"]["auc_0"], forget_loss(m, ds, removal)
vO, tO, fO = ev(orig); vR, tR, fR = ev(retrain); vR2, tR2, fR2 = ev(retrain2)
print(f"{model_name} {scenario} {frac} seed {seed} users {users}: Original epoch {T} (ran {res.epochs}), Retrain epoch {rres.best_epoch}; "
      f"valid O {vO:.4f} R {vR:.4f} R2 {vR2:.4f}; test O {tO:.4f} R {tR:.4f} R2 {tR2:.4f}; forget O {fO:.4f} R {fR:.4f} R2 {fR2:.4f}  ({time.time()-t0:.0f}s)")
print("tail", [round(a, 4) for a in orig.trace.validation_tail])
orig_update = ES.EarlyStopping.update
def always(self, step, score, state, accept=False, tolerance=None):
    return orig_update(self, step, score, state, True, tolerance)
for k in range(0, K + 1):
    if k == 0:
        m = orig
    else:
        ES.EarlyStopping.update = always
        m, r = train_new(model_name, ds, dataclasses.replace(config, max_epochs=T + k, patience=10**6))
        ES.EarlyStopping.update = orig_update
        assert r.best_epoch == T + k, r.best_epoch
    ans = unlearn(m, ds, removal, method=method)
    vM, tM, fM = ev(m); vA, tA, fA = ev(ans.model)
    print(f"k {k:2d}: Original(T+k) valid {vM:.4f} test {tM:.4f} forget {fM:.4f} | answer valid {vA:.4f} test {tA:.4f} "
          f"forget {fA:.4f} compl {(fA - fO)/(fR - fO):.3f} |AUC-R| {abs(tA - tR):.4f} test-compl {(tA - tO)/(tR - tO) if tR != tO else float('nan'):.3f}  {ans.seconds:.2f}s", flush=True)
