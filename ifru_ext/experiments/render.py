"""Rendering reports: strict JSON (``json_safe``) and the Markdown tables of an experiment and a sweep."""
from __future__ import annotations

import math
from typing import Any

from ..metrics import METRICS, REPORTED_RANKING

__all__ = ["json_safe", "metric_label", "number", "render_markdown", "render_sweep"]


def number(value: Any, digits: int = 4) -> str:
    """``value`` with ``digits`` decimals, or "–" for None / NaN / inf."""
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def metric_label(key: str) -> str:
    """A ranking metric's column title: ``recall@20`` → ``Recall@20``, ``ndcg@20`` → ``NDCG@20``, ``hr@10`` → ``HR@10``."""
    kind, _, k = key.partition("@")
    return f"{'Recall' if kind == 'recall' else kind.upper()}@{k}"


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


def calibration_sentence(subject: str, scales: list[float], estimator: str) -> str:
    """What a report's Original(s) ``subject`` carry: their fitted ``scales`` for ``estimator``."""
    if not scales:
        return f"{subject} not calibrated."
    return (f"{subject} calibrated for `{estimator}` (scale {', '.join(number(s, 3) for s in scales)}): its "
            "calibrated answer uses it.")


def _calibration_text(calibration: dict[str, Any] | None) -> str:
    if calibration is not None and calibration["scale"] is None:
        return ". The Original's calibration was refused (see the log): every method answers uncalibrated."
    scales = [] if calibration is None else [calibration["scale"]]
    return ". " + calibration_sentence("Original", scales, calibration["for"] if calibration else "ifru")


def render_markdown(report: dict[str, Any]) -> str:
    """The report's headline table: test AUCs, completeness, seconds and speed-up per method."""
    stats = report["stats"]
    lines = [
        f"# {report['model']} on {report['dataset']} — removal fraction {report['removal_fraction']}",
        "",
        f"train {stats.get('train')} rows ({stats.get('users')} users, {stats.get('items')} items), "
        f"removal set {stats.get('removed')} rows; device {report['device']}, torch {report['torch']}"
        + (f"; training overrides {report['train_overrides']}" if report.get("train_overrides") else "")
        + _calibration_text(report.get("calibration")),
        "",
        "| method | AUC_0 | AUC_1 | AUC_2 | " + " | ".join(map(metric_label, REPORTED_RANKING))
        + " | completeness 0 / 1 / 2 | seconds | speed-up vs Retrain | solver |",
        "|---|---|---|---|" + "---|" * len(REPORTED_RANKING) + "---|---|---|---|",
    ]
    for name, entry in report["methods"].items():
        comp = entry.get("completeness")
        comp_text = " / ".join(number(comp[k], 2) for k in METRICS) if comp else ""
        seconds = entry.get("seconds", entry.get("train_seconds"))
        solver = entry.get("solver")
        solver_text = f"{solver['iterations']} it, res {solver['residual']:.1e}, {solver['status']}" if solver else ""
        speedup = entry.get("speedup_vs_retrain")
        lines.append(
            f"| {name} | {number(entry['auc_0'])} | {number(entry['auc_1'])} | {number(entry['auc_2'])} | "
            + "".join(f"{number(entry.get(key))} | " for key in REPORTED_RANKING) + f"{comp_text} "
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
    lines += _render_studies(report.get("studies", {}))
    return "\n".join(lines) + "\n"


def _render_studies(results: dict[str, Any]) -> list[str]:
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
