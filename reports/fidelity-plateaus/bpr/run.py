"""The BPR cells of reports/fidelity-endpoint/bpr with the default stopping rule (waiting through plateaus).
Run from the repository root: .venv/bin/python reports/fidelity-plateaus/bpr/run.py [RUNS [METHODS [CALIBRATE_FOR]]]
(defaults runs/paired, ifru,ifru-uncalibrated, ifru; reports/fidelity-endpoint/horizon/run.sh bpr runs it with
ifru-horizon); copy each RUNS/<cell>/report.* here."""
import sys
from pathlib import Path
import torch
from ifru_ext.experiments.fidelity import FidelitySpec, run_fidelity
torch.set_num_threads(2)
runs = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/paired")
methods = tuple((sys.argv[2] if len(sys.argv) > 2 else "ifru,ifru-uncalibrated").split(","))
calibrate_for = sys.argv[3] if len(sys.argv) > 3 else "ifru"
for model, scenario, fraction in (("mf", "genuine", 0.02), ("lightgcn", "genuine", 0.02), ("lightgcn", "users", 0.01)):
    spec = FidelitySpec(dataset=dict(name_or_path="bookcrossing", user_fraction=0.25), model=model, scenario=scenario,
                        fraction=fraction, seeds=(1,), methods=methods, calibrated=True, calibrate_for=calibrate_for,
                        train_overrides={"loss": "bpr", "lr": 1e-3}, out=runs / f"{model}-bpr-{scenario}-{fraction}")
    run_fidelity(spec)
    print("done", model, scenario, flush=True)
