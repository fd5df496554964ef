"""Print this folder's side-by-side tables: the default `ifru` (each segment's step linearised; the
committed matrix, ../) next to `ifru-nonlinear` (each segment's step solved as its nonlinear
equation by three Newton steps; this folder), each calibrated for itself, on the same requests,
Originals and Retrains (a cell whose Retrain's forget loss differs from the committed one is
marked "≠").

Usage: .venv/bin/python reports/fidelity-endpoint/nonlinear/tables.py
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENDPOINT = HERE.parent
SYNTHETIC = ENDPOINT.parent / "fidelity-synthetic"
# The endpoint report's table helpers (its cell order and "before → after" cells), not a copy of them.
_spec = importlib.util.spec_from_file_location("endpoint_tables", ENDPOINT / "tables.py")
endpoint_tables = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(endpoint_tables)
ORDER, pair = endpoint_tables.ORDER, endpoint_tables.pair
# (title, the default's committed cells, ifru-nonlinear's cells)
GROUPS = (
    ("MF, BookCrossing, all users", ENDPOINT / "mf", HERE / "mf"),
    ("MF, BookCrossing, a random 25% of the users", ENDPOINT / "mf" / "users-0.25", HERE / "mf" / "users-0.25"),
    ("MF, BookCrossing, a random 50% of the users", ENDPOINT / "mf" / "users-0.5", HERE / "mf" / "users-0.5"),
    ("MF, planted:1e4", SYNTHETIC / "mf-1e4-endpoint", HERE / "mf-1e4-nonlinear"),
    ("MF, planted:1e5", SYNTHETIC / "mf-1e5-endpoint", HERE / "mf-1e5-nonlinear"),
    ("LightGCN, BookCrossing, all users", ENDPOINT / "lightgcn", HERE / "lightgcn"),
    ("LightGCN, planted:1e4", SYNTHETIC / "lightgcn-1e4-endpoint", HERE / "lightgcn-1e4-nonlinear"),
    ("LightGCN, planted:1e5", SYNTHETIC / "lightgcn-1e5-endpoint", HERE / "lightgcn-1e5-nonlinear"),
)


def main() -> None:
    for title, default_folder, folder in GROUPS:
        cells = sorted((json.loads(path.read_text()) for path in folder.glob("*.json")),
                       key=lambda report: (ORDER[report["scenario"]], report["fraction"]))
        if not cells:
            continue
        print(f"### {title}\n")
        print("| request | draws | forget completeness | test-AUC completeness 0 / 1 / 2 | \\|AUC_0 − R\\| (floor) "
              "| MIA AUC (Retrain) | speed-up |")
        print("|---|---|---|---|---|---|---|")
        for report in cells:
            committed = json.loads((default_folder / f"{report['scenario']}-{report['fraction']:g}.json").read_text())
            old, new = committed["summary"]["ifru"], report["summary"]["ifru-nonlinear"]
            same = abs(committed["summary"]["retrain"]["forget_loss"] - report["summary"]["retrain"]["forget_loss"]) < 1e-6
            aucs = "" if report["scenario"] != "poison" else " / ".join(
                pair(old, new, lambda s, k=k: s["completeness"][k]) for k in ("auc_0", "auc_1", "auc_2"))
            print(f"| {report['scenario']} {100 * report['fraction']:g}%{'' if same else ' ≠'} | {len(report['seeds'])} "
                  f"| {pair(old, new, lambda s: s['forget_completeness'])} | {aucs} "
                  f"| {pair(old, new, lambda s: s['auc_gap'], 4)} ({report['noise_floor']['auc_0']:.4f}) "
                  f"| {pair(old, new, lambda s: s['mia'])} ({report['summary']['retrain']['mia']:.2f}) "
                  f"| {old['speedup']:.0f}× → {new['speedup']:.0f}× |")
        print()


if __name__ == "__main__":
    main()
