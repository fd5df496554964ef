"""The paper's in-depth studies on a trained Original/Retrain pair (Fig. 4, 6, 7 and Table 3).

Each study returns rows (plain dicts) and can draw a PNG with matplotlib (imported lazily,
so the package works without it).
"""
from __future__ import annotations

from dataclasses import replace
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from .data import RecDataset
from .metrics import completeness, evaluate_model
from .unlearn import UnlearnConfig, unlearn

METRICS = ("auc_0", "auc_1", "auc_2")
# Fig. 7's grid: a_1 > 0 only with a_0 = 1 ("start pruning 0-hop rows only once all 1-hop rows are pruned").
PRUNING_GRID = [(0.2, 0.0), (0.4, 0.0), (0.6, 0.0), (0.8, 0.0), (1.0, 0.0),
                (1.0, 0.2), (1.0, 0.4), (1.0, 0.6), (1.0, 0.8), (1.0, 1.0)]
# Table 3's removal ratios of the training set.
TIMING_FRACTIONS = (0.00025, 0.0005, 0.00075, 0.001, 0.01, 0.02, 0.04, 0.08)


def _test_aucs(model, dataset: RecDataset) -> dict[str, float]:
    return evaluate_model(model, dataset, splits=("test",))["test"]


def pruning_study(original, dataset: RecDataset, base: UnlearnConfig, original_aucs, retrain_aucs,
                  grid=PRUNING_GRID) -> list[dict[str, Any]]:
    """Fig. 7: AUC_0 and seconds of the request for each pruning ratio pair (a_0, a_1)."""
    rows = []
    for ratios in grid:
        result = unlearn(original, dataset, dataset.removed, replace(base, ratios=ratios))
        aucs = _test_aucs(result.model, dataset)
        rows.append({"a0": ratios[0], "a1": ratios[1], "kept_rows": result.kept_rows, "seconds": result.seconds,
                     **aucs, "completeness": completeness(aucs, original_aucs, retrain_aucs)})
    return rows


def spillover_study(original, dataset: RecDataset, base: UnlearnConfig, original_aucs, retrain_aucs) -> list[dict[str, Any]]:
    """Fig. 6: completeness with and without the spillover term (LightGCN)."""
    rows = []
    for spillover in (True, False):
        result = unlearn(original, dataset, dataset.removed, replace(base, spillover=spillover))
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


@contextmanager
def _figure(path: Path, columns: int = 1, size: tuple[float, float] = (6, 3.5)) -> Iterator[list]:
    """Axes of a new figure (Agg backend) saved to ``path`` when the block ends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, columns, figsize=size, squeeze=False)
    try:
        yield list(axes[0])
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)


def plot_pruning(rows: list[dict[str, Any]], path: Path) -> None:
    """Fig. 7: test AUC_0 (line) and seconds (bars) per pruning ratio pair."""
    labels = [f"({r['a0']:.1f},{r['a1']:.1f})" for r in rows]
    with _figure(path, size=(8, 3.5)) as (left,):
        left.plot(labels, [r["auc_0"] for r in rows], "o-", color="tab:blue")
        left.set_ylabel("test AUC_0", color="tab:blue")
        left.set_xlabel("pruning ratios (a_0, a_1)")
        right = left.twinx()
        right.bar(labels, [r["seconds"] for r in rows], alpha=0.3, color="tab:orange")
        right.set_ylabel("seconds per request", color="tab:orange")
        left.tick_params(axis="x", rotation=45)


def plot_timing(rows: list[dict[str, Any]], retrain_seconds: float, path: Path) -> None:
    """Table 3 as a figure: seconds of an IFRU request vs removal ratio, Retrain as a line."""
    with _figure(path) as (axis,):
        axis.plot([r["fraction"] * 100 for r in rows], [r["seconds"] for r in rows], "o-", label="IFRU request")
        axis.axhline(retrain_seconds, color="gray", linestyle="--", label="Retrain (default ratio)")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("removed share of the training set (%)")
        axis.set_ylabel("seconds")
        axis.legend()


def plot_bars(groups: dict[str, dict[str, float]], path: Path, title: str) -> None:
    """Test AUC_0/1/2 side by side for each named model (Fig. 4 harmlessness, Fig. 6 spillover)."""
    with _figure(path, columns=len(METRICS), size=(10, 3.2)) as axes:
        for axis, metric in zip(axes, METRICS):
            values = [aucs[metric] for aucs in groups.values()]
            axis.bar(list(groups), values, color=[f"C{i}" for i in range(len(groups))])
            spread = max(values) - min(values)
            axis.set_ylim(min(values) - max(spread, 0.002), max(values) + max(spread, 0.002) * 0.5)
            axis.set_title(f"{title}: test {metric.upper()}", fontsize=9)
            axis.tick_params(axis="x", rotation=30, labelsize=8)


def plot_sweep(summary: dict[str, Any], path: Path) -> None:
    """Fig. 5: each method's test AUC_0/1/2 against the swept value (removal ratio or attack seed)."""
    values = summary["values"]
    as_percent = summary["key"] == "attack_fraction"
    xs = [v * 100 for v in values] if as_percent else values
    with _figure(path, columns=len(METRICS), size=(12, 3.5)) as axes:
        for axis, metric in zip(axes, METRICS):
            for name, series in summary["methods"].items():
                axis.plot(xs, series[metric], "o-", label=name)
            axis.set_xlabel("removed share of the training set (%)" if as_percent else summary["key"])
            axis.set_title(f"test {metric.upper()}")
        axes[0].legend(fontsize=8)
