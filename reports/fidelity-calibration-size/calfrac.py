"""Side by side: the default's answer with its scale calibrated on a random 2% (today) or 8% of the
training rows, per fidelity cell (experiment). Usage: calfrac.py MODEL DATASET SCENARIO FRACTION SEEDS [read options as JSON]"""
import sys, copy, json, dataclasses, time, torch
from ifru_ext.data import load_dataset
from ifru_ext.training import TrainConfig, train_new
from ifru_ext.unlearning import unlearn, calibrate
from ifru_ext.unlearning.terms import forget_loss
from ifru_ext.experiments.fidelity import request_rows
from ifru_ext.evaluation import evaluate
name, data, scenario, frac = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
seeds = [int(s) for s in sys.argv[5].split(",")]
read = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
config = TrainConfig.for_model(name)
def aucs(m, ds):
    e = evaluate(m, ds, splits=("test",))["test"]; return e["auc_0"], e["auc_1"], e["auc_2"]
clean_original = None
for seed in seeds:
    t0 = time.time()
    if scenario == "poison":
        ds = load_dataset(data, attack_fraction=frac, attack_seed=seed, **read)
        original, _ = train_new(name, ds, config)
    else:
        clean = load_dataset(data, attack_fraction=0.0, **read)
        if clean_original is None:
            clean_original, _ = train_new(name, clean, config)
            cal = {}
        original = clean_original
        ds = dataclasses.replace(clean, removal=request_rows(clean, scenario, frac, seed))
    rm = ds.removal
    if scenario == "poison" or not cal:
        cal = {}
        for f in (0.02, 0.08):
            m = copy.deepcopy(original)
            try:
                cal[f] = (m, calibrate(m, ds if scenario == "poison" else clean, fraction=f).scale)
            except ValueError as e:
                cal[f] = (None, str(e)[:60])
    retrain, _ = train_new(name, ds, config, removal=rm)
    fO, fR = forget_loss(original, ds, rm, "bce"), forget_loss(retrain, ds, rm, "bce")
    aO, aR = aucs(original, ds), aucs(retrain, ds)
    out = []
    for f, (m, s) in cal.items():
        if m is None:
            out.append(f"cal@{f}: refused ({s})"); continue
        a = unlearn(m, ds, rm).model
        aA = aucs(a, ds)
        tc = "/".join(f"{(x - o) / (r - o):.2f}" if r != o else "nan" for x, o, r in zip(aA, aO, aR))
        out.append(f"cal@{f} (scale {s:.3f}): forget {(forget_loss(a, ds, rm, 'bce') - fO) / (fR - fO):.2f}  |AUC0-R| {abs(aA[0] - aR[0]):.4f}  test-compl {tc}")
    print(f"{name} {data} {scenario} {frac} seed {seed} ({time.time() - t0:.0f}s): " + " ; ".join(out), flush=True)
