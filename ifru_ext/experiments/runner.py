"""The paper's experiment: Original vs Retrain vs unlearning methods, with a report.

For one dataset and backbone: train Original on the attacked data ``D`` and Retrain on
``D_{-r}`` (both cached as checkpoints in the output folder, so reruns only re-answer
the request), run each unlearning method of the registry on Original (a sharded method on
its own sharded Original), and score every model by test AUC_0/1/2, completeness, full-ranking
Recall@20 and NDCG@20 (docs/ARCHITECTURE.md §5) and the wall seconds of the whole request.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data import RecDataset, load_dataset
from ..evaluation import evaluate
from ..metrics import METRICS, REPORTED_RANKING, completeness
from ..models import Recommender
from ..training import TrainConfig
from ..unlearning import METHODS, ShardedRecommender, UnlearnResult, configure, unlearn
from ..unlearning.sharded import load_sharded, save_sharded, train_sharded
from .cache import calibration_estimator, reuse, trained_model
from .render import json_safe, render_markdown
from .studies import STUDIES, run_studies

__all__ = ["ExperimentSpec", "run_experiment"]

logger = logging.getLogger(__name__)

# What every model is scored by: AUC_0/1/2 and the reported ranking metrics.
SCORED = ("auc", *REPORTED_RANKING)


@dataclass
class ExperimentSpec:
    """What to run. ``dataset``: ``load_dataset`` keyword arguments (attack included)."""

    dataset: dict[str, Any]
    model: str = "mf"
    methods: tuple[str, ...] = ("ifru", "scif")
    out: Path = Path("runs/experiment")
    device: str = "cpu"
    schedule: str = "paper"
    train_overrides: dict[str, Any] = field(default_factory=dict)
    method_overrides: dict[str, Any] = field(default_factory=dict)
    studies: tuple[str, ...] = ()  # any of studies.STUDIES
    # The Original carries its calibration (one more Retrain, cached with it), fitted for the
    # estimator of the registry method ``calibrate_for``: ``ifru`` answers as after ``ifru train``.
    calibrated: bool = False
    calibrate_for: str = "ifru"

    def __post_init__(self) -> None:
        calibration_estimator(self.calibrate_for)


def _trained(path: Path, spec: ExperimentSpec, dataset: RecDataset, removal) -> tuple[Recommender, float]:
    """A trained model and its training seconds: the checkpoint at ``path`` if it fits, else a new
    run; the Original (``removal`` None) calibrated when ``spec.calibrated``."""
    config = TrainConfig.for_model(spec.model, spec.schedule, device=spec.device, **spec.train_overrides)
    return trained_model(path, spec.model, dataset, config, removal, calibrated=spec.calibrated and removal is None,
                         estimator=calibration_estimator(spec.calibrate_for))


def _trained_sharded(spec: ExperimentSpec, dataset: RecDataset, method: str,
                     original: Recommender) -> tuple[ShardedRecommender, float]:
    """The method's sharded Original: ``OUT/<method>.pt`` if it fits, else trained on D and saved.

    RecEraser partitions on pretrained MF embeddings: with the MF backbone those are the
    Original's own (``pretrain_mf`` would train the identical model); otherwise an MF is
    trained first and counted in the seconds.
    """
    path = spec.out / f"{method}.pt"
    reused = reuse(path, lambda: load_sharded(path, dataset, device=spec.device))
    if reused is not None:
        return reused
    config = TrainConfig.for_model(spec.model, spec.schedule, device=spec.device, **spec.train_overrides)
    pretrained = None
    if method == "receraser" and original.name == "mf":
        table = original.embedding.detach()
        pretrained = (table[: dataset.num_users], table[dataset.num_users:])
    model, seconds = train_sharded(dataset, spec.model, method, config=config, seed=config.seed, pretrained=pretrained)
    save_sharded(path, model, dataset, meta={"seconds": seconds})
    return model, seconds


def _method_configs(spec: ExperimentSpec) -> dict[str, Any]:
    """Each requested method's config with the ``method_overrides`` its config has; an override
    that no requested method takes is a ValueError."""
    overrides = dict(spec.method_overrides)
    configs, used = {}, set()
    for name in spec.methods:
        fields = {f.name for f in dataclasses.fields(METHODS[name].config)}
        applicable = {key: value for key, value in overrides.items() if key in fields}
        used.update(applicable)
        configs[name] = configure(name, applicable)
    unused = sorted(set(overrides) - used)
    if unused:
        raise ValueError(f"no requested method ({', '.join(spec.methods)}) has the option(s) {', '.join(unused)}")
    return configs


def _method_entry(result: UnlearnResult, aucs: dict, original: dict, retrain: dict, retrain_seconds: float) -> dict:
    entry: dict[str, Any] = {key: aucs["test"][key] for key in (*METRICS, *REPORTED_RANKING)}
    entry["valid"] = aucs["valid"]
    entry["completeness"] = completeness({k: aucs["test"][k] for k in METRICS}, original, retrain)
    entry["seconds"] = result.seconds
    entry["speedup_vs_retrain"] = retrain_seconds / result.seconds if result.seconds > 0 else math.inf
    entry["phases"] = result.phases
    entry["kept_rows"] = result.kept_rows
    if result.solve is not None:
        entry["solver"] = asdict(result.solve)
    return entry


def run_experiment(spec: ExperimentSpec) -> dict[str, Any]:
    """Run everything and write ``report.json`` and ``report.md`` into ``spec.out``; returns the report."""
    unknown = [m for m in spec.methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}: choose from {', '.join(METHODS)}")
    configs = _method_configs(spec)
    unknown = [s for s in spec.studies if s not in STUDIES]
    if unknown:
        raise ValueError(f"unknown studies {unknown}: choose from {list(STUDIES)}")
    spec.out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(**spec.dataset)
    if dataset.removal.numel() == 0:
        raise ValueError("the removal set is empty: set a positive attack fraction")
    original_model, original_seconds = _trained(spec.out / "original.pt", spec, dataset, None)
    retrain_model, retrain_seconds = _trained(spec.out / "retrain.pt", spec, dataset, dataset.removal)

    original_aucs, retrain_aucs = (evaluate(model, dataset, metrics=SCORED) for model in (original_model, retrain_model))
    original_test = {k: original_aucs["test"][k] for k in METRICS}
    retrain_test = {k: retrain_aucs["test"][k] for k in METRICS}
    methods: dict[str, Any] = {
        "original": {**original_aucs["test"], "valid": original_aucs["valid"], "train_seconds": original_seconds},
        "retrain": {**retrain_aucs["test"], "valid": retrain_aucs["valid"], "seconds": retrain_seconds,
                    "completeness": {k: 1.0 for k in METRICS}, "speedup_vs_retrain": 1.0},
    }
    for name in spec.methods:
        if name == "retrain":  # the Retrain checkpoint above is the gold standard itself
            continue
        sharded = METHODS[name].model_kind is ShardedRecommender
        if sharded:
            model, train_seconds = _trained_sharded(spec, dataset, name, original_model)
            before = evaluate(model, dataset, splits=("test",))["test"]
        else:
            model = original_model
        result = unlearn(model, dataset, dataset.removal, configs[name], method=name)
        aucs = evaluate(result.model, dataset, metrics=SCORED)
        methods[name] = _method_entry(result, aucs, original_test, retrain_test, retrain_seconds)
        if sharded:
            # What the partitioned architecture costs before any request (the paper's Fig. 4).
            methods[name]["before_unlearning"] = {k: before[k] for k in METRICS}
            methods[name]["train_seconds"] = train_seconds
            methods[name]["shards_retrained"] = methods[name].pop("kept_rows")
        logger.info("%s: test AUC_0 %.4f, %.2f s", name, methods[name]["auc_0"], result.seconds)

    studies = run_studies(spec.studies, spec.out, original_model, dataset, configure("ifru", spec.method_overrides),
                          original_test, retrain_test, retrain_seconds, methods)
    report = {
        "dataset": str(spec.dataset.get("name_or_path", "bookcrossing")),
        "model": spec.model,
        "removal_fraction": spec.dataset.get("attack_fraction"),
        "device": spec.device,
        "torch": torch.__version__,
        # Settings that differ from the schedule (apply to every model trained in this run).
        "train_overrides": dict(spec.train_overrides),
        "stats": {k: v for k, v in dataset.stats().items() if isinstance(v, (int, float, str)) or v is None},
        # The Original's fitted scale (None: not calibrated, or the calibration refused) and its estimator.
        "calibration": {"scale": original_model.trace.calibration, "for": spec.calibrate_for} if spec.calibrated else None,
        "methods": methods,
        "studies": studies,
    }
    (spec.out / "report.json").write_text(json.dumps(json_safe(report), indent=2) + "\n")
    (spec.out / "report.md").write_text(render_markdown(report))
    return report
