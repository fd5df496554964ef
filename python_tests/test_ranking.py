"""Full-ranking Recall@K / NDCG@K / HitRate@K (ifru_ext.metrics.user_ranking_metrics and
ifru_ext.evaluation.ranking) against plain-Python references built with sorted()."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from ifru_ext.cli import main
from ifru_ext.data import PRESETS, Interactions, RecDataset, data_dir, load_dataset
from ifru_ext.evaluation import evaluate, ranking, removal_auc
from ifru_ext.metrics import parse_metrics, user_ranking_metrics
from ifru_ext.models import build_model, save_checkpoint
from ifru_ext.unlearning import ShardedRecommender

BX_FILE = data_dir() / PRESETS["bookcrossing"]["file"]


def reference_metric(scores: list[list[float]], excluded: list[set[int]], relevant: list[set[int]], name: str) -> list[float]:
    """Per user: candidates sorted by (−score, item index) — ties to the lower index —, the first K
    compared with the relevant candidates; nan for a user with none. Recall = hits / |R|."""
    kind, k = name.split("@")
    k = int(k)
    out = []
    for row, seen, wanted in zip(scores, excluded, relevant):
        candidates = [i for i in range(len(row)) if i not in seen]
        wanted = wanted - seen
        if not wanted:
            out.append(math.nan)
            continue
        top = sorted(candidates, key=lambda i: (-row[i], i))[:k]
        hit_ranks = [rank for rank, item in enumerate(top) if item in wanted]
        if kind == "recall":
            out.append(len(hit_ranks) / len(wanted))
        elif kind == "hr":
            out.append(1.0 if hit_ranks else 0.0)
        else:
            ideal = sum(1 / math.log2(rank + 2) for rank in range(min(k, len(wanted))))
            out.append(sum(1 / math.log2(rank + 2) for rank in hit_ranks) / ideal)
    return out


def as_sets(mask: torch.Tensor) -> list[set[int]]:
    return [set(torch.nonzero(row).flatten().tolist()) for row in mask]


NAMES = ("recall@1", "recall@5", "recall@20", "ndcg@1", "ndcg@5", "ndcg@20", "hr@3", "hr@20", "recall@500", "ndcg@500")


@pytest.mark.parametrize("seed", range(4))
def test_block_metrics_match_the_brute_force_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    users, items = 41, 57
    scores = torch.randint(0, 6, (users, items), generator=gen).to(torch.float32)  # few values: many ties
    excluded = torch.rand(users, items, generator=gen) < 0.3
    relevant = torch.rand(users, items, generator=gen) < 0.08  # some relevant items are excluded: not counted
    relevant[3] = False  # a user without relevant items: skipped (nan)
    relevant[4] = excluded[4]  # a user whose relevant items are all excluded: skipped too
    got = user_ranking_metrics(scores, excluded, relevant, NAMES)
    assert list(got) == list(NAMES)
    for name in NAMES:
        expected = torch.tensor(reference_metric(scores.tolist(), as_sets(excluded), as_sets(relevant), name),
                                dtype=torch.float64)
        torch.testing.assert_close(got[name], expected, equal_nan=True, rtol=0, atol=1e-12, msg=name)
    assert torch.isnan(got["recall@5"][3:5]).all()


def test_ties_go_to_the_lower_item_index():
    scores = torch.zeros(1, 5)
    excluded = torch.tensor([[True, False, False, False, False]])
    relevant = torch.tensor([[False, False, True, False, False]])
    got = user_ranking_metrics(scores, excluded, relevant, ("hr@1", "recall@2", "ndcg@2"))
    # Candidates 1, 2, 3, 4 all tied: item 1 first, the relevant item 2 second.
    assert got["hr@1"].item() == 0.0 and got["recall@2"].item() == 1.0
    assert got["ndcg@2"].item() == pytest.approx(1 / math.log2(3))


def test_k_beyond_the_number_of_items_ranks_every_candidate():
    gen = torch.Generator().manual_seed(7)
    scores = torch.randn(6, 9, generator=gen)
    excluded = torch.rand(6, 9, generator=gen) < 0.4
    relevant = (torch.rand(6, 9, generator=gen) < 0.5) & ~excluded
    relevant[0] = False  # a user without relevant items: skipped (nan)
    relevant[1, :] = ~excluded[1]
    got = user_ranking_metrics(scores, excluded, relevant, ("recall@50", "hr@50", "ndcg@50"))
    counted = relevant.any(1)
    assert torch.isnan(got["recall@50"][~counted]).all()
    assert (got["recall@50"][counted] == 1).all() and (got["hr@50"][counted] == 1).all()
    assert got["ndcg@50"][1].item() == pytest.approx(1.0)  # every candidate relevant: the ideal order
    assert (got["ndcg@50"][counted] <= 1 + 1e-12).all()


def test_block_arguments_are_checked():
    scores, mask = torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="shape"):
        user_ranking_metrics(scores, mask[:1], mask, ("recall@1",))
    with pytest.raises(ValueError, match="bool"):
        user_ranking_metrics(scores, mask.float(), mask, ("recall@1",))
    with pytest.raises(ValueError, match="finite"):
        user_ranking_metrics(torch.tensor([[0.0, math.nan, 1.0]] * 2), mask, mask, ("recall@1",))
    with pytest.raises(ValueError, match="'auc'"):
        user_ranking_metrics(scores, mask, mask, ("auc",))


# --------------------------------------------------------------------------- on a dataset


def random_dataset(seed: int, num_users: int = 40, num_items: int = 60) -> RecDataset:
    gen = torch.Generator().manual_seed(seed)

    def rows(n: int) -> Interactions:
        return Interactions(torch.randint(0, num_users, (n,), generator=gen), torch.randint(0, num_items, (n,), generator=gen),
                            torch.randint(0, 2, (n,), generator=gen).float())

    train, valid, test = rows(600), rows(200), rows(200)
    # User 0's test rows are all negative; user 1's one test positive (item 5) is also one of its
    # training items, so it is no candidate: both users are skipped.
    keep = test.users > 1
    test = Interactions(torch.cat((test.users[keep], torch.tensor([0, 0, 1]))), torch.cat((test.items[keep], torch.tensor([3, 4, 5]))),
                        torch.cat((test.labels[keep], torch.tensor([0.0, 0.0, 1.0]))))
    train = Interactions(torch.cat((train.users, torch.tensor([1]))), torch.cat((train.items, torch.tensor([5]))),
                         torch.cat((train.labels, torch.tensor([0.0]))))
    return RecDataset(num_users, num_items, train, valid, test, torch.arange(10), np.arange(num_users), np.arange(num_items))


def integer_mf(data: RecDataset, seed: int):
    """An MF whose table holds small integers: exact dot products (ties included) on every path."""
    model = build_model("mf", data.num_users, data.num_items, dim=3)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.embedding.copy_(torch.randint(-2, 3, model.embedding.shape, generator=gen).float())
    return model


def seen_and_relevant(data: RecDataset, split: str) -> tuple[list[set[int]], list[set[int]]]:
    """Per user, row by row: the items of its training rows (and validation rows, for test), and
    its label-1 items of ``split`` (seen ones included)."""
    excluded: list[set[int]] = [set() for _ in range(data.num_users)]
    for rows in (data.train, data.valid) if split == "test" else (data.train,):
        for user, item in zip(rows.users.tolist(), rows.items.tolist()):
            excluded[user].add(item)
    relevant: list[set[int]] = [set() for _ in range(data.num_users)]
    rows = getattr(data, split)
    for user, item, label in zip(rows.users.tolist(), rows.items.tolist(), rows.labels.tolist()):
        if label == 1:
            relevant[user].add(item)
    return excluded, relevant


def reference_ranking(model, data: RecDataset, split: str, name: str) -> float:
    """Mean over users of ``reference_metric`` with the sets built row by row from the splits."""
    table = model.embedding.detach().double()
    scores = (table[: data.num_users] @ table[data.num_users:].T).tolist()
    values = [v for v in reference_metric(scores, *seen_and_relevant(data, split), name) if not math.isnan(v)]
    return sum(values) / len(values)


class ScoreAllOnly:
    """A scorer without a scoring table: ranking falls back to score_all over the user × item grid."""

    def __init__(self, model) -> None:
        self.model = model

    def score_all(self, users, items):
        return self.model.score_all(users, items)


@pytest.mark.parametrize("seed", range(3))
def test_dataset_ranking_matches_the_reference_for_any_chunk_size(seed):
    data = random_dataset(seed)
    model = integer_mf(data, seed)
    names = ("recall@1", "recall@10", "ndcg@10", "hr@10", "recall@100")
    for split in ("valid", "test"):
        expected = {name: reference_ranking(model, data, split, name) for name in names}
        for chunk_size in (1, 7, 1000):
            got = ranking(model, data, split, names, chunk_size=chunk_size)
            assert got == pytest.approx(expected, abs=1e-12), (split, chunk_size)
        assert ranking(ScoreAllOnly(model), data, split, names, chunk_size=5) == pytest.approx(expected, abs=1e-12)


def test_training_and_validation_items_are_excluded():
    # User 0: trained on items 0 (liked) and 1 (disliked), validated on 2, tested on 3; the model
    # scores lower item indices higher, so items 0, 1, 2 would take the top three slots.
    train = Interactions(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 4]), torch.tensor([1.0, 0.0, 1.0]))
    valid = Interactions(torch.tensor([0]), torch.tensor([2]), torch.tensor([1.0]))
    test = Interactions(torch.tensor([0, 1]), torch.tensor([3, 2]), torch.tensor([1.0, 0.0]))
    data = RecDataset(2, 5, train, valid, test, torch.tensor([0]), np.arange(2), np.arange(5))
    model = build_model("mf", 2, 5, dim=1)
    with torch.no_grad():
        model.embedding.copy_(torch.tensor([[1.0], [1.0], [5.0], [4.0], [3.0], [2.0], [1.0]]))
    # Test: 0, 1 (training) and 2 (validation) excluded, the test item 3 comes first. User 1 has no positive: skipped.
    assert ranking(model, data, "test", ("recall@1", "ndcg@1")) == {"recall@1": 1.0, "ndcg@1": 1.0}
    # Validation: only 0 and 1 excluded; item 2 comes first.
    assert ranking(model, data, "valid", ("hr@1",)) == {"hr@1": 1.0}


def test_the_sharded_model_ranks_through_its_scoring_table():
    data = random_dataset(5)
    model = ShardedRecommender("mf", "sisa", data.num_users, data.num_items, torch.zeros(len(data.train), dtype=torch.int64),
                               num_shards=2, init_std=0.5).double()
    names = ("recall@10", "ndcg@10")
    assert ranking(model, data, "test", names) == pytest.approx(ranking(ScoreAllOnly(model), data, "test", names), abs=1e-12)


def test_evaluate_keeps_the_auc_output_by_default_and_orders_metrics_as_given():
    data = random_dataset(0)
    model = integer_mf(data, 0)
    default = evaluate(model, data)
    assert list(default) == ["valid", "test"]
    for split in ("valid", "test"):
        assert default[split] == removal_auc(model.score_all(getattr(data, split).users, getattr(data, split).items), data, split)
    mixed = evaluate(model, data, splits=("test",), metrics="ndcg@10, auc,recall@10")
    assert list(mixed["test"]) == ["ndcg@10", "auc_0", "auc_1", "auc_2", "recall@10"]
    assert mixed["test"]["recall@10"] == ranking(model, data, "test", ("recall@10",))["recall@10"]
    assert {k: mixed["test"][k] for k in ("auc_0", "auc_1", "auc_2")} == default["test"]


@pytest.mark.parametrize("names, bad", [
    ("auc,recall@0", "recall@0"), (["ndcg@10", "map@10"], "map@10"), ("hr@", "hr@"), ("recall@2.5", "recall@2.5"),
    ("recall@-1", "recall@-1"), ("auc,,ndcg@5", "''"),
])
def test_bad_metric_names_are_named(names, bad):
    with pytest.raises(ValueError, match=f"unknown metric .*{bad}"):
        parse_metrics(names)
    data = random_dataset(0)
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(integer_mf(data, 0), data, metrics=names)


def test_metric_names_are_canonical_and_other_misuse_is_refused():
    assert parse_metrics(" AUC, Recall@020 ,hr@1,auc") == ("auc", "recall@20", "hr@1")
    with pytest.raises(ValueError, match="no metric"):
        parse_metrics([])
    data = random_dataset(0)
    model = integer_mf(data, 0)
    with pytest.raises(ValueError, match="'valid' or 'test'"):
        evaluate(model, data, splits=("train",), metrics="recall@5")
    with pytest.raises(ValueError, match="chunk_size"):
        ranking(model, data, "test", ("recall@5",), chunk_size=0)


def test_cli_rejects_a_bad_metric_in_one_line(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--checkpoint", str(tmp_path / "model.pt"), "--metrics", "auc,precision@5"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "precision@5" in error and "Traceback" not in error


# --------------------------------------------------------------------------- real data

SLICE = {"name_or_path": "bookcrossing", "max_rows": 100_000, "kcore": 3, "attack_fraction": 0.02}


@pytest.mark.skipif(not BX_FILE.exists(), reason="no BookCrossing")
def test_an_untrained_mf_ranks_bookcrossing_like_chance(tmp_path, capsys):
    """A randomly initialised MF ranks a user's candidates in a uniformly random order (its item
    rows are drawn independently of the data), so E[recall@K] = min(K, C_u)/C_u with C_u the user's
    candidates, and E[ndcg@K] = (|R_u|/C_u)·Σ_{r<K} 1/log2(r+2) / IDCG; the means over users must
    come out close to those expectations, computed here from the data."""
    data = load_dataset(**SLICE)
    model = build_model("mf", data.num_users, data.num_items, seed=0)
    path = save_checkpoint(tmp_path / "model.pt", model, data, meta={"dataset": SLICE})
    k = 1000
    assert main(["-q", "evaluate", "--checkpoint", str(path), "--metrics", f"auc,recall@{k},ndcg@{k}", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["test"]
    assert got == pytest.approx(evaluate(model, data, splits=("test",), metrics=f"auc,recall@{k},ndcg@{k}")["test"],
                                abs=1e-12)

    # Expectations under a uniformly random order, from the splits.
    discount = [1 / math.log2(r + 2) for r in range(k)]
    recall, ndcg = [], []
    for seen, wanted in zip(*seen_and_relevant(data, "test")):
        wanted = wanted - seen
        if wanted:
            candidates = data.num_items - len(seen)
            recall.append(min(k, candidates) / candidates)
            ndcg.append(len(wanted) / candidates * sum(discount[:candidates]) / sum(discount[: min(k, len(wanted))]))
    assert len(recall) > 300
    expected_recall, expected_ndcg = float(np.mean(recall)), float(np.mean(ndcg))
    assert got[f"recall@{k}"] == pytest.approx(expected_recall, rel=0.15)
    assert got[f"ndcg@{k}"] == pytest.approx(expected_ndcg, rel=0.25)
    assert got["auc_0"] == pytest.approx(0.5, abs=0.05)


def test_reports_show_the_ranking_columns_and_read_older_reports():
    from ifru_ext.experiments.fidelity import render_fidelity, render_matrix
    from ifru_ext.experiments.render import render_markdown

    entry = {"auc_0": 0.7, "auc_1": 0.7, "auc_2": 0.7, "recall@20": 0.0123, "ndcg@20": 0.0045, "forget_loss": 0.5,
             "mia": 0.5, "auc_gap": 0.001, "completeness": dict.fromkeys(("auc_0", "auc_1", "auc_2"), 1.0),
             "forget_completeness": 1.0, "seconds": 2.0, "speedup": 3.0, "unchanged": False}
    report = {"model": "mf", "dataset": "bookcrossing", "scenario": "genuine", "fraction": 0.02, "seeds": [1],
              "judged_draws": 1, "device": "cpu", "torch": "x", "draws": [{"removed": 10}],
              "noise_floor": {"auc_0": 0.001, "forget_loss": 0.01, "recall@20": 0.0007, "ndcg@20": 0.0003},
              "summary": {"original": entry, "retrain": entry, "retrain-2": {**entry, "recall@20": 0.0111}, "ifru": entry}}
    table = render_fidelity(report)
    assert "| Recall@20 | NDCG@20 |" in table and "|Δ Recall@20| 0.0007" in table and "| retrain-2 | 0.7000 | 0.0010 | 0.0111 |" in table
    assert "0.0123 (0.0123 / 0.0111)" in render_matrix([report])
    # A report written before the ranking columns renders with dashes.
    old = {**report, "summary": {name: {k: v for k, v in e.items() if "@" not in k} for name, e in report["summary"].items()}}
    assert "– (– / –)" in render_matrix([old])
    experiment = {"model": "mf", "dataset": "bookcrossing", "removal_fraction": 0.02, "device": "cpu", "torch": "x",
                  "stats": {}, "methods": {"ifru": entry}}
    assert "| Recall@20 | NDCG@20 |" in render_markdown(experiment) and "| 0.0123 | 0.0045 |" in render_markdown(experiment)
