"""snapshots.py FRACTION USER_FRACTION SEED OUT: a diagnostic, not an estimator.

Does a shorter first segment (or more segments) bring the response closer to Retrain on poisoned
rows? Trains the poisoned Original of an `ifru fidelity` cell again (the same config and seed: the
same final table as the cached one in OUT) keeping every epoch's snapshot, then answers its request
uncalibrated with the linear response (k = 0) and with ifru-nonlinear's Newton steps (k = 2) for
several choices of the snapshots the segments end at. Raw output of the committed run: snapshots.txt."""
import sys, dataclasses, time, warnings, torch
warnings.simplefilter("ignore"); torch.set_num_threads(2)
from ifru_ext.data import load_dataset
from ifru_ext.training import TrainConfig
from ifru_ext.experiments.cache import train_new
from ifru_ext.evaluation import forget_loss
from ifru_ext.models import load_checkpoint
from ifru_ext.unlearning import UnlearnConfig, unlearn
fraction, uf, seed = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
out = sys.argv[4]
ds = load_dataset("bookcrossing", attack_fraction=fraction, attack_seed=seed, user_fraction=uf)
config = TrainConfig.for_model("mf", "paper", snapshots=64)  # every epoch of these short runs kept
model, result = train_new("mf", ds, config, None)
cached = load_checkpoint(f"{out}/original-poison-{fraction:g}-{seed}.pt", ds).model
print("same final table as the cached Original:", torch.equal(model.embedding, cached.embedding),
      "epochs", result.best_epoch, "snapshot steps", [s.steps for s in model.trace.snapshots], "of", model.trace.steps)
retrain = load_checkpoint(f"{out}/retrain-poison-{fraction:g}-{seed}.pt", ds).model
lo, lr = forget_loss(model, ds, ds.removal), forget_loss(retrain, ds, ds.removal)
every = list(model.trace.snapshots)
epoch_steps = model.trace.steps // result.best_epoch
def run(label, picks):
    model.trace.snapshots = [s for s in every if s.steps // epoch_steps in picks]
    for k in (0, 2):
        t = time.perf_counter(); ans = unlearn(model, ds, ds.removal, config=UnlearnConfig(calibrated=False, corrections=k)); s = time.perf_counter() - t
        print(f"  {label:28s} k={k} forget {(forget_loss(ans.model, ds, ds.removal) - lo) / (lr - lo):.3f} {s:.2f}s", flush=True)
E = result.best_epoch
run("as recorded", {int(s.steps // epoch_steps) for s in cached.trace.snapshots})
run("epochs 1, E/2", {1, E // 2})
run("epochs 1, 2", {1, 2})
run("epochs 1, 2, 4", {1, 2, 4})
run("every epoch", set(range(1, E)))
