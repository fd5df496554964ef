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
# (title, this folder's cells, the earlier form's cells, the earlier file name's suffix)
GROUPS = (
    ("MF, BookCrossing, all users", HERE / "mf", REPORTS / "fidelity-mf-calibrated", ""),
    ("MF, BookCrossing, a random 25% of the users", HERE / "mf" / "users-0.25",
     REPORTS / "fidelity-mf-calibrated" / "users-0.25", ""),
    ("MF, BookCrossing, a random 50% of the users", HERE / "mf" / "users-0.5",
     REPORTS / "fidelity-mf-calibrated" / "users-0.5", ""),
    ("MF, planted:1e4", REPORTS / "fidelity-synthetic" / "mf-1e4-endpoint",
     REPORTS / "fidelity-synthetic" / "mf-1e4-corrected-linear", ""),
    ("MF, planted:1e5", REPORTS / "fidelity-synthetic" / "mf-1e5-endpoint",
     REPORTS / "fidelity-synthetic" / "mf-1e5-corrected-linear", ""),
    ("LightGCN, BookCrossing, all users", HERE / "lightgcn", REPORTS / "fidelity-lightgcn", "-calibrated"),
)


def cell(folder: Path, name: str) -> dict | None:
    path = folder / name
    return json.loads(path.read_text()) if path.exists() else None


def pair(old: dict | None, new: dict, key, digits: int = 2) -> str:
    fmt = f"{{:.{digits}f}}"
    before = "–" if old is None else fmt.format(key(old))
    return f"{before} → {fmt.format(key(new))}"


def main() -> None:
    for title, here, before, suffix in GROUPS:
        cells = sorted((json.loads(path.read_text()) for path in here.glob("*.json")),
                       key=lambda report: (ORDER[report["scenario"]], report["fraction"]))
        if not cells:
            continue
        print(f"### {title}\n")
        print("| request | draws | forget completeness | test-AUC completeness 0 / 1 / 2 | \\|AUC_0 − R\\| (floor) "
              "| Recall@20 (Retrain / Retrain₂) | speed-up |")
        print("|---|---|---|---|---|---|---|")
        for report in cells:
            name = f"{report['scenario']}-{report['fraction']:g}"
            old_report = cell(before, f"{name}{suffix}.json")
            new = report["summary"]["ifru"]
            old = None if old_report is None else old_report["summary"]["ifru"]
            retrain, second = report["summary"]["retrain"], report["summary"]["retrain-2"]
            aucs = "" if report["scenario"] != "poison" else " / ".join(
                pair(old, new, lambda s, k=k: s["completeness"][k]) for k in ("auc_0", "auc_1", "auc_2"))
            print(f"| {report['scenario']} {100 * report['fraction']:g}% | {len(report['seeds'])} "
                  f"| {pair(old, new, lambda s: s['forget_completeness'])} | {aucs} "
                  f"| {pair(old, new, lambda s: s['auc_gap'], 4)} ({report['noise_floor']['auc_0']:.4f}) "
                  f"| {pair(old, new, lambda s: s['recall@20'], 4)} ({retrain['recall@20']:.4f} / {second['recall@20']:.4f}) "
                  f"| {new['speedup']:.0f}× |")
        print()


if __name__ == "__main__":
    main()
