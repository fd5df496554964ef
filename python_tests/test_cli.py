"""Tests of the command line (ifru_ext.cli) end to end on tiny datasets."""
from __future__ import annotations

import json
import runpy
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from ifru_ext.models.checkpoint import load_checkpoint, read_checkpoint
from ifru_ext.cli import SUBCOMMANDS, build_parser, main
from ifru_ext.data import PRESETS, data_dir, load_dataset
from ifru_ext.unlearning import UnlearnConfig

BX_FILE = data_dir() / PRESETS["bookcrossing"]["file"]


@pytest.fixture(scope="module")
def ratings_file(tmp_path_factory):
    """A headed, ';'-separated ratings file with a timestamp column and a planted preference."""
    rng = np.random.default_rng(0)
    num_users, num_items, n = 50, 70, 3000
    user_factors, item_factors = rng.normal(size=(num_users, 2)), rng.normal(size=(num_items, 2))
    users, items = rng.integers(0, num_users, n), rng.integers(0, num_items, n)
    affinity = (user_factors[users] * item_factors[items]).sum(1) + 0.3 * rng.normal(size=n)
    path = tmp_path_factory.mktemp("ratings") / "ratings.csv"
    pd.DataFrame(
        {"u": [f"u{u}" for u in users], "i": [f"i{i}" for i in items], "r": np.where(affinity > 0, 5, 1), "t": np.arange(n)}
    ).to_csv(path, sep=";", index=False)
    return path


def file_options(path) -> list[str]:
    return [
        "--dataset", str(path), "--sep", ";", "--columns", "user,item,rating,timestamp", "--header",
        "--threshold", "3", "--kcore", "2",
    ]


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert all(name in text for name in ("train", "evaluate", "demo"))
    subparsers = next(action for action in build_parser()._actions if action.dest == "command")
    assert len(subparsers.choices) == len(SUBCOMMANDS)
    for name, parser in subparsers.choices.items():
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        for action in parser._actions:
            assert action.help, f"{name} {action.option_strings} has no help"
            assert all(option in text for option in action.option_strings)


@pytest.mark.parametrize("typed", ["\\t", "tab", "TAB", "\t"])
def test_tab_separator_as_typed_in_a_shell(ratings_file, tmp_path, typed):
    """`--sep '\\t'` reaches the program as a backslash and a t: it means a tab, as does `--sep tab`."""
    tab_file = tmp_path / "ratings.tsv"
    tab_file.write_text(ratings_file.read_text().replace(";", "\t"))
    options = file_options(tab_file)
    options[options.index("--sep") + 1] = typed
    args = build_parser().parse_args(["train", *options])
    assert args.sep == "\t"
    from ifru_ext.cli import dataset_spec
    tabbed = load_dataset(**{**dataset_spec(args, "mf"), "attack_fraction": 0.0})
    original = load_dataset(**{**dataset_spec(build_parser().parse_args(["train", *file_options(ratings_file)]), "mf"),
                               "attack_fraction": 0.0})
    assert tabbed.split_hash == original.split_hash and len(tabbed.train) > 0


def test_usage_errors_exit_with_status_2(capsys):
    for argv in ([], ["train", "--model", "bpr"], ["evaluate"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    capsys.readouterr()


def test_method_options_are_checked_against_the_registry(tmp_path, ratings_file, capsys):
    """Every registry name is a --method; an option the method's config lacks is one line, exit 1."""
    out = tmp_path / "run"
    assert main(["-q", "train", "--epochs", "2", "--out", str(out), "--no-progress", *file_options(ratings_file)]) == 0
    capsys.readouterr()
    checkpoint = ["--checkpoint", str(out / "model.pt")]
    for method, option in [("finetune", ["--solver", "cg"]), ("alteraser", ["--ratios", "1,1"]),
                           ("retrain", ["--max-iter", "5"]), ("sisa", ["--damping", "1"])]:
        assert main(["-q", "unlearn", *checkpoint, "--method", method, *option]) == 1
        error = capsys.readouterr().err.strip()
        assert error.count("\n") == 0 and f"{option[0]} does not apply to --method {method}" in error
    # A sharded method on a plain checkpoint: refused by the registry, one line.
    assert main(["-q", "unlearn", *checkpoint, "--method", "sisa"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "does not apply to a MF" in error
    # Unknown names never reach the library: argparse's usage error.
    for argv in (["unlearn", *checkpoint, "--method", "nope"], ["experiment", "--methods", "ifru,nope"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert "nope" in capsys.readouterr().err
    # An option that applies is used: the summary records it.
    assert main(["-q", "unlearn", *checkpoint, "--method", "ifru-cg", "--max-iter", "3", "--out", str(tmp_path / "u")]) == 0
    summary = json.loads((tmp_path / "u" / "summary.json").read_text())
    assert summary["method"] == "ifru-cg" and summary["config"]["max_iter"] == 3 and summary["solver"]["iterations"] <= 3


@pytest.mark.parametrize("name, mode", [("mf", "full"), ("lightgcn", "retrain")])
def test_train_then_evaluate_a_ratings_file(tmp_path, ratings_file, capsys, name, mode):
    out = tmp_path / "run"
    argv = ["-q", "train", "--model", name, "--mode", mode, "--epochs", "4", "--lr", "0.01", "--batch-size", "256",
            "--attack-fraction", "0.05", "--seed", "3", "--out", str(out), "--no-progress", "--no-calibrate", "--snapshots", "1",
            *file_options(ratings_file), *(["--no-wait-through-plateaus"] if mode == "retrain" else [])]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "AUC_0" in printed and "test" in printed

    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == mode and summary["model"]["name"] == name and summary["epochs"] <= 4
    assert summary["stats"]["removed"] == summary["stats"]["train"] - int(summary["stats"]["train"] * 0.95)
    assert len(summary["history"]) == summary["epochs"]
    assert set(summary["test"]) == {"auc_0", "auc_1", "auc_2"} and summary["test"]["auc_0"] > 0.5

    # The checkpoint records the dataset: evaluate needs no dataset options, from any directory.
    dataset = load_dataset(ratings_file, sep=";", columns=("user", "item", "rating", "timestamp"), header=True,
                           threshold=3, kcore=2, attack_fraction=0.05)
    loaded = load_checkpoint(out / "model.pt", dataset, expected_model=name)
    if mode == "retrain":
        assert torch.equal(loaded.removal, dataset.removal)
        assert torch.equal(loaded.model.graph.col, dataset.graph(dataset.removal).col)
    else:
        assert loaded.removal is None
    assert summary["calibration"] is None and loaded.model.trace.calibration is None
    # The stopping rule the run used is recorded (a Retrain from this checkpoint uses it too).
    recorded = read_checkpoint(out / "model.pt")["meta"]["train"]
    assert recorded["wait_through_plateaus"] is (mode != "retrain") and recorded["wait_until_decelerating"] is True
    assert recorded["snapshots"] == 1 and len(loaded.model.trace.snapshots) <= 1  # --snapshots: the trace keeps one
    assert main(["-q", "evaluate", "--checkpoint", str(out / "model.pt"), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    for split in ("valid", "test"):
        assert evaluated[split] == pytest.approx(summary[split], abs=1e-12, nan_ok=True)


def test_train_calibrates_the_original_against_one_retrain(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["-q", "train", "--dataset", "planted:5000", "--epochs", "10", "--lr", "0.01", "--batch-size", "256",
                 "--out", str(out), "--no-progress"]) == 0
    assert "calibrated: response scale" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    dataset = load_dataset("planted:5000", attack_fraction=0.02)  # train's default attack for MF
    loaded = load_checkpoint(out / "model.pt", dataset)
    # The scale travels in the checkpoint, fitted for the default estimator; with it the answer to the
    # calibration request (a random 2% of the rows) forgets them as much as their Retrain did. The
    # default's response (Newton steps per segment) is near it already without (here 0.7656 against
    # 0.7709, a change of 0.737; the linear one fell more than a tenth short).
    fitted = summary["calibration"]
    assert loaded.model.trace.calibration == fitted["scale"] > 0 and fitted["rows"] == round(0.02 * len(dataset.train))
    assert fitted["estimator"] == loaded.model.trace.calibrated_for == UnlearnConfig().estimator
    losses = fitted["forget_loss"]
    change = losses["retrain"] - losses["original"]
    assert change > 0 and losses["calibrated"] == pytest.approx(losses["retrain"], abs=2e-3 * change)
    assert 0 < abs(losses["uncalibrated"] - losses["retrain"]) < 0.02 * change


def test_a_warning_is_one_line_naming_the_command(tmp_path, capsys):
    """A warning raised while a command runs (here: the checkpoint's calibration was fitted for the default,
    the request answers with ifru-linear) is one line on stderr, as errors are, without Python's file,
    line and source; the caller's warning settings are as they were afterwards."""
    out = tmp_path / "run"
    assert main(["-q", "train", "--dataset", "planted:5000", "--epochs", "10", "--lr", "0.01", "--batch-size", "256",
                 "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    before = warnings.showwarning
    assert main(["-q", "unlearn", "--checkpoint", str(out / "model.pt"), "--method", "ifru-linear",
                 "--out", str(tmp_path / "linear")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("ifru unlearn: warning: the model's calibration")
    assert "answered uncalibrated" in lines[0] and "UserWarning" not in lines[0]
    assert warnings.showwarning is before


def test_evaluate_refuses_another_dataset(tmp_path, ratings_file, capsys):
    out = tmp_path / "run"
    assert main(["-q", "train", "--epochs", "1", "--out", str(out), "--no-progress", *file_options(ratings_file)]) == 0
    capsys.readouterr()
    assert main(["-q", "evaluate", "--checkpoint", str(out / "model.pt"), "--attack-fraction", "0.1"]) == 1
    assert "another dataset split" in capsys.readouterr().err
    assert main(["-q", "evaluate", "--checkpoint", str(tmp_path / "missing.pt")]) == 1
    assert "no checkpoint" in capsys.readouterr().err


def test_train_reports_bad_dataset_options(tmp_path, ratings_file, capsys):
    argv = ["-q", "train", "--out", str(tmp_path), "--dataset", str(ratings_file), "--kcore", "2"]
    assert main(argv) == 1
    assert "threshold" in capsys.readouterr().err


@pytest.mark.skipif(not BX_FILE.exists(), reason=f"{BX_FILE} not present")
def test_train_bookcrossing_slice_defaults(tmp_path, capsys):
    out = tmp_path / "bx"
    argv = ["-q", "train", "--model", "lightgcn", "--max-rows", "20000", "--kcore", "2", "--epochs", "2",
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    payload = read_checkpoint(out / "model.pt")
    assert payload["meta"]["dataset"]["name_or_path"] == "bookcrossing"
    assert payload["meta"]["dataset"]["attack_fraction"] == 0.01  # the LightGCN default
    assert payload["meta"]["train"]["lr"] == 1e-4 and payload["model"]["dim"] == 32
    assert main(["-q", "evaluate", "--checkpoint", str(out / "model.pt")]) == 0
    assert "AUC_2" in capsys.readouterr().out


def test_python_dash_m_runs_main(monkeypatch, capsys):
    # What `python -m ifru_ext evaluate --help` executes, in-process (a subprocess would re-import torch).
    monkeypatch.setattr(sys, "argv", ["ifru", "evaluate", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("ifru_ext", run_name="__main__")
    assert exit_info.value.code == 0 and "--checkpoint" in capsys.readouterr().out
