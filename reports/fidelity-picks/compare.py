"""The cells of this folder against the committed ones of reports/fidelity-plateaus/ (the earlier picks).

Usage (from the repository root): python reports/fidelity-picks/compare.py

One markdown row per cell: whether the Original, Retrain and Retrain-2 are the committed models (test
AUC_0 and forget loss equal to 1e-9), Retrain-2's |AUC_0 − R| (the noise floor), and for the calibrated
default and ``ifru-uncalibrated`` the forget completeness, AUC completeness 0 / 1 / 2 and |AUC_0 − R|,
earlier picks → these (means over the cell's seeds, as the reports give them); then the calibration
scales of the cell's draws.
"""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
COMMITTED = HERE.parent / "fidelity-plateaus"


def answer(summary: dict, method: str, digits: int = 2) -> str:
    """Forget completeness; AUC completeness 0 / 1 / 2 (``digits`` decimals); ``|AUC_0 − R|``."""
    row, auc = summary[method], summary[method]["completeness"]
    return (f'{row["forget_completeness"]:.{digits}f}; {auc["auc_0"]:.{digits}f} / {auc["auc_1"]:.{digits}f} / '
            f'{auc["auc_2"]:.{digits}f}; {row["auc_gap"]:.4f}')


def main() -> None:
    print("| cell | models | floor | `ifru`: earlier picks | these | `ifru-uncalibrated`: earlier | these | scales |")
    print("|---|---|---|---|---|---|---|---|")
    for new_path in sorted(HERE.glob("*.json")) + sorted(path for path in HERE.glob("*/**/*.json")):
        old_path = COMMITTED / new_path.relative_to(HERE)
        if not old_path.exists():
            continue
        new, old = json.loads(new_path.read_text()), json.loads(old_path.read_text())
        ns, os_ = new["summary"], old["summary"]
        same = all(abs(ns[m][k] - os_[m][k]) < 1e-9 for m in ("original", "retrain", "retrain-2")
                   for k in ("auc_0", "forget_loss"))
        scales = " / ".join(f'{o["calibration"] or 0:.2f} → {n["calibration"] or 0:.2f}'
                            for o, n in zip(old["draws"], new["draws"]))
        print(f'| {new_path.relative_to(HERE).with_suffix("")} | {"same" if same else "**differ**"} | '
              f'{os_["retrain-2"]["auc_gap"]:.4f} | {answer(os_, "ifru")} | {answer(ns, "ifru")} | '
              f'{answer(os_, "ifru-uncalibrated")} | {answer(ns, "ifru-uncalibrated")} | {scales} |')


if __name__ == "__main__":
    main()
