"""horizon_rule.py OUT SCENARIO FRACTION USER_FRACTION [SEEDS]: a diagnostic, not an estimator.

The default's answer at horizons 1, 1.25, ..., 2 x the Original's steps (snapshots' steps scaled
alike), and the rule "extend the horizon while the answer's whole-validation AUC improves, never
shorten it": prints, per draw, each horizon's validation AUC / forget completeness, the pick, and
each step's AUC gain over its DeLong standard error with the two answers paired on the same labels."""
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
import numpy as np
from scipy.stats import rankdata


def placements(scores, labels):
    """DeLong's structural components: per positive the share of negatives below it, per negative the
    share of positives above it (ties half)."""
    pos, neg = labels == 1, labels == 0
    ranks = rankdata(scores)
    n1, n0 = pos.sum(), neg.sum()
    v10 = (ranks[pos] - rankdata(scores[pos])) / n0
    v01 = 1 - (ranks[neg] - rankdata(scores[neg])) / n1
    return v10, v01


def paired_z(a, b, labels):
    """(AUC_a − AUC_b) / its DeLong standard error, the two scorers paired on the same labels."""
    a10, a01 = placements(a, labels)
    b10, b01 = placements(b, labels)
    d10, d01 = a10 - b10, a01 - b01
    se = np.sqrt(d10.var(ddof=1) / d10.size + d01.var(ddof=1) / d01.size)
    return (d10.mean()) / se
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
    labels = data.valid.labels.double().numpy()
    scores_of = lambda m: m.score_all(data.valid.users, data.valid.items).double().detach().numpy()
    valid = lambda m: float(auc(m.score_all(data.valid.users, data.valid.items), data.valid.labels))
    results, answers = [], []
    for scale in scales:
        model = copy.deepcopy(original)
        t = model.trace
        model.trace = dataclasses.replace(t, steps=round(t.steps * scale),
                                          snapshots=[Snapshot(round(s.steps * scale), s.table, s.second_moment) for s in t.snapshots])
        r = unlearn(model, data, rows)
        results.append((scale, valid(r.model), (forget_loss(r.model, data, rows, "bce") - lo) / (lr - lo)))
        answers.append(scores_of(r.model))
    z = [paired_z(answers[k + 1], answers[k], labels) for k in range(len(scales) - 1)]
    print("  paired z of each step:", " ".join("%.1f" % v for v in z))
    pick = 0
    while pick + 1 < len(results) and results[pick + 1][1] > results[pick][1]:
        pick += 1
    print(cell, "epochs O/R", original.trace.best_epoch, retrain.trace.best_epoch,
          "valid AUC O %.4f R %.4f" % (valid(original), valid(retrain)),
          " ".join("x%.2f: %.4f/%.3f" % r for r in results), "| pick x%.2f -> %.3f" % (results[pick][0], results[pick][2]))
