"""Tests of ifru_ext.metrics against scikit-learn and plain-Python references."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ifru_ext.data import Interactions, RecDataset
from ifru_ext.evaluation import removal_auc
from ifru_ext.metrics import PartialAUC, auc, auc_noise, auc_placements, completeness, paired_auc_sd, removal_aucs


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 3000))
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]  # both classes present
    scores = rng.integers(0, 20, n) + 0.5 * labels  # few distinct values: many ties
    expected = roc_auc_score(labels, scores)
    assert auc(torch.from_numpy(scores), torch.from_numpy(labels).float()) == pytest.approx(expected, abs=1e-12)
    assert auc(scores, labels.astype(bool)) == pytest.approx(expected, abs=1e-12)  # numpy and bool inputs
    # exact: twice the won pairs (ties one each) in integers, over twice the pairs, rounded once
    positives, negatives = scores[labels == 1], scores[labels == 0]
    wins, ties = positives[:, None] > negatives[None, :], positives[:, None] == negatives[None, :]
    won_twice = int(wins.sum() * 2 + ties.sum())
    assert auc(torch.from_numpy(scores), torch.from_numpy(labels)) == won_twice / (2 * positives.size * negatives.size)


@pytest.mark.parametrize("seed", range(4))
def test_partial_auc_is_the_auc_of_the_updated_scores(seed: int) -> None:
    """PartialAUC: the AUC with a subset's scores replaced equals sklearn's on the updated scores,
    with ties everywhere (few distinct values) and subsets from none to every score."""
    rng = np.random.default_rng(seed)
    n = 400
    scores, labels = rng.integers(0, 8, n).astype(float), rng.integers(0, 2, n)
    partial = PartialAUC(torch.from_numpy(scores), torch.from_numpy(labels))
    for share in (0.0, 0.02, 0.3, 0.7, 1.0):  # above half: the whole updated set is counted
        mask = rng.random(n) < share
        new = rng.integers(0, 8, int(mask.sum())).astype(float)
        updated = scores.copy()
        updated[mask] = new
        with_new = partial.changed(torch.from_numpy(mask).nonzero().squeeze(1))
        assert math.isclose(with_new(torch.from_numpy(new)), roc_auc_score(labels, updated), rel_tol=1e-12)
        assert math.isclose(with_new(torch.from_numpy(scores[mask])), roc_auc_score(labels, scores), rel_tol=1e-12)
        # exact either way: the won-pair counts are sums of halves
        fresh = PartialAUC(torch.from_numpy(updated), torch.from_numpy(labels))
        assert with_new(torch.from_numpy(new)) == fresh.won / fresh.pairs
    with pytest.raises(ValueError, match="both labels"):
        PartialAUC(torch.ones(3), torch.ones(3))


def test_auc_edge_cases() -> None:
    assert auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])) == pytest.approx(0.75)
    assert auc(torch.tensor([1.0, 2.0]), torch.tensor([0, 1])) == 1.0
    assert auc(torch.tensor([2.0, 1.0]), torch.tensor([0, 1])) == 0.0
    assert auc(torch.ones(6), torch.tensor([0, 1, 0, 1, 1, 0])) == 0.5
    assert math.isnan(auc(torch.rand(5), torch.ones(5)))
    assert math.isnan(auc(torch.zeros(0), torch.zeros(0)))
    with pytest.raises(ValueError, match="0/1"):
        auc(torch.rand(3), torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="NaN"):
        auc(torch.tensor([0.0, float("nan")]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="same length"):
        auc(torch.rand(3), torch.tensor([0, 1]))


def reference_removal_aucs(scores, users, items, labels, removed_users, removed_items) -> dict[str, float]:
    """Masks built row by row with Python sets, AUCs by scikit-learn."""
    touched_users, touched_items = set(removed_users.tolist()), set(removed_items.tolist())

    def subset_auc(mask: list[bool]) -> float:
        y, s = labels.numpy()[mask], scores.numpy()[mask]
        return roc_auc_score(y, s) if 0 < y.sum() < len(y) else math.nan

    either = [u in touched_users or i in touched_items for u, i in zip(users.tolist(), items.tolist())]
    both = [u in touched_users and i in touched_items for u, i in zip(users.tolist(), items.tolist())]
    return {"auc_0": subset_auc([True] * len(users)), "auc_1": subset_auc(either), "auc_2": subset_auc(both)}


@pytest.mark.parametrize("seed", range(3))
def test_removal_aucs_match_reference(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    n = 2000
    users, items = torch.randint(0, 50, (n,), generator=gen), torch.randint(0, 80, (n,), generator=gen)
    labels = torch.randint(0, 2, (n,), generator=gen).float()
    scores = torch.randint(0, 10, (n,), generator=gen).double() + labels  # informative, tied
    removed_users = torch.randint(0, 50, (8,), generator=gen)  # repeats allowed
    removed_items = torch.randint(0, 80, (12,), generator=gen)
    got = removal_aucs(scores, users, items, labels, removed_users, removed_items)
    expected = reference_removal_aucs(scores, users, items, labels, removed_users, removed_items)
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-12)


def small_dataset(removed: list[int]) -> RecDataset:
    train = Interactions(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 3]), torch.tensor([1.0, 0, 1, 0]))
    test = Interactions(
        torch.tensor([0, 0, 1, 2, 3, 3, 2, 1]),
        torch.tensor([0, 3, 1, 2, 2, 0, 1, 3]),
        torch.tensor([1.0, 0, 1, 0, 1, 0, 1, 0]),
    )
    return RecDataset(
        num_users=4,
        num_items=4,
        train=train,
        valid=test,
        test=test,
        removal=torch.tensor(removed, dtype=torch.int64),
        user_ids=np.arange(4),
        item_ids=np.arange(4),
    )


def test_removal_auc_on_a_dataset() -> None:
    data = small_dataset([0, 2])  # touched users {0, 2}, items {0, 2}
    scores = torch.tensor([0.9, 0.2, 0.1, 0.4, 0.3, 0.5, 0.8, 0.6])
    expected = removal_aucs(scores, data.test.users, data.test.items, data.test.labels, torch.tensor([0, 2]), torch.tensor([0, 2]))
    assert removal_auc(scores, data) == expected
    table = torch.zeros(4, 4)
    table[data.test.users, data.test.items] = scores
    assert removal_auc(lambda u, i: table[u, i], data, split="valid") == expected
    # AUC_1: 6 rows, positives scored .9 .3 .8 vs negatives .2 .4 .5 → 7 of 9 pairs ordered.
    # AUC_2: only (0,0) [y=1, s=.9] and (2,2) [y=0, s=.4] have both ends touched.
    assert expected["auc_1"] == pytest.approx(7 / 9) and expected["auc_2"] == 1.0
    empty = removal_auc(scores, small_dataset([]))
    assert not math.isnan(empty["auc_0"]) and math.isnan(empty["auc_1"]) and math.isnan(empty["auc_2"])
    with pytest.raises(ValueError, match="expected 8 scores"):
        removal_auc(scores[:5], data)
    with pytest.raises(ValueError, match="split"):
        removal_auc(scores, data, split="dev")


def test_completeness_arithmetic() -> None:
    original = {"auc_0": 0.7342, "auc_1": 0.7407, "auc_2": 0.7376}
    retrain = {"auc_0": 0.7382, "auc_1": 0.7458, "auc_2": 0.7536}
    method = {"auc_0": 0.7387, "auc_1": 0.7463, "auc_2": 0.7520}
    got = completeness(method, original, retrain)
    assert got == pytest.approx({"auc_0": 0.0045 / 0.0040, "auc_1": 0.0056 / 0.0051, "auc_2": 0.0144 / 0.0160})
    assert completeness(retrain, original, retrain) == {"auc_0": 1.0, "auc_1": 1.0, "auc_2": 1.0}
    assert completeness(original, original, retrain) == {"auc_0": 0.0, "auc_1": 0.0, "auc_2": 0.0}
    assert math.isnan(completeness({"m": 0.5}, {"m": 0.4}, {"m": 0.4})["m"])
    with pytest.raises(KeyError):
        completeness({"auc_3": 0.1}, original, retrain)


def test_auc_noise_is_the_spread_of_an_unrelated_scores_auc():
    generator = torch.Generator().manual_seed(0)
    labels = (torch.rand(400, generator=generator) < 0.3).float()
    draws = torch.tensor([auc(torch.rand(400, generator=generator), labels) for _ in range(2000)])
    assert abs(float(draws.std()) / auc_noise(labels) - 1) < 0.1
    assert auc_noise(torch.ones(5)) == float("inf")


def test_early_stopping_ignores_improvements_within_min_delta():
    from ifru_ext.training import EarlyStopping

    stopper = EarlyStopping(patience=2, min_delta=0.01)
    assert stopper.update(1, 0.50, lambda: "a")
    assert not stopper.update(2, 0.505, lambda: "b")  # within the noise: not an improvement
    assert stopper.should_stop(3) and stopper.best_state == "a"
    assert stopper.update(3, 0.52, lambda: "c") and stopper.best_step == 3
    with pytest.raises(ValueError, match="min_delta"):
        EarlyStopping(patience=2, min_delta=-1.0)


def test_early_stopping_counts_level_steps_within_tolerance_as_no_miss():
    from ifru_ext.training import EarlyStopping

    # The score of the 1M-size MovieLens-shaped LightGCN run (rounded): a rise, a plateau level
    # to 1e-5, then a climb. The plain rule stops on the plateau; with a tolerance of the AUC's
    # noise the run crosses it and stops only once the score has clearly fallen.
    scores = [0.7110, 0.7124, 0.71246] + [0.71245] * 12 + [0.7130, 0.7200, 0.7550] + [0.7549, 0.7540] + [0.7530] * 4
    plain, tolerant = EarlyStopping(patience=3), EarlyStopping(patience=3, tolerance=0.0013)
    stops = {}
    for stopper in (plain, tolerant):
        for step, score in enumerate(scores, start=1):
            stopper.update(step, score, lambda step=step: step)
            if stopper.should_stop(step):
                stops[stopper] = step
                break
    assert (plain.best_state, stops[plain]) == (3, 6)  # 3 misses of 1e-5 on the plateau
    # The best step is returned; the stop comes 3 steps after the last within 0.0013 of it (0.7540).
    assert (tolerant.best_state, tolerant.best_score, stops[tolerant]) == (18, 0.7550, 23)
    # A step's own tolerance overrides the stopper's: level steps within theirs are no misses,
    # and a step below the best by more than its own is one whatever the stopper's.
    stepwise = EarlyStopping(patience=2, tolerance=0.1)
    stepwise.update(1, 0.70, lambda: "a")
    stepwise.update(2, 0.69, lambda: "b", tolerance=0.02)  # within its 0.02: level
    stepwise.update(3, 0.69, lambda: "c", tolerance=0.005)  # below by more than its 0.005: a miss
    assert not stepwise.should_stop(3) and stepwise.level_step == 2
    stepwise.update(4, 0.69, lambda: "d", tolerance=0.0)
    assert stepwise.should_stop(4) and stepwise.best_state == "a"
    # A tolerance of 0 is the plain rule: a tie is a miss.
    tie = EarlyStopping(patience=1, tolerance=0.0)
    tie.update(1, 0.5, lambda: "a")
    tie.update(2, 0.5, lambda: "b")
    assert tie.should_stop(2) and tie.best_state == "a"
    with pytest.raises(ValueError, match="tolerance"):
        EarlyStopping(patience=2, tolerance=-1e-3)


@pytest.mark.parametrize("seed", range(3))
def test_auc_placements_count_the_pairs_each_row_wins(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    labels[:2] = [0, 1]
    scores = rng.integers(0, 12, 300) + 0.5 * labels  # ties within and across classes
    of_positives, of_negatives = auc_placements(torch.from_numpy(scores), torch.from_numpy(labels))
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])  # [n₁, n₀] pairs won
    np.testing.assert_allclose(of_positives.numpy(), wins.mean(axis=1), atol=1e-12)
    np.testing.assert_allclose(of_negatives.numpy(), wins.mean(axis=0), atol=1e-12)
    assert float(of_positives.mean()) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    with pytest.raises(ValueError, match="both labels"):
        auc_placements(torch.ones(4), torch.ones(4))


def test_paired_auc_sd_is_the_spread_of_two_nearby_scorings_auc_difference():
    """Two scorings of the same rows that differ a little (two nearby epochs of one run): over
    fresh draws of the rows, AUC(a) − AUC(b) spreads as ``paired_auc_sd`` of one draw says, far
    below ``auc_noise`` (the spread of one scoring's AUC)."""
    generator = torch.Generator().manual_seed(0)
    differences, predicted = [], []
    for _ in range(600):
        latent = torch.randn(800, generator=generator, dtype=torch.float64)
        labels = (latent + torch.randn(800, generator=generator, dtype=torch.float64) > 0).float()
        first = latent + 0.1 * torch.randn(800, generator=generator, dtype=torch.float64)
        second = first + 0.1 * torch.randn(800, generator=generator, dtype=torch.float64)
        differences.append(auc(first, labels) - auc(second, labels))
        predicted.append(paired_auc_sd(auc_placements(first, labels), auc_placements(second, labels)))
    spread, typical = float(torch.tensor(differences).std()), float(np.mean(predicted))
    assert abs(typical / spread - 1) < 0.1
    assert typical < auc_noise(labels) / 3
    same = auc_placements(first, labels)
    assert paired_auc_sd(same, same) == 0.0
