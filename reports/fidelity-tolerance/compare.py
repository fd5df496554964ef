"""The side-by-side table of this folder's cells: Retrain-2 (the noise floor), ``ifru`` at the
earlier tolerance (1e-3) and at today's default (1e-2).

Usage (from the repository root): python reports/fidelity-tolerance/compare.py
"""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent


def row(summary: dict, method: str) -> str:
    entry, auc = summary[method], summary[method]["completeness"]
    return (f'{entry["forget_completeness"]:.3f}; {auc["auc_0"]:.3f} / {auc["auc_1"]:.3f} / {auc["auc_2"]:.3f}; '
            f'{entry["auc_gap"]:.4f}; {entry["mia"]:.3f}')


def main() -> None:
    print("| cell | Retrain-2 (floor) | `ifru`, tol 1e-3 | `ifru`, tol 1e-2 (default) | seconds 1e-3 → 1e-2 |")
    print("|---|---|---|---|---|")
    for path in sorted(HERE.glob("*.json")):
        summary = json.loads(path.read_text())["summary"]
        seconds = f'{summary["ifru-tol-1e-3"]["seconds"]:.3f} → {summary["ifru"]["seconds"]:.3f}'
        print(f'| {path.stem} | {row(summary, "retrain-2")} | {row(summary, "ifru-tol-1e-3")} | {row(summary, "ifru")} | '
              f'{seconds} |')


if __name__ == "__main__":
    main()
