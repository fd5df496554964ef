"""Print the README's summary tables from the cell reports: one table per model and size, for
`ifru` (the default) and `ifru-validation`, with ifru_ext's own ``render_matrix``.

Usage: .venv/bin/python reports/fidelity-synthetic/tables.py
"""
from __future__ import annotations

import json
from pathlib import Path

from ifru_ext.experiments.fidelity import render_matrix

HERE = Path(__file__).resolve().parent
ORDER = {"genuine": 0, "users": 1, "poison": 2}


def main() -> None:
    for folder in sorted(path for path in HERE.iterdir() if path.is_dir()):
        reports = [json.loads(path.read_text()) for path in folder.glob("*.json")]
        reports.sort(key=lambda report: (ORDER[report["scenario"]], report["fraction"]))
        seeds = sorted({seed for report in reports for seed in report["seeds"]})
        for method in ("ifru", "ifru-validation"):
            print(f"## {folder.name}, seeds {seeds}: `{method}`\n")
            print(render_matrix(reports, method))


if __name__ == "__main__":
    main()
