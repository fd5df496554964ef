"""Neighbours and Newton corrections, each alone and together, uncalibrated, on a cell's cached models.

Usage (from the repository root, after the cell's `ifru fidelity` run cached its models in OUT):
    python reports/fidelity-neighbours/probe.py OUT {poison|genuine|users} FRACTION SOURCE {amazon|movielens|preset} SPEC...

Answers the cell's request (seed 1) with `UnlearnConfig(calibrated=False, ratios=R, corrections=k)` for
each SPEC `R:k` (`R` comma-separated Algorithm 1 ratios, `-` for the default's endpoints only) and
prints test-AUC completeness AUC_0 / 1 / 2, |AUC_0 − R| and forget completeness against the cell's
Original and Retrain, with the rows the answer may move.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from ifru_ext.data import load_dataset
from ifru_ext.evaluation import evaluate, forget_loss
from ifru_ext.experiments.fidelity import request_rows
from ifru_ext.models import load_checkpoint
from ifru_ext.unlearning import UnlearnConfig, unlearn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fidelity-poison-tail"))
from anatomy import FILES  # noqa: E402  (the reader options of the cells' files)


def main(out: str, scenario: str, fraction: str, source: str, kind: str, *specs: str) -> None:
    if scenario == "poison":
        dataset = load_dataset(source, attack_fraction=float(fraction), attack_seed=1, **FILES[kind])
        original = load_checkpoint(f"{out}/original-poison-{fraction}-1.pt", dataset).model
    else:
        clean = load_dataset(source, attack_fraction=0.0, **FILES[kind])
        original = load_checkpoint(f"{out}/original-clean.pt", clean).model
        dataset = dataclasses.replace(clean, removal=request_rows(clean, scenario, float(fraction), 1))
    removal = dataset.removal
    retrain = load_checkpoint(f"{out}/retrain-{scenario}-{fraction}-1.pt", dataset).model

    def scores(model) -> list[float]:
        test = evaluate(model, dataset, splits=("test",), metrics=("auc",))["test"]
        return [test["auc_0"], test["auc_1"], test["auc_2"], forget_loss(model, dataset, removal)]

    at_o, at_r = scores(original), scores(retrain)
    print(f"{scenario} {fraction}, {removal.numel()} rows: Original AUC_0 {at_o[0]:.4f}, forget loss {at_o[3]:.4f}; "
          f"Retrain {at_r[0]:.4f}, {at_r[3]:.4f}")
    for spec in specs:
        ratios, _, corrections = spec.partition(":")
        config = UnlearnConfig(calibrated=False, corrections=int(corrections or 0),
                               ratios=None if ratios == "-" else tuple(float(r) for r in ratios.split(",")))
        result = unlearn(original, dataset, removal, config)
        at_m = scores(result.model)
        done = [(m - o) / (r - o) for m, o, r in zip(at_m, at_o, at_r)]
        print(f"  ratios {ratios}, corrections {config.corrections}: AUC completeness {done[0]:.2f} / {done[1]:.2f} / "
              f"{done[2]:.2f}, |AUC_0 - R| {abs(at_m[0] - at_r[0]):.4f}, forget completeness {done[3]:.2f}; "
              f"{result.kept_rows} rows may move")


if __name__ == "__main__":
    main(*sys.argv[1:])
