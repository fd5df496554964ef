"""The default training response (CG to a relative residual of 1e-2 per segment) next to the same
response at the earlier 1e-3, on six cells of the fidelity matrix: the same cached Originals
(calibration included), Retrains and requests as the committed cells.

Run from the repository root after the cells' runs (reports/fidelity-picks/run.sh, and
reports/fidelity-synthetic/run.sh with TAG=-picks for planted:1e5):
    .venv/bin/python reports/fidelity-tolerance/run.py [CELL...]
Each cell's report goes to reports/fidelity-tolerance/<cell>.{md,json}.
"""
from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

import torch

from ifru_ext.experiments.fidelity import FidelitySpec, run_fidelity
from ifru_ext.unlearning import UnlearnConfig, registry

HERE = Path(__file__).parent
# ``ifru`` at the tolerance it used until 2026-12-05, as a registry method of its own for this run.
registry.METHODS["ifru-tol-1e-3"] = dataclasses.replace(registry.METHODS["ifru"], name="ifru-tol-1e-3",
                                                        config=UnlearnConfig(tol=1e-3))
AMAZON = dict(name_or_path="runs/amazon-shaped/ratings.csv", header=True,
              columns=("user", "item", "rating", "timestamp"), threshold=3, kcore=5)
# cell: (dataset, model, scenario, fraction, seeds, the cell's cached models)
CELLS = {
    "bookcrossing-mf-poison-0.08": (dict(name_or_path="bookcrossing"), "mf", "poison", 0.08, "runs/picks/work/bx-mf"),
    "bookcrossing-mf-genuine-0.02": (dict(name_or_path="bookcrossing"), "mf", "genuine", 0.02, "runs/picks/work/bx-mf"),
    "planted-1e5-mf-poison-0.08": (dict(name_or_path="planted:1e5"), "mf", "poison", 0.08,
                                   "runs/fidelity-synthetic/mf-1e5-picks"),
    "planted-1e5-mf-genuine-0.08": (dict(name_or_path="planted:1e5"), "mf", "genuine", 0.08,
                                    "runs/fidelity-synthetic/mf-1e5-picks"),
    "planted-1e5-mf-users-0.08": (dict(name_or_path="planted:1e5"), "mf", "users", 0.08,
                                  "runs/fidelity-synthetic/mf-1e5-picks"),
    "amazon-lightgcn-poison-0.02": (AMAZON, "lightgcn", "poison", 0.02, "runs/picks/work/amazon-lightgcn"),
}


def main(cells: list[str]) -> None:
    torch.set_num_threads(1)
    for name in cells or CELLS:
        dataset, model, scenario, fraction, out = CELLS[name]
        spec = FidelitySpec(dataset=dataset, model=model, scenario=scenario, fraction=fraction, seeds=(1,),
                            methods=("ifru", "ifru-tol-1e-3"), calibrated=True, out=Path(out))
        run_fidelity(spec)
        for suffix in ("md", "json"):
            shutil.copy(Path(out) / f"report.{suffix}", HERE / f"{name}.{suffix}")
        print("done", name, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
