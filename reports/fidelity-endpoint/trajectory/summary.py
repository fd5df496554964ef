"""summary.py: the trajectory matrix as one table (from the cells' default / trajectory reports).

Per cell (model, stage, scenario, fraction): forget-loss completeness, test-AUC completeness
AUC_0 / 1 / 2 and |AUC_0 − R| (against max(0.002, the Retrain noise floor)), and the speed-up over
Retrain, for Retrain-2 (the noise floor: a second Retrain, the next seed), the default ifru, ifru-nonlinear
and ifru-trajectory (means over the cell's draws, as the
reports give them). ``*``: outside the issue's target (forget [0.8, 1.2]; poison AUC ≥ 0.9 on all three;
genuine / users gap ≤ max(0.002, floor); ≥ 10× Retrain); ``–``: not judged (inside the noise floor)."""
import json
import pathlib

HERE = pathlib.Path(__file__).parent
METHODS = (("default", "retrain-2"), ("default", "ifru"), ("trajectory", "ifru-nonlinear"), ("trajectory", "ifru-trajectory"))


def row(report: dict, method: str) -> str:
    s = report["summary"][method]
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
    return f"{text} | {auc} | {speed}"


lines = ["| model | data | request | seeds | " + " | ".join(f"{m}: forget | AUC | speed" for _, m in METHODS) + " |",
         "|---|---|---|---|" + "---|---|---|" * len(METHODS)]
for default in sorted(HERE.glob("*/*.default.json")):
    reports = {"default": json.loads(default.read_text())}
    other = default.with_name(default.name.replace(".default.", ".trajectory."))
    if not other.exists():
        continue
    reports["trajectory"] = json.loads(other.read_text())
    first = reports["default"]
    cells = " | ".join(row(reports[kind], method) for kind, method in METHODS)
    request = f"{first['scenario']} {first['fraction']:g}"
    lines.append(f"| {first['model']} | {default.parent.name} | {request} | {','.join(map(str, first['seeds']))} | {cells} |")
print("\n".join(lines))
