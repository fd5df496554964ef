"""Calibration at training time: the training-aware response's one scalar, fitted against one
real Retrain and stored with the model.

The training response (``response.py``) is the first-order change of the model's own training
run. Measured against Retrain it can be off by a model-wide factor: on BookCrossing LightGCN
(init std 1e-4, 6,400 Adam steps) it reaches half of Retrain's forget-loss change on genuine
and poisoned rows, and still only half with the curvature term removed (pure gradient flow) —
the difference between the two runs grows along the run faster than a response linearised
around it can say. Scaling its δ by 2 gives forget completeness 1.00 (genuine) and 1.19
(poison); MF needs about 1.

``calibrate`` measures that factor once per model: it removes a random ``fraction`` of the
training rows (a genuine deletion request), retrains as the model was trained
(``retrain_config``), answers the same request with the uncalibrated response and fits the
scale ``s`` of its δ (orphaned rows stay exact, at their initial value) for which the
estimate's forget loss on those rows equals Retrain's. ``s`` is stored in the trace
(``TrainingTrace.calibration``), saved with the checkpoint, and every later request uses it
(``UnlearnConfig.calibrated``): a request still costs no retraining. The fraction and the draw
are the only choices, and neither is fitted to a dataset.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..data import RecDataset
from ..models import Recommender, copy_model
from ..training import TrainConfig
from .influence import UnlearnConfig
from .registry import unlearn
from .response import orphaned_rows, training_trace
from .retrain import RetrainConfig
from .terms import forget_loss, objective_rows

__all__ = ["CALIBRATION_FRACTION", "Calibration", "calibrate"]

# The calibration request: 2% of the training rows, the paper's MF request size — large enough
# that Retrain's forget-loss change stands well above its seed-to-seed noise. An 8% draw measures
# the scale with 3-4x less draw-to-draw spread on small data, but on a poisoned model it can
# measure a different scale (MovieLens-100K-shaped LightGCN: 1.06 against 1.20, its 2% poisoned
# request 0.88 -> 0.78): reports/fidelity-calibration-size/, where the two sit side by side.
CALIBRATION_FRACTION = 0.02
# The fitted forget loss matches Retrain's to this share of the Original→Retrain change.
_TOLERANCE = 1e-3
_MAX_STEPS = 12


@dataclass
class Calibration:
    """What ``calibrate`` fitted: ``scale`` (stored as ``TrainingTrace.calibration``), the
    calibration request's size ``rows``, the forget loss on it of the Original, Retrain, the
    uncalibrated and the calibrated estimate, the seconds of the Retrain and of the whole
    calibration, and the estimator it was fitted for (``UnlearnConfig.estimator``)."""

    scale: float
    rows: int
    forget_loss: dict[str, float]
    retrain_seconds: float
    seconds: float
    estimator: str


def calibration_rows(model: Recommender, dataset: RecDataset, fraction: float, seed: int) -> Tensor:
    """A seeded random ``fraction`` of the rows in the model's objective (BCE: every training
    row; BPR: the label-1 rows), sorted int64."""
    candidates = objective_rows(training_trace(model).loss, dataset, torch.arange(len(dataset.train)))
    generator = torch.Generator().manual_seed(seed)
    count = max(1, round(fraction * candidates.numel()))
    return candidates[torch.randperm(candidates.numel(), generator=generator)[:count]].sort().values


def _check_signal(model: Recommender, retrained: torch.nn.Module, dataset: RecDataset, rows: Tensor, loss: str,
                  change: float, seed: int) -> None:
    """ValueError unless Retrain moves the calibration rows' loss (by ``change``) more than it
    moves the loss of rows it kept: the kept rows, shuffled, in chunks the size of the request,
    give that drift's mean and spread. When the two runs differ mostly by their length or their
    path (an Original that barely left its initial table, or Retrain training on after it had
    stopped), a fit to ``change`` would calibrate against that, not against the removal."""
    kept = objective_rows(loss, dataset, torch.arange(len(dataset.train)))
    kept = kept[~torch.isin(kept, rows)]
    kept = kept[torch.randperm(kept.numel(), generator=torch.Generator().manual_seed(seed + 1))]
    count = kept.numel() // rows.numel()
    if count < 2:
        return  # a request of half the data or more: no chunk to compare with
    drift = torch.tensor([forget_loss(retrained, dataset, chunk, loss) - forget_loss(model, dataset, chunk, loss)
                          for chunk in kept[: count * rows.numel()].view(count, -1)], dtype=torch.float64)
    mean, spread = float(drift.mean()), float(drift.std())
    if abs(change) <= abs(mean) + spread:
        raise ValueError(f"Retrain moves the loss of the {rows.numel()} calibration rows by {change:+.4f}, no more than "
                         f"it moves the loss of rows it kept ({mean:+.4f} ± {spread:.4f}): the two runs differ by more "
                         f"than the removal (the model returned epoch {training_trace(model).best_epoch}, the Retrain "
                         f"epoch {training_trace(retrained).best_epoch}), so there is nothing to calibrate against")


def calibrate(model: Recommender, dataset: RecDataset, fraction: float = CALIBRATION_FRACTION,
              seed: int = 0, train: TrainConfig | None = None, config: UnlearnConfig | None = None) -> Calibration:
    """Fit the training response's scale on ``dataset`` (the data ``model`` was trained on) and
    store it in ``model.trace.calibration`` (and the estimator in ``calibrated_for``); returns
    what was fitted. ``train``: the ``TrainConfig`` that trained the model (its epoch cap
    included), for the Retrain; None: ``retrain_config`` (the schedule of the architecture with
    what the trace records). ``config``: the estimator to fit (default ``UnlearnConfig()``, the
    ``ifru`` default; a trajectory or auto horizon fits its recorded horizon's, which answers its
    returned epoch); only a request answered with the same estimator uses the scale.

    Raises ValueError for a model without a training trace or that ``Retrain`` cannot rebuild
    (your own ``TableModel``), a ``fraction`` outside (0, 1), a Retrain that moves the
    calibration rows' loss no more than the loss of rows it kept (``_check_signal``), and a
    calibration request the response does not move, or moves against Retrain (no positive
    scale exists)."""
    if not isinstance(model, Recommender):
        raise ValueError(f"calibrate retrains the model, so it needs a Recommender (MF or LightGCN), got "
                         f"{type(model).__name__}")
    trace = training_trace(model)
    if not (isinstance(fraction, float) and 0.0 < fraction < 1.0):
        raise ValueError(f"fraction must be a float in (0, 1), got {fraction!r}")
    start = time.perf_counter()
    rows = calibration_rows(model, dataset, fraction, seed)
    retrained = unlearn(model, dataset, rows, RetrainConfig(train=train))
    # A trajectory's answer at the returned epoch is the recorded horizon's: the scale fitted for that serves both.
    config = (config or UnlearnConfig()).for_model(model)
    config = replace(config, calibrated=False,
                     horizon="recorded" if config.horizon in ("auto", "trajectory") else config.horizon)
    if config.response != "training":
        raise ValueError("calibrate fits the training response's scale; the config answers with response="
                         f"{config.response!r}")
    estimate = unlearn(model, dataset, rows, config)
    loss = trace.loss
    original_loss = forget_loss(model, dataset, rows, loss)
    target = forget_loss(retrained.model, dataset, rows, loss)
    _check_signal(model, retrained.model, dataset, rows, loss, target - original_loss, seed)
    # δ on the rows the response moved (orphans excluded: they sit exactly at their initial value).
    moved = estimate.changed_rows
    moved = moved[~orphaned_rows(dataset, rows, moved.device, loss)[moved]]
    base = model.embedding.detach()[moved]
    step = estimate.model.embedding.detach()[moved] - base
    candidate = copy_model(estimate.model)

    def loss_at(scale: float) -> float:
        with torch.no_grad():
            candidate.embedding[moved] = base + scale * step
        return forget_loss(candidate, dataset, rows, loss)

    # Secant on the forget loss as a function of the scale (close to linear), from s = 0 and 1.
    points = [(0.0, loss_at(0.0)), (1.0, forget_loss(estimate.model, dataset, rows, loss))]
    uncalibrated = points[1][1]
    if points[1][1] == points[0][1]:
        raise ValueError(f"the training response does not move the forget loss of the {rows.numel()} calibration "
                         "rows: there is nothing to calibrate")
    for _ in range(_MAX_STEPS):
        (s0, f0), (s1, f1) = points[-2:]
        if abs(f1 - target) <= _TOLERANCE * abs(target - original_loss) or f1 == f0:
            break
        s2 = s1 + (target - f1) * (s1 - s0) / (f1 - f0)
        points.append((s2, loss_at(s2)))
    scale, fitted = points[-1]
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"no positive scale matches Retrain: on the calibration rows Retrain moves the forget loss "
                         f"{original_loss:.4f} → {target:.4f}, the uncalibrated response to {uncalibrated:.4f}")
    trace.calibration, trace.calibrated_for = float(scale), config.estimator
    return Calibration(float(scale), int(rows.numel()),
                       {"original": original_loss, "retrain": target, "uncalibrated": uncalibrated,
                        "calibrated": fitted},
                       retrained.seconds, time.perf_counter() - start, config.estimator)
