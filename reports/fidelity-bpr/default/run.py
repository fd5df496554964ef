"""run.py: the BPR cells of ../README.md with the default of 2026-12-06 (``ifru``: for a BPR model the
response with two Newton corrections per segment at the returned epoch — the tail is walked for BCE models
only) next to ``ifru-linear`` (the default before), each calibrated for itself on the same Originals,
Retrains and second Retrains (the second pass reuses the first's checkpoints). Writes
``<model>-bpr-<scenario>-<fraction>.{default,linear}.{md,json}`` here; models cached in runs/fidelity-bpr-default.

usage: python reports/fidelity-bpr/default/run.py [THREADS [PASS,...]]; the passes ``default`` (``ifru``, run
2026-12-06 with fixed steps), ``linear`` (``ifru-linear``), ``adaptive`` (``ifru`` since 2026-12-07, stalled steps
walked shorter) and ``fixed-steps`` (``ifru-fixed-steps``), each on the same checkpoints (default: the first two)."""
import shutil
import sys
from pathlib import Path

import torch

from ifru_ext.experiments.fidelity import FidelitySpec, run_fidelity

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
HERE = Path(__file__).parent
METHOD = {"default": "ifru", "linear": "ifru-linear", "adaptive": "ifru", "fixed-steps": "ifru-fixed-steps"}
PASSES = sys.argv[2].split(",") if len(sys.argv) > 2 else ["default", "linear"]
CELLS = (("mf", "genuine", 0.02), ("lightgcn", "genuine", 0.02), ("lightgcn", "users", 0.01))
for model, scenario, fraction in CELLS:
    name = f"{model}-bpr-{scenario}-{fraction:g}"
    out = Path("runs/fidelity-bpr-default") / name
    for tag in PASSES:
        method = METHOD[tag]
        where = out / tag
        where.mkdir(parents=True, exist_ok=True)
        for cached in (out / "default").glob("*.pt"):  # the same Originals and Retrains, calibrated again
            if not (where / cached.name).exists():
                shutil.copy(cached, where / cached.name)
        run_fidelity(FidelitySpec(dataset={"name_or_path": "bookcrossing", "user_fraction": 0.25}, model=model,
                                  scenario=scenario, fraction=fraction, seeds=(1,), methods=(method,), out=where,
                                  # the fixed patience the cached models of 2026-12-06 were trained with (LightGCN's
                                  # presets scale it since that evening)
                                  train_overrides={"loss": "bpr", "lr": 1e-3, "scaled_patience": False},
                                  calibrated=True, calibrate_for=method))
        for suffix in ("md", "json"):
            shutil.copy(where / f"report.{suffix}", HERE / f"{name}.{tag}.{suffix}")
        print(f"{name} {tag} done", flush=True)
