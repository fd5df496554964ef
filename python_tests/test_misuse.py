"""Misuse gets one clear error and never loses an input (issue 13).

Ops: num_layers bounded, overflow refused, every derivative the ops do not provide refused
(forward-mode AD, propagate's weight, backward through hvp/importance/csr_transpose),
csr_transpose's values checked, fake kernels check devices. CLI: every error is one line and
a non-zero exit; numeric options range-checked at parse time; --out never overwrites an
input; model.pt and summary.json are written as a pair.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.autograd.forward_ad as fwAD

import ifru_ext
from ifru_ext import cli, lightgcn_graph
from ifru_ext.cli import main
from ifru_ext.data import load_dataset, read_ratings
from ifru_ext.models.checkpoint import atomic_save, read_checkpoint
from ifru_ext.ops import MAX_LAYERS


# ---------------------------------------------------------------------------- ops


@pytest.fixture(scope="module")
def problem():
    gen = torch.Generator().manual_seed(0)
    num_users, num_items, n = 5, 6, 25
    users = torch.randint(0, num_users, (n,), generator=gen)
    items = torch.randint(0, num_items, (n,), generator=gen) + num_users
    labels = torch.randint(0, 2, (n,), generator=gen).double()
    graph = lightgcn_graph(users, items - num_users, labels, num_users, num_items, dtype=torch.float64)
    emb = torch.randn(graph.num_nodes, 4, dtype=torch.float64, generator=gen)
    seeds = torch.zeros(graph.num_nodes, dtype=torch.float64)
    seeds[graph.degree() > 0] = 1.0
    return dict(graph=graph, emb=emb, users=users, items=items, labels=labels, seeds=seeds)


def _propagate(p, x, num_layers=2, weight=None):
    g = p["graph"]
    return torch.ops.ifru.propagate(g.rowptr, g.col, g.weight if weight is None else weight, x, num_layers, False)


def _hvp(p, emb, v, num_layers=1, l2=0.0):
    g = p["graph"]
    return torch.ops.ifru.hvp(emb, v, p["users"], p["items"], p["labels"], g.rowptr, g.col, g.weight, num_layers, l2,
                              None)


@pytest.mark.parametrize("num_layers", [MAX_LAYERS + 1, 1000, 2**40])
def test_num_layers_is_bounded(problem, num_layers):
    """2**40 layers used to hang (uninterruptibly); now a ValueError naming the bound, at once."""
    x = problem["emb"]
    with pytest.raises(ValueError, match=rf"ifru::propagate: num_layers must lie in \[0, {MAX_LAYERS}\], got {num_layers}"):
        _propagate(problem, x, num_layers)
    with pytest.raises(ValueError, match=rf"ifru::hvp: num_layers must lie in \[0, {MAX_LAYERS}\]"):
        _hvp(problem, x, x, num_layers)
    with pytest.raises(ValueError, match="num_layers"):  # the typed wrapper reaches the same check
        ifru_ext.propagate(x, problem["graph"], num_layers)


def test_num_layers_at_the_bound_is_accepted(problem):
    assert _propagate(problem, problem["emb"], MAX_LAYERS).isfinite().all()
    assert _hvp(problem, problem["emb"], problem["emb"], MAX_LAYERS).isfinite().all()


def test_a_model_with_too_many_layers_fails_clearly(problem):
    """A LightGCN built (or loaded from an edited checkpoint) with a huge K is refused when built."""
    with pytest.raises(ValueError, match=r"0 <= num_layers <= 64 .* 1099511627776"):
        ifru_ext.build_model("lightgcn", 5, 6, num_layers=2**40)


def test_overflow_is_an_error_not_inf(problem):
    """A graph with spectral radius > 1 used to return inf silently for large K."""
    g = problem["graph"]
    x = problem["emb"].float()
    with pytest.raises(ValueError, match=r"ifru::propagate: the result overflowed .*spectral radius"):
        torch.ops.ifru.propagate(g.rowptr, g.col, g.weight.float() * 20, x, MAX_LAYERS, False)
    # The same graph with few layers is fine: only a non-finite result is refused.
    assert torch.ops.ifru.propagate(g.rowptr, g.col, g.weight.float() * 20, x, 2, False).isfinite().all()
    big = torch.full_like(x, 1e30)
    with pytest.raises(ValueError, match=r"ifru::hvp: the result overflowed"):
        torch.ops.ifru.hvp(x, big, problem["users"], problem["items"], problem["labels"].float(), None, None, None, 0,
                           1e30, None)


def test_forward_mode_ad_is_refused(problem):
    """torch.func.jvp / jacfwd / forward_ad over the ops used to return zeros or None."""
    x = problem["emb"]
    for transform in (
        lambda: torch.func.jvp(lambda t: _propagate(problem, t), (x,), (torch.ones_like(x),)),
        lambda: torch.func.jacfwd(lambda t: _propagate(problem, t))(x),
        lambda: torch.func.jvp(lambda t: _hvp(problem, x, t), (x,), (torch.ones_like(x),)),
    ):
        with pytest.raises(NotImplementedError, match=r"ifru::(propagate|hvp): forward-mode AD .* not supported"):
            transform()
    with fwAD.dual_level():
        dual = fwAD.make_dual(x, torch.ones_like(x))
        with pytest.raises(NotImplementedError, match=r"ifru::propagate: forward-mode AD .* x has a tangent"):
            _propagate(problem, dual)
        weight = fwAD.make_dual(problem["graph"].weight, torch.ones_like(problem["graph"].weight))
        with pytest.raises(NotImplementedError, match=r"ifru::csr_transpose: forward-mode AD .* weight has a tangent"):
            torch.ops.ifru.csr_transpose(problem["graph"].rowptr, problem["graph"].col, weight)


def test_reverse_mode_still_works_in_x(problem):
    x = problem["emb"].clone().requires_grad_()
    (grad,) = torch.autograd.grad(_propagate(problem, x).sum(), x)
    assert grad.isfinite().all() and grad.abs().sum() > 0
    # torch.func's reverse transforms refuse every torch.library autograd formula (a torch
    # limitation, custom_op included): loudly, never with a wrong value.
    with pytest.raises(RuntimeError, match="functorch transforms"):
        torch.func.grad(lambda t: _propagate(problem, t).sum())(problem["emb"])


def test_gradient_to_propagate_weight_is_refused(problem):
    weight = problem["graph"].weight.clone().requires_grad_()
    x = problem["emb"].clone().requires_grad_()
    out = _propagate(problem, x, weight=weight)
    with pytest.raises(NotImplementedError, match="ifru::propagate: no gradient with respect to weight"):
        out.sum().backward()


@pytest.mark.parametrize("op", ["hvp", "importance", "csr_transpose"])
def test_gradient_through_non_differentiable_ops_is_refused(problem, op):
    """These used to give None/zero gradients with only a generic warning."""
    g = problem["graph"]
    if op == "hvp":
        emb = problem["emb"].clone().requires_grad_()
        out = _hvp(problem, emb, problem["emb"])  # the forward itself is fine
        wanted = "emb"
    elif op == "importance":
        seeds = problem["seeds"].clone().requires_grad_()
        out, _ = torch.ops.ifru.importance(g.rowptr, g.col, seeds, [1.0, 0.5])
        wanted = "seed_counts"
    else:
        weight = g.weight.clone().requires_grad_()
        out = torch.ops.ifru.csr_transpose(g.rowptr, g.col, weight)[2]
        wanted = "weight"
    with pytest.raises(NotImplementedError, match=rf"ifru::{op}: not differentiable .* with respect to {wanted}"):
        out.sum().backward()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_csr_transpose_checks_weight_values(problem, bad):
    g = problem["graph"]
    weight = g.weight.clone()
    weight[3] = bad
    with pytest.raises(ValueError, match="ifru::csr_transpose: weight contains NaN or infinity"):
        torch.ops.ifru.csr_transpose(g.rowptr, g.col, weight)
    with pytest.raises(ValueError, match="weight"):
        ifru_ext.csr_transpose(ifru_ext.CSRGraph(g.rowptr, g.col, weight, g.num_nodes, False))


def test_fake_kernels_check_devices(problem):
    """Meta tensors mixed with CPU tensors reach the fake kernels, which name the odd one out."""
    g, x = problem["graph"], problem["emb"]
    meta = lambda t: t.to("meta")  # noqa: E731
    cases = [
        ("propagate", lambda: torch.ops.ifru.propagate(g.rowptr, g.col, meta(g.weight), meta(x), 1), "rowptr"),
        ("hvp", lambda: torch.ops.ifru.hvp(meta(x), meta(x), problem["users"], meta(problem["items"]),
                                           meta(problem["labels"]), None, None, None, 0, 0.0, None), "users"),
        ("importance", lambda: torch.ops.ifru.importance(meta(g.rowptr), g.col, meta(problem["seeds"]), [1.0]), "col"),
        ("csr_transpose", lambda: torch.ops.ifru.csr_transpose(meta(g.rowptr), meta(g.col), g.weight), "weight"),
    ]
    for op, run, name in cases:
        with pytest.raises(RuntimeError, match=rf"ifru::{op}: {name} is on cpu but the op runs on meta"):
            run()
    # All on one (meta) device: shapes only, and the num_layers bound holds there too.
    assert torch.ops.ifru.propagate(meta(g.rowptr), meta(g.col), meta(g.weight), meta(x), 1).shape == x.shape
    with pytest.raises(ValueError, match="num_layers"):
        torch.ops.ifru.propagate(meta(g.rowptr), meta(g.col), meta(g.weight), meta(x), 2**40)


# ---------------------------------------------------------------------------- readers


@pytest.fixture(scope="module")
def ratings_file(tmp_path_factory):
    """A headerless ',' ratings file with a planted preference (loads in milliseconds)."""
    rng = np.random.default_rng(0)
    num_users, num_items, n = 40, 50, 2000
    uf, itf = rng.normal(size=(num_users, 2)), rng.normal(size=(num_items, 2))
    users, items = rng.integers(0, num_users, n), rng.integers(0, num_items, n)
    rating = np.where((uf[users] * itf[items]).sum(1) + 0.3 * rng.normal(size=n) > 0, 5, 1)
    path = tmp_path_factory.mktemp("ratings") / "ratings.csv"
    pd.DataFrame({"u": [f"u{u}" for u in users], "i": [f"i{i}" for i in items], "r": rating}).to_csv(
        path, index=False, header=False)
    return path


def _broken_files(folder: Path, source: Path) -> dict[str, Path]:
    raw = source.read_bytes()
    files = {"truncated .gz": folder / "t.csv.gz", "truncated .xz": folder / "t.csv.xz",
             "not gzip": folder / "plain.csv.gz", "not xz": folder / "plain.csv.xz", "directory": folder / "dir.csv"}
    gz, xz = gzip.compress(raw), lzma.compress(raw)
    files["truncated .gz"].write_bytes(gz[: len(gz) // 2])
    files["truncated .xz"].write_bytes(xz[: len(xz) // 2])
    files["not gzip"].write_bytes(raw)
    files["not xz"].write_bytes(raw)
    files["directory"].mkdir()
    return files


def test_unreadable_ratings_files_are_value_errors(tmp_path, ratings_file):
    expected = {"truncated .gz": "not a readable gzip file", "truncated .xz": "not a readable xz file",
                "not gzip": "not a readable gzip file", "not xz": "not a readable xz file",
                "directory": "is a directory"}
    for case, path in _broken_files(tmp_path, ratings_file).items():
        with pytest.raises(ValueError, match=expected[case]):
            read_ratings(path)
    with pytest.raises(FileNotFoundError, match="no such ratings file"):
        read_ratings(tmp_path / "missing.csv")
    # A complete compressed file still reads.
    good = tmp_path / "good.csv.gz"
    good.write_bytes(gzip.compress(ratings_file.read_bytes()))
    assert len(read_ratings(good)) == 2000


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(threshold=math.nan), "threshold"), (dict(threshold=math.inf), "threshold"),
    (dict(kcore=-1), "kcore"), (dict(seed=-1), "seed"), (dict(attack_fraction=math.nan), "attack_fraction"),
    (dict(attack_fraction=1.5), "attack_fraction"), (dict(attack_seed=-3), "attack_seed"),
    (dict(max_rows=0), "max_rows"), (dict(sep=""), "sep"), (dict(encoding="no-such-codec"), "encoding"),
])
def test_load_dataset_checks_its_arguments(ratings_file, kwargs, fragment):
    """threshold=nan used to be accepted silently (every label 0)."""
    with pytest.raises(ValueError, match=fragment):
        load_dataset(ratings_file, **{"threshold": 3, "kcore": 2, **kwargs})


# ---------------------------------------------------------------------------- CLI: one line per error


def _options(path) -> list[str]:
    return ["--dataset", str(path), "--threshold", "3", "--kcore", "2"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err, err
    return err


def test_cli_unreadable_ratings_files_are_one_line(tmp_path, ratings_file, capsys):
    for case, path in _broken_files(tmp_path, ratings_file).items():
        assert main(["-q", "train", "--out", str(tmp_path / "o"), *_options(path)]) == 1, case
        err = _one_line_error(capsys)
        assert err.startswith("ifru train: error: ") and str(path) in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, option", [
    (["train", "--threads", "0"], "--threads"),
    (["train", "--threads", "-2"], "--threads"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--patience", "-1"], "--patience"),
    (["train", "--batch-size", "0"], "--batch-size"),
    (["train", "--lr", "0"], "--lr"),
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--l2", "-1"], "--l2"),
    (["train", "--l2", "inf"], "--l2"),
    (["train", "--dim", "0"], "--dim"),
    (["train", "--layers", "1099511627776"], "--layers"),
    (["train", "--init-std", "-0.1"], "--init-std"),
    (["train", "--seed", "-1"], "--seed"),
    (["train", "--threshold", "nan"], "--threshold"),
    (["train", "--kcore", "-1"], "--kcore"),
    (["train", "--max-rows", "0"], "--max-rows"),
    (["train", "--attack-fraction", "1.5"], "--attack-fraction"),
    (["train", "--attack-fraction", "nan"], "--attack-fraction"),
    (["train", "--sep", ""], "--sep"),
    (["train", "--encoding", "no-such-codec"], "--encoding"),
    (["evaluate", "--checkpoint", "x.pt", "--threads", "0"], "--threads"),
    (["unlearn", "--checkpoint", "x.pt", "--max-iter", "-1"], "--max-iter"),
    (["unlearn", "--checkpoint", "x.pt", "--max-iter", "0"], "--max-iter"),
    (["unlearn", "--checkpoint", "x.pt", "--damping", "-5"], "--damping"),
    (["unlearn", "--checkpoint", "x.pt", "--damping", "nan"], "--damping"),
    (["unlearn", "--checkpoint", "x.pt", "--ratios", "1,nan"], "--ratios"),
    (["unlearn", "--checkpoint", "x.pt", "--ratios", "1,1.5"], "--ratios"),
    (["experiment", "--removal-fraction", "nan"], "--removal-fraction"),
    (["experiment", "--removal-fraction", "-0.1"], "--removal-fraction"),
    (["experiment", "--epochs", "0"], "--epochs"),
])
def test_numeric_options_are_range_checked_at_parse_time(capsys, argv, option):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = _one_line_error(capsys)
    assert f"argument {option}" in err and f"ifru {argv[0]}: error:" in err


def test_valid_boundary_values_parse():
    args = cli.build_parser().parse_args(
        ["train", "--threads", "1", "--l2", "0", "--attack-fraction", "0", "--kcore", "0", "--layers", str(MAX_LAYERS),
         "--init-std", "0", "--seed", "0"])
    assert args.threads == 1 and args.l2 == 0.0 and args.layers == MAX_LAYERS
    args = cli.build_parser().parse_args(["unlearn", "--checkpoint", "x", "--damping", "0", "--ratios", "1,0"])
    assert args.damping == 0.0 and args.ratios == (1.0, 0.0)


def test_os_errors_and_unexpected_errors_are_one_line(tmp_path, ratings_file, capsys, monkeypatch):
    def denied(**kwargs):
        raise PermissionError(13, "Permission denied", str(ratings_file))

    monkeypatch.setattr(cli, "load_dataset", denied)
    assert main(["-q", "train", "--out", str(tmp_path / "o"), *_options(ratings_file)]) == 1
    assert "Permission denied" in _one_line_error(capsys)

    def surprise(**kwargs):
        raise TypeError("unexpected\nmulti-line message")

    monkeypatch.setattr(cli, "load_dataset", surprise)
    assert main(["-q", "train", "--out", str(tmp_path / "o"), *_options(ratings_file)]) == 1
    assert "TypeError: unexpected multi-line message" in _one_line_error(capsys)
    monkeypatch.setenv("IFRU_TRACEBACK", "1")
    with pytest.raises(TypeError):
        main(["-q", "train", "--out", str(tmp_path / "o"), *_options(ratings_file)])


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions")
def test_permission_denied_out_is_one_line(tmp_path, ratings_file, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["-q", "train", "--epochs", "1", "--out", str(locked / "run"), "--no-progress",
                     *_options(ratings_file)]) == 1
        assert "Permission denied" in _one_line_error(capsys)
    finally:
        locked.chmod(0o700)


# ---------------------------------------------------------------------------- CLI: outputs never destroy inputs


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ratings_file):
    out = tmp_path_factory.mktemp("trained") / "mf"
    argv = ["-q", "train", "--epochs", "1", "--out", str(out), "--no-progress", *_options(ratings_file)]
    assert main(argv) == 0
    return out


def test_out_naming_a_file_is_refused_before_any_work(tmp_path, ratings_file, trained, capsys, monkeypatch):
    target = tmp_path / "a-file"
    target.write_text("keep me")
    monkeypatch.setattr(cli, "load_dataset", lambda **kw: pytest.fail("loaded the dataset before checking --out"))
    for argv in (["train", *_options(ratings_file)], ["unlearn", "--checkpoint", str(trained / "model.pt")],
                 ["experiment", *_options(ratings_file)]):
        for out in (target, target / "sub"):
            assert main(["-q", *argv, "--out", str(out)]) == 1
            assert "is not a directory" in _one_line_error(capsys)
    assert target.read_text() == "keep me"


def test_unlearn_refuses_to_overwrite_its_input(tmp_path, trained, capsys):
    before = _digest(trained)
    link = tmp_path / "link"
    link.symlink_to(trained, target_is_directory=True)
    for out in (trained, link, trained / ".." / trained.name):
        assert main(["-q", "unlearn", "--checkpoint", str(trained / "model.pt"), "--out", str(out)]) == 1
        assert "folder of the input checkpoint" in _one_line_error(capsys)
    # A checkpoint named like an output in another folder: the same file through a hard link.
    other = tmp_path / "other"
    other.mkdir()
    os.link(trained / "model.pt", other / "model.pt")
    assert main(["-q", "unlearn", "--checkpoint", str(trained / "model.pt"), "--out", str(other)]) == 1
    assert "would overwrite the input checkpoint" in _one_line_error(capsys)
    assert _digest(trained) == before


def _fail_on_summary(monkeypatch):
    original = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name == "summary.json":
            raise OSError(28, "No space left on device", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


def test_failed_summary_write_leaves_no_partial_model(tmp_path, ratings_file, trained, capsys, monkeypatch):
    _fail_on_summary(monkeypatch)
    # A new --out: nothing appears, no temporary folder is left behind.
    fresh = tmp_path / "fresh"
    assert main(["-q", "train", "--epochs", "1", "--out", str(fresh), "--no-progress", *_options(ratings_file)]) == 1
    assert "No space left on device" in _one_line_error(capsys)
    assert not fresh.exists() and list(tmp_path.iterdir()) == []
    # An existing --out with an earlier pair: the earlier pair survives intact.
    before = _digest(trained)
    assert main(["-q", "train", "--epochs", "1", "--seed", "7", "--out", str(trained), "--no-progress",
                 *_options(ratings_file)]) == 1
    _one_line_error(capsys)
    assert _digest(trained) == before and sorted(p.name for p in trained.iterdir() if p.name.startswith(".")) == []
    # unlearn, likewise.
    out = tmp_path / "unlearned"
    assert main(["-q", "unlearn", "--checkpoint", str(trained / "model.pt"), "--method", "ifru-cg", "--max-iter", "2",
                 "--out", str(out)]) == 1
    _one_line_error(capsys)
    assert not out.exists()


def test_outputs_are_written_as_a_pair(tmp_path, trained, capsys):
    out = tmp_path / "u"
    for _ in range(2):  # into a new folder, then over the previous pair
        assert main(["-q", "unlearn", "--checkpoint", str(trained / "model.pt"), "--method", "ifru-cg", "--max-iter",
                     "2", "--out", str(out)]) == 0
        capsys.readouterr()
        assert sorted(p.name for p in out.iterdir()) == ["model.pt", "summary.json"]
        summary = json.loads((out / "summary.json").read_text())
        assert read_checkpoint(out / "model.pt")["meta"]["method"] == summary["method"] == "ifru-cg"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u"]


def test_edited_checkpoint_with_huge_num_layers_is_one_line(tmp_path, ratings_file, capsys):
    out = tmp_path / "lgcn"
    assert main(["-q", "train", "--model", "lightgcn", "--epochs", "1", "--out", str(out), "--no-progress",
                 *_options(ratings_file)]) == 0
    capsys.readouterr()
    payload = torch.load(out / "model.pt", weights_only=True)
    payload["model"]["num_layers"] = 2**40
    atomic_save(payload, out / "edited.pt")
    assert main(["-q", "evaluate", "--checkpoint", str(out / "edited.pt")]) == 1
    assert "num_layers" in _one_line_error(capsys)
