"""Tests of ifru_ext.data: readers, k-core, split, attack, graphs, removal requests, real BookCrossing."""
from __future__ import annotations

import gzip
import lzma
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ifru_ext.data.protocol import _sample_users
from ifru_ext.data import (
    PRESETS,
    Interactions,
    RecDataset,
    attack_indices,
    binarize,
    build_dataset,
    data_dir,
    kcore,
    load_dataset,
    read_bookcrossing,
    read_ratings,
    split_indices,
    validate_removal,
)
from ifru_ext.graph import kept_rowptr, lightgcn_graph

BX_FILE = data_dir() / PRESETS["bookcrossing"]["file"]
needs_bx = pytest.mark.skipif(not BX_FILE.exists(), reason=f"{BX_FILE} not present")

BX_TEXT = (
    '"User-ID";"ISBN";"Book-Rating"\r\n'
    '"276725";"034545104X";"0"\r\n'
    '"276726";"0155061224";"5"\r\n'
    '"276727";"0446520802";"0"\r\n'
    '"276729";"052165615\xe9";"6"\r\n'  # latin-1 byte in an ISBN
)


def write(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path``, compressed according to its suffix."""
    opener = {".xz": lzma.open, ".gz": gzip.open}.get(path.suffix, open)
    with opener(path, "wb") as handle:
        handle.write(data)
    return path


def random_ratings(n: int, num_users: int, num_items: int, seed: int) -> pd.DataFrame:
    """Raw rows with string ids, ratings 0..10."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user": np.char.add("u", rng.integers(0, num_users, n).astype(str)).astype(object),
            "item": np.char.add("i", rng.integers(0, num_items, n).astype(str)).astype(object),
            "rating": rng.integers(0, 11, n),
        }
    )


# --------------------------------------------------------------------------- readers


def test_read_bookcrossing_plain_gz_xz_agree(tmp_path: Path) -> None:
    raw = BX_TEXT.encode("latin-1")
    frames = [read_bookcrossing(write(tmp_path / f"bx.csv{suffix}", raw)) for suffix in ("", ".gz", ".xz")]
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frame, frames[0])
    frame = frames[0]
    assert list(frame.columns) == ["user", "item", "rating"]
    assert frame["item"].tolist() == ["034545104X", "0155061224", "0446520802", "052165615\xe9"]  # leading zeros kept
    assert frame["user"].tolist() == ["276725", "276726", "276727", "276729"]
    assert frame["rating"].dtype == np.int64 and frame["rating"].tolist() == [0, 5, 0, 6]
    assert len(read_bookcrossing(tmp_path / "bx.csv", max_rows=2)) == 2


def test_read_ratings_separators_agree(tmp_path: Path) -> None:
    rows = [("a", "x", "5", "100"), ("b", "y", "3", "101"), ("a", "y", "1", "102")]
    columns = ("user", "item", "rating", "timestamp")
    comma = read_ratings(write(tmp_path / "r.csv", "\n".join(",".join(r) for r in rows).encode()), columns=columns)
    tab = read_ratings(write(tmp_path / "u.data", "\n".join("\t".join(r) for r in rows).encode()), sep="\t", columns=columns)
    colons = read_ratings(
        write(tmp_path / "ratings.dat.gz", "\n".join("::".join(r) for r in rows).encode()), sep="::", columns=columns
    )
    headed = read_ratings(
        write(tmp_path / "h.csv", ("u,i,r,t\n" + "\n".join(",".join(r) for r in rows) + "\n").encode()),
        columns=columns,
        header=True,
    )
    for frame in (tab, colons, headed):
        pd.testing.assert_frame_equal(frame, comma)
    assert list(comma.columns) == ["user", "item", "rating"]  # timestamp dropped
    assert comma["rating"].tolist() == [5, 3, 1]
    # Columns in another order; a non-integral rating keeps float64.
    swapped = read_ratings(write(tmp_path / "s.csv", b"x,a,3.5\ny,b,4\n"), columns=("item", "user", "rating"))
    assert swapped["user"].tolist() == ["a", "b"] and swapped["rating"].tolist() == [3.5, 4.0]


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("a,x,1\nb,y,2\nc,z,3,9\nd,w,4\n", 3, "found 4"),  # too many fields
        ("a,x,1\nb,y\nc,z,3\n", 2, "found 2"),  # too few fields
        ("a,x,1\nb,y,2\nc,z,high\n", 3, "'high'"),  # non-numeric rating
        ("a,x,1\nb,,2\n", 2, "empty field"),
        ("a,x,1\n\nb,y,2\n", 2, "line 2"),  # blank line inside the data
        ("a,x,1,7\nb,y,2,8\n", 1, "found 4"),  # every row too wide
        ("a,x,inf\n", 1, "finite"),
    ],
)
def test_malformed_rows_name_their_line(tmp_path: Path, text: str, line: int, what: str) -> None:
    path = write(tmp_path / "bad.csv", text.encode())
    with pytest.raises(ValueError, match=rf"line {line}\b") as error:
        read_ratings(path)
    assert what in str(error.value)


def test_malformed_line_counts_header_and_multichar_sep(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"line 3\b"):
        read_ratings(write(tmp_path / "h.csv", b"user,item,rating\na,x,1\nb,y,oops\n"), header=True)
    with pytest.raises(ValueError, match=r"line 2: expected 3 fields .* found 4"):
        read_ratings(write(tmp_path / "r.dat", b"1::2::3\n1::2::3::4\n"), sep="::")
    # A multi-character separator is literal, not a regex.
    assert read_ratings(write(tmp_path / "p.dat", b"1||2||3\n"), sep="||")["item"].tolist() == ["2"]
    # A file read with the wrong settings says which: a separator that is not in it (a literal
    # backslash-t here, once a crash inside pandas) or fields the columns do not name.
    tabbed = write(tmp_path / "u.data", b"1\t2\t3\t881250949\n")
    for sep in ("\\t", "::", ","):
        with pytest.raises(ValueError, match=r"line 1: expected 4 fields .* found 1 \(no separator .* in the line"):
            read_ratings(tabbed, sep=sep, columns=("user", "item", "rating", "timestamp"))
    with pytest.raises(ValueError, match=r"line 1: .* found 4 \(name every field .*--columns, e\.g\. "
                                         r"user,item,rating,timestamp;"):
        read_ratings(tabbed, sep="\t")
    with pytest.raises(ValueError, match=r"e\.g\. user,item,rating,timestamp,field5;"):
        read_ratings(write(tmp_path / "w.csv", b"a,x,1,7,8\n"))
    bx = BX_TEXT.replace('"0446520802";"0"', '"0446520802";"zero"').encode("latin-1")
    with pytest.raises(ValueError, match=r"line 4\b"):
        read_bookcrossing(write(tmp_path / "bx.csv.xz", bx))


def test_wrong_encoding_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path / "l1.csv", "a,x,1\nb,caf\xe9,2\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"line 2 is not valid utf-8.*encoding="):
        read_ratings(path)
    assert read_ratings(path, encoding="latin-1")["item"].tolist() == ["x", "caf\xe9"]


def test_empty_and_columnless_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        read_ratings(write(tmp_path / "e.csv", b""))
    with pytest.raises(ValueError, match="empty"):
        read_bookcrossing(write(tmp_path / "e.csv.gz", b"\r\n"))
    with pytest.raises(ValueError, match="no data rows"):
        read_bookcrossing(write(tmp_path / "h.csv", b'"User-ID";"ISBN";"Book-Rating"\r\n'))
    with pytest.raises(ValueError, match="header columns"):
        read_bookcrossing(write(tmp_path / "w.csv", b'"User-ID";"ISBN"\r\n"1";"2"\r\n'))
    with pytest.raises(ValueError, match=r"missing \['rating'\]"):
        read_ratings(write(tmp_path / "ok.csv", b"a,x,1\n"), columns=("user", "item", "timestamp"))
    with pytest.raises(ValueError, match=r"line 1: expected 4 fields"):  # the file lacks a declared column
        read_ratings(tmp_path / "ok.csv", columns=("user", "item", "rating", "timestamp"))


# --------------------------------------------------------------------------- k-core, labels, split


def naive_kcore(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """Reference: peel one under-populated user or item at a time until none is left."""
    df = df.reset_index(drop=True)
    while True:
        users, items = df["user"].value_counts(), df["item"].value_counts()
        weak_users, weak_items = users[users < k].index, items[items < k].index
        if len(weak_users):
            df = df[df["user"] != weak_users[0]]
        elif len(weak_items):
            df = df[df["item"] != weak_items[0]]
        else:
            return df.reset_index(drop=True)


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=60),
    k=st.integers(1, 4),
)
def test_kcore_is_the_fixed_point(pairs: list[tuple[int, int]], k: int) -> None:
    df = pd.DataFrame(pairs, columns=["user", "item"], dtype=np.int64).assign(rating=1)
    core = kcore(df, k)
    assert (core["user"].value_counts() >= k).all() and (core["item"].value_counts() >= k).all()
    pd.testing.assert_frame_equal(core, naive_kcore(df, k))  # the maximal such subset


def test_kcore_needs_more_than_one_pass() -> None:
    # k = 2. A user-then-item pass drops only item c (1 row); then user 3 falls to 1 row
    # → item b to 1 row → user 2 to 1 row; only the u0/u1 × a/d block survives.
    rows = [(0, "a"), (0, "d"), (1, "a"), (1, "d"), (2, "a"), (2, "b"), (3, "b"), (3, "c")]
    df = pd.DataFrame(rows, columns=["user", "item"]).assign(rating=0)
    once = df[df.groupby("user")["user"].transform("size").ge(2)]
    once = once[once.groupby("item")["item"].transform("size").ge(2)]
    assert len(once) == 7  # a single user-then-item pass is not the fixed point
    core = kcore(df, 2)
    assert sorted(map(tuple, core[["user", "item"]].to_numpy().tolist())) == [(0, "a"), (0, "d"), (1, "a"), (1, "d")]
    assert kcore(df, 1).equals(df)


def test_binarize_is_strictly_greater() -> None:
    df = pd.DataFrame({"rating": [0, 5, 6, 7, 10]})
    assert binarize(df, 5).tolist() == [0, 0, 1, 1, 1]
    assert binarize(df, 6).tolist() == [0, 0, 0, 1, 1]
    assert binarize(df, 5).dtype == np.float32


def test_split_indices_deterministic_and_authors_shuffle() -> None:
    train, valid, test = split_indices(1001, seed=1024)
    assert (len(train), len(valid), len(test)) == (600, 200, 201)
    assert np.array_equal(np.sort(np.concatenate([train, valid, test])), np.arange(1001))
    again = split_indices(1001, seed=1024)
    assert all(np.array_equal(a, b) for a, b in zip((train, valid, test), again))
    assert not np.array_equal(split_indices(1001, seed=7)[0], train)
    # The authors' code: np.random.seed(1024); np.random.shuffle(arange(n)).
    state = np.random.get_state()
    np.random.seed(1024)
    order = np.arange(1001)
    np.random.shuffle(order)
    np.random.set_state(state)
    assert np.array_equal(order, np.concatenate([train, valid, test]))


def test_build_dataset_encodes_over_train_and_drops_cold_rows() -> None:
    df = random_ratings(3000, 300, 400, seed=0)
    data = build_dataset(df, threshold=5, kcore=2)
    core = kcore(df, 2)
    train_idx, valid_idx, test_idx = split_indices(len(core), 1024)
    train_raw = core.iloc[train_idx]
    # Ids: 0..U-1 / 0..I-1 in order of first appearance in train, mapping back to raw ids.
    assert data.user_ids.tolist() == train_raw["user"].unique().tolist()
    assert data.item_ids.tolist() == train_raw["item"].unique().tolist()
    assert (data.num_users, data.num_items) == (train_raw["user"].nunique(), train_raw["item"].nunique())
    assert data.user_ids[data.train.users.numpy()].tolist() == train_raw["user"].tolist()
    assert torch.equal(data.train.labels, torch.from_numpy(binarize(train_raw, 5)))
    for split, index in (("valid", valid_idx), ("test", test_idx)):
        raw = core.iloc[index]
        warm = raw[raw["user"].isin(train_raw["user"]) & raw["item"].isin(train_raw["item"])]
        assert len(warm) < len(raw)  # this example does have cold rows to drop
        rows: Interactions = getattr(data, split)
        assert data.user_ids[rows.users.numpy()].tolist() == warm["user"].tolist()
        assert data.item_ids[rows.items.numpy()].tolist() == warm["item"].tolist()
        assert torch.equal(rows.labels, torch.from_numpy(binarize(warm, 5)))
    stats = data.stats()
    assert stats["rows_raw"] == 3000 and stats["rows_kcore"] == len(core)
    assert (stats["train"], stats["valid"], stats["test"]) == (len(data.train), len(data.valid), len(data.test))
    assert stats["removed"] == stats["removed_users"] == stats["removed_items"] == 0


# --------------------------------------------------------------------------- attack


def test_attack_indices_sizes_and_determinism() -> None:
    assert attack_indices(351347, 0.02).tolist() == list(range(344320, 351347))  # the authors' tail: 7027 rows
    assert len(attack_indices(351347, 0.01)) == 3514  # n − int(0.99 n), as their code
    seeded = attack_indices(1000, 0.0125, seed=3)
    assert len(seeded) == round(0.0125 * 1000) and len(np.unique(seeded)) == len(seeded)
    assert np.array_equal(seeded, attack_indices(1000, 0.0125, seed=3))
    assert not np.array_equal(seeded, attack_indices(1000, 0.0125, seed=4))
    assert len(attack_indices(1000, 0.0)) == len(attack_indices(1000, 0.0, seed=1)) == 0
    with pytest.raises(ValueError):
        attack_indices(10, 1.5)


@pytest.mark.parametrize("attack_seed", [None, 11])
def test_attack_flips_exactly_the_removed_rows(attack_seed: int | None) -> None:
    df = random_ratings(2000, 100, 150, seed=1)
    clean = build_dataset(df, threshold=5, kcore=2)
    attacked = build_dataset(df, threshold=5, kcore=2, attack_fraction=0.03, attack_seed=attack_seed)
    removed = attacked.removal
    assert removed.dtype == torch.int64 and len(removed) == len(attack_indices(len(clean.train), 0.03, attack_seed))
    flipped = torch.nonzero(attacked.train.labels != clean.train.labels).flatten()
    assert torch.equal(flipped, removed)
    assert torch.equal(attacked.valid.labels, clean.valid.labels)
    assert attacked.split_hash != clean.split_hash
    again = build_dataset(df, threshold=5, kcore=2, attack_fraction=0.03, attack_seed=attack_seed)
    assert again.split_hash == attacked.split_hash and torch.equal(again.removal, removed)
    users, items = attacked.touched()
    assert attacked.stats()["removed_users"] == len(users) == len(set(attacked.train.users[removed].tolist()))
    assert attacked.stats()["removed_items"] == len(items) == len(set(attacked.train.items[removed].tolist()))
    assert build_dataset(df, threshold=5, kcore=2, seed=5).split_hash != clean.split_hash


# --------------------------------------------------------------------------- graphs and removal requests


def tiny_dataset() -> RecDataset:
    """3 users, 4 items; row 5 repeats row 0's pair; item 3 has no positive."""
    users = torch.tensor([0, 0, 1, 1, 2, 0, 2])
    items = torch.tensor([0, 1, 1, 2, 0, 0, 3])
    labels = torch.tensor([1, 1, 0, 1, 1, 1, 0], dtype=torch.float32)
    empty = Interactions(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), torch.zeros(0))
    return RecDataset(
        num_users=3,
        num_items=4,
        train=Interactions(users, items, labels),
        valid=empty,
        test=empty,
        removal=torch.tensor([3]),
        user_ids=np.array(["a", "b", "c"], dtype=object),
        item_ids=np.array(["w", "x", "y", "z"], dtype=object),
    )


def dense_lightgcn(rows: Interactions, num_users: int, num_items: int) -> torch.Tensor:
    """Reference D^-1/2 A D^-1/2 over the positive rows, float64 [N, N]."""
    n = num_users + num_items
    adjacency = torch.zeros(n, n, dtype=torch.float64)
    positive = rows.labels > 0.5
    adjacency[rows.users[positive], num_users + rows.items[positive]] = 1
    adjacency = adjacency + adjacency.T
    degree = adjacency.sum(1)
    scale = torch.where(degree > 0, degree.rsqrt(), torch.zeros_like(degree))
    return scale[:, None] * adjacency * scale[None, :]


def test_graphs_match_dense_references() -> None:
    data = tiny_dataset()
    full = data.graph(dtype=torch.float64)
    assert full.symmetric and full.num_nodes == 7
    torch.testing.assert_close(full.to_sparse_coo().to_dense(), dense_lightgcn(data.train, 3, 4))
    # Removing row 3 (the only positive of item 2) leaves item 2 isolated.
    pruned = data.graph(removal=torch.tensor([3]), dtype=torch.float64).to_sparse_coo().to_dense()
    torch.testing.assert_close(pruned, dense_lightgcn(data.remaining(torch.tensor([3])), 3, 4))
    assert pruned[3 + 2].abs().sum() == 0
    assert data.graph().weight.dtype == torch.float32

    interactions = data.interaction_graph()
    assert interactions.weight.dtype == torch.float64
    expected = torch.zeros(7, 7, dtype=torch.float64)
    expected[data.train.users, 3 + data.train.items] = 1
    torch.testing.assert_close(interactions.to_sparse_coo().to_dense(), expected + expected.T)


def test_kept_rowptr_counts_the_kept_entries_before_each_row() -> None:
    rowptr = torch.tensor([0, 2, 2, 5, 6])  # rows of 2, 0, 3 and 1 entries
    present = torch.tensor([True, False, True, True, False, False])
    assert kept_rowptr(rowptr, present).tolist() == [0, 1, 1, 3, 3]


@pytest.mark.parametrize("share", [0.0, 0.01, 0.3, 1.0])
def test_graph_without_a_removal_is_the_graph_of_the_remaining_rows(share: float) -> None:
    """``graph(removal)`` drops from the positives' cached adjacency the entries whose every positive
    row is removed: the same graph, to the bit, as building LightGCN's Â from the remaining rows —
    with repeated indices, removed negatives, and pairs that also have a remaining positive row."""
    data = load_dataset("planted:5000")
    copies = torch.arange(0, len(data.train), 7)  # every seventh row twice: duplicate positives and negatives
    data = replace(data, train=Interactions(*(torch.cat((t, t[copies])) for t in
                                              (data.train.users, data.train.items, data.train.labels))))
    train = data.train
    removal = torch.randperm(len(train), generator=torch.Generator().manual_seed(3))[: round(share * len(train))]
    removal = torch.cat((removal, removal[:5]))  # repeats allowed
    rest = data.remaining(removal)
    expected = lightgcn_graph(rest.users, rest.items, rest.labels, data.num_users, data.num_items, torch.float64)
    got = data.graph(removal, dtype=torch.float64)
    assert torch.equal(got.rowptr, expected.rowptr) and torch.equal(got.col, expected.col)
    assert torch.equal(got.weight, expected.weight) and got.symmetric and got.num_nodes == expected.num_nodes
    with pytest.raises(ValueError, match="removal indices must lie in"):
        data.graph(torch.tensor([len(train)]))


@pytest.mark.parametrize("share", [0.001, 0.05, 0.5, 1.0])
def test_incident_rows_and_degree_match_a_scan(share: float) -> None:
    """Both ways ``incident_rows`` takes (a sort of the few rows found; a mark per row for many)
    give the sorted distinct rows touching the nodes, as a scan of every row does, in the
    training split and in the validation split."""
    data = load_dataset("planted:5000")
    num_nodes = data.num_users + data.num_items
    nodes = torch.randperm(num_nodes, generator=torch.Generator().manual_seed(1))[: max(1, round(share * num_nodes))]
    chosen = torch.zeros(num_nodes, dtype=torch.bool)
    chosen[nodes] = True
    for split, rows in (("train", data.train), ("valid", data.valid)):
        touching = chosen[rows.users] | chosen[rows.items + data.num_users]
        assert torch.equal(data.incident_rows(nodes, split=split), touching.nonzero().squeeze(1)), split
    ends = torch.cat((data.train.users, data.train.items + data.num_users))
    assert torch.equal(data.degree(nodes), torch.bincount(ends, minlength=num_nodes)[nodes])
    with pytest.raises(ValueError, match="split must be 'train' or 'valid', got 'test'"):
        data.incident_rows(nodes, split="test")


def test_node_incidence_lists_each_nodes_rows_by_their_other_endpoint() -> None:
    """``node_incidence``: under each node, every training row it is an endpoint of, once, with that
    endpoint, ordered by the row's other endpoint and then by row (a scan of every row as reference)."""
    data = load_dataset("planted:5000")
    train, num_nodes = data.train, data.num_users + data.num_items
    rowptr, rows, ends = data.node_incidence
    assert rowptr.numel() == num_nodes + 1 and rows.numel() == ends.numel() == 2 * len(train) == rowptr[-1]
    endpoints = torch.stack((train.users, train.items + data.num_users))  # [2, n]
    for node in torch.randperm(num_nodes, generator=torch.Generator().manual_seed(2))[:60].tolist():
        listed = list(zip(rows[rowptr[node]:rowptr[node + 1]].tolist(), ends[rowptr[node]:rowptr[node + 1]].tolist()))
        reading = [(row, end) for end in (0, 1) for row in (endpoints[end] == node).nonzero().squeeze(1).tolist()]
        assert listed == sorted(reading, key=lambda entry: (int(endpoints[1 - entry[1], entry[0]]), entry[0])), node


def test_remaining_leaves_out_the_removal() -> None:
    data = tiny_dataset()
    rest = data.remaining(torch.tensor([0, 6, 0]))
    assert rest.users.tolist() == [0, 1, 1, 2, 0] and rest.items.tolist() == [1, 1, 2, 0, 0]
    assert data.remaining() is data.train
    with pytest.raises(ValueError, match="removal"):
        data.remaining(torch.tensor([7]))


def test_validate_removal() -> None:
    data = tiny_dataset()
    assert validate_removal(data, users=torch.tensor([1, 2]), items=torch.tensor([2, 3])).tolist() == [3, 6]
    assert validate_removal(data, users=torch.tensor([0]), items=torch.tensor([0])).tolist() == [0, 5]  # both copies
    assert validate_removal(data, users=torch.tensor([], dtype=torch.int64), items=torch.tensor([], dtype=torch.int64)).numel() == 0
    with pytest.raises(ValueError, match=r"out of range.*\(3, 0\)"):
        validate_removal(data, users=torch.tensor([3, 0]), items=torch.tensor([0, 0]))
    with pytest.raises(ValueError, match=r"repeated in the request: 1 pair\(s\), e.g. \[\(1, 2\)\]"):
        validate_removal(data, users=torch.tensor([1, 0, 1]), items=torch.tensor([2, 1, 2]))
    with pytest.raises(ValueError, match=r"not in the training set: 1 pair\(s\), e.g. \[\(2, 2\)\]"):
        validate_removal(data, users=torch.tensor([2, 0]), items=torch.tensor([2, 1]))
    with pytest.raises(ValueError, match="equal length"):
        validate_removal(data, users=torch.tensor([0, 1]), items=torch.tensor([0]))
    with pytest.raises(ValueError, match="integer"):
        validate_removal(data, users=torch.tensor([0.0]), items=torch.tensor([0]))
    # At most 5 pairs are listed.
    with pytest.raises(ValueError) as error:
        validate_removal(data, users=torch.arange(10, 17), items=torch.zeros(7, dtype=torch.int64))
    assert "7 pair(s)" in str(error.value) and "(14, 0)" in str(error.value) and "(15, 0)" not in str(error.value)


def test_load_dataset_generic_file_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    df = random_ratings(500, 30, 40, seed=2)
    path = tmp_path / "ratings.tsv.gz"
    write(path, df.to_csv(sep="\t", header=False, index=False).encode())
    loaded = load_dataset(path, threshold=5, kcore=3, sep="\t", attack_fraction=0.02, attack_seed=1)
    direct = build_dataset(df, threshold=5, kcore=3, attack_fraction=0.02, attack_seed=1)
    assert loaded.split_hash == direct.split_hash
    with pytest.raises(ValueError, match="pass threshold and kcore .*--threshold, --kcore"):
        load_dataset(path)
    monkeypatch.setenv("IFRU_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match="IFRU_DATA_DIR"):
        load_dataset("bookcrossing")


# --------------------------------------------------------------------------- real BookCrossing


def authors_pipeline(df: pd.DataFrame, k: int, attack: float) -> dict[str, int]:
    """Statistics of the authors' _data_process.py, restated with pandas, for cross-checks."""
    while True:
        before = len(df)
        df = df[df.groupby("user")["user"].transform("size") >= k]
        df = df[df.groupby("item")["item"].transform("size") >= k]
        if len(df) == before:
            break
    index = np.arange(len(df))
    state = np.random.get_state()
    np.random.seed(1024)
    np.random.shuffle(index)
    np.random.set_state(state)
    n1, n2 = int(len(df) * 0.6), int(len(df) * 0.8)
    train, valid, test = df.iloc[index[:n1]], df.iloc[index[n1:n2]], df.iloc[index[n2:]]
    warm = lambda part: part[part["user"].isin(train["user"]) & part["item"].isin(train["item"])]  # noqa: E731
    flipped = train.iloc[int(len(train) * (1 - attack)) :]
    return {
        "rows_kcore": len(df),
        "train": len(train),
        "valid": len(warm(valid)),
        "test": len(warm(test)),
        "users": train["user"].nunique(),
        "items": train["item"].nunique(),
        "removed": len(flipped),
        "removed_users": flipped["user"].nunique(),
        "removed_items": flipped["item"].nunique(),
    }


@needs_bx
def test_real_bookcrossing_slice_matches_authors_pipeline() -> None:
    head = read_bookcrossing(BX_FILE, max_rows=3)
    assert head.values.tolist() == [["276725", "034545104X", 0], ["276726", "0155061224", 5], ["276727", "0446520802", 0]]
    # The file is sorted by user, so few ISBNs repeat within 20,000 rows: its 5-core is
    # empty and the slice uses a 2-core (3,577 rows) instead.
    data = load_dataset("bookcrossing", max_rows=20000, kcore=2, attack_fraction=0.02)
    stats = data.stats()
    assert stats["rows_raw"] == 20000 and stats["threshold"] == 5 and stats["kcore"] == 2
    expected = authors_pipeline(read_bookcrossing(BX_FILE, max_rows=20000), k=2, attack=0.02)
    assert {key: stats[key] for key in expected} == expected
    assert stats["train"] > 2000 and stats["removed"] > 40  # big enough to exercise every step


@needs_bx
def test_real_bookcrossing_full_statistics() -> None:
    stats = load_dataset("bookcrossing", attack_fraction=0.02).stats()  # ~3 s
    assert stats["rows_raw"] == 1_149_780
    assert {k: stats[k] for k in ("rows_kcore", "train", "users", "items", "valid", "test")} == {
        "rows_kcore": 585_579,
        "train": 351_347,
        "users": 15_758,
        "items": 37_992,
        "valid": 116_757,
        "test": 116_716,
    }
    assert round(stats["positive_rate_clean"], 3) == 0.292
    assert (stats["removed"], stats["removed_users"], stats["removed_items"]) == (7027, 3463, 5520)


@needs_bx
def test_user_fraction_keeps_whole_histories_of_a_seeded_share_of_users() -> None:
    raw = read_bookcrossing(BX_FILE, max_rows=60000)
    sample = _sample_users(raw, 0.25, seed=1024)
    chosen = pd.unique(sample["user"])
    assert len(chosen) == round(0.25 * raw["user"].nunique())
    # Whole histories: every chosen user's raw rows, nothing else.
    assert sample.equals(raw[raw["user"].isin(chosen)].reset_index(drop=True))
    assert not sample.equals(_sample_users(raw, 0.25, seed=7))  # the seed draws the users
    data = load_dataset("bookcrossing", max_rows=60000, kcore=2, user_fraction=0.5)
    again = load_dataset("bookcrossing", max_rows=60000, kcore=2, user_fraction=0.5)
    assert data.split_hash == again.split_hash and data.meta["user_fraction"] == 0.5
    full = load_dataset("bookcrossing", max_rows=60000, kcore=2)
    assert 0.3 * len(full.train) < len(data.train) < 0.7 * len(full.train)
    for bad in (0.0, -0.1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="user_fraction"):
            load_dataset("bookcrossing", max_rows=100, user_fraction=bad)
