"""Sweeps: one whole experiment per value of a dataset setting (attack seed or fraction), then a
summary with mean ± std completeness (the paper's Fig. 5 for fractions)."""
from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import torch

from ..metrics import METRICS
from .plots import plot_sweep
from .render import json_safe, render_sweep
from .runner import ExperimentSpec, run_experiment

__all__ = ["SWEEPS", "run_sweep", "summarize_sweep"]

# Dataset settings a sweep may vary: one whole experiment per value (own Original and Retrain).
SWEEPS = {"attack_seed": int, "attack_fraction": float}


def run_sweep(spec: ExperimentSpec, key: str, values: list) -> dict[str, Any]:
    """One experiment per value of the dataset setting ``key`` (in ``OUT/<key>-<value>``), then a summary.

    ``attack_seed``: completeness as mean ± standard deviation over attack draws (one seed
    is noisy: the Retrain−Original gaps are a few thousandths of AUC). ``attack_fraction``:
    the paper's Fig. 5 (AUC vs removal ratio for Original, Retrain and each method) and
    Table 3's Retrain column. Writes ``sweep.json``, ``sweep.md`` and ``sweep.png``.
    """
    if key not in SWEEPS:
        raise ValueError(f"cannot sweep {key!r}: choose from {sorted(SWEEPS)}")
    if not values:
        raise ValueError(f"the sweep over {key} needs at least one value")
    values = [SWEEPS[key](value) for value in values]
    reports = [run_experiment(replace(spec, dataset={**spec.dataset, key: value}, out=spec.out / f"{key}-{value}"))
               for value in values]
    summary = summarize_sweep(key, values, reports)
    (spec.out / "sweep.json").write_text(json.dumps(json_safe(summary), indent=2) + "\n")
    (spec.out / "sweep.md").write_text(render_sweep(summary))
    plot_sweep(summary, spec.out / "sweep.png")
    return summary


def summarize_sweep(key: str, values: list, reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method: each metric, completeness and seconds as lists over ``values``, plus mean ± std."""
    methods: dict[str, Any] = {}
    for name in reports[0]["methods"]:
        entries = [report["methods"][name] for report in reports]
        series = {metric: [entry[metric] for entry in entries] for metric in METRICS}
        series["seconds"] = [entry.get("seconds", entry.get("train_seconds")) for entry in entries]
        if "completeness" in entries[0]:
            series["completeness"] = {m: [entry["completeness"][m] for entry in entries] for m in METRICS}
            series["completeness_mean_std"] = {m: _mean_std(series["completeness"][m]) for m in METRICS}
        series["removed"] = [report["stats"]["removed"] for report in reports]
        methods[name] = series
    return {"key": key, "values": values, "model": reports[0]["model"], "dataset": reports[0]["dataset"],
            "device": reports[0]["device"], "methods": methods}


def _mean_std(values: list[float]) -> tuple[float, float]:
    tensor = torch.tensor([v for v in values if v is not None and math.isfinite(v)], dtype=torch.float64)
    if tensor.numel() == 0:
        return math.nan, math.nan
    return float(tensor.mean()), float(tensor.std(unbiased=False))
