"""The paper's experiment: Original vs Retrain vs unlearning methods, with a report.

For one dataset and backbone: train Original on the attacked data ``D`` and Retrain on
``D_{-r}`` (both cached as checkpoints in the output folder, so reruns only re-answer
the request), run each unlearning method on Original, and score every model by test
AUC_0/1/2, completeness (DESIGN.md §6) and the wall seconds of the whole request.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from .checkpoint import load_checkpoint, save_checkpoint
from .data import RecDataset, load_dataset
from .metrics import completeness, evaluate_model
from .models import Recommender, build_model
from .train import TrainConfig, train
from . import sharded, studies
from .unlearn import UnlearnConfig, UnlearnResult, unlearn
from .warmstart import AltEraserConfig, FinetuneConfig

logger = logging.getLogger(__name__)

# Named unlearning methods; "retrain" is the trained Retrain checkpoint itself.
METHODS: dict[str, UnlearnConfig | FinetuneConfig | AltEraserConfig] = {
    # ours: exact Hessian, exact spillover, new graph; iterate picked by validation AUC
    # (solver Adam for MF, CG for LightGCN)
    "ifru": UnlearnConfig(),
    "ifru-adam": UnlearnConfig(solver="adam"),
    "ifru-reference": UnlearnConfig.preset("reference"),  # the authors' released-code choices
    "ifru-cg": UnlearnConfig(solver="cg", validation_select=False),  # the exact Newton step
    "ifru-cg-val": UnlearnConfig(solver="cg"),  # CG iterate picked by validation AUC
    "ifru-no-spillover": UnlearnConfig(spillover=False),
    "ifru-no-pruning": UnlearnConfig(ratios=(1.0, 1.0, 1.0)),
    "scif": UnlearnConfig(method="scif"),
    "finetune": FinetuneConfig(),  # Adam on D_{-r} from the trained model
    "alteraser": AltEraserConfig(),  # alternating batched block-Newton steps on L_{-r}
    # AltEraser on L_{-r} tilted so the trained model is stationary, plus a proximal term (ours)
    "alteraser-anchored": AltEraserConfig(objective="anchored"),
}
# Partition-based methods (SISA, RecEraser): their own Original, trained on D and cached in OUT;
# the request retrains the shards holding removed rows, then the aggregator.
SHARDED_METHODS = sharded.METHODS
METRICS = ("auc_0", "auc_1", "auc_2")
STUDIES = ("pruning", "spillover", "timing", "harmless")
# Dataset settings a sweep may vary: one whole experiment per value (own Original and Retrain).
SWEEPS = {"attack_seed": int, "attack_fraction": float}


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
    studies: tuple[str, ...] = ()  # any of STUDIES


def _reuse(path: Path, load: Callable[[], tuple[Any, dict[str, Any]]]) -> tuple[Any, float] | None:
    """``(model, training seconds)`` from ``load()`` of the file at ``path`` if it fits this run, else None."""
    if not path.exists():
        return None
    try:
        model, meta = load()
        logger.info("reusing %s (trained in %.1f s)", path, meta["seconds"])
        return model, float(meta["seconds"])
    except (ValueError, KeyError) as error:
        logger.warning("not reusing %s: %s", path, error)
        return None


def _load_checkpoint(path: Path, spec: ExperimentSpec, dataset: RecDataset) -> tuple[Recommender, dict[str, Any]]:
    checkpoint = load_checkpoint(path, dataset, expected_model=spec.model, device=spec.device)
    return checkpoint.model, checkpoint.meta


def _trained(path: Path, spec: ExperimentSpec, dataset: RecDataset, exclude) -> tuple[Recommender, float]:
    """A trained model and its training seconds: the checkpoint at ``path`` if it fits, else a new run."""
    reused = _reuse(path, lambda: _load_checkpoint(path, spec, dataset))
    if reused is not None:
        return reused
    config = TrainConfig.for_model(spec.model, spec.schedule, device=spec.device, **spec.train_overrides)
    model = build_model(spec.model, dataset.num_users, dataset.num_items, seed=config.seed)
    result = train(model, dataset, config, exclude=exclude, progress=False)
    save_checkpoint(path, model, dataset, exclude, meta={"seconds": result.seconds, "best_epoch": result.best_epoch,
                                                         "epochs": result.epochs, "train": asdict(config)})
    return model, result.seconds


def _trained_sharded(spec: ExperimentSpec, dataset: RecDataset, method: str,
                     original: Recommender) -> tuple[sharded.ShardedRecommender, float]:
    """The method's sharded Original: ``OUT/<method>.pt`` if it fits, else trained on D and saved.

    RecEraser partitions on pretrained MF embeddings: with the MF backbone those are the
    Original's own (``pretrain_mf`` would train the identical model); otherwise an MF is
    trained first and counted in the seconds.
    """
    path = spec.out / f"{method}.pt"
    reused = _reuse(path, lambda: sharded.load_sharded(path, dataset, device=spec.device))
    if reused is not None:
        return reused
    config = TrainConfig.for_model(spec.model, spec.schedule, device=spec.device, **spec.train_overrides)
    pretrained = None
    if method == "receraser" and original.name == "mf":
        table = original.embedding.detach()
        pretrained = (table[: dataset.num_users], table[dataset.num_users:])
    model, seconds = sharded.train_sharded(dataset, spec.model, method, config=config, seed=config.seed,
                                           pretrained=pretrained)
    sharded.save_sharded(path, model, dataset, meta={"seconds": seconds})
    return model, seconds


def _method_entry(result: UnlearnResult, aucs: dict, original: dict, retrain: dict, retrain_seconds: float) -> dict:
    entry: dict[str, Any] = {key: aucs["test"][key] for key in METRICS}
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
    known = [*METHODS, *SHARDED_METHODS, "retrain"]
    unknown = [m for m in spec.methods if m not in known]
    if unknown:
        raise ValueError(f"unknown methods {unknown}: choose from {sorted(known)}")
    unknown = [s for s in spec.studies if s not in STUDIES]
    if unknown:
        raise ValueError(f"unknown studies {unknown}: choose from {list(STUDIES)}")
    spec.out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(**spec.dataset)
    if dataset.removed.numel() == 0:
        raise ValueError("the removal set is empty: set a positive attack fraction")
    original_model, original_seconds = _trained(spec.out / "original.pt", spec, dataset, None)
    retrain_model, retrain_seconds = _trained(spec.out / "retrain.pt", spec, dataset, dataset.removed)

    original_aucs, retrain_aucs = evaluate_model(original_model, dataset), evaluate_model(retrain_model, dataset)
    original_test = {k: original_aucs["test"][k] for k in METRICS}
    retrain_test = {k: retrain_aucs["test"][k] for k in METRICS}
    methods: dict[str, Any] = {
        "original": {**original_test, "valid": original_aucs["valid"], "train_seconds": original_seconds},
        "retrain": {**retrain_test, "valid": retrain_aucs["valid"], "seconds": retrain_seconds,
                    "completeness": {k: 1.0 for k in METRICS}, "speedup_vs_retrain": 1.0},
    }
    for name in spec.methods:
        if name == "retrain":
            continue
        if name in SHARDED_METHODS:
            model, train_seconds = _trained_sharded(spec, dataset, name, original_model)
            before = evaluate_model(model, dataset, splits=("test",))["test"]
            result = unlearn(model, dataset, dataset.removed)
        else:
            config = METHODS[name]
            if isinstance(config, UnlearnConfig):
                config = replace(config, **spec.method_overrides)
            result = unlearn(original_model, dataset, dataset.removed, config)
        aucs = evaluate_model(result.model, dataset)
        methods[name] = _method_entry(result, aucs, original_test, retrain_test, retrain_seconds)
        if name in SHARDED_METHODS:
            # What the partitioned architecture costs before any request (the paper's Fig. 4).
            methods[name]["before_unlearning"] = {k: before[k] for k in METRICS}
            methods[name]["train_seconds"] = train_seconds
            methods[name]["shards_retrained"] = methods[name].pop("kept_rows")
        logger.info("%s: test AUC_0 %.4f, %.2f s", name, methods[name]["auc_0"], result.seconds)

    studies = _run_studies(spec, original_model, dataset, original_test, retrain_test, retrain_seconds, methods)
    report = {
        "dataset": str(spec.dataset.get("name_or_path", "bookcrossing")),
        "model": spec.model,
        "removal_fraction": spec.dataset.get("attack_fraction"),
        "device": spec.device,
        "torch": torch.__version__,
        # Settings that differ from the schedule (apply to every model trained in this run).
        "train_overrides": dict(spec.train_overrides),
        "stats": {k: v for k, v in dataset.stats().items() if isinstance(v, (int, float, str)) or v is None},
        "methods": methods,
        "studies": studies,
    }
    (spec.out / "report.json").write_text(json.dumps(json_safe(report), indent=2) + "\n")
    (spec.out / "report.md").write_text(render_markdown(report))
    return report


def _run_studies(spec: ExperimentSpec, original, dataset: RecDataset, original_test, retrain_test,
                 retrain_seconds: float, methods: dict[str, Any]) -> dict[str, Any]:
    """The requested in-depth studies, with their figures written next to the report."""
    base = replace(METHODS["ifru"], **spec.method_overrides)
    results: dict[str, Any] = {}
    if "pruning" in spec.studies:
        results["pruning"] = studies.pruning_study(original, dataset, base, original_test, retrain_test)
        studies.plot_pruning(results["pruning"], spec.out / "pruning.png")
    if "spillover" in spec.studies and original.num_layers > 0:
        results["spillover"] = studies.spillover_study(original, dataset, base, original_test, retrain_test)
        bars = {"Original": original_test, "Retrain": retrain_test}
        bars.update({f"IFRU {'with' if r['spillover'] else 'without'} spillover": r for r in results["spillover"]})
        studies.plot_bars(bars, spec.out / "spillover.png", "Fig. 6")
    if "timing" in spec.studies:
        results["timing"] = studies.timing_study(original, dataset, base)
        studies.plot_timing(results["timing"], retrain_seconds, spec.out / "timing.png")
    if "harmless" in spec.studies:
        results["harmless"] = studies.harmlessness_study(original, dataset, base)
        # Unlearning nothing leaves every model as trained: a sharded model stays at its own Original.
        bars = {"Original": original_test, "Retrain": retrain_test, "IFRU (empty set)": results["harmless"]["after"]}
        bars.update({f"{name} (empty set)": entry["before_unlearning"] for name, entry in methods.items()
                     if "before_unlearning" in entry})
        studies.plot_bars(bars, spec.out / "harmless.png", "Fig. 4")
    return results


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
    studies.plot_sweep(summary, spec.out / "sweep.png")
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


def render_sweep(summary: dict[str, Any]) -> str:
    """Per value: AUC_0/1/2, completeness and seconds of each method; then completeness mean ± std."""
    key, values = summary["key"], summary["values"]
    lines = [f"# {summary['model']} on {summary['dataset']} — sweep over {key}", "",
             f"Values: {', '.join(str(v) for v in values)}; one full experiment (own Original and Retrain) each; "
             f"device {summary['device']}.", "",
             f"| method | {key} | removed rows | AUC_0 | AUC_1 | AUC_2 | completeness 0 / 1 / 2 | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for name, series in summary["methods"].items():
        for index, value in enumerate(values):
            comp = series.get("completeness")
            comp_text = " / ".join(f"{comp[m][index]:.2f}" for m in METRICS) if comp else ""
            lines.append(f"| {name} | {value} | {series['removed'][index]} | "
                         + " | ".join(f"{series[m][index]:.4f}" for m in METRICS)
                         + f" | {comp_text} | {series['seconds'][index]:.2f} |")
    lines += ["", f"## Completeness over the {len(values)} values: mean ± std", "",
              "| method | AUC_0 | AUC_1 | AUC_2 |", "|---|---|---|---|"]
    for name, series in summary["methods"].items():
        if "completeness_mean_std" in series and name != "retrain":
            lines.append(f"| {name} | " + " | ".join(f"{mean:.2f} ± {std:.2f}" for mean, std in
                                                    (series["completeness_mean_std"][m] for m in METRICS)) + " |")
    lines += ["", "![sweep](sweep.png)"]
    return "\n".join(lines) + "\n"


def json_safe(value: Any) -> Any:
    """NaN/inf → None recursively (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def render_markdown(report: dict[str, Any]) -> str:
    """The report's headline table: test AUCs, completeness, seconds and speed-up per method."""
    def number(value, digits=4):
        return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"

    stats = report["stats"]
    lines = [
        f"# {report['model']} on {report['dataset']} — removal fraction {report['removal_fraction']}",
        "",
        f"train {stats.get('train')} rows ({stats.get('users')} users, {stats.get('items')} items), "
        f"removal set {stats.get('removed')} rows; device {report['device']}, torch {report['torch']}"
        + (f"; training overrides {report['train_overrides']}" if report.get("train_overrides") else ""),
        "",
        "| method | AUC_0 | AUC_1 | AUC_2 | completeness 0 / 1 / 2 | seconds | speed-up vs Retrain | solver |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in report["methods"].items():
        comp = entry.get("completeness")
        comp_text = " / ".join(number(comp[k], 2) for k in METRICS) if comp else ""
        seconds = entry.get("seconds", entry.get("train_seconds"))
        solver = entry.get("solver")
        solver_text = f"{solver['iterations']} it, res {solver['residual']:.1e}, {solver['status']}" if solver else ""
        speedup = entry.get("speedup_vs_retrain")
        lines.append(
            f"| {name} | {number(entry['auc_0'])} | {number(entry['auc_1'])} | {number(entry['auc_2'])} | {comp_text} "
            f"| {number(seconds, 2)} | {number(speedup, 0) + '×' if speedup else ''} | {solver_text} |"
        )
    partitioned = {name: entry for name, entry in report["methods"].items() if "before_unlearning" in entry}
    if partitioned:
        lines += ["", "## Partition-based methods before the request", "",
                  "Their own Original (trained on D with the shards and aggregator); the gap to the backbone's "
                  "Original is what the architecture costs without any request (the paper's Fig. 4).", "",
                  "| method | AUC_0 | AUC_1 | AUC_2 | training seconds | shards retrained by the request |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {name} | " + " | ".join(number(entry["before_unlearning"][k]) for k in METRICS)
                  + f" | {number(entry['train_seconds'], 1)} | {entry['shards_retrained']} |"
                  for name, entry in partitioned.items()]
    lines += _render_studies(report.get("studies", {}), number)
    return "\n".join(lines) + "\n"


def _render_studies(results: dict[str, Any], number) -> list[str]:
    lines: list[str] = []
    if "pruning" in results:
        lines += ["", "## Pruning ratios (Fig. 7)", "", "| (a_0, a_1) | kept rows | AUC_0 | completeness AUC_0 | seconds |",
                  "|---|---|---|---|---|"]
        lines += [f"| ({r['a0']:.1f}, {r['a1']:.1f}) | {r['kept_rows']} | {number(r['auc_0'])} | "
                  f"{number(r['completeness']['auc_0'], 2)} | {number(r['seconds'], 2)} |" for r in results["pruning"]]
        lines += ["", "![pruning](pruning.png)"]
    if "spillover" in results:
        lines += ["", "## Spillover (Fig. 6)", "", "| spillover | AUC_0 | AUC_1 | AUC_2 | completeness 0 / 1 / 2 |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['spillover']} | {number(r['auc_0'])} | {number(r['auc_1'])} | {number(r['auc_2'])} | "
                  + " / ".join(number(r["completeness"][k], 2) for k in METRICS) + " |" for r in results["spillover"]]
        lines += ["", "![spillover](spillover.png)"]
    if "timing" in results:
        lines += ["", "## Seconds per request vs removal ratio (Table 3)", "", "| ratio | rows removed | kept rows | seconds |",
                  "|---|---|---|---|"]
        lines += [f"| {r['fraction'] * 100:g}% | {r['removed']} | {r['kept_rows']} | {number(r['seconds'], 3)} |"
                  for r in results["timing"]]
        lines += ["", "![timing](timing.png)"]
    if "harmless" in results:
        h = results["harmless"]
        lines += ["", "## Harmlessness (Fig. 4)", "",
                  f"Unlearning the empty set: parameters identical = {h['identical_parameters']}; test AUC_0 "
                  f"{number(h['before']['auc_0'])} before, {number(h['after']['auc_0'])} after."]
        lines += ["", "![harmlessness](harmless.png)"]
    return lines
