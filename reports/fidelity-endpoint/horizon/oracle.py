"""oracle.py OUT SCENARIO FRACTION USER_FRACTION [SEEDS]: a diagnostic, not an estimator.

For each draw (SEEDS, default 1,2,3) of an `ifru fidelity` run cached in OUT (MF, BCE), the default `ifru`'s
forget completeness twice: with the Original's training trace as recorded, and with its steps (and its
snapshots' steps) scaled by the epoch at which the draw's Retrain stopped over the Original's (an
oracle: only a Retrain knows it). Prints both epochs, the ratio and the two completenesses."""
import sys, copy, dataclasses, torch
torch.set_num_threads(1)
from ifru_ext.data import load_dataset
from ifru_ext.models.checkpoint import load_checkpoint
from ifru_ext.experiments.fidelity import request_rows
from ifru_ext.unlearning import unlearn
from ifru_ext.unlearning.terms import forget_loss
from ifru_ext.models.trace import Snapshot
out, scenario, fraction, uf = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
seeds = [int(s) for s in (sys.argv[5] if len(sys.argv) > 5 else "1,2,3").split(",")]
for seed in seeds:
    base = {"name_or_path": "bookcrossing", "user_fraction": uf}
    if scenario == "poison":
        data = odata = load_dataset(**base, attack_fraction=fraction, attack_seed=seed)
        opath = f"{out}/original-poison-{fraction:g}-{seed}.pt"
    else:
        odata = load_dataset(**base, attack_fraction=0.0)
        data = dataclasses.replace(odata, removal=request_rows(odata, scenario, fraction, seed))
        opath = f"{out}/original-clean.pt"
    cell = f"{scenario}-{fraction:g}-{seed}"
    original = load_checkpoint(opath, odata).model
    retrain = load_checkpoint(f"{out}/retrain-{cell}.pt", data).model
    rows = data.removal
    lo, lr = forget_loss(original, data, rows, "bce"), forget_loss(retrain, data, rows, "bce")
    res = []
    ratio = retrain.trace.best_epoch / original.trace.best_epoch
    for scale in (1.0, ratio):
        model = copy.deepcopy(original)
        t = model.trace
        model.trace = dataclasses.replace(t, steps=round(t.steps * scale),
                                          snapshots=[Snapshot(round(s.steps * scale), s.table, s.second_moment) for s in t.snapshots])
        r = unlearn(model, data, rows)
        lm = forget_loss(r.model, data, rows, "bce")
        res.append(round((lm - lo) / (lr - lo), 3))
    print(cell, "epochs O/R", original.trace.best_epoch, retrain.trace.best_epoch, "ratio %.2f" % ratio, "forget completeness as recorded / at the oracle horizon", res)
