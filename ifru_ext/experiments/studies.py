"""The paper's in-depth studies on a trained Original/Retrain pair (Fig. 4, 6, 7 and Table 3).

Each study returns rows (plain dicts); ``run_studies`` runs the requested ones and draws
their figures (``plots``).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..data import RecDataset
from ..evaluation import evaluate
from ..metrics import completeness
from ..unlearning import UnlearnConfig, unlearn
from .plots import plot_bars, plot_pruning, plot_timing

__all__ = ["STUDIES", "harmlessness_study", "pruning_study", "run_studies", "spillover_study", "timing_study"]

STUDIES = ("pruning", "spillover", "timing", "harmless")
# Fig. 7's grid: a_1 > 0 only with a_0 = 1 ("start pruning 0-hop rows only once all 1-hop rows are pruned").
PRUNING_GRID = [(0.2, 0.0), (0.4, 0.0), (0.6, 0.0), (0.8, 0.0), (1.0, 0.0),
                (1.0, 0.2), (1.0, 0.4), (1.0, 0.6), (1.0, 0.8), (1.0, 1.0)]
# Table 3's removal ratios of the training set.
TIMING_FRACTIONS = (0.00025, 0.0005, 0.00075, 0.001, 0.01, 0.02, 0.04, 0.08)


def _test_aucs(model, dataset: RecDataset) -> dict[str, float]:
    return evaluate(model, dataset, splits=("test",))["test"]


def pruning_study(original, dataset: RecDataset, base: UnlearnConfig, original_aucs, retrain_aucs,
                  grid=PRUNING_GRID) -> list[dict[str, Any]]:
    """Fig. 7: AUC_0 and seconds of the request for each pruning ratio pair (a_0, a_1)."""
    rows = []
    for ratios in grid:
        result = unlearn(original, dataset, dataset.removal, replace(base, ratios=ratios))
        aucs = _test_aucs(result.model, dataset)
        rows.append({"a0": ratios[0], "a1": ratios[1], "kept_rows": result.kept_rows, "seconds": result.seconds,
                     **aucs, "completeness": completeness(aucs, original_aucs, retrain_aucs)})
    return rows


def spillover_study(original, dataset: RecDataset, base: UnlearnConfig, original_aucs, retrain_aucs) -> list[dict[str, Any]]:
    """Fig. 6: completeness with and without the spillover term (LightGCN)."""
    rows = []
    for spillover in (True, False):
        result = unlearn(original, dataset, dataset.removal, replace(base, spillover=spillover))
        aucs = _test_aucs(result.model, dataset)
        rows.append({"spillover": spillover, **aucs, "seconds": result.seconds,
                     "completeness": completeness(aucs, original_aucs, retrain_aucs)})
    return rows


def timing_study(original, dataset: RecDataset, base: UnlearnConfig, fractions=TIMING_FRACTIONS,
                 seed: int = 0) -> list[dict[str, Any]]:
    """Table 3: seconds of a whole IFRU request for random removal sets of each size."""
    generator = torch.Generator().manual_seed(seed)
    n = len(dataset.train)
    rows = []
    for fraction in fractions:
        removal = torch.randperm(n, generator=generator)[: max(1, round(fraction * n))]
        result = unlearn(original, dataset, removal, base)
        rows.append({"fraction": fraction, "removed": int(removal.numel()), "seconds": result.seconds,
                     "kept_rows": result.kept_rows, "phases": result.phases})
    return rows


def harmlessness_study(original, dataset: RecDataset, base: UnlearnConfig) -> dict[str, Any]:
    """Fig. 4: unlearning the empty set must leave the model (and so every metric) unchanged."""
    result = unlearn(original, dataset, torch.zeros(0, dtype=torch.long), base)
    return {"identical_parameters": bool(torch.equal(result.model.embedding, original.embedding)),
            "before": _test_aucs(original, dataset), "after": _test_aucs(result.model, dataset)}


def run_studies(names: tuple[str, ...], out: Path, original, dataset: RecDataset, base: UnlearnConfig,
                original_test, retrain_test, retrain_seconds: float, methods: dict[str, Any]) -> dict[str, Any]:
    """The studies ``names`` (of ``STUDIES``) on Original with IFRU config ``base``, figures
    written into ``out``; ``methods`` (the report's entries) adds the sharded methods' Fig. 4 bars."""
    results: dict[str, Any] = {}
    if "pruning" in names:
        results["pruning"] = pruning_study(original, dataset, base, original_test, retrain_test)
        plot_pruning(results["pruning"], out / "pruning.png")
    if "spillover" in names and original.num_layers > 0:
        results["spillover"] = spillover_study(original, dataset, base, original_test, retrain_test)
        bars = {"Original": original_test, "Retrain": retrain_test}
        bars.update({f"IFRU {'with' if r['spillover'] else 'without'} spillover": r for r in results["spillover"]})
        plot_bars(bars, out / "spillover.png", "Fig. 6")
    if "timing" in names:
        results["timing"] = timing_study(original, dataset, base)
        plot_timing(results["timing"], retrain_seconds, out / "timing.png")
    if "harmless" in names:
        results["harmless"] = harmlessness_study(original, dataset, base)
        # Unlearning nothing leaves every model as trained: a sharded model stays at its own Original.
        bars = {"Original": original_test, "Retrain": retrain_test, "IFRU (empty set)": results["harmless"]["after"]}
        bars.update({f"{name} (empty set)": entry["before_unlearning"] for name, entry in methods.items()
                     if "before_unlearning" in entry})
        plot_bars(bars, out / "harmless.png", "Fig. 4")
    return results
