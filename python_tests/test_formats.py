"""The community's formats: RecBole atomic .inter files as datasets, benchmark forget-set files
as deletion requests, and the RecBole-style export of a checkpoint — on the real BookCrossing data."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ifru_ext.cli import main
from ifru_ext.data import PRESETS, data_dir, load_dataset, read_request, validate_removal
from ifru_ext.data.readers import read_bookcrossing, read_ids, read_inter
from ifru_ext.models import load_checkpoint
from ifru_ext.models.export import EXPORT_FILES, export_recbole, read_export
from ifru_ext.training import TrainConfig, train_new

BX_FILE = data_dir() / PRESETS["bookcrossing"]["file"]
pytestmark = pytest.mark.skipif(not BX_FILE.exists(), reason=f"{BX_FILE} not present")
ROWS = 20000  # the slice test_data uses: sorted by user, so a 2-core (3,577 rows)
HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\treview:token_seq\n"


@pytest.fixture(scope="module")
def bx() -> pd.DataFrame:
    return read_bookcrossing(BX_FILE, max_rows=ROWS)


def write_inter(path: Path, header: str, lines: list[str]) -> Path:
    text = (header + "".join(line + "\n" for line in lines)).encode()
    path.write_bytes(gzip.compress(text) if path.suffix == ".gz" else text)
    return path


@pytest.fixture(scope="module")
def inter_file(bx, tmp_path_factory) -> Path:
    """The BookCrossing slice as a RecBole .inter file, with a timestamp and a token_seq field to drop."""
    lines = [f"{u}\t{i}\t{r}\t{k}\tgood read {k}" for k, (u, i, r) in enumerate(bx.itertuples(index=False))]
    return write_inter(tmp_path_factory.mktemp("inter") / "bx.inter", HEADER, lines)


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("bookcrossing", max_rows=ROWS, kcore=2, attack_fraction=0.02)


# --------------------------------------------------------------------------- .inter datasets


def test_inter_file_loads_the_same_interactions_as_the_csv(bx, inter_file, dataset, tmp_path):
    frame = read_inter(inter_file)
    assert list(frame.columns) == ["user", "item", "rating"]
    pd.testing.assert_frame_equal(frame, bx)
    for path in (inter_file, write_inter(tmp_path / "bx.inter.gz", HEADER, inter_file.read_text().splitlines()[1:])):
        loaded = load_dataset(path, threshold=5, kcore=2, attack_fraction=0.02)
        assert loaded.split_hash == dataset.split_hash
        assert loaded.user_ids.tolist() == dataset.user_ids.tolist()
        assert loaded.item_ids.tolist() == dataset.item_ids.tolist()
    # RecBole's field order is free: the header decides which column is which.
    swapped = [f"{r}\t{i}\t{u}" for u, i, r in bx.itertuples(index=False)]
    path = write_inter(tmp_path / "swapped.inter", "rating:float\titem_id:token\tuser_id:token\n", swapped)
    assert load_dataset(path, threshold=5, kcore=2, attack_fraction=0.02).split_hash == dataset.split_hash


def test_inter_label_field_gives_the_labels(bx, dataset, tmp_path):
    lines = [f"{u}\t{i}\t{int(r > 5)}\t{r}" for u, i, r in bx.itertuples(index=False)]
    path = write_inter(tmp_path / "labels.inter", "user_id:token\titem_id:token\tlabel:float\trating:float\n", lines)
    assert read_inter(path).columns.tolist() == ["user", "item", "label"]  # label wins over rating
    loaded = load_dataset(path, kcore=2, attack_fraction=0.02)
    assert loaded.split_hash == dataset.split_hash  # label = 1 exactly where rating > 5
    with pytest.raises(ValueError, match="threshold= does not apply"):
        load_dataset(path, threshold=5, kcore=2)
    with pytest.raises(ValueError, match="needs kcore="):
        load_dataset(path)


def test_implicit_and_one_class_files_are_refused(bx, tmp_path):
    pairs = [f"{u}\t{i}" for u, i, _ in bx.itertuples(index=False)]
    implicit = write_inter(tmp_path / "implicit.inter", "user_id:token\titem_id:token\n", pairs)
    assert read_inter(implicit).columns.tolist() == ["user", "item"]  # the reader reads it ...
    with pytest.raises(ValueError, match="implicit feedback .* needs negative sampling"):  # ... the protocol refuses it
        load_dataset(implicit, threshold=5, kcore=2)
    positives = write_inter(tmp_path / "ones.inter", "user_id:token\titem_id:token\tlabel:float\n",
                            [f"{pair}\t1" for pair in pairs])
    with pytest.raises(ValueError, match="every row is a positive"):
        load_dataset(positives, kcore=2)


GOOD = "user_id:token\titem_id:token\trating:float\n"


@pytest.mark.parametrize("header, lines, message", [
    ("user_id\titem_id\trating:float\n", ["a\tx\t1"], "line 1: malformed RecBole header field 'user_id'"),
    ("user_id:token\titem_id:tok\trating:float\n", ["a\tx\t1"], "malformed RecBole header field 'item_id:tok'"),
    ("user_id:token,item_id:token,rating:float\n", ["a,x,1"], "malformed RecBole header field"),
    ("user_id:token\tuser_id:token\trating:float\n", ["a\tx\t1"], "'user_id' named twice"),
    ("user_id:token\trating:float\n", ["a\t1"], "no item_id:token field"),
    ("user_id:float\titem_id:token\trating:float\n", ["1\tx\t1"], "field user_id is typed float"),
    ("user_id:token\titem_id:token\trating:token\n", ["a\tx\t1"], "expected rating:float"),
    ("\n", ["a\tx\t1"], "empty header line"),
    (GOOD, ["a\tx\t1", "b\ty\t2\t7", "c\tz\t3"], "line 3: expected 3 fields"),
    (GOOD, ["a\tx\t1", "b\ty\t2", "c\tz"], "line 4: expected 3 fields, found 2"),
    (GOOD, ["a\tx\t1", "b\ty\tfive"], "line 3: rating 'five' is not a finite number"),
    (GOOD, ["a\t\t1"], "line 2: empty field"),
    ("user_id:token\titem_id:token\tlabel:float\n", ["a\tx\t1", "b\ty\t2"], "line 3: label 2 is not 0 or 1"),
])
def test_malformed_inter_files_name_the_problem(tmp_path, header, lines, message):
    path = write_inter(tmp_path / "bad.inter", header, lines)
    with pytest.raises(ValueError, match=message):
        load_dataset(path, threshold=None if "label" in header else 0, kcore=0)


def test_inter_files_refuse_generic_file_options(inter_file):
    for options in ({"sep": "\t"}, {"header": True}, {"columns": ("user", "item", "rating", "timestamp")}):
        with pytest.raises(ValueError, match="do not apply"):
            load_dataset(inter_file, threshold=5, kcore=2, **options)


# --------------------------------------------------------------------------- forget-set files


def raw(dataset, rows: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The raw (user, item) tokens of training rows."""
    return dataset.user_ids[dataset.train.users[rows].numpy()], dataset.item_ids[dataset.train.items[rows].numpy()]


def test_forget_files_of_every_layout_give_the_same_rows(dataset, tmp_path):
    picked = torch.from_numpy(np.random.default_rng(0).choice(len(dataset.train), 40, replace=False))
    users, items = raw(dataset, picked)
    pairs = sorted(set(zip(users, items)))
    expected = validate_removal(dataset, users=dataset.train.users[picked], items=dataset.train.items[picked])
    layouts = {
        "recbole.inter": "user_id:token\titem_id:token\trating:float\n" + "".join(f"{u}\t{i}\t1\n" for u, i in pairs),
        "cure4rec.csv": "uid,iid,val,tag\n" + "".join(f"{u},{i},1,88{k}\n" for k, (u, i) in enumerate(pairs)),
        "spaces.txt": "".join(f"  {u}   {i} \n" for u, i in pairs),
        "tabs.tsv": "".join(f"{u}\t{i}\r\n" for u, i in pairs),
        "plain.csv": "".join(f"{u}, {i}\n" for u, i in pairs),  # the original read_request layout
    }
    for name, text in layouts.items():
        (tmp_path / name).write_text(text)
        assert torch.equal(read_request(tmp_path / name, dataset), expected), name
    # Users alone: every training row of each, named once or more.
    named = sorted(set(users))
    every = torch.isin(dataset.train.users, dataset.train.users[picked]).nonzero().reshape(-1)
    (tmp_path / "users.inter").write_text("user_id:token\n" + "".join(f"{u}\n{u}\n" for u in named))
    (tmp_path / "users.csv").write_text("user\n" + "".join(f"{u}\n" for u in named))
    for path in (tmp_path / "users.inter", tmp_path / "users.csv"):
        assert read_ids(path).columns.tolist() == ["user"]
        assert torch.equal(read_request(path, dataset), every)
    assert torch.equal(read_request(tmp_path / "cure4rec.csv", dataset, whole_users=True), every)


def test_forget_files_refuse_unknown_ids_and_untrained_pairs(dataset, tmp_path):
    (tmp_path / "unknown.inter").write_text("user_id:token\nno-such-user\n")
    with pytest.raises(ValueError, match=r"1 user\(s\) absent from the training set, e.g. \['no-such-user'\]"):
        read_request(tmp_path / "unknown.inter", dataset)
    (tmp_path / "unknown.csv").write_text(f"{dataset.user_ids[0]},no-such-item\n")
    with pytest.raises(ValueError, match=r"1 pair\(s\) name ids absent"):
        read_request(tmp_path / "unknown.csv", dataset)
    trained = set(zip(*raw(dataset, torch.arange(len(dataset.train)))))
    user, item = next((u, i) for u in dataset.user_ids[:50] for i in dataset.item_ids[:50] if (u, i) not in trained)
    (tmp_path / "untrained.txt").write_text(f"{user} {item}\n")
    with pytest.raises(ValueError, match="pairs not in the training set"):
        read_request(tmp_path / "untrained.txt", dataset)
    (tmp_path / "ragged.csv").write_text(f"{dataset.user_ids[0]},{dataset.item_ids[0]}\n{dataset.user_ids[1]}\n")
    with pytest.raises(ValueError, match="line 2: expected 2 fields"):
        read_request(tmp_path / "ragged.csv", dataset)
    (tmp_path / "typed.inter").write_text("user_id:token\titem_id:float\n1\t2\n")
    with pytest.raises(ValueError, match="needs user_id:token"):
        read_request(tmp_path / "typed.inter", dataset)


# --------------------------------------------------------------------------- export


def exported_scores(folder: Path, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Logits of raw (user, item) tokens from the exported files alone: numpy and the two TSVs."""
    rows = {}
    for kind in ("user", "item"):
        lines = (folder / f"{kind}_id.tsv").read_text(encoding="utf-8").splitlines()
        assert lines[0] == f"{kind}_id:token"
        rows[kind] = {token: k for k, token in enumerate(lines[1:])}
    user_table = np.load(folder / "user_embedding.npy", allow_pickle=False)
    item_table = np.load(folder / "item_embedding.npy", allow_pickle=False)
    u = np.array([rows["user"][str(token)] for token in users])
    i = np.array([rows["item"][str(token)] for token in items])
    return (user_table[u].astype(np.float64) * item_table[i]).sum(1)


@pytest.mark.parametrize("name", ["mf", "lightgcn"])
def test_export_round_trip(dataset, tmp_path, name):
    config = TrainConfig.for_model(name, max_epochs=2, lr=0.01)
    model, _ = train_new(name, dataset, config)
    assert export_recbole(model, dataset, tmp_path) == EXPORT_FILES
    table, learned = model.scoring_table().detach(), model.embedding.detach()
    back = read_export(tmp_path)
    assert back.user_tokens == [str(token) for token in dataset.user_ids]
    assert back.item_tokens == [str(token) for token in dataset.item_ids]
    assert np.array_equal(back.user_embedding, table[: dataset.num_users].numpy())
    assert np.array_equal(back.item_embedding, table[dataset.num_users:].numpy())
    assert set(back.state_dict) == {"user_embedding.weight", "item_embedding.weight"}
    assert torch.equal(back.state_dict["user_embedding.weight"], learned[: dataset.num_users])
    assert torch.equal(back.state_dict["item_embedding.weight"], learned[dataset.num_users:])
    assert back.description["model"] == model.config()
    if name == "lightgcn":  # the scoring table is P E, not the learned E
        assert not torch.equal(table, learned)
    # A user's scores from the files alone equal the model's.
    test = dataset.test
    users, items = dataset.user_ids[test.users.numpy()], dataset.item_ids[test.items.numpy()]
    expected = model.score_all(test.users, test.items).double().numpy()
    np.testing.assert_allclose(exported_scores(tmp_path, users, items), expected, rtol=1e-5, atol=1e-6)
    assert back.score(str(users[0]), str(items[0])) == pytest.approx(float(expected[0]), rel=1e-5, abs=1e-6)


def test_cli_inter_train_unlearn_export(bx, inter_file, dataset, tmp_path, capsys):
    """--dataset x.inter through the CLI, a RecBole forget file as the request, then export."""
    trained, unlearned, out = tmp_path / "train", tmp_path / "unlearn", tmp_path / "export"
    options = ["--dataset", str(inter_file), "--threshold", "5", "--kcore", "2", "--attack-fraction", "0.02"]
    assert main(["-q", "train", "--epochs", "2", "--lr", "0.01", "--out", str(trained), "--no-progress", *options]) == 0
    users, items = raw(dataset, dataset.removal[:25])
    forget = tmp_path / "forget.inter"
    pairs = sorted(set(zip(users, items)))
    forget.write_text("user_id:token\titem_id:token\n" + "".join(f"{u}\t{i}\n" for u, i in pairs))
    assert main(["-q", "unlearn", "--checkpoint", str(trained / "model.pt"), "--pairs", str(forget),
                 "--out", str(unlearned)]) == 0
    assert json.loads((unlearned / "summary.json").read_text())["removed"] == 25
    assert main(["-q", "export", "--checkpoint", str(unlearned / "model.pt"), "--out", str(out)]) == 0
    assert "exported mf" in capsys.readouterr().out
    assert sorted(path.name for path in out.iterdir()) == sorted(EXPORT_FILES)
    description = json.loads((out / "export.json").read_text())
    assert description["meta"]["ledger"]["rows"] == 25 and description["meta"]["split_hash"] == dataset.split_hash
    model = load_checkpoint(unlearned / "model.pt", dataset).model
    test = dataset.test
    np.testing.assert_allclose(
        exported_scores(out, dataset.user_ids[test.users.numpy()], dataset.item_ids[test.items.numpy()]),
        model.score_all(test.users, test.items).double().numpy(), rtol=1e-5, atol=1e-6)
    # Outputs never destroy inputs: the checkpoint's own folder is refused, one line, exit 1.
    assert main(["-q", "export", "--checkpoint", str(unlearned / "model.pt"), "--out", str(unlearned)]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "folder of the input checkpoint" in error
