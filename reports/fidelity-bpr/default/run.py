"""run.py: the BPR cells of ../README.md with the default of 2026-12-06 (``ifru``: for a BPR model the
response with two Newton corrections per segment at the returned epoch — the tail is walked for BCE models
only) next to ``ifru-linear`` (the default before), each calibrated for itself on the same Originals,
Retrains and second Retrains (the second pass reuses the first's checkpoints). Writes
``<model>-bpr-<scenario>-<fraction>.{default,linear}.{md,json}`` here; models cached in runs/fidelity-bpr-default."""
import shutil
import sys
from pathlib import Path

import torch

from ifru_ext.experiments.fidelity import FidelitySpec, run_fidelity

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
HERE = Path(__file__).parent
CELLS = (("mf", "genuine", 0.02), ("lightgcn", "genuine", 0.02), ("lightgcn", "users", 0.01))
for model, scenario, fraction in CELLS:
    name = f"{model}-bpr-{scenario}-{fraction:g}"
    out = Path("runs/fidelity-bpr-default") / name
    for tag, method in (("default", "ifru"), ("linear", "ifru-linear")):
        where = out / tag
        where.mkdir(parents=True, exist_ok=True)
        for cached in (out / "default").glob("*.pt"):  # the same Originals and Retrains, calibrated again
            if not (where / cached.name).exists():
                shutil.copy(cached, where / cached.name)
        run_fidelity(FidelitySpec(dataset={"name_or_path": "bookcrossing", "user_fraction": 0.25}, model=model,
                                  scenario=scenario, fraction=fraction, seeds=(1,), methods=(method,), out=where,
                                  train_overrides={"loss": "bpr", "lr": 1e-3}, calibrated=True, calibrate_for=method))
        for suffix in ("md", "json"):
            shutil.copy(where / f"report.{suffix}", HERE / f"{name}.{tag}.{suffix}")
        print(f"{name} {tag} done", flush=True)
