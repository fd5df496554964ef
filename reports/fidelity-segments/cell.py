"""One cell of the matrix as this report's scripts set it up: its dataset and request (seed 1, drawn
as ``ifru fidelity`` draws them), its MF Original and Retrain, and the test AUCs and forget loss a
model scores on it."""
from __future__ import annotations

import dataclasses

import torch

from ifru_ext.data import RecDataset, load_dataset
from ifru_ext.evaluation import evaluate, forget_loss
from ifru_ext.experiments.cache import train_new
from ifru_ext.experiments.fidelity import request_rows
from ifru_ext.training import TrainConfig
from ifru_ext.unlearning import UnlearnConfig, unlearn


def request(source: str, scenario: str, fraction: float, **loading) -> tuple[RecDataset, torch.Tensor]:
    """The cell's dataset (``poison``: ``fraction`` of the labels flipped with attack seed 1) and its
    removed training rows (``genuine`` / ``users``: drawn with seed 1 and set as the removal).
    ``loading``: ``load_dataset``'s options for a file (``header``, ``columns``, ``threshold``, ...)."""
    poisoned = scenario == "poison"
    dataset = load_dataset(source, attack_fraction=fraction if poisoned else 0.0,
                           **({"attack_seed": 1} if poisoned else {}), **loading)
    if poisoned:
        return dataset, dataset.removal
    removal = request_rows(dataset, scenario, fraction, 1)
    return dataclasses.replace(dataset, removal=removal), removal


def scores(model, dataset: RecDataset, removal: torch.Tensor) -> list[float]:
    """Test AUC_0 / 1 / 2 and the forget loss of ``model``."""
    test = evaluate(model, dataset, splits=("test",), metrics=("auc",))["test"]
    return [test["auc_0"], test["auc_1"], test["auc_2"], forget_loss(model, dataset, removal)]


def completeness(answer: list[float], original: list[float], retrain: list[float]) -> list[float]:
    """``(M − O) / (R − O)`` of each score."""
    return [(m - o) / (r - o) for m, o, r in zip(answer, original, retrain)]


def mf_pair(dataset: RecDataset, removal: torch.Tensor, snapshots: int):
    """The cell's MF Original (keeping ``snapshots``) and Retrain, and their ``scores``."""
    config = TrainConfig.for_model("mf", snapshots=snapshots)
    original, _ = train_new("mf", dataset, config, None)
    retrain, _ = train_new("mf", dataset, config, removal)
    return original, retrain, scores(original, dataset, removal), scores(retrain, dataset, removal)


def answered(model, dataset: RecDataset, removal: torch.Tensor, config: UnlearnConfig, original: list[float],
             retrain: list[float]) -> str:
    """``model``'s answer to the request with ``config``, described against the Original's and
    Retrain's ``scores``: AUC completeness, ``|AUC_0 − R|``, forget completeness and seconds."""
    answer = unlearn(model, dataset, removal, config)
    at_m = scores(answer.model, dataset, removal)
    done = completeness(at_m, original, retrain)
    return (f"AUC completeness {done[0]:.2f} / {done[1]:.2f} / {done[2]:.2f}, |AUC_0 - R| {abs(at_m[0] - retrain[0]):.4f}, "
            f"forget completeness {done[3]:.2f}, {answer.seconds:.2f} s")
