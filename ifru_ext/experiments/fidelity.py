"""The fidelity suite: how close each method comes to Retrain, next to how close Retrain comes
to itself (docs/ARCHITECTURE.md §6).

Three kinds of request, each drawn with a seed:

- ``poison``: the paper's setting, the labels of a ``fraction`` of the training rows flipped
  and those rows removed;
- ``genuine``: a random ``fraction`` of the (clean) training rows, a deletion request;
- ``users``: every row of a random ``fraction`` of the users, users leaving.

For each draw: Original (trained on ``D``), Retrain (on ``D_{-r}``, the same seed and
settings) and a second Retrain with the next seed, the noise floor; then every method on
Original. Each model is scored by test AUC_0/1/2, full-ranking Recall@20 and NDCG@20, the mean
loss on the removed rows with the
labels it was trained on (forget loss) and the loss-based membership-inference AUC of the
removed rows against the test rows. Completeness is ``(M − O)/(R − O)`` for AUCs and forget
loss; a draw whose Original→Retrain change of the forget loss is within the noise floor
(``|R − O| ≤ |R₂ − R|``) is reported but not judged.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import RecDataset, load_dataset
from ..evaluation import evaluate, forget_loss, membership_auc
from ..metrics import METRICS, REPORTED_RANKING, completeness
from ..models import Recommender
from ..training import TrainConfig
from ..unlearning import METHODS, unlearn
from .cache import calibration_estimator, trained_model
from .render import calibration_sentence, json_safe, metric_label, number

__all__ = ["SCENARIOS", "FidelitySpec", "render_fidelity", "render_matrix", "request_rows", "run_fidelity"]

logger = logging.getLogger(__name__)

SCENARIOS = ("poison", "genuine", "users")


@dataclass
class FidelitySpec:
    """What to run. ``dataset``: ``load_dataset`` keyword arguments (no attack: the scenario
    sets it); ``fraction``: of the training rows (poison, genuine) or of the users (users);
    ``seeds``: one request draw each; ``calibrated``: the Originals carry their calibration
    (``unlearning.calibrate``: one more Retrain per Original, cached with it), fitted for the
    estimator of the registry method ``calibrate_for`` (a method answering with another
    estimator answers uncalibrated, with a warning)."""

    dataset: dict[str, Any]
    model: str = "mf"
    scenario: str = "genuine"
    fraction: float = 0.02
    seeds: tuple[int, ...] = (1,)
    methods: tuple[str, ...] = ("ifru",)
    out: Path = Path("runs/fidelity")
    device: str = "cpu"
    schedule: str = "paper"
    train_overrides: dict[str, Any] = field(default_factory=dict)
    calibrated: bool = False
    calibrate_for: str = "ifru"

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}; choose one of {', '.join(SCENARIOS)}")
        if not 0.0 < self.fraction < 1.0:
            raise ValueError(f"fraction must lie in (0, 1), got {self.fraction}")
        unknown = [name for name in self.methods if name not in METHODS]
        if unknown:
            raise ValueError(f"unknown methods {unknown}: choose from {', '.join(METHODS)}")
        if not self.seeds:
            raise ValueError("fidelity needs at least one seed")
        calibration_estimator(self.calibrate_for)


def request_rows(dataset: RecDataset, scenario: str, fraction: float, seed: int) -> torch.Tensor:
    """The training rows (sorted int64) of a ``genuine`` or ``users`` request drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    n = len(dataset.train)
    if scenario == "genuine":
        rows = rng.choice(n, size=max(1, round(fraction * n)), replace=False)
    elif scenario == "users":
        leaving = rng.permutation(dataset.num_users)[: max(1, round(fraction * dataset.num_users))]
        rows = np.flatnonzero(np.isin(dataset.train.users.numpy(), leaving))
    else:
        raise ValueError(f"request_rows draws genuine or users requests, not {scenario!r}")
    return torch.from_numpy(np.sort(rows).astype(np.int64))


def _train_config(spec: FidelitySpec, seed_offset: int = 0) -> TrainConfig:
    config = TrainConfig.for_model(spec.model, spec.schedule, device=spec.device, **spec.train_overrides)
    return dataclasses.replace(config, seed=config.seed + seed_offset)


def _trained(path: Path, spec: FidelitySpec, dataset: RecDataset, removal, seed_offset: int = 0) -> tuple[Recommender, float]:
    return trained_model(path, spec.model, dataset, _train_config(spec, seed_offset), removal,
                         calibrated=spec.calibrated and removal is None, estimator=calibration_estimator(spec.calibrate_for))


def _scores(model, dataset: RecDataset, removal: torch.Tensor) -> dict[str, Any]:
    return {**evaluate(model, dataset, splits=("test",), metrics=("auc", *REPORTED_RANKING))["test"],
            "forget_loss": forget_loss(model, dataset, removal),
            "mia": membership_auc(model, dataset, removal)}


def _draw(spec: FidelitySpec, seed: int) -> dict[str, Any]:
    """One request: Original, Retrain, the noise-floor Retrain and every method, scored."""
    if spec.scenario == "poison":
        dataset = load_dataset(**{**spec.dataset, "attack_fraction": spec.fraction, "attack_seed": seed})
        original, _ = _trained(spec.out / f"original-poison-{spec.fraction:g}-{seed}.pt", spec, dataset, None)
    else:
        clean = load_dataset(**{**spec.dataset, "attack_fraction": 0.0})
        original, _ = _trained(spec.out / "original-clean.pt", spec, clean, None)
        dataset = dataclasses.replace(clean, removal=request_rows(clean, spec.scenario, spec.fraction, seed))
    removal = dataset.removal
    cell = f"{spec.scenario}-{spec.fraction:g}-{seed}"
    retrain, retrain_seconds = _trained(spec.out / f"retrain-{cell}.pt", spec, dataset, removal)
    floor, _ = _trained(spec.out / f"retrain2-{cell}.pt", spec, dataset, removal, seed_offset=1)
    models: dict[str, Any] = {
        "original": _scores(original, dataset, removal),
        "retrain": {**_scores(retrain, dataset, removal), "seconds": retrain_seconds},
        "retrain-2": _scores(floor, dataset, removal),
    }
    for name in spec.methods:
        result = unlearn(original, dataset, removal, method=name)
        entry = _scores(result.model, dataset, removal)
        moved = (result.model.embedding.detach() - original.embedding.detach()).norm()
        entry.update(seconds=result.seconds, speedup=retrain_seconds / max(result.seconds, 1e-9),
                     update_norm=float(moved), unchanged=bool(moved == 0),
                     solve=dataclasses.asdict(result.solve) if result.solve else None)
        models[name] = entry
        logger.info("%s %s: forget loss %.4f (O %.4f, R %.4f), AUC_0 %.4f (R %.4f), %.2f s", cell, name,
                    entry["forget_loss"], models["original"]["forget_loss"], models["retrain"]["forget_loss"],
                    entry["auc_0"], models["retrain"]["auc_0"], result.seconds)
    o, r = models["original"], models["retrain"]
    floor_gap = abs(models["retrain-2"]["forget_loss"] - r["forget_loss"])
    for entry in models.values():
        entry["completeness"] = completeness({k: entry[k] for k in METRICS}, {k: o[k] for k in METRICS},
                                             {k: r[k] for k in METRICS})
        gap = r["forget_loss"] - o["forget_loss"]
        entry["forget_completeness"] = (entry["forget_loss"] - o["forget_loss"]) / gap if gap != 0 else math.nan
        entry["auc_gap"] = abs(entry["auc_0"] - r["auc_0"])
    noise_floor = {"auc_0": models["retrain-2"]["auc_gap"], "forget_loss": floor_gap,
                   **{key: abs(models["retrain-2"][key] - r[key]) for key in REPORTED_RANKING}}
    return {"seed": seed, "removed": int(removal.numel()), "judged": abs(r["forget_loss"] - o["forget_loss"]) > floor_gap,
            "noise_floor": noise_floor, "calibration": original.trace.calibration,
            "calibrated_for": original.trace.calibrated_for, "models": models}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def run_fidelity(spec: FidelitySpec) -> dict[str, Any]:
    """Run every draw; write ``report.json`` and ``report.md`` into ``spec.out``; return the report."""
    spec.out.mkdir(parents=True, exist_ok=True)
    draws = [_draw(spec, seed) for seed in spec.seeds]
    names = ["original", "retrain", "retrain-2", *spec.methods]
    summary = {}
    for name in names:
        entries = [draw["models"][name] for draw in draws]
        judged = [draw["models"][name] for draw in draws if draw["judged"]]
        summary[name] = {
            **{key: _mean([e[key] for e in entries]) for key in (*METRICS, *REPORTED_RANKING, "forget_loss", "mia", "auc_gap")},
            "completeness": {k: _mean([e["completeness"][k] for e in entries]) for k in METRICS},
            "forget_completeness": _mean([e["forget_completeness"] for e in judged]),
            "seconds": _mean([e.get("seconds", math.nan) for e in entries]),
            "speedup": _mean([e.get("speedup", math.nan) for e in entries]),
            "unchanged": any(e.get("unchanged", False) for e in entries),
        }
    report = {
        "dataset": str(spec.dataset.get("name_or_path", "bookcrossing")), "model": spec.model,
        "scenario": spec.scenario, "fraction": spec.fraction, "seeds": list(spec.seeds), "device": spec.device,
        "torch": torch.__version__, "train_overrides": dict(spec.train_overrides), "calibrated": spec.calibrated,
        "calibrate_for": spec.calibrate_for,
        "noise_floor": {key: _mean([d["noise_floor"][key] for d in draws])
                        for key in ("auc_0", "forget_loss", *REPORTED_RANKING)},
        "judged_draws": sum(d["judged"] for d in draws), "summary": summary, "draws": draws,
    }
    (spec.out / "report.json").write_text(json.dumps(json_safe(report), indent=2) + "\n")
    (spec.out / "report.md").write_text(render_fidelity(report))
    return report


def _calibration_line(report: dict[str, Any]) -> str:
    scales = sorted({d["calibration"] for d in report["draws"] if d.get("calibration") is not None})
    return " " + calibration_sentence("Originals", scales, report.get("calibrate_for", "ifru"))


def render_fidelity(report: dict[str, Any]) -> str:
    """The suite's table: per model the means over draws."""
    floor = report["noise_floor"]
    lines = [
        f"# Fidelity: {report['model']} on {report['dataset']} — {report['scenario']} {report['fraction']:g}",
        "",
        f"Draws (seeds) {report['seeds']}, {report['judged_draws']} judged on the forget loss (the rest change it by "
        f"less than the Retrain noise floor); device {report['device']}, torch {report['torch']}. Noise floor "
        f"(Retrain vs Retrain, next seed): |ΔAUC_0| {number(floor['auc_0'])}, |Δ forget loss| {number(floor['forget_loss'])}"
        + "".join(f", |Δ {metric_label(key)}| {number(floor.get(key))}" for key in REPORTED_RANKING) + "."
        + _calibration_line(report),
        "",
        "| model | AUC_0 | \\|AUC_0 − R\\| | " + " | ".join(map(metric_label, REPORTED_RANKING))
        + " | completeness AUC 0 / 1 / 2 | forget loss | forget completeness | MIA AUC | seconds | speed-up | unchanged |",
        "|---|---|---|" + "---|" * len(REPORTED_RANKING) + "---|---|---|---|---|---|---|",
    ]
    for name, entry in report["summary"].items():
        comp = " / ".join(number(entry["completeness"][k], 2) for k in METRICS)
        speedup = entry["speedup"]
        lines.append(
            f"| {name} | {number(entry['auc_0'])} | {number(entry['auc_gap'])} | "
            + "".join(f"{number(entry.get(key))} | " for key in REPORTED_RANKING)
            + f"{comp} | {number(entry['forget_loss'])} "
            f"| {number(entry['forget_completeness'], 2)} | {number(entry['mia'])} | {number(entry['seconds'], 2)} "
            f"| {number(speedup, 0) + '×' if speedup == speedup else ''} | {'**yes**' if entry['unchanged'] else ''} |")
    return "\n".join(lines) + "\n"


def render_matrix(reports: list[dict[str, Any]], method: str = "ifru") -> str:
    """One line per report (scenario × fraction) for ``method``, next to the Retrain noise floor:
    forget-loss completeness (judged draws), ``|AUC_0 − R|``, AUC completeness, MIA vs Retrain's,
    Recall@20 and NDCG@20 vs Retrain's and the second Retrain's, seconds and speed-up over Retrain."""
    lines = ["| scenario | fraction | draws (judged) | removed rows | forget completeness | \\|AUC_0 − R\\| "
             "| noise floor \\|ΔAUC_0\\| | AUC completeness 0 / 1 / 2 | MIA (Retrain) | "
             + " | ".join(f"{metric_label(key)} (Retrain / Retrain₂)" for key in REPORTED_RANKING)
             + " | seconds | speed-up |",
             "|---|---|---|---|---|---|---|---|---|" + "---|" * len(REPORTED_RANKING) + "---|---|"]
    for report in reports:
        entry, retrain = report["summary"][method], report["summary"]["retrain"]
        floor = report["summary"].get("retrain-2", {})
        ranked = "".join(f"{number(entry.get(key))} ({number(retrain.get(key))} / {number(floor.get(key))}) | "
                         for key in REPORTED_RANKING)
        removed = _mean([draw["removed"] for draw in report["draws"]])
        comp = " / ".join(number(entry["completeness"][k], 2) for k in METRICS)
        lines.append(
            f"| {report['scenario']} | {report['fraction']:g} | {len(report['draws'])} ({report['judged_draws']}) "
            f"| {removed:.0f} | {number(entry['forget_completeness'], 2)} | {number(entry['auc_gap'], 4)} "
            f"| {number(report['noise_floor']['auc_0'], 4)} | {comp} | {number(entry['mia'], 3)} ({number(retrain['mia'], 3)}) "
            f"| {ranked}{number(entry['seconds'], 2)} | {number(entry['speedup'], 0)}× |")
    return "\n".join(lines) + "\n"
