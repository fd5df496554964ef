"""Print the README's side-by-side tables: the default `ifru` with every term of a segment read at
its end (this folder's cells) next to the same cells answered by the earlier form (the committed
reports it replaced: same requests, Originals, Retrains and noise floors; each Original
calibrated for its own estimator).

Usage: .venv/bin/python reports/fidelity-endpoint/tables.py
"""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPORTS = HERE.parent
ORDER = {"genuine": 0, "users": 1, "poison": 2}


def plain(suffix: str = ""):
    """The earlier cell of a report: ``<scenario>-<fraction><suffix>.json``."""
    return lambda report: f"{report['scenario']}-{report['fraction']:g}{suffix}.json"


def bpr(report: dict) -> str:
    """The earlier BPR cell: ``<model>-bpr-<scenario>-<fraction>.json``."""
    return f"{report['model']}-bpr-{report['scenario']}-{report['fraction']:g}.json"


# (title, this folder's cells, the earlier form's cells, the earlier file's name for a report)
GROUPS = (
    ("MF, BookCrossing, all users", HERE / "mf", REPORTS / "fidelity-mf-calibrated", plain()),
    ("MF, BookCrossing, a random 25% of the users", HERE / "mf" / "users-0.25",
     REPORTS / "fidelity-mf-calibrated" / "users-0.25", plain()),
    ("MF, BookCrossing, a random 50% of the users", HERE / "mf" / "users-0.5",
     REPORTS / "fidelity-mf-calibrated" / "users-0.5", plain()),
    ("MF, planted:1e4", REPORTS / "fidelity-synthetic" / "mf-1e4-endpoint",
     REPORTS / "fidelity-synthetic" / "mf-1e4-corrected-linear", plain()),
    ("MF, planted:1e5", REPORTS / "fidelity-synthetic" / "mf-1e5-endpoint",
     REPORTS / "fidelity-synthetic" / "mf-1e5-corrected-linear", plain()),
    # Run on 2026-12-03 with the new form only; the earlier form's cells are the calibrated ones.
    ("MF, planted:1e6", REPORTS / "fidelity-synthetic" / "mf-1e6-endpoint",
     REPORTS / "fidelity-synthetic" / "mf-1e6-calibrated", plain()),
    ("LightGCN, BookCrossing, all users", HERE / "lightgcn", REPORTS / "fidelity-lightgcn", plain("-calibrated")),
    ("LightGCN, planted:1e4", REPORTS / "fidelity-synthetic" / "lightgcn-1e4-endpoint",
     REPORTS / "fidelity-synthetic" / "lightgcn-1e4-calibrated", plain()),
    ("LightGCN, planted:1e5", REPORTS / "fidelity-synthetic" / "lightgcn-1e5-endpoint",
     REPORTS / "fidelity-synthetic" / "lightgcn-1e5-calibrated", plain()),
    # The earlier BPR cells were answered uncalibrated (the estimator's first BPR numbers).
    ("BPR, BookCrossing, a random 25% of the users (earlier: uncalibrated)", HERE / "bpr",
     REPORTS / "fidelity-bpr", bpr),
)


def cell(folder: Path, name: str) -> dict | None:
    path = folder / name
    return json.loads(path.read_text()) if path.exists() else None


def pair(old: dict | None, new: dict, key, digits: int = 2) -> str:
    """``before → after`` of one measure; "–" for a cell the earlier form lacks, "not judged"
    for a value the report leaves out (a change inside the Retrain noise floor)."""
    def text(summary: dict | None) -> str:
        if summary is None:
            return "–"
        value = key(summary)
        return "not judged" if value is None else f"{value:.{digits}f}"

    return f"{text(old)} → {text(new)}"


def main() -> None:
    for title, here, before, earlier_name in GROUPS:
        cells = sorted((json.loads(path.read_text()) for path in here.glob("*.json")),
                       key=lambda report: (ORDER[report["scenario"]], report["fraction"]))
        if not cells:
            continue
        mixed = len({report["model"] for report in cells}) > 1  # name the model in each row
        print(f"### {title}\n")
        print("| request | draws | forget completeness | test-AUC completeness 0 / 1 / 2 | \\|AUC_0 − R\\| (floor) "
              "| Recall@20 (Retrain / Retrain₂) | speed-up |")
        print("|---|---|---|---|---|---|---|")
        for report in cells:
            old_report = cell(before, earlier_name(report))
            new = report["summary"]["ifru"]
            old = None if old_report is None else old_report["summary"]["ifru"]
            retrain, second = report["summary"]["retrain"], report["summary"]["retrain-2"]
            aucs = "" if report["scenario"] != "poison" else " / ".join(
                pair(old, new, lambda s, k=k: s["completeness"][k]) for k in ("auc_0", "auc_1", "auc_2"))
            model = f"{report['model']}, " if mixed else ""
            print(f"| {model}{report['scenario']} {100 * report['fraction']:g}% | {len(report['seeds'])} "
                  f"| {pair(old, new, lambda s: s['forget_completeness'])} | {aucs} "
                  f"| {pair(old, new, lambda s: s['auc_gap'], 4)} ({report['noise_floor']['auc_0']:.4f}) "
                  f"| {pair(old, new, lambda s: s['recall@20'], 4)} ({retrain['recall@20']:.4f} / {second['recall@20']:.4f}) "
                  f"| {new['speedup']:.0f}× |")
        print()


if __name__ == "__main__":
    main()
