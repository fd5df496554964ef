"""Retrain: the gold standard every method is judged against — a fresh model of the same
architecture trained from scratch on ``D_{-r}`` with the paper's protocol."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..data import RecDataset
from ..models import Recommender, build_model
from ..training import TrainConfig, train
from .base import PhaseClock, UnlearnResult

__all__ = ["RetrainConfig", "retrain"]


@dataclass(frozen=True)
class RetrainConfig:
    """``train``: the ``TrainConfig`` to retrain with; None retrains as the model was trained:
    the model's paper schedule (``TrainConfig.for_model(model.name)``) on its device, with the
    learning rate, batch size, seed, λ and loss its ``TrainingTrace`` records (a BPR model is
    retrained with BPR on the same negatives)."""

    train: TrainConfig | None = None

    def __post_init__(self) -> None:
        if self.train is not None and not isinstance(self.train, TrainConfig):
            raise ValueError(f"RetrainConfig.train must be a TrainConfig or None, got {type(self.train).__name__}")


def retrain(model: Recommender, dataset: RecDataset, removal: Tensor, config: RetrainConfig,
            clock: PhaseClock) -> UnlearnResult:
    """Runner (called by ``unlearn``): train ``build_model(**model.config())`` on ``D_{-r}``."""
    device = model.embedding.device
    train_config = config.train or _as_trained(model, str(device))
    fresh = build_model(**model.config(), seed=train_config.seed).to(device)
    train(fresh, dataset, train_config, removal=removal, progress=False)
    clock.lap("train")
    return UnlearnResult(fresh, "retrain")


def _as_trained(model: Recommender, device: str) -> TrainConfig:
    """The paper schedule of ``model``'s architecture with the settings its trace records."""
    trace = model.trace
    if trace is None:
        return TrainConfig.for_model(model.name, device=device)
    return TrainConfig.for_model(model.name, device=device, lr=trace.lr, batch_size=trace.batch_size, seed=trace.seed,
                                 l2=trace.l2, loss=trace.loss)
