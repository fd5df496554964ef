"""The fidelity matrix with today's defaults, judged against the faithful-forgetting targets.

Usage (from the repository root): python reports/fidelity-picks/verdicts.py > reports/fidelity-picks/verdicts.md

The matrix here is the cells of ``reports/fidelity-plateaus/`` (today's stopping rule): BookCrossing
MF at three sizes, LightGCN on BookCrossing and four other datasets, planted MF at 1e4–1e6, BPR.

Reads every cell answered with today's snapshot picks (this folder, recursively), takes the
three-draw reports of ``reports/fidelity-seeds/`` (recursively) in place of their single-draw cells, and the
cells of ``reports/fidelity-plateaus/`` that were not answered again (earlier picks; marked). Per
cell, for the default ``ifru``:
- forget completeness (mean over the draws judged on it) within [0.8, 1.2], or "not judged" when
  no draw's Original → Retrain change exceeds the Retrain noise floor;
- poisoned rows: test-AUC completeness ≥ 0.9 on AUC_0, AUC_1 and AUC_2 (means over the draws),
  or "not judged" when Retrain's own AUC_0 change is no larger than Retrain-2's distance from it;
- genuine rows and whole users: ``|AUC_0 − R| ≤ max(0.002, floor)``, the floor Retrain-2's own
  ``|AUC_0 − R|`` (means over the draws).
Prints one markdown row per cell and the counts.
"""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
SEEDS = HERE.parent / "fidelity-seeds"
PLATEAUS = HERE.parent / "fidelity-plateaus"


def cells() -> dict[str, tuple[Path, str]]:
    """cell name → (report, note)."""
    found = {str(path.relative_to(HERE).with_suffix("")): (path, "") for path in sorted(HERE.glob("**/*.json"))}
    for path in sorted(SEEDS.glob("**/*.json")):
        found[str(path.relative_to(SEEDS).with_suffix(""))] = (path, "seeds 1–3")
    for path in sorted(PLATEAUS.glob("**/*.json")):
        name = str(path.relative_to(PLATEAUS).with_suffix(""))
        if name not in found and "plain-rule" not in name and "replay" not in name:
            found[name] = (path, "earlier picks")
    return found


def verdict(report: dict) -> tuple[str, bool | None, str, bool | None]:
    """(forget cell, its pass, target cell, its pass) for ``ifru``; a pass is None when the cell is
    reported, not judged: no draw judged on the forget loss, or (poisoned rows) Retrain's own test-AUC
    change no larger than Retrain-2's distance from it."""
    summary = report["summary"]
    answer = summary["ifru"]
    if report["judged_draws"]:
        forget = answer["forget_completeness"]
        forget_cell, forget_ok = f"{forget:.2f}", 0.8 <= forget <= 1.2
    else:
        forget_cell, forget_ok = "not judged", None
    if report["scenario"] == "poison":
        auc = answer["completeness"]
        values = [auc["auc_0"], auc["auc_1"], auc["auc_2"]]
        cell = " / ".join(f"{v:.2f}" for v in values)
        if summary["original"]["auc_gap"] <= summary["retrain-2"]["auc_gap"]:  # Retrain's AUC change is noise
            return forget_cell, forget_ok, cell + " (AUC_0 change inside the floor)", None
        return forget_cell, forget_ok, cell, min(values) >= 0.9
    bound = max(0.002, summary["retrain-2"]["auc_gap"])
    return forget_cell, forget_ok, f'{answer["auc_gap"]:.4f} (≤ {bound:.4f})', answer["auc_gap"] <= bound


def main() -> None:
    print("| cell | scenario | forget completeness | | poisoned: AUC completeness 0 / 1 / 2 ≥ 0.9; else \\|AUC_0 − R\\| | | note |")
    print("|---|---|---|---|---|---|---|")
    counts = {"forget": [0, 0], "poison": [0, 0], "gap": [0, 0]}
    for name, (path, note) in cells().items():
        report = json.loads(path.read_text())
        forget_cell, forget_ok, target_cell, target_ok = verdict(report)
        if forget_ok is not None:
            counts["forget"][0] += forget_ok
            counts["forget"][1] += 1
        kind = "poison" if report["scenario"] == "poison" else "gap"
        if target_ok is not None:
            counts[kind][0] += target_ok
            counts[kind][1] += 1
        mark = {True: "pass", False: "**miss**", None: ""}
        print(f'| {name} | {report["scenario"]} | {forget_cell} | {mark[forget_ok]} | {target_cell} | '
              f'{mark[target_ok]} | {note} |')
    print()
    for label, key in (("forget completeness in [0.8, 1.2] (judged cells)", "forget"),
                       ("poisoned rows, AUC completeness ≥ 0.9 on all three (judged cells)", "poison"),
                       ("genuine rows and users, |AUC_0 − R| ≤ max(0.002, floor)", "gap")):
        passed, total = counts[key]
        print(f"- {label}: {passed} of {total}")


if __name__ == "__main__":
    main()
