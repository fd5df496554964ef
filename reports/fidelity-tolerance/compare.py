"""The side-by-side table of this folder's cells: Retrain-2 (the noise floor), ``ifru`` at the
earlier tolerance (1e-3) and at today's default (1e-2).

Usage (from the repository root): python reports/fidelity-tolerance/compare.py
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

HERE = Path(__file__).parent
# The cell formatting of reports/fidelity-picks/compare.py (forget, AUC completeness, |AUC_0 − R|).
_SPEC = importlib.util.spec_from_file_location("picks_compare", HERE.parent / "fidelity-picks" / "compare.py")
PICKS = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(PICKS)


def row(summary: dict, method: str) -> str:
    """A cell with three decimals, then the membership-inference AUC."""
    return f'{PICKS.answer(summary, method, digits=3)}; {summary[method]["mia"]:.3f}'


def main() -> None:
    print("| cell | Retrain-2 (floor) | `ifru`, tol 1e-3 | `ifru`, tol 1e-2 (default) | seconds 1e-3 → 1e-2 |")
    print("|---|---|---|---|---|")
    for path in sorted(HERE.glob("*.json")):
        summary = json.loads(path.read_text())["summary"]
        seconds = f'{summary["ifru-tol-1e-3"]["seconds"]:.3f} → {summary["ifru"]["seconds"]:.3f}'
        cells = " | ".join(row(summary, method) for method in ("retrain-2", "ifru-tol-1e-3", "ifru"))
        print(f"| {path.stem} | {cells} | {seconds} |")


if __name__ == "__main__":
    main()
