"""compare.py: the LightGCN cells trained with the scaled patience next to the matrix's (fixed patience).

For every ``<stage>/<scenario>-<fraction>.trajectory.json`` here (``run.sh`` of the trajectory
matrix with ``STOPPING=--scaled-patience``; see README.md) and the matrix's report of the same cell
(``../../fidelity-endpoint/trajectory``; ``fixed-patience/`` for a cell the matrix now holds
with the scaled patience): forget-loss completeness, test-AUC completeness AUC_0 / 1 / 2
(poison) or |AUC_0 − R| (genuine, users) and the speed-up of today's default (``ifru-trajectory``) and
of Retrain-2 (the noise floor), means over the cell's draws; ``*`` outside the issue's target, as in
``summary.py``. With the models at hand (``runs/trajectory-<stage>-t``, ``runs/scaled-<stage>-t``; not
committed) also each draw's returned epoch / epochs trained of the Original and the Retrain."""
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).parent
MATRIX = HERE / "../../fidelity-endpoint/trajectory"
RUNS = HERE / "../../../runs"


def cell(report: dict, name: str) -> str:
    """forget | AUC | speed of ``name`` in ``report``, ``*`` where outside the target."""
    s = report["summary"][name]
    judged = report["judged_draws"] > 0
    forget = f"{s['forget_completeness']:.2f}" if judged else f"({s['forget_completeness']:.2f})"
    forget += "*" if judged and not 0.8 <= s["forget_completeness"] <= 1.2 else ""
    if report["scenario"] == "poison":
        aucs = [s["completeness"][k] for k in ("auc_0", "auc_1", "auc_2")]
        auc = " / ".join(f"{a:.2f}" for a in aucs) + ("*" if min(aucs) < 0.9 else "")
    else:
        auc = f"{s['auc_gap']:.4f}" + ("*" if s["auc_gap"] > max(0.002, report["noise_floor"]["auc_0"]) else "")
    speed = "–" if s["speedup"] is None else f"{s['speedup']:.0f}×" + ("*" if s["speedup"] < 10 else "")
    return f"{forget} | {auc} | {speed}"


def epochs(stage: str, key: str, scaled: bool) -> str:
    """Each draw's Original and Retrain as "returned/trained" (genuine rows and users: one clean
    Original for every draw), or "?" without the models."""
    import torch  # only here: the tables read without it

    folder = RUNS / f"{'scaled' if scaled else 'trajectory'}-{stage}-t"

    def run(path: pathlib.Path) -> str:
        meta = torch.load(path, map_location="cpu", weights_only=False)["meta"]
        return f"{meta['best_epoch']}/{meta['epochs']}"

    runs = []
    for retrain in sorted(folder.glob(f"retrain-{key}-*.pt")):
        original = retrain.with_name(retrain.name.replace("retrain-", "original-"))
        original = original if original.exists() else folder / "original-clean.pt"
        if not original.exists():
            return "?"
        runs.append(f"{run(original)} · {run(retrain)}")
    return "; ".join(runs) or "?"


with_epochs = "--epochs" in sys.argv
print("| data | request | fixed patience: forget | AUC | speed | scaled: forget | AUC | speed "
      "| retrain-2 fixed: forget | AUC | retrain-2 scaled: forget | AUC |" + (" epochs fixed | epochs scaled |" if with_epochs else ""))
print("|---|---|" + "---|" * 10 + ("---|---|" if with_epochs else ""))
for path in sorted(HERE.glob("lightgcn-*/*.trajectory.json")):
    stage, key = path.parent.name, path.name.split(".trajectory")[0]
    scaled = json.loads(path.read_text())
    fixed_path = HERE / "fixed-patience" / stage / path.name  # a cell the matrix now holds scaled
    fixed_path = fixed_path if fixed_path.exists() else MATRIX / stage / path.name
    fixed = json.loads(fixed_path.read_text()) if fixed_path.exists() else None
    request = f"{scaled['scenario']} {scaled['fraction']:g}, seeds {','.join(map(str, scaled['seeds']))}"
    columns = [cell(fixed, "ifru-trajectory") if fixed else "– | – | –", cell(scaled, "ifru-trajectory"),
               " | ".join(cell(fixed, "retrain-2").split(" | ")[:2]) if fixed else "– | –",
               " | ".join(cell(scaled, "retrain-2").split(" | ")[:2])]
    if with_epochs:
        columns += [epochs(stage, key, False), epochs(stage, key, True)]
    print(f"| {stage} | {request} | " + " | ".join(columns) + " |")
