"""The table of README.md from the cells' reports: python reports/fidelity-own-moments/summary.py

Per cell (``<cell>.default.json``: the default ``ifru`` calibrated for itself; ``<cell>.own.json``:
``ifru-own-moments`` calibrated for itself and uncalibrated, on the same Originals and Retrains), means over
the judged draws as the fidelity report gives them: forget completeness; in ``poison`` test-AUC completeness
AUC_0 / 1 / 2, else |AUC_0 − R|.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def shown(report: dict, name: str) -> str:
    row = report["summary"][name]
    if report["scenario"] == "poison":
        quality = " / ".join(f"{row['completeness'][k]:.2f}" for k in ("auc_0", "auc_1", "auc_2"))
    else:
        quality = f"{row['auc_gap']:.4f}"
    return f"{row['forget_completeness']:.2f} | {quality}"


def table(cells: list[str]) -> str:
    lines = ["| cell | model | request | seeds | retrain-2: forget | AUC | ifru: forget | AUC | "
             "ifru-own-moments: forget | AUC | uncalibrated: forget | AUC | scales (ifru, own) |",
             "|" + "---|" * 13]
    for cell in cells:
        default = json.load(open(os.path.join(HERE, f"{cell}.default.json")))
        own = json.load(open(os.path.join(HERE, f"{cell}.own.json")))
        default_name = "ifru" if "ifru" in default["summary"] else "ifru-trajectory"
        scales = [sorted({draw["calibration"] for draw in report["draws"]}) for report in (default, own)]
        scales = ", ".join("/".join(f"{s:.3f}" for s in scale) for scale in scales)
        lines.append(f"| {cell} | {default['model']} | {default['scenario']} {default['fraction']:g} | "
                     f"{','.join(map(str, default['seeds']))} | {shown(default, 'retrain-2')} | "
                     f"{shown(default, default_name)} | {shown(own, 'ifru-own-moments')} | "
                     f"{shown(own, 'ifru-own-moments-uncalibrated')} | {scales} |")
    return "\n".join(lines)


if __name__ == "__main__":
    cells = sys.argv[1:] or sorted({name.split(".")[0] for name in os.listdir(HERE) if name.endswith(".own.json")})
    print(table(cells))
