"""tolerances.py: where each early-stopping rule returns the Original and the Retrain of every replayed
cell (``replay/*.json``, written by ``paired.py``), and how far apart the two returned models' test AUCs
are: an Original returned in another phase of the run than its Retrain is a different model, which no
estimate from it can bridge. Prints a markdown table (``tolerances.md``). The two replays added on
2026-12-06: ``paired.py replay/movielens-new-lightgcn-poison.json lightgcn poison 720
runs/movielens-new/ratings.dat --movielens`` (the file of ``fidelity-endpoint/trajectory/run.sh``'s
``movielens-new`` stage) and ``paired.py replay/100k-lightgcn-poison-0.08.json lightgcn poison 1000
runs/plateaus/100k.dat --movielens 0.08``."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
RULES = ("plain", "paired-1", "paired-2", "noise")


def main() -> None:
    print("| replayed cell (epochs run) | " + " | ".join(f"{rule}: best O / R, \\|Δ test AUC\\|" for rule in RULES) + " |")
    print("|---|" + "---|" * len(RULES))
    worst = {rule: 0.0 for rule in RULES}
    for path in sorted((HERE / "replay").glob("*.json")):
        report = json.loads(path.read_text())
        original, retrain = report["runs"]["original"], report["runs"]["retrain"]
        cells = []
        for rule in RULES:
            (best_o, stop_o), (best_r, stop_r) = original["rules"][rule], retrain["rules"][rule]
            gap = abs(original["test_auc"][best_o - 1] - retrain["test_auc"][best_r - 1])
            worst[rule] = max(worst[rule], gap)
            capped = "" if stop_o and stop_r else " (cap)"
            cells.append(f"{best_o} / {best_r}{capped}, {gap:.4f}")
        print(f"| {path.stem} ({report['epochs']}) | " + " | ".join(cells) + " |")
    print("| **largest \\|Δ test AUC\\|** | " + " | ".join(f"**{worst[rule]:.4f}**" for rule in RULES) + " |")


if __name__ == "__main__":
    main()
