"""What every unlearning method shares: the result it returns, the solve report, and the
per-phase clock. ``unlearn()`` (the registry) validates the request, answers an empty one
with an unchanged copy and starts the clock, so a method's runner only does its own work.
"""
from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

__all__ = ["ModelStateMemo", "PhaseClock", "SolveReport", "UnlearnResult"]


class ModelStateMemo:
    """A value computed from a model and one of its dataset's splits, kept per model until one of
    its parameters or buffers changes in place (its version bumps) or another split is asked for:
    what every request of a model would otherwise recompute over a whole split."""

    def __init__(self) -> None:
        self._values: "weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple, weakref.ref, Any]]" = \
            weakref.WeakKeyDictionary()

    def get(self, model: torch.nn.Module, split: Any, compute: Callable[[], Any]) -> Any:
        state = tuple((t.data_ptr(), t._version) for t in (*model.parameters(), *model.buffers()))
        cached = self._values.get(model)
        if cached is not None and cached[0] == state and cached[1]() is split:
            return cached[2]
        value = compute()
        self._values[model] = (state, weakref.ref(split), value)
        return value


@dataclass
class SolveReport:
    """How an iterative solve (or a method's inner loop) ended.

    ``residual``: relative residual ``‖(H+δ)t − g‖ / ‖g‖`` (or the method's analogue);
    ``status``: ``converged``, ``max_iter``, ``negative_curvature``, ``zero_rhs``,
    ``validation`` (selected by a validation score), ``stalled``.
    """

    iterations: int
    residual: float
    status: str


@dataclass
class UnlearnResult:
    """The unlearned model and the evidence.

    ``method``: the registry name that answered; ``seconds``: wall time of the whole
    request and ``phases``: seconds per named phase (both filled by ``unlearn``);
    ``solve``: the solver's report; ``kept_rows``: rows the method may move (for the
    sharded methods: the number of shards retrained); ``num_removed``: rows forgotten.
    Filled by ``unlearn`` as evidence that the request was answered: ``update_norm`` (the
    norm of the change of every float parameter and buffer), ``forget_loss_before`` /
    ``forget_loss_after`` (the model's training loss on the removed rows: mean BCE with their
    trained labels, or for a BPR model BPR's expected loss on the removed positives) and
    ``status``: ``ok``; ``unchanged`` (a non-empty request left the model as it was, some row
    of it being a term of the model's objective);
    ``blow-up`` (a removed row's logit left twice the model's training logit range).
    ``changed_rows`` (int64 [c], or None: not known): the only rows of ``model.embedding`` the
    method wrote, the rest of the model being an exact copy of the original; ``unlearn`` then
    measures ``update_norm`` on those rows instead of comparing every parameter (a request
    costs what it touches). ``epochs_past``: the training response's answer lies this many epochs
    past the run's returned one (the trajectory horizon, ``UnlearnConfig.horizon``); 0 at it.
    """

    model: torch.nn.Module
    method: str
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    solve: SolveReport | None = None
    kept_rows: int = 0
    num_removed: int = 0
    update_norm: float = 0.0
    forget_loss_before: float = float("nan")
    forget_loss_after: float = float("nan")
    status: str = "ok"
    changed_rows: torch.Tensor | None = None
    epochs_past: int = 0


class PhaseClock:
    """Wall seconds per named phase of a request, synchronising CUDA so queued kernels count.

    ``lap(name)`` adds the time since the previous lap (or ``start``, default now) to
    ``phases[name]``.
    """

    def __init__(self, device: torch.device, start: float | None = None) -> None:
        self.device = device
        self.phases: dict[str, float] = {}
        self.last = time.perf_counter() if start is None else start

    def lap(self, name: str) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - self.last
        self.last = now
