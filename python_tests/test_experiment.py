"""End to end on a real BookCrossing slice: experiment report, CLI unlearn with raw-id pairs."""
from __future__ import annotations

import json

import pytest

from ifru_ext.cli import main
from ifru_ext.experiments import ExperimentSpec, run_experiment, run_sweep

# First 300k raw rows, 3-core: ~82k training rows; MF trains in seconds.
SLICE = dict(name_or_path="bookcrossing", max_rows=300_000, kcore=3, attack_fraction=0.02)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("experiment")
    spec = ExperimentSpec(dataset=SLICE, model="mf", methods=("ifru", "ifru-uncalibrated", "ifru-reference", "scif"),
                          out=out, studies=("harmless", "pruning"), calibrated=True)  # as `make run`
    return run_experiment(spec), out


def test_report_shape_and_files(report):
    result, out = report
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["model"] == "mf" and on_disk["removal_fraction"] == 0.02
    assert set(on_disk["methods"]) == {"original", "retrain", "ifru", "ifru-uncalibrated", "ifru-reference", "scif"}
    for name in ("ifru", "scif"):
        entry = on_disk["methods"][name]
        assert set(entry["completeness"]) == {"auc_0", "auc_1", "auc_2"}
        assert entry["seconds"] > 0 and entry["solver"]["iterations"] > 0
    assert (out / "report.md").read_text().count("| ifru") >= 2
    assert (out / "pruning.png").stat().st_size > 1000 and (out / "harmless.png").stat().st_size > 1000
    assert result["studies"]["harmless"]["identical_parameters"]


def test_the_original_is_calibrated_and_the_default_answers_with_its_scale(report):
    """The Original carries its fitted scale (one more Retrain, cached in its checkpoint): ``ifru``
    answers with it, ``ifru-uncalibrated`` without, and the report says which."""
    result, out = report
    scale = result["calibration"]["scale"]
    assert result["calibration"]["for"] == "ifru" and scale > 0
    assert f"Original calibrated for `ifru` (scale {scale:.3f})" in (out / "report.md").read_text()
    calibrated, raw = result["methods"]["ifru"], result["methods"]["ifru-uncalibrated"]
    assert calibrated["auc_0"] != raw["auc_0"]
    from ifru_ext.data import load_dataset
    from ifru_ext.models.checkpoint import load_checkpoint
    assert load_checkpoint(out / "original.pt", load_dataset(**SLICE)).model.trace.calibration == scale


def test_ifru_moves_the_model_most_of_the_way_to_retrain(report):
    result, _ = report
    methods = result["methods"]
    # Retrain must actually differ from Original for completeness to mean anything.
    assert methods["retrain"]["auc_0"] > methods["original"]["auc_0"]
    completeness = methods["ifru"]["completeness"]
    assert completeness["auc_0"] > 0.5 and completeness["auc_1"] > 0.5, completeness
    assert methods["ifru"]["speedup_vs_retrain"] > 1


def test_cli_unlearn_with_raw_id_pairs(report, tmp_path, capsys):
    _, out = report
    # Ask to forget two real interactions by their raw BookCrossing ids.
    from ifru_ext.data import load_dataset

    dataset = load_dataset(**SLICE)
    rows = dataset.removal[:2]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("".join(f"{dataset.user_ids[u]},{dataset.item_ids[i]}\n"
                             for u, i in zip(dataset.train.users[rows].tolist(), dataset.train.items[rows].tolist())))
    slice_options = ["--dataset", "bookcrossing", "--max-rows", "300000", "--kcore", "3", "--attack-fraction", "0.02"]
    code = main(["-q", "unlearn", "--checkpoint", str(out / "original.pt"), "--pairs", str(pairs),
                 "--out", str(tmp_path / "unlearned"), *slice_options])
    assert code == 0
    summary = json.loads((tmp_path / "unlearned" / "summary.json").read_text())
    assert summary["removed"] == 2
    assert "forgot 2 interactions" in capsys.readouterr().out
    # A pair that is not a training interaction is refused, naming it.
    pairs.write_text("no-such-user,0000000000\n")
    assert main(["-q", "unlearn", "--checkpoint", str(out / "original.pt"), "--pairs", str(pairs), *slice_options]) == 1
    assert "no-such-user" in capsys.readouterr().err


def test_sweep_over_attack_seeds_writes_each_run_and_the_summary(tmp_path):
    spec = ExperimentSpec(dataset={**SLICE, "max_rows": 100_000}, model="mf", methods=("ifru",), out=tmp_path)
    summary = run_sweep(spec, "attack_seed", ["1", "2"])
    assert summary["values"] == [1, 2]
    reports = [json.loads((tmp_path / f"attack_seed-{seed}" / "report.json").read_text()) for seed in (1, 2)]
    # Different attack draws: different Originals, and the summary lists each run's numbers in order.
    assert reports[0]["methods"]["original"]["auc_0"] != reports[1]["methods"]["original"]["auc_0"]
    ifru = summary["methods"]["ifru"]
    assert ifru["auc_0"] == [r["methods"]["ifru"]["auc_0"] for r in reports]
    values = ifru["completeness"]["auc_0"]
    mean, std = ifru["completeness_mean_std"]["auc_0"]
    assert mean == pytest.approx(sum(values) / 2) and std == pytest.approx(abs(values[0] - values[1]) / 2)
    assert "± " in (tmp_path / "sweep.md").read_text()
    assert (tmp_path / "sweep.png").stat().st_size > 1000


def test_sweep_refuses_unknown_settings(tmp_path, capsys):
    spec = ExperimentSpec(dataset=SLICE, out=tmp_path)
    with pytest.raises(ValueError, match="cannot sweep 'kcore'"):
        run_sweep(spec, "kcore", [3])
    with pytest.raises(SystemExit):
        main(["experiment", "--sweep", "kcore=3,5"])
    assert "KEY=V1,V2" in capsys.readouterr().err
