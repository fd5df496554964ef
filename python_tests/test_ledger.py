"""The deletion ledger (issue 13): requests that stay answered across checkpoints, the graph a
checkpoint predicts with, and ``ifru apply`` (sequential requests, resumable)."""
from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ifru_ext.cli as cli
from ifru_ext.cli import main
from ifru_ext.data import load_dataset
from ifru_ext.evaluation import evaluate
from ifru_ext.experiments.apply import answer_request, apply_log, encode_requests, read_log
from ifru_ext.models import Ledger, load_checkpoint, read_checkpoint, save_checkpoint
from ifru_ext.models.ledger import plan_request, union
from ifru_ext.training import TrainConfig, train_new
from ifru_ext.unlearning import configure

from test_train import planted_dataset

REPOSITORY = Path(__file__).resolve().parent.parent
# A cheap method that moves LightGCN to the new graph: the Newton step by CG, 3 iterations.
CHEAP = ["--method", "ifru-cg", "--max-iter", "3"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ratings(tmp_path_factory) -> Path:
    """A small ratings file (raw ids 'u<k>', 'i<k>') with a planted preference."""
    rng = np.random.default_rng(0)
    num_users, num_items, n = 50, 70, 3000
    user_factors, item_factors = rng.normal(size=(num_users, 2)), rng.normal(size=(num_items, 2))
    users, items = rng.integers(0, num_users, n), rng.integers(0, num_items, n)
    affinity = (user_factors[users] * item_factors[items]).sum(1) + 0.3 * rng.normal(size=n)
    path = tmp_path_factory.mktemp("ratings") / "ratings.csv"
    pd.DataFrame({"u": [f"u{u}" for u in users], "i": [f"i{i}" for i in items],
                  "r": np.where(affinity > 0, 5, 1)}).to_csv(path, index=False, header=False)
    return path


def options(path: Path) -> list[str]:
    return ["--dataset", str(path), "--threshold", "3", "--kcore", "2", "--attack-fraction", "0.05"]


@pytest.fixture(scope="module")
def data(ratings):
    return load_dataset(ratings, threshold=3, kcore=2, attack_fraction=0.05)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ratings):
    """Checkpoints trained through the CLI: (model, mode) → model.pt."""
    root = tmp_path_factory.mktemp("trained")
    paths = {}
    for name, mode in (("mf", "full"), ("lightgcn", "full"), ("mf", "retrain")):
        out = root / f"{name}-{mode}"
        argv = ["-q", "train", "--model", name, "--mode", mode, "--epochs", "3", "--lr", "0.01", "--batch-size", "256",
                "--dim", "8", "--out", str(out), "--no-progress", *options(ratings)]
        assert main(argv) == 0
        paths[name, mode] = out / "model.pt"
    return paths


def pairs_file(path: Path, data, rows) -> Path:
    """A CSV of the raw (user, item) ids of training ``rows``."""
    rows = torch.as_tensor(rows)
    pd.DataFrame({"u": data.user_ids[data.train.users[rows].numpy()],
                  "i": data.item_ids[data.train.items[rows].numpy()]}).to_csv(path, index=False, header=False)
    return path


def clean_rows(data, start: int, stop: int) -> torch.Tensor:
    """Training rows in [start, stop) that are not attacked (so a retrain checkpoint trained on them)
    and whose (user, item) pair appears once in train (so a pair names exactly that row)."""
    rows = torch.arange(start, stop)
    keys = data.train.users * data.num_items + data.train.items
    unique, counts = torch.unique(keys, return_counts=True)
    single = torch.isin(keys[rows], unique[counts == 1])
    return rows[single & ~torch.isin(rows, data.removal)]


def same_graph(a, b) -> bool:
    return torch.equal(a.rowptr, b.rowptr) and torch.equal(a.col, b.col) and torch.equal(a.weight, b.weight)


# --------------------------------------------------------------------------- the ledger through the CLI


def test_forget_a_then_b_keeps_a_forgotten(tmp_path, trained, data, capsys):
    """The issue's probe: A, then B on the result → the graph is D \\ (A ∪ B), the ledger A ∪ B."""
    a, b = clean_rows(data, 0, 30), clean_rows(data, 20, 60)  # they overlap on [20, 30)
    assert torch.isin(a, b).any() and not torch.isin(b, a).all()
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["-q", "unlearn", "--checkpoint", str(trained["lightgcn", "full"]), "--pairs",
                 str(pairs_file(tmp_path / "a.csv", data, a)), "--request-id", "A", *CHEAP, "--out", str(first)]) == 0
    capsys.readouterr()
    assert main(["-q", "unlearn", "--checkpoint", str(first / "model.pt"), "--pairs",
                 str(pairs_file(tmp_path / "b.csv", data, b)), "--request-id", "B", *CHEAP, "--out", str(second)]) == 0
    printed = capsys.readouterr().out
    overlap = int(torch.isin(b, a).sum())
    assert f"skipped {overlap} of the {b.numel()} requested rows: already forgotten by A" in printed
    assert f"forgot {b.numel() - overlap} interactions" in printed

    both = union(a, b)
    loaded = load_checkpoint(second / "model.pt", data)
    assert torch.equal(loaded.ledger.rows, both) and torch.equal(loaded.removal, both)
    assert torch.equal(loaded.graph_removal, both)
    assert same_graph(loaded.model.graph, data.graph(both))
    assert not same_graph(loaded.model.graph, data.graph(b))  # A is not back
    assert [entry.id for entry in loaded.ledger.entries] == ["A", "B"]
    entry_a, entry_b = loaded.ledger.entries
    assert torch.equal(entry_a.rows, a) and torch.equal(entry_b.rows, b[~torch.isin(b, a)])
    assert (entry_b.skipped, entry_b.method, entry_b.num_rows) == (overlap, "ifru-cg", b.numel() - overlap)
    raw = set(zip(data.user_ids[data.train.users[a].numpy()], data.item_ids[data.train.items[a].numpy()]))
    assert set(zip(entry_a.users, entry_a.items)) == {(str(u), str(i)) for u, i in raw}
    assert entry_a.time.endswith("+00:00")
    summary = json.loads((second / "summary.json").read_text())
    assert summary["request"] == "B" and summary["skipped"] == overlap and summary["ledger"]["requests"] == ["A", "B"]
    # The training settings travel with the model (a later retrain uses them).
    assert read_checkpoint(second / "model.pt")["meta"]["train"] == read_checkpoint(trained["lightgcn", "full"])["meta"]["train"]


def test_reforgetting_is_skipped_and_reported(tmp_path, trained, data, capsys):
    rows = clean_rows(data, 0, 20)
    request = pairs_file(tmp_path / "a.csv", data, rows)
    first, again = tmp_path / "a", tmp_path / "again"
    assert main(["-q", "unlearn", "--checkpoint", str(trained["mf", "full"]), "--pairs", str(request),
                 "--out", str(first)]) == 0  # the default method, ifru: it moves the model
    capsys.readouterr()
    assert main(["-q", "unlearn", "--checkpoint", str(first / "model.pt"), "--pairs", str(request),
                 "--out", str(again)]) == 0
    printed = capsys.readouterr().out
    assert f"skipped {rows.numel()} of the {rows.numel()} requested rows: already forgotten by request-1" in printed
    assert "forgot 0 interactions" in printed
    original = load_checkpoint(trained["mf", "full"], data)
    before, after = load_checkpoint(first / "model.pt", data), load_checkpoint(again / "model.pt", data)
    assert not torch.equal(original.model.embedding, before.model.embedding)
    assert torch.equal(before.model.embedding, after.model.embedding)  # not moved a second time
    assert after.ledger.ids == ["request-1", "request-2"] and torch.equal(after.ledger.rows, rows)
    assert after.ledger.entries[1].num_rows == 0 and after.ledger.entries[1].skipped == rows.numel()
    # A request id is recorded once: reusing one is refused, one line, nothing written.
    assert main(["-q", "unlearn", "--checkpoint", str(again / "model.pt"), "--pairs", str(request),
                 "--request-id", "request-1", "--out", str(tmp_path / "dup")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "'request-1' is already in the ledger" in error
    assert not (tmp_path / "dup").exists()


def test_rows_a_retrain_checkpoint_never_trained_on_are_refused(tmp_path, trained, data, capsys):
    """--mode retrain left D_r out: 'forgetting' it (the default request) or any request touching it is
    refused with one line, and nothing is written."""
    out = tmp_path / "u"
    assert main(["-q", "unlearn", "--checkpoint", str(trained["mf", "retrain"]), *CHEAP, "--out", str(out)]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and f"{data.removal.numel()} of its {data.removal.numel()} rows were never trained on" in error
    mixed = torch.cat((clean_rows(data, 0, 10), data.removal[:2]))
    assert main(["-q", "unlearn", "--checkpoint", str(trained["mf", "retrain"]), "--pairs",
                 str(pairs_file(tmp_path / "m.csv", data, mixed)), *CHEAP, "--out", str(out)]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "2 of its" in error and "never trained on" in error
    assert not out.exists()
    # Rows it did train on are forgotten; the removal is D_r ∪ request, the ledger the request only.
    rows = clean_rows(data, 0, 10)
    assert main(["-q", "unlearn", "--checkpoint", str(trained["mf", "retrain"]), "--pairs",
                 str(pairs_file(tmp_path / "ok.csv", data, rows)), *CHEAP, "--out", str(out)]) == 0
    loaded = load_checkpoint(out / "model.pt", data)
    assert torch.equal(loaded.ledger.rows, rows) and torch.equal(loaded.removal, union(data.removal, rows))
    assert torch.equal(loaded.trained_without, data.removal)


def test_retrain_on_a_ledger_retrains_without_every_forgotten_row(trained, data):
    checkpoint = load_checkpoint(trained["lightgcn", "full"], data)
    a, b = clean_rows(data, 0, 15), clean_rows(data, 15, 30)
    first = answer_request(checkpoint, data, a, request_id="a", method="ifru-cg",
                           config=configure("ifru-cg", {"max_iter": 2})).checkpoint
    config = configure("retrain", {"train": TrainConfig(lr=1e-2, batch_size=256, max_epochs=2, patience=2)})
    answer = answer_request(first, data, b, request_id="b", method="retrain", config=config)
    assert answer.result.num_removed == a.numel() + b.numel()  # trained on D \ (A ∪ B), not D \ B
    assert same_graph(answer.checkpoint.model.graph, data.graph(union(a, b)))
    assert torch.equal(answer.checkpoint.ledger.rows, union(a, b)) and answer.checkpoint.ledger.ids == ["a", "b"]


def test_ifru_reference_lightgcn_reproduces_its_aucs_after_save_and_load(tmp_path, trained, data, capsys):
    """ifru-reference keeps the old graph: the checkpoint records it, so loading predicts as before."""
    rows = clean_rows(data, 0, 40)
    out = tmp_path / "ref"
    assert main(["-q", "unlearn", "--checkpoint", str(trained["lightgcn", "full"]), "--method", "ifru-reference",
                 "--max-iter", "5", "--pairs", str(pairs_file(tmp_path / "a.csv", data, rows)), "--out", str(out)]) == 0
    capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    loaded = load_checkpoint(out / "model.pt", data)
    assert loaded.graph_removal is None and torch.equal(loaded.removal, rows)
    assert same_graph(loaded.model.graph, data.graph())  # the graph it was trained with, not D \ rows
    assert main(["-q", "evaluate", "--checkpoint", str(out / "model.pt"), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    for split in ("valid", "test"):
        assert evaluated[split] == pytest.approx(summary[split], abs=1e-12, nan_ok=True)
    # In memory too: the answer's model and the reloaded one score alike.
    checkpoint = load_checkpoint(trained["lightgcn", "full"], data)
    answer = answer_request(checkpoint, data, rows, request_id="r", method="ifru-reference",
                            config=configure("ifru-reference", {"max_iter": 5}))
    path = save_checkpoint(tmp_path / "m.pt", answer.checkpoint.model, data, answer.checkpoint.removal,
                           ledger=answer.checkpoint.ledger, graph_removal=answer.checkpoint.graph_removal)
    assert evaluate(load_checkpoint(path, data).model, data) == evaluate(answer.checkpoint.model, data)
    # A later new-graph request leaves out every row the model does not reflect.
    later = answer_request(answer.checkpoint, data, clean_rows(data, 40, 50), request_id="s", method="ifru-cg",
                           config=configure("ifru-cg", {"max_iter": 2})).checkpoint
    assert same_graph(later.model.graph, data.graph(union(rows, clean_rows(data, 40, 50))))


def test_older_checkpoints_load_with_an_empty_ledger(tmp_path, data):
    model = train_new("lightgcn", data, TrainConfig(max_epochs=1), dim=4)[0]
    path = save_checkpoint(tmp_path / "model.pt", model, data, data.removal)
    payload = torch.load(path, weights_only=True)
    del payload["ledger"], payload["graph_removal"]
    torch.save(payload, path)
    loaded = load_checkpoint(path, data)
    assert len(loaded.ledger) == 0 and loaded.ledger.rows.numel() == 0
    assert torch.equal(loaded.graph_removal, data.removal)  # the graph was rebuilt from removal
    assert same_graph(loaded.model.graph, data.graph(data.removal))
    assert torch.equal(loaded.trained_without, data.removal)  # so re-forgetting them is refused


def test_inconsistent_ledgers_are_refused(tmp_path, data):
    model = train_new("mf", data, TrainConfig(max_epochs=1), dim=4)[0]
    checkpoint = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model, data), data)
    rows = clean_rows(data, 0, 5)
    ledger = answer_request(checkpoint, data, rows, request_id="x", method="ifru-cg").checkpoint.ledger
    with pytest.raises(ValueError, match="must be in removal"):
        save_checkpoint(tmp_path / "bad.pt", model, data, removal=None, ledger=ledger)
    path = save_checkpoint(tmp_path / "ok.pt", model, data, removal=rows, ledger=ledger)
    payload = torch.load(path, weights_only=True)
    payload["ledger"]["rows"] = rows[1:]
    torch.save(payload, path)
    with pytest.raises(ValueError, match="invalid ledger: ledger rows are not the disjoint union"):
        read_checkpoint(path)
    with pytest.raises(ValueError, match="disjoint union"):
        Ledger(ledger.entries * 2, ledger.rows)
    plan = plan_request(torch.tensor([0, 1, 2]), torch.tensor([1, 2]), Ledger())
    assert plan.forget.tolist() == [0] and plan.never_trained.tolist() == [1, 2] and plan.skipped.numel() == 0


# --------------------------------------------------------------------------- ifru apply


def write_log(path: Path, data, requests: list[tuple[str, torch.Tensor]], header: bool = True) -> Path:
    """A ``request_id,user,item`` CSV; a request without rows is written as ``ID,,``."""
    lines = ["request_id,user,item"] if header else []
    for request_id, rows in requests:
        rows = torch.as_tensor(rows, dtype=torch.int64)
        if rows.numel() == 0:
            lines.append(f"{request_id},,")
        for row in rows.tolist():
            lines.append(f"{request_id},{data.user_ids[int(data.train.users[row])]},"
                         f"{data.item_ids[int(data.train.items[row])]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_log_groups_by_request_in_file_order(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("request_id,user,item\nr2,u1,i1\nr1,u2,i2\nr2,u3,i3\nr3,,\n\n")
    requests = read_log(path)
    assert [(r.id, r.users, r.items) for r in requests] == [
        ("r2", ("u1", "u3"), ("i1", "i3")), ("r1", ("u2",), ("i2",)), ("r3", (), ())]
    for text, match in (("r1,u1\n", "expected 'request_id,user,item'"), (",u1,i1\n", "empty request id"),
                        ("r1,u1,\n", "without an item")):
        path.write_text(text)
        with pytest.raises(ValueError, match=match):
            read_log(path)


def test_apply_killed_mid_log_resumes_and_applies_each_request_once(tmp_path, trained, data, capsys, monkeypatch):
    chunks = [clean_rows(data, 10 * k, 10 * k + 10) for k in range(5)]
    requests = [("r1", chunks[0]), ("r2", chunks[1]), ("r3", union(chunks[1], chunks[2])), ("r4", torch.empty(0)),
                ("r5", chunks[3]), ("r6", chunks[4])]
    log = write_log(tmp_path / "log.csv", data, requests)
    out = tmp_path / "job"
    argv = ["-q", "apply", str(log), "--checkpoint", str(trained["lightgcn", "full"]), "--out", str(out), *CHEAP]

    def kill_after_second(index: int, request_id: str) -> None:
        if index == 2:
            raise KeyboardInterrupt  # Ctrl-C right after the 2nd request was saved

    monkeypatch.setattr(cli, "apply_log", functools.partial(apply_log, after_request=kill_after_second))
    assert main(argv) == 130
    assert "interrupted" in capsys.readouterr().err
    stopped = load_checkpoint(out / "model.pt", data)
    assert stopped.ledger.ids == ["r1", "r2"]
    progress = json.loads((out / "progress.json").read_text())
    assert [r["id"] for r in progress["requests"]] == ["r1", "r2"] and progress["complete"] is False

    monkeypatch.setattr(cli, "apply_log", apply_log)
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "6 requests in the log: 6 applied by this job" in printed
    final = load_checkpoint(out / "model.pt", data)
    assert final.ledger.ids == [request_id for request_id, _ in requests]  # each once, in log order
    every = union(*chunks)
    assert torch.equal(final.ledger.rows, every) and torch.equal(final.removal, every)
    assert same_graph(final.model.graph, data.graph(every))
    r3 = final.ledger.entries[2]
    assert torch.equal(r3.rows, chunks[2]) and r3.skipped == chunks[1].numel()
    assert final.ledger.entries[3].num_rows == 0  # the empty request is recorded, nothing forgotten
    progress = json.loads((out / "progress.json").read_text())
    assert [r["id"] for r in progress["requests"]] == [r for r, _ in requests]
    assert all(r["status"] == "applied" for r in progress["requests"]) and progress["complete"] is True
    assert progress["ledger"] == {"requests": 6, "rows": every.numel()}
    # A third run has nothing left to do and changes nothing.
    assert main(argv) == 0
    assert load_checkpoint(out / "model.pt", data).ledger.ids == final.ledger.ids
    assert torch.equal(load_checkpoint(out / "model.pt", data).model.embedding, final.model.embedding)
    # The folder belongs to this input checkpoint: another one is refused, one line.
    assert main(["-q", "apply", str(log), "--checkpoint", str(trained["mf", "full"]), "--out", str(out)]) == 1
    assert "holds the job of another input checkpoint" in capsys.readouterr().err


def test_apply_survives_sigkill(tmp_path, trained, data):
    """A real kill (SIGKILL of the process, at whatever point it is) loses nothing and repeats nothing."""
    chunks = [clean_rows(data, 5 * k, 5 * k + 5) for k in range(12)]
    requests = [(f"q{k}", rows) for k, rows in enumerate(chunks)]
    log = write_log(tmp_path / "log.csv", data, requests, header=False)
    out = tmp_path / "job"
    argv = [sys.executable, "-m", "ifru_ext", "-q", "apply", str(log), "--checkpoint", str(trained["mf", "full"]),
            "--out", str(out), "--method", "ifru", "--threads", "1"]
    process = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if (out / "progress.json").exists():
                done = json.loads((out / "progress.json").read_text())["requests"]
                if len(done) >= 2:
                    process.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.02)
    finally:
        if process.poll() is None and time.monotonic() >= deadline:
            process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()
    stopped = load_checkpoint(out / "model.pt", data).ledger.ids
    assert 2 <= len(stopped) < len(requests) and stopped == [request_id for request_id, _ in requests][: len(stopped)]
    assert main(["-q", "apply", str(log), "--checkpoint", str(trained["mf", "full"]), "--out", str(out),
                 "--method", "ifru"]) == 0
    final = load_checkpoint(out / "model.pt", data)
    assert final.ledger.ids == [request_id for request_id, _ in requests]
    assert torch.equal(final.ledger.rows, union(*chunks))
    assert sorted(os.listdir(out)) == [".lock", "model.pt", "progress.json"]  # a killed write's temp file is gone


def test_apply_verifies_against_a_retrain(tmp_path, trained, data, capsys):
    requests = [(f"v{k}", clean_rows(data, 10 * k, 10 * k + 10)) for k in range(4)]
    log = write_log(tmp_path / "log.csv", data, requests)
    out = tmp_path / "job"
    assert main(["-q", "apply", str(log), "--checkpoint", str(trained["mf", "full"]), "--out", str(out), *CHEAP,
                 "--verify-every", "2"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("verify")]
    assert len(lines) == 2 and "vs retrain" in lines[0] and "forget loss" in lines[0]
    progress = json.loads((out / "progress.json").read_text())
    first, second = progress["verifications"]
    assert (first["applied"], first["request"], second["request"]) == (2, "v1", "v3")
    assert second["ledger_rows"] == union(*(rows for _, rows in requests)).numel()
    for record in (first, second):
        for key in ("model_auc_0", "retrain_auc_0", "model_forget_loss", "retrain_forget_loss"):
            assert 0 < record[key] < 10
        assert record["auc_0_drift"] == pytest.approx(record["model_auc_0"] - record["retrain_auc_0"])
    # The output checkpoint evaluates without dataset options (its meta records them).
    assert main(["-q", "evaluate", "--checkpoint", str(out / "model.pt")]) == 0


def test_apply_refuses_a_bad_log_before_any_work(tmp_path, trained, data, capsys):
    out = tmp_path / "job"
    good = clean_rows(data, 0, 5)
    never = write_log(tmp_path / "never.csv", data, [("ok", good), ("bad", data.removal[:3])])
    assert main(["-q", "apply", str(never), "--checkpoint", str(trained["mf", "retrain"]), "--out", str(out)]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "request 'bad': 3 of its rows were never trained on" in error
    assert not out.exists()  # refused before any work: no folder left behind
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("r1,nobody,i1\n")
    assert main(["-q", "apply", str(unknown), "--checkpoint", str(trained["mf", "full"]), "--out", str(out)]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "request 'r1': 1 pair(s) name ids absent" in error
    assert not (out / "model.pt").exists()
    # --out may not be the input checkpoint's folder.
    folder = trained["mf", "full"].parent
    assert main(["-q", "apply", str(never), "--checkpoint", str(trained["mf", "full"]), "--out", str(folder)]) == 1
    assert "would overwrite the input" in capsys.readouterr().err


# --------------------------------------------------------------------------- random request sequences


@pytest.fixture(scope="module")
def planted_models(tmp_path_factory):
    dataset = planted_dataset(num_users=30, num_items=40, n=1500)
    root = tmp_path_factory.mktemp("planted")
    config = TrainConfig(lr=1e-2, batch_size=256, max_epochs=4, patience=3)
    paths = {}
    for name in ("mf", "lightgcn"):
        model, _ = train_new(name, dataset, config, dim=6)
        paths[name] = save_checkpoint(root / f"{name}.pt", model, dataset, meta={"train": config.__dict__})
    return dataset, paths


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["mf", "lightgcn"]),
       sequence=st.lists(st.lists(st.integers(0, 24), max_size=6), min_size=1, max_size=4))
def test_random_request_sequences_leave_the_union_forgotten(planted_models, name, sequence):
    """Random sequences of requests (repeats and empty ones included), replayed by ``apply_log``
    through saved checkpoints: the final ledger is the union and the model loads with the
    graph of D minus it."""
    dataset, paths = planted_models
    keys = dataset.train.users * dataset.num_items + dataset.train.items
    # Requests name pairs; a pair may stand for several training rows (all are forgotten).
    requests = [(f"r{k}", torch.unique(torch.tensor(rows, dtype=torch.int64))) for k, rows in enumerate(sequence)]
    expected = [torch.nonzero(torch.isin(keys, keys[rows])).reshape(-1) for _, rows in requests]
    every = union(*expected)
    with tempfile.TemporaryDirectory() as folder:
        log = write_log(Path(folder) / "log.csv", dataset, requests)
        assert [rows.tolist() for rows in encode_requests(read_log(log), dataset)] == [r.tolist() for r in expected]
        apply_log(log, paths[name], dataset, Path(folder) / "job", method="ifru")
        final = load_checkpoint(Path(folder) / "job" / "model.pt", dataset)
    assert final.ledger.ids == [request_id for request_id, _ in requests]
    assert torch.equal(final.ledger.rows, every)
    assert sum(entry.num_rows for entry in final.ledger.entries) == every.numel()
    assert torch.equal(union(final.removal), every)
    if name == "lightgcn":
        assert same_graph(final.model.graph, dataset.graph(every))
