"""The planted-factor synthetic dataset: seeded, exact size, target positive rate, labels that
carry signal, usable by name like any dataset (``load_dataset("planted:<n>")``, ``--dataset``)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from ifru_ext.cli import main
from ifru_ext.data import load_dataset
from ifru_ext.data.synthetic import (AMAZON_SHAPE, MOVIELENS_SHAPE, POSITIVE_FRACTION, parse_planted_name, planted_interactions,
                                     power_law_interactions, shaped_ratings)
from ifru_ext.metrics import auc


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in ((a.users, b.users), (a.items, b.items), (a.labels, b.labels)))


def test_planted_interactions_are_deterministic_by_seed():
    first, again, other = planted_interactions(5000, 3), planted_interactions(5000, 3), planted_interactions(5000, 4)
    assert _same(first, again) and torch.equal(first.logits, again.logits)
    assert not _same(first, other)
    # The pairs are the benchmarks' power-law pairs of the same seed; only the labels differ.
    coin = power_law_interactions(5000, 3)
    assert torch.equal(first.users, coin.users) and torch.equal(first.items, coin.items)


def test_exact_count_of_distinct_pairs_and_the_positive_rate():
    n = 20_000
    data = planted_interactions(n, 0)
    assert data.users.numel() == data.items.numel() == data.labels.numel() == n
    assert torch.unique(data.users * data.num_items + data.items).numel() == n
    assert (data.num_users, data.num_items) == (n // 20, n // 10)
    # The bias is solved so the expected rate is the target; the drawn rate is within 4 sigma.
    assert float(torch.sigmoid(data.logits).mean()) == pytest.approx(POSITIVE_FRACTION, abs=1e-6)
    assert abs(float(data.labels.mean()) - POSITIVE_FRACTION) < 4 * math.sqrt(0.21 / n)


def test_load_dataset_runs_the_protocol_on_every_generated_row():
    n = 10_000
    dataset = load_dataset("planted:1e4", attack_fraction=0.02)
    assert dataset.meta["rows_raw"] == dataset.meta["rows_kcore"] == n  # kcore 0: nothing filtered
    assert len(dataset.train) == int(0.6 * n)  # the 60/20/20 split of the protocol
    assert len(dataset.valid) <= n // 5 and len(dataset.test) <= n - int(0.8 * n)  # cold rows dropped
    assert dataset.removal.numel() == len(dataset.train) - int(len(dataset.train) * 0.98)
    assert load_dataset("planted:10000", attack_fraction=0.02).split_hash == dataset.split_hash  # 1e4 == 10000
    assert load_dataset("planted:10000:0", attack_fraction=0.02).split_hash == dataset.split_hash  # seed 0 default
    assert load_dataset("planted:1e4:1", attack_fraction=0.02).split_hash != dataset.split_hash
    assert load_dataset("planted:1e4", seed=7, attack_fraction=0.02).split_hash != dataset.split_hash
    smaller = load_dataset("planted:1e4", user_fraction=0.5)
    assert smaller.meta["rows_kcore"] < n and smaller.meta["user_fraction"] == 0.5


def test_labels_carry_the_planted_signal():
    n = 10_000
    data = planted_interactions(n, 0)
    dataset = load_dataset("planted:1e4", attack_fraction=0.0)
    # The planted logits of the test rows (mapped back through the raw ids) rank them well.
    logit = {(int(u), int(i)): float(x) for u, i, x in zip(data.users, data.items, data.logits)}
    test = dataset.test
    raw_users, raw_items = dataset.user_ids[test.users.numpy()], dataset.item_ids[test.items.numpy()]
    scores = torch.tensor([logit[int(u), int(i)] for u, i in zip(raw_users, raw_items)])
    assert auc(scores, test.labels) > 0.9  # 0.94 measured
    # Random labels on the same pairs would give 0.5: the labels are not coin flips.
    assert abs(float(data.labels[data.logits > 0].mean()) - float(data.labels[data.logits < 0].mean())) > 0.4


def test_cli_trains_and_evaluates_a_planted_dataset(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["-q", "train", "--dataset", "planted:1e4", "--epochs", "30", "--no-calibrate", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"]["name_or_path"] == "planted:1e4"  # a name, not resolved to a path
    assert summary["test"]["auc_0"] > 0.55  # an MF learns the planted signal (0.57 measured at 30-60 epochs)
    capsys.readouterr()
    # evaluate rebuilds the dataset from the recorded name; the checkpoint's split hash must match.
    assert main(["-q", "evaluate", "--checkpoint", str(out / "model.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test"]["auc_0"] == pytest.approx(summary["test"]["auc_0"], abs=1e-12)
    assert main(["-q", "evaluate", "--checkpoint", str(out / "model.pt"), "--dataset", "planted:1e4:5"]) == 1


@pytest.mark.parametrize("name, message", [
    ("planted:", "planted:<n>"),
    ("planted:abc", "interaction count 'abc' is not an integer"),
    ("planted:1234.5", "interaction count '1234.5' is not an integer"),
    ("planted:nan", "is not an integer"),
    ("planted:999", r"interaction count must lie in \[1000, 100000000\], got 999"),
    ("planted:-5", "must lie in"),
    ("planted:1e9", "must lie in"),
    ("planted:1e4:x", "generator seed must be an integer >= 0, got 'x'"),
    ("planted:1e4:-1", "generator seed"),
    ("planted:1e4:1:2", "planted:<n>"),
])
def test_bad_planted_names_are_refused_naming_the_part(name, message):
    with pytest.raises(ValueError, match=message) as error:
        load_dataset(name)
    assert repr(name) in str(error.value)


def test_file_options_do_not_apply_to_a_generated_dataset():
    with pytest.raises(ValueError, match="threshold= does not apply"):
        load_dataset("planted:1e4", threshold=3)
    with pytest.raises(ValueError, match="sep=, columns=, header= and encoding= do not apply"):
        load_dataset("planted:1e4", sep=";")
    with pytest.raises(ValueError, match="attack_fraction must lie in"):
        load_dataset("planted:1e4", attack_fraction=1.5)
    with pytest.raises(ValueError, match="positive_fraction"):
        planted_interactions(2000, 0, positive_fraction=1.0)
    assert parse_planted_name("planted:2e3:9") == (2000, 9)
    assert np.isclose(float(planted_interactions(2000, 0, positive_fraction=0.5).logits.sigmoid().mean()), 0.5)


@pytest.mark.parametrize(("shape", "users", "items", "ratings", "positive"), [
    (MOVIELENS_SHAPE, 943, 1682, 100_000, (0.45, 0.55)),  # MovieLens 100K's size; 51% above 3
    (AMAZON_SHAPE, 5000, 3000, 50_000, (0.70, 0.82)),     # about three quarters above 3
])
def test_shaped_ratings_look_like_public_sets(shape, users, items, ratings, positive):
    """The second synthetic family (reports/fidelity-movielens-shaped): the shapes' collection
    rule and rating balance, reproducible by seed."""
    frame = shaped_ratings(users, items, ratings, seed=7, shape=shape)
    assert frame.equals(shaped_ratings(users, items, ratings, seed=7, shape=shape))
    assert not frame.equals(shaped_ratings(users, items, ratings, seed=8, shape=shape))
    per_user = frame.groupby("user").size()
    assert len(per_user) == users and per_user.min() >= shape.min_ratings and per_user.max() <= items // 2
    assert abs(len(frame) - ratings) < ratings / 100  # activity is rounded per user
    assert not frame.duplicated(["user", "item"]).any()
    assert set(frame["rating"]) == {1, 2, 3, 4, 5} and positive[0] < (frame["rating"] > 3).mean() < positive[1]
    # Zipf-like popularity: the most rated tenth of the items holds a third or more of the ratings.
    counts = frame.groupby("item").size().sort_values(ascending=False)
    assert counts.iloc[: len(counts) // 10].sum() > len(frame) / 3
    with pytest.raises(ValueError, match=f"at least {shape.min_ratings} ratings per user"):
        shaped_ratings(10, 100, 10 * shape.min_ratings - 1, shape=shape)
