"""horizon_rule.py OUT SCENARIO FRACTION USER_FRACTION [SEEDS]: a diagnostic, not an estimator.

The default's answer at horizons 1, 1.25, ..., 2 x the Original's steps (snapshots' steps scaled
alike), and the rule "extend the horizon while the answer's whole-validation AUC improves, never
shorten it": prints, per draw, each horizon's validation AUC / forget completeness and the pick."""
import sys, copy, dataclasses, torch
torch.set_num_threads(1)
from ifru_ext.data import load_dataset
from ifru_ext.metrics import auc
from ifru_ext.models.checkpoint import load_checkpoint
from ifru_ext.experiments.fidelity import request_rows
from ifru_ext.unlearning import unlearn
from ifru_ext.unlearning.terms import forget_loss
from ifru_ext.models.trace import Snapshot
out, scenario, fraction, uf = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
seeds = [int(s) for s in (sys.argv[5] if len(sys.argv) > 5 else "1,2,3").split(",")]
scales = (1.0, 1.25, 1.5, 1.75, 2.0)
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
    valid = lambda m: float(auc(m.score_all(data.valid.users, data.valid.items), data.valid.labels))
    results = []
    for scale in scales:
        model = copy.deepcopy(original)
        t = model.trace
        model.trace = dataclasses.replace(t, steps=round(t.steps * scale),
                                          snapshots=[Snapshot(round(s.steps * scale), s.table, s.second_moment) for s in t.snapshots])
        r = unlearn(model, data, rows)
        results.append((scale, valid(r.model), (forget_loss(r.model, data, rows, "bce") - lo) / (lr - lo)))
    pick = 0
    while pick + 1 < len(results) and results[pick + 1][1] > results[pick][1]:
        pick += 1
    print(cell, "epochs O/R", original.trace.best_epoch, retrain.trace.best_epoch,
          "valid AUC O %.4f R %.4f" % (valid(original), valid(retrain)),
          " ".join("x%.2f: %.4f/%.3f" % r for r in results), "| pick x%.2f -> %.3f" % (results[pick][0], results[pick][2]))
