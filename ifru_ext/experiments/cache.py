"""Trained models cached as checkpoints in an experiment's folder: reused when they fit the run,
trained and saved otherwise. Shared by the experiment runner and the fidelity suite."""
from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from torch import Tensor

from ..data import RecDataset
from ..models import Recommender, load_checkpoint, save_checkpoint
from ..training import TrainConfig, train_new

__all__ = ["reuse", "trained_model"]

logger = logging.getLogger(__name__)


def reuse(path: Path, load: Callable[[], tuple[Any, dict[str, Any]]]) -> tuple[Any, float] | None:
    """``(model, training seconds)`` from ``load()`` of the file at ``path`` if it fits this run, else None."""
    if not path.exists():
        return None
    try:
        model, meta = load()
        if getattr(model, "trace", True) is None:  # older than training traces: the default IFRU needs one
            raise ValueError("the checkpoint has no training trace")
        logger.info("reusing %s (trained in %.1f s)", path, meta["seconds"])
        return model, float(meta["seconds"])
    except (ValueError, KeyError) as error:
        logger.warning("not reusing %s: %s", path, error)
        return None


def trained_model(path: Path, name: str, dataset: RecDataset, config: TrainConfig,
                  removal: Tensor | None) -> tuple[Recommender, float]:
    """A ``name`` model trained by ``config`` on ``dataset`` minus ``removal``, and its training
    seconds: the checkpoint at ``path`` if it fits, else a new run saved there."""
    def load() -> tuple[Recommender, dict[str, Any]]:
        checkpoint = load_checkpoint(path, dataset, expected_model=name, device=config.device)
        if checkpoint.loss != config.loss:
            raise ValueError(f"it was trained with {checkpoint.loss}, this run trains with {config.loss}")
        return checkpoint.model, checkpoint.meta

    reused = reuse(path, load)
    if reused is not None:
        return reused
    model, result = train_new(name, dataset, config, removal)
    save_checkpoint(path, model, dataset, removal, meta={"seconds": result.seconds, "best_epoch": result.best_epoch,
                                                         "epochs": result.epochs, "train": asdict(config)})
    return model, result.seconds
