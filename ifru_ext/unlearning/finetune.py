"""Fine-tuning baseline: Adam on ``D_{-r}`` from the trained model, validation early stopping
(the objective is in ``objective``)."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..data import RecDataset
from ..models import Recommender, copy_model
from ..training import TrainConfig, train
from .base import PhaseClock, SolveReport, UnlearnResult
from .objective import RemainingObjective, ratio, remaining_graph

__all__ = ["FinetuneConfig", "finetune"]


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning: Adam on ``D_{-r}`` from the trained model with validation early stopping.

    ``lr`` None takes the model's ``TrainConfig.for_model`` value (the paper schedule).
    The start counts as epoch 0, so fine-tuning returns the start unless an epoch beats
    its whole-validation AUC; it stops after ``patience`` epochs without improvement.
    """

    lr: float | None = None
    patience: int = 3
    max_epochs: int = 50
    batch_size: int = 2048
    seed: int = 1024
    l2: float = 0.0

    def __post_init__(self) -> None:
        if self.lr is not None and not (self.lr > 0 and self.lr != float("inf")):
            raise ValueError(f"FinetuneConfig.lr must be a finite number > 0 or None, got {self.lr}")
        if min(self.patience, self.max_epochs, self.batch_size) < 1:
            raise ValueError(f"FinetuneConfig.patience, max_epochs and batch_size must be >= 1: {self}")
        if not 0 <= self.l2 < float("inf"):
            raise ValueError(f"FinetuneConfig.l2 must be a finite number >= 0, got {self.l2}")


def finetune(model: Recommender, dataset: RecDataset, removal: Tensor, config: FinetuneConfig,
             clock: PhaseClock) -> UnlearnResult:
    """Runner (called by ``unlearn``): fine-tune a copy of ``model`` on ``D_{-r}``.

    ``removal``: validated, non-empty int64 indices into ``dataset.train``. The copy
    (LightGCN: with the graph of ``D_{-r}``) is trained by ``train(include_start=True)`` on
    the model's device, so the returned state has a validation AUC at least the start's.
    ``solve`` reports the epochs run, the relative gradient norm ``‖∇L_{-r}‖/‖∇L_{-r}(Ê)‖``
    of the returned model, and ``validation`` (stopped on patience) or ``max_iter``.
    """
    tuned = copy_model(model)
    device = model.embedding.device
    train_config = TrainConfig.for_model(
        model.name, lr=config.lr, patience=config.patience, max_epochs=config.max_epochs,
        batch_size=config.batch_size, seed=config.seed, device=str(device), l2=config.l2,
        # Every epoch not strictly better than the start is a miss: a fine-tune that only loses AUC
        # would otherwise run on through its whole budget within the AUC's noise of the start.
        wait_through_plateaus=False,
    )
    objective = RemainingObjective(model, dataset, removal, remaining_graph(model, dataset, removal), config.l2)
    start_norm = objective.gradient(model.embedding.detach())[1].norm()
    clock.lap("setup")
    result = train(tuned, dataset, train_config, removal=removal, progress=False, include_start=True)
    clock.lap("train")
    final_norm = objective.gradient(tuned.embedding.detach())[1].norm()
    clock.lap("report")
    report = SolveReport(result.epochs, ratio(final_norm, start_norm),
                         "validation" if result.stopped_early else "max_iter")
    return UnlearnResult(tuned, "finetune", solve=report, kept_rows=model.num_nodes)
