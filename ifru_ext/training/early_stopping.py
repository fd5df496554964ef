"""The one early-stopping rule: keep the best-scoring state, stop after ``patience`` misses.

Training (epochs), the sharded baselines (per shard, and the aggregator), AltEraser
(rounds) and the validation-selected solvers (iterates) all stop this way: a step
counts as an improvement only when its score is higher than the best so far by more than
``min_delta`` (default 0: strictly higher), and as a miss only when it is lower than the
best by more than ``tolerance`` (default 0: every step that is not an improvement; training
with ``wait_through_plateaus`` passes each epoch its own, from the paired noise of its AUC).
"""
from __future__ import annotations

import math
from typing import Any, Callable

__all__ = ["EarlyStopping", "snapshot"]


def snapshot(module_or_state: Any) -> dict[str, Any]:
    """A detached copy of a module's ``state_dict`` (or of a state dict)."""
    state = module_or_state.state_dict() if hasattr(module_or_state, "state_dict") else module_or_state
    return {key: value.detach().clone() for key, value in state.items()}


class EarlyStopping:
    """Tracks the best score, the step it came at and a copy of the state then.

    ``update(step, score, state)`` records ``state()`` (called only on an improvement,
    so nothing is copied otherwise) when ``score`` beats the best by more than
    ``min_delta``, or always with ``accept=True`` (a caller that wants the last step, not
    the best); it returns whether the step was recorded. ``should_stop(step)`` is true
    once ``patience`` steps have passed since the last one that was not a miss (the recorded
    one, or a later one within ``tolerance`` of the best; ``update(..., tolerance=)`` gives a step
    its own; ``should_stop(step, patience)`` a count of its own). Before any update the best score
    is −inf. A ``min_delta`` at the score's noise level (e.g. ``auc_noise``) keeps a run whose score
    only fluctuates from going on for as long as the fluctuations last; a ``tolerance`` there does
    the opposite: a run whose score stays level (a plateau it may climb out of) goes on until the
    score has clearly fallen, and still returns its best step.
    """

    def __init__(self, patience: int, min_delta: float = 0.0, tolerance: float = 0.0) -> None:
        if patience <= 0:
            raise ValueError(f"patience must be positive, got {patience}")
        if not min_delta >= 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        if not tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {tolerance}")
        self.patience, self.min_delta, self.tolerance = patience, min_delta, tolerance
        self.best_score = -math.inf
        self.best_step = 0
        self.best_state: Any = None
        self.level_step = 0  # the last step that was not a miss

    def update(self, step: int, score: float, state: Callable[[], Any], accept: bool = False,
               tolerance: float | None = None) -> bool:
        tolerance = self.tolerance if tolerance is None else tolerance
        if tolerance > 0 and score >= self.best_score - tolerance:
            self.level_step = step
        if not (accept or score > self.best_score + self.min_delta):
            return False
        self.best_score, self.best_step, self.best_state, self.level_step = score, step, state(), step
        return True

    def should_stop(self, step: int, patience: int | None = None) -> bool:
        return step - max(self.best_step, self.level_step) >= (self.patience if patience is None else patience)
