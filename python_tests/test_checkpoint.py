"""Tests of ifru_ext.checkpoint: round trips, atomic writes, refusal of mismatched or broken files."""
from __future__ import annotations

import os

import pytest
import torch

from ifru_ext.models.checkpoint import FORMAT, load_checkpoint, read_checkpoint, save_checkpoint
from ifru_ext.models import build_model

from test_train import planted_dataset


@pytest.fixture(scope="module")
def dataset():
    return planted_dataset(num_users=30, num_items=40, n=1500)


@pytest.mark.parametrize("name", ["mf", "lightgcn"])
def test_round_trip_is_bit_identical(tmp_path, dataset, name):
    model = build_model(name, dataset.num_users, dataset.num_items, dim=6, init_std=0.3, seed=0)
    model.set_graph(dataset.graph(dataset.removal))
    meta = {"train": {"lr": 1e-3}, "history": [{"epoch": 1, "loss": 0.5}], "note": None}
    path = save_checkpoint(tmp_path / "sub" / "model.pt", model, dataset, removal=dataset.removal, meta=meta)
    loaded = load_checkpoint(path, dataset, expected_model=name)
    assert torch.equal(loaded.model.embedding, model.embedding)
    assert loaded.model.config() == model.config()
    assert torch.equal(loaded.removal, dataset.removal) and loaded.meta == meta
    if name == "lightgcn":  # the graph is rebuilt without the removed rows
        assert torch.equal(loaded.model.graph.col, dataset.graph(dataset.removal).col)
    users, items = dataset.test.users, dataset.test.items
    assert torch.equal(loaded.model.score_all(users, items), model.score_all(users, items))
    assert sorted(os.listdir(path.parent)) == ["model.pt"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # like any new file, not mkstemp's 0o600


def test_full_model_has_no_removal_and_the_full_graph(tmp_path, dataset):
    model = build_model("lightgcn", dataset.num_users, dataset.num_items, dim=4, seed=0)
    path = save_checkpoint(tmp_path / "model.pt", model, dataset)
    loaded = load_checkpoint(path, dataset)
    assert loaded.removal is None and loaded.meta == {}
    assert torch.equal(loaded.model.graph.col, dataset.graph().col)


def test_checkpoint_is_plain_data(tmp_path, dataset):
    path = save_checkpoint(tmp_path / "model.pt", build_model("mf", dataset.num_users, dataset.num_items), dataset)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == FORMAT and payload["split_hash"] == dataset.split_hash
    assert set(payload) == {"format", "model", "state", "split_hash", "removal", "graph_removal", "ledger", "trace",
                            "loss", "meta"}
    assert payload["loss"] == "bce"  # an untrained model (no trace): BCE


def test_a_v1_checkpoint_still_loads(tmp_path, dataset):
    """v1 stored the removed rows under ``exclude``; the graph is rebuilt from them."""
    model = build_model("lightgcn", dataset.num_users, dataset.num_items, seed=0)
    path = save_checkpoint(tmp_path / "model.pt", model, dataset, dataset.removal)
    payload = torch.load(path, weights_only=True)
    payload["format"], payload["exclude"] = "ifru-checkpoint-v1", payload.pop("removal")
    torch.save(payload, path)
    loaded = load_checkpoint(path, dataset)
    assert torch.equal(loaded.removal, dataset.removal)
    assert torch.equal(loaded.model.graph.col, dataset.graph(dataset.removal).col)


def test_refuses_another_split(tmp_path, dataset):
    path = save_checkpoint(tmp_path / "model.pt", build_model("mf", dataset.num_users, dataset.num_items), dataset)
    other = planted_dataset(num_users=30, num_items=40, n=1500, seed=1)
    with pytest.raises(ValueError, match="another dataset split"):
        load_checkpoint(path, other)


def test_refuses_another_model_kind(tmp_path, dataset):
    path = save_checkpoint(tmp_path / "model.pt", build_model("mf", dataset.num_users, dataset.num_items), dataset)
    with pytest.raises(ValueError, match="holds a 'mf' model, expected 'lightgcn'"):
        load_checkpoint(path, dataset, expected_model="lightgcn")


def tampered(path, dataset, change) -> None:
    """Rewrite the checkpoint at ``path`` after ``change(payload)``."""
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p["state"].update(embedding=torch.zeros(3, 3)), "parameter shapes"),
        (lambda p: p["model"].update(dim=7), "parameter shapes"),
        (lambda p: p["model"].update(num_items=41), r"\(users, items\)"),
        (lambda p: p["model"].update(name="bpr"), "invalid model config"),
        (lambda p: p.update(format="other"), "not an ifru-checkpoint-v2"),
        (lambda p: p.pop("state"), "'state' is missing"),
        (lambda p: p.update(removal=torch.zeros(2)), "'removal'"),
    ],
)
def test_refuses_inconsistent_contents(tmp_path, dataset, change, message):
    path = save_checkpoint(tmp_path / "model.pt", build_model("mf", dataset.num_users, dataset.num_items), dataset)
    tampered(path, dataset, change)
    with pytest.raises(ValueError, match=message):
        load_checkpoint(path, dataset)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_refuses_a_corrupted_file(tmp_path, dataset, damage):
    path = save_checkpoint(tmp_path / "model.pt", build_model("mf", dataset.num_users, dataset.num_items), dataset)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(256), "empty": b""}[damage])
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        read_checkpoint(path)


def test_refuses_a_pickled_object(tmp_path):
    # weights_only loading never runs pickled code: an arbitrary object is refused.
    path = tmp_path / "model.pt"
    torch.save({"format": FORMAT, "object": ValueError("x")}, path)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        read_checkpoint(path)


def test_missing_file(tmp_path, dataset):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "absent.pt", dataset)


def test_failed_write_keeps_the_old_checkpoint(tmp_path, dataset, monkeypatch):
    model = build_model("mf", dataset.num_users, dataset.num_items, seed=0)
    path = save_checkpoint(tmp_path / "model.pt", model, dataset)
    before = path.read_bytes()

    def failing_save(obj, file):
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, build_model("mf", dataset.num_users, dataset.num_items, seed=1), dataset)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.pt"]
