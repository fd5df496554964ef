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
from ..models.trace import DEFAULT_SNAPSHOTS, UNRECORDED_ESTIMATOR
from ..training import TrainConfig, train_new
from ..unlearning import CALIBRATABLE, METHODS, UnlearnConfig, calibrate

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


def calibration_estimator(method: str) -> UnlearnConfig:
    """The estimator of the registry ``method`` a run calibrates its Originals for (one of
    ``CALIBRATABLE``); ValueError naming the choices otherwise."""
    if method not in CALIBRATABLE:
        raise ValueError(f"calibrate_for must be one of {', '.join(CALIBRATABLE)}, got {method!r}")
    return METHODS[method].config


def trained_model(path: Path, name: str, dataset: RecDataset, config: TrainConfig,
                  removal: Tensor | None, calibrated: bool = False,
                  estimator: UnlearnConfig | None = None) -> tuple[Recommender, float]:
    """A ``name`` model trained by ``config`` on ``dataset`` minus ``removal``, and its training
    seconds: the checkpoint at ``path`` if it fits, else a new run saved there. ``calibrated``:
    the model carries its calibration (``unlearning.calibrate``, one Retrain; fitted on a full
    ``dataset`` only) — a cached checkpoint without one for ``estimator`` (an ``UnlearnConfig``;
    default ``UnlearnConfig()``, the ``ifru`` default) is calibrated and saved again; one the calibration refuses
    stays uncalibrated, and the refusal is saved with it. Without
    ``calibrated`` a cached calibration is set aside (in memory; the file keeps it)."""
    meta: dict[str, Any] = {}

    def load() -> tuple[Recommender, dict[str, Any]]:
        checkpoint = load_checkpoint(path, dataset, expected_model=name, device=config.device)
        if checkpoint.loss != config.loss:
            raise ValueError(f"it was trained with {checkpoint.loss}, this run trains with {config.loss}")
        # a trace keeps the snapshots its run was told to (checkpoints from before the option: the default)
        kept = checkpoint.meta.get("train", {}).get("snapshots", DEFAULT_SNAPSHOTS)
        if kept != config.snapshots:
            raise ValueError(f"its trace keeps up to {kept} snapshots, this run keeps {config.snapshots}")
        # a run that stops another way returns another epoch (traces from before it was recorded: not checked)
        stopped = getattr(checkpoint.model.trace, "stopping", None)
        if stopped is not None and stopped != config.stopping():
            raise ValueError(f"its run stopped by {stopped}, this run stops by {config.stopping()}")
        meta.update(checkpoint.meta)
        return checkpoint.model, checkpoint.meta

    reused = reuse(path, load)
    if reused is not None:
        model, seconds = reused
    else:
        model, result = train_new(name, dataset, config, removal)
        seconds = result.seconds
        meta.update(seconds=seconds, best_epoch=result.best_epoch, epochs=result.epochs, train=asdict(config))
    changed = reused is None
    estimator = estimator or UnlearnConfig()
    key = estimator.for_model(model).estimator
    if not calibrated:
        model.trace.calibration = model.trace.calibrated_for = None  # this run answers with the response as derived
    elif (removal is None and model.trace.calibrated_for != key
          and ("calibration" not in meta or meta["calibration"].get("estimator", UNRECORDED_ESTIMATOR) != key)):
        try:
            fitted = calibrate(model, dataset, train=config, config=estimator)
            logger.info("calibrated %s: scale %.3f (%.1f s)", path, fitted.scale, fitted.seconds)
            meta["calibration"] = asdict(fitted)
        except ValueError as error:  # kept uncalibrated; the refusal is cached, not retried
            logger.warning("not calibrating %s: %s", path, error)
            model.trace.calibration = model.trace.calibrated_for = None
            meta["calibration"] = {"refused": str(error), "estimator": key}
        changed = True
    if changed:
        save_checkpoint(path, model, dataset, removal, meta=meta)
    return model, seconds
