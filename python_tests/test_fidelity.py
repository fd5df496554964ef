"""The fidelity suite end to end on a small real slice, through the CLI."""
from __future__ import annotations

import json

import pytest

from ifru_ext.cli import main
from ifru_ext.data import PRESETS, data_dir
from ifru_ext.unlearning import UnlearnConfig

needs_bx = pytest.mark.skipif(not (data_dir() / PRESETS["bookcrossing"]["file"]).exists(), reason="no BookCrossing")


@needs_bx
def test_departing_users_are_forgotten_exactly_and_the_old_default_does_nothing(tmp_path, capsys):
    out = tmp_path / "fid"
    argv = ["-q", "fidelity", "--model", "mf", "--scenario", "users", "--fraction", "0.05", "--seeds", "1",
            "--methods", "ifru,ifru-validation", "--max-rows", "40000", "--epochs", "20", "--threads", "1",
            "--out", str(out)]
    assert main(argv) == 0
    assert "forget completeness" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    summary = report["summary"]
    assert set(summary) == {"original", "retrain", "retrain-2", "ifru", "ifru-validation"}
    # Retrain leaves a departed user at its initial row (loss ≈ ln 2); so does ifru, exactly.
    assert summary["retrain"]["forget_loss"] == pytest.approx(0.6931, abs=2e-3)
    assert summary["ifru"]["forget_completeness"] == pytest.approx(1.0, abs=0.05)  # measured 1.02
    assert not summary["ifru"]["unchanged"]
    assert summary["ifru"]["mia"] == pytest.approx(summary["retrain"]["mia"], abs=0.03)  # measured 0.467 vs 0.488
    # The validation-selected Newton step keeps t = 0: the unchanged model, nothing forgotten.
    assert summary["ifru-validation"]["unchanged"] and summary["ifru-validation"]["forget_completeness"] == 0.0
    # Each draw records the estimator its Original's scale was fitted for, not only the registry name.
    assert report["calibrate_for"] == "ifru" and report["draws"][0]["calibrated_for"] == UnlearnConfig().estimator
    # Reruns reuse the three trained models from OUT.
    assert {p.name for p in out.glob("*.pt")} == {"original-clean.pt", "retrain-users-0.05-1.pt", "retrain2-users-0.05-1.pt"}
