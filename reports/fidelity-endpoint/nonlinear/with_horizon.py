"""with_horizon.py OUT FRACTION USER_FRACTION SEEDS: a spot check, not an estimator.

Forget completeness of a cached poisoned-row cell (`ifru fidelity` models in OUT) answered
uncalibrated with the linear response and with ifru-nonlinear's Newton steps (k = 0 / 2), each with
the recorded horizon and with the horizon rule (`horizon="validation"`). Raw output: with_horizon.txt."""
import sys, dataclasses, time, warnings, torch
warnings.simplefilter("ignore"); torch.set_num_threads(2)
from ifru_ext.data import load_dataset
from ifru_ext.evaluation import forget_loss
from ifru_ext.models import load_checkpoint
from ifru_ext.unlearning import UnlearnConfig, unlearn
out, fraction, uf = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
for seed in [int(s) for s in sys.argv[4].split(",")]:
    ds = load_dataset("bookcrossing", attack_fraction=fraction, attack_seed=seed, user_fraction=uf)
    o = load_checkpoint(f"{out}/original-poison-{fraction:g}-{seed}.pt", ds).model
    r = load_checkpoint(f"{out}/retrain-poison-{fraction:g}-{seed}.pt", ds).model
    lo, lr = forget_loss(o, ds, ds.removal), forget_loss(r, ds, ds.removal)
    line = []
    for k in (0, 2):
        for h in ("recorded", "validation"):
            a = unlearn(o, ds, ds.removal, config=UnlearnConfig(calibrated=False, corrections=k, horizon=h))
            line.append(f"k={k} {h[:3]} {(forget_loss(a.model, ds, ds.removal) - lo) / (lr - lo):.3f}")
    print(seed, " | ".join(line), flush=True)
