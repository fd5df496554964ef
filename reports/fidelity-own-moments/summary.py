"""The tables of README.md from the cells' reports: python reports/fidelity-own-moments/summary.py [CELL...]

Per cell (``<cell>.default.json``: ``ifru-original-moments``, the default ``ifru`` of the day the cell ran
(2026-12-07) calibrated for itself; ``<cell>.own.json``: ``ifru-own-moments`` calibrated for itself and
uncalibrated, on the same Originals and Retrains), judged as the fidelity matrix judges its cells
(``../fidelity-endpoint/trajectory/summary.py``'s ``row``: means over the judged draws; forget completeness,
``*`` outside [0.8, 1.2], in parentheses where the cell is inside the Retrain noise floor; poisoned rows: test-AUC
completeness AUC_0 / 1 / 2, ``*`` under 0.9 on any; genuine rows and users: |AUC_0 − R|, ``*`` over
max(0.002, floor)), and the calibration scales. Below it, per model and column, the judged cells that meet each
target. No speed column: the cells ran beside other jobs (README.md gives the cost measured alone).
"""
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "fidelity-endpoint" / "trajectory"))
from summary import floor_meets_auc_bar, row  # noqa: E402  the matrix's judging of one method's cell

# (report, the method's names in it, column): the original moments are "ifru" in the reports of the cells run
# before LightGCN's default changed ("ifru-trajectory" in the first Amazon-shaped LightGCN cell's, made by the
# matrix's run.sh: the same answer), "ifru-original-moments" in those run after
COLUMNS = (("default", ("retrain-2",), "retrain-2"),
           ("default", ("ifru", "ifru-trajectory", "ifru-original-moments"), "ifru-original-moments"),
           ("own", ("ifru-own-moments",), "ifru-own-moments"),
           ("own", ("ifru-own-moments-uncalibrated",), "ifru-own-moments-uncalibrated"))
TARGETS = ("forget", "poison AUC", "poison AUC, floor meets", "AUC gap")


def judged(report: dict, names: tuple[str, ...], tally: dict, floor_meets: bool) -> str:
    """``row``'s forget and AUC columns (its speed column dropped)."""
    return row(report, names, tally, floor_meets).rsplit(" | ", 1)[0]


def tables(cells: list[str]) -> str:
    tallies: dict[tuple[str, str], dict] = {}  # (model, column) -> target -> [met, judged]
    lines = ["| cell | request | seeds | " + " | ".join(f"{name}: forget | AUC" for *_, name in COLUMNS)
             + " | scales (original, own) |", "|---|---|---|" + "---|---|" * len(COLUMNS) + "---|"]
    for cell in cells:
        reports = {kind: json.loads((HERE / f"{cell}.{kind}.json").read_text()) for kind in ("default", "own")}
        first = reports["default"]
        floor_meets = first["scenario"] == "poison" and floor_meets_auc_bar(first)
        columns = " | ".join(judged(reports[kind], names, tallies.setdefault((first["model"], name), {}), floor_meets)
                             for kind, names, name in COLUMNS)
        scales = ", ".join("/".join(f"{s:.3f}" for s in sorted({draw["calibration"] for draw in report["draws"]}))
                           for report in reports.values())
        lines.append(f"| {cell} | {first['scenario']} {first['fraction']:g} | {','.join(map(str, first['seeds']))} | "
                     f"{columns} | {scales} |")
    lines += ["", "| model | column | cells | forget in [0.8, 1.2] | poison AUC ≥ 0.9 (all three) | the same where "
                  "Retrain-2 meets it | genuine / users AUC gap |", "|---|---|---|---|---|---|---|"]
    for (model, name), counts in sorted(tallies.items()):
        if name == "retrain-2":
            continue
        shown = sum(1 for cell in cells if json.loads((HERE / f"{cell}.default.json").read_text())["model"] == model)
        met = [f"{counts[k][0]} of {counts[k][1]}" if k in counts else "–" for k in TARGETS]
        lines.append(f"| {model} | {name} | {shown} | " + " | ".join(met) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    chosen = sys.argv[1:] or sorted({name.name.split(".")[0] for name in HERE.glob("*.own.json")})
    print(tables(chosen))
