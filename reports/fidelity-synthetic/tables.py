"""Print the README's summary tables from the cell reports: one table per model and size, for
`ifru` and `ifru-validation` (folders ``<model>-<size>``, measured before calibration existed) or
the calibrated `ifru` (folders ``<model>-<size>-calibrated``), with ifru_ext's own ``render_matrix``.

Usage: .venv/bin/python reports/fidelity-synthetic/tables.py
"""
from __future__ import annotations

import json
from pathlib import Path

from ifru_ext.experiments.fidelity import render_matrix

HERE = Path(__file__).resolve().parent
ORDER = {"genuine": 0, "users": 1, "poison": 2}
MODELS = {"mf": "MF", "lightgcn": "LightGCN"}
CALIBRATED = "-calibrated"


def main() -> None:
    folders = [path for path in HERE.iterdir() if path.is_dir()]
    folders.sort(key=lambda path: (path.name.endswith(CALIBRATED), path.name.split("-")[0] != "mf",
                                   float(path.name.split("-")[1])))
    for folder in folders:
        model, size = folder.name.split("-")[:2]
        calibrated = folder.name.endswith(CALIBRATED)
        reports = [json.loads(path.read_text()) for path in folder.glob("*.json")]
        reports.sort(key=lambda report: (ORDER[report["scenario"]], report["fraction"]))
        seeds = sorted({seed for report in reports for seed in report["seeds"]})
        draws = f"{len(seeds)} draw{'s' * (len(seeds) > 1)} (seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))})"
        methods = ((("ifru", "calibrated, the default since e7ba5d2"),) if calibrated else
                   (("ifru", "uncalibrated, the default before e7ba5d2"), ("ifru-validation", "the previous default")))
        for method, what in methods:
            print(f"## {MODELS[model]} on planted:{size}, {draws}: `{method}` ({what})\n")
            print(render_matrix(reports, method))


if __name__ == "__main__":
    main()
