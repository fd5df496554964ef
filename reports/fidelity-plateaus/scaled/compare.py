"""compare.py: the LightGCN cells trained with the scaled patience next to the matrix's (fixed patience).

For every ``<stage>/<scenario>-<fraction>.trajectory.json`` here (``run.sh`` of the trajectory
matrix with ``STOPPING=--scaled-patience``; see README.md) and the matrix's report of the same cell
(``../../fidelity-endpoint/trajectory``; ``fixed-patience/`` for a cell the matrix now holds
with the scaled patience): forget-loss completeness, test-AUC completeness AUC_0 / 1 / 2
(poison) or |AUC_0 − R| (genuine, users) and the speed-up of today's default (``ifru-trajectory``) and
of Retrain-2 (the noise floor), means over the cell's draws; ``*`` outside the issue's target,
judged by ``summary.py``'s ``row``. With the models at hand (``runs/trajectory-<stage>-t``,
``runs/scaled-<stage>-t``; not committed) also each draw's returned epoch / epochs trained of the Original and the Retrain."""
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).parent
MATRIX = HERE / "../../fidelity-endpoint/trajectory"
RUNS = HERE / "../../../runs"
sys.path.insert(0, str(MATRIX))
from summary import row  # noqa: E402  the matrix's judging of one method's cell: forget | AUC | speed


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
    columns = [row(fixed, ("ifru-trajectory",)) if fixed else "– | – | –", row(scaled, ("ifru-trajectory",)),
               " | ".join(row(fixed, ("retrain-2",)).split(" | ")[:2]) if fixed else "– | –",
               " | ".join(row(scaled, ("retrain-2",)).split(" | ")[:2])]
    if with_epochs:
        columns += [epochs(stage, key, False), epochs(stage, key, True)]
    print(f"| {stage} | {request} | " + " | ".join(columns) + " |")
