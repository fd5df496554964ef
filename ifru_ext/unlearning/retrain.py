"""Retrain: the gold standard every method is judged against — a fresh model of the same
architecture trained from scratch on ``D_{-r}`` with the paper's protocol."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..data import RecDataset
from ..models import Recommender, build_model
from ..models.trace import training_loss
from ..training import TrainConfig, train
from .base import PhaseClock, UnlearnResult

__all__ = ["RetrainConfig", "retrain", "retrain_config"]


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
    train_config = config.train or retrain_config(model, str(device))
    if train_config.loss != training_loss(model):
        raise ValueError(f"RetrainConfig.train has loss {train_config.loss!r} but the model was trained with "
                         f"{training_loss(model)!r}: Retrain must optimise the same objective")
    fresh = build_model(**model.config(), seed=train_config.seed).to(device)
    train(fresh, dataset, train_config, removal=removal, progress=False)
    clock.lap("train")
    return UnlearnResult(fresh, "retrain")


def retrain_config(model: Recommender, device: str) -> TrainConfig:
    """How ``model`` was trained: the paper schedule of its architecture with the settings its
    trace records (learning rate, batch size, seed, λ, loss, and how the run stopped where the trace
    has it; a trace from before it was recorded: the plain rule for plateaus, the only one then);
    the plain schedule without a trace."""
    trace = model.trace
    if trace is None:
        return TrainConfig.for_model(model.name, device=device)
    stopping = trace.stopping or {"wait_through_plateaus": False}
    return TrainConfig.for_model(model.name, device=device, lr=trace.lr, batch_size=trace.batch_size, seed=trace.seed,
                                 l2=trace.l2, loss=trace.loss, **stopping)
