"""summary.py: the trajectory matrix as one table (from the cells' default / trajectory reports).

Per cell (model, stage, scenario, fraction): forget-loss completeness, test-AUC completeness
AUC_0 / 1 / 2 and |AUC_0 − R| (against max(0.002, the Retrain noise floor)), and the speed-up over
Retrain, for Retrain-2 (the noise floor: a second Retrain, the next seed), ifru-linear (the reports' "ifru":
the default until 2026-12-06), ifru-nonlinear and ifru-trajectory (the default ``ifru`` from then until
2026-12-07 answered as it on every model here, their traces carrying the tail: ``ifru-fixed-steps`` since) and
the adaptive pass (the default ``ifru`` since 2026-12-07, its stalled steps walked shorter; the reports of
2026-12-07 call it ifru-adaptive; ``– | – | –`` where a cell has no report of that pass: the files drawn after
the morning of 2026-12-07 ran the adaptive pass only) (means over the cell's draws, as the reports give them).
``*``: outside the issue's target (forget [0.8, 1.2]; poison AUC ≥ 0.9 on all three; genuine / users gap ≤
max(0.002, floor); ≥ 10× Retrain); ``–``: not judged (inside the noise floor). Below the table, per model and
method, the judged cells that meet each target, and the poisoned-row AUC bar again among the cells where
Retrain-2 meets it (elsewhere a second Retrain misses it too: the bar is inside Retrain's seed-to-seed spread)."""
import json
import pathlib

HERE = pathlib.Path(__file__).parent
# (report, the method's names in it, column name): the reports written before 2026-12-06 call ifru-linear "ifru"
METHODS = (("default", ("retrain-2",), "retrain-2"), ("default", ("ifru-linear", "ifru"), "ifru-linear"),
           ("trajectory", ("ifru-nonlinear",), "ifru-nonlinear"),
           ("trajectory", ("ifru-trajectory",), "ifru-fixed-steps (ifru-trajectory)"),
           ("adaptive", ("ifru-adaptive", "ifru"), "ifru (ifru-adaptive)"))


def floor_meets_auc_bar(report: dict) -> bool:
    """Whether Retrain-2 (the noise floor) meets the poisoned-row AUC bar in the cell: where it does
    not, a method's miss there is Retrain's own seed-to-seed spread."""
    completeness = report["summary"]["retrain-2"]["completeness"]
    return min(completeness[k] for k in ("auc_0", "auc_1", "auc_2")) >= 0.9


def row(report: dict, names: tuple[str, ...], tally: dict | None = None, floor_meets: bool = False) -> str:
    """The cell's three columns for the method ``names`` give (the first in the report);
    ``tally`` (optional) counts its judged targets met (``floor_meets``: the poisoned-row AUC bar
    is counted a second time among the cells where Retrain-2 meets it)."""
    s = next(report["summary"][name] for name in names if name in report["summary"])
    judged = report["judged_draws"] > 0
    forget = s["forget_completeness"]
    text = f"{forget:.2f}" if judged else f"({forget:.2f})"
    if judged and not 0.8 <= forget <= 1.2:
        text += "*"
    if report["scenario"] == "poison":
        aucs = [s["completeness"][k] for k in ("auc_0", "auc_1", "auc_2")]
        auc = " / ".join(f"{a:.2f}" for a in aucs) + ("*" if min(aucs) < 0.9 else "")
    else:
        limit = max(0.002, report["noise_floor"]["auc_0"])
        auc = f"{s['auc_gap']:.4f}" + ("*" if s["auc_gap"] > limit else "")
    if s["speedup"] is None:  # Retrain-2: the noise floor, no speed
        return f"{text} | {auc} | –"
    speed = f"{s['speedup']:.0f}×" + ("*" if s["speedup"] < 10 else "")
    if tally is not None:
        for target, met in (("forget", judged and not text.endswith("*")), ("auc", not auc.endswith("*")),
                            ("speed", not speed.endswith("*"))):
            if target == "forget" and not judged:
                continue
            key = target if target != "auc" else ("poison AUC" if report["scenario"] == "poison" else "AUC gap")
            for counted in (key, "poison AUC, floor meets") if key == "poison AUC" and floor_meets else (key,):
                counts = tally.setdefault(counted, [0, 0])
                counts[0] += met
                counts[1] += 1
    return f"{text} | {auc} | {speed}"


if __name__ == "__main__":  # compare.py (reports/fidelity-plateaus/scaled) imports row
    tallies: dict[tuple[str, str], dict] = {}  # (model, column) -> target -> [met, judged]
    lines = ["| model | data | request | seeds | " + " | ".join(f"{name}: forget | AUC | speed" for _, _, name in METHODS) + " |",
             "|---|---|---|---|" + "---|---|---|" * len(METHODS)]
    # every cell with a report of any pass (a cell drawn after 2026-12-07 morning ran the adaptive pass only)
    cells_run = sorted({path.parent / path.name.rsplit(".", 2)[0] for path in HERE.glob("*/*.json")})
    for cell in cells_run:
        reports = {kind: json.loads(path.read_text()) if (path := cell.with_name(f"{cell.name}.{kind}.json")).exists()
                   else None for kind in ("default", "trajectory", "adaptive")}
        first = next(report for report in reports.values() if report is not None)  # Retrain-2 is in every pass's
        floor_meets = first["scenario"] == "poison" and floor_meets_auc_bar(first)
        cells = " | ".join("– | – | –" if (report := first if names == ("retrain-2",) else reports[kind]) is None
                           else row(report, names, tallies.setdefault((first["model"], name), {}), floor_meets)
                           for kind, names, name in METHODS)  # "– | – | –": a cell not answered by that pass
        request = f"{first['scenario']} {first['fraction']:g}"
        lines.append(f"| {first['model']} | {cell.parent.name} | {request} | {','.join(map(str, first['seeds']))} | {cells} |")
    lines += ["", "| model | method | forget in [0.8, 1.2] | poison AUC ≥ 0.9 (all three) | the same where Retrain-2 meets it "
                  "| genuine / users AUC gap | ≥ 10× Retrain |",
              "|---|---|---|---|---|---|---|"]
    for (model, name), counts in sorted(tallies.items()):
        if name == "retrain-2":
            continue
        met = [f"{counts[k][0]} of {counts[k][1]}" if k in counts else "–"
               for k in ("forget", "poison AUC", "poison AUC, floor meets", "AUC gap", "speed")]
        lines.append(f"| {model} | {name} | " + " | ".join(met) + " |")
    print("\n".join(lines))
