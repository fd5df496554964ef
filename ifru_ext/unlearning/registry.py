"""The one registry of unlearning methods, and ``unlearn``, the one way to answer a request.

Each entry names a method and gives its default config (whose type is the method family's
config type), the runner that answers a request, and the kind of model it accepts. The CLI
(``ifru unlearn --method``, ``ifru experiment --methods``), the experiment runner and the
reports read the same table: adding a method is one ``Method`` entry here.

A runner is ``run(model, dataset, removal, config, clock) -> UnlearnResult``: ``unlearn``
has already validated ``removal`` (sorted distinct int64 training rows, non-empty) and
started ``clock``; it fills in ``seconds``, ``phases``, ``num_removed`` and ``method``.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from ..data import RecDataset, validate_removal
from ..models import Recommender, copy_model
from ..models.trace import training_loss
from .alteraser import AltEraserConfig, alteraser
from .base import ModelStateMemo, PhaseClock, UnlearnResult
from .finetune import FinetuneConfig, finetune
from .influence import UnlearnConfig, influence_update
from .own_model import TableModel
from .retrain import RetrainConfig, retrain
from .sharded import ShardedConfig, ShardedRecommender, unlearn_sharded
from .terms import forget_loss, objective_rows

__all__ = ["CALIBRATABLE", "METHODS", "Method", "configure", "method_for", "unlearn"]

Runner = Callable[[Any, RecDataset, Tensor, Any, PhaseClock], UnlearnResult]


@dataclass(frozen=True)
class Method:
    """A named unlearning method: its default ``config``, its ``run``ner, the ``model_kind`` it
    accepts (a type or a tuple of types), a one-line ``summary`` (shown by ``ifru unlearn
    --help``) and the training ``losses`` of the models it answers (``TrainingTrace.loss``)."""

    name: str
    config: Any
    run: Runner
    model_kind: type | tuple[type, ...]
    summary: str
    losses: tuple[str, ...] = ("bce",)

    def accepts(self, model: torch.nn.Module) -> bool:
        """A sharded model is answered only by the method that partitioned it."""
        if not isinstance(model, self.model_kind):
            return False
        return not isinstance(model, ShardedRecommender) or model.method == self.name

    @property
    def kind_name(self) -> str:
        kinds = self.model_kind if isinstance(self.model_kind, tuple) else (self.model_kind,)
        return " or a ".join(kind.__name__ for kind in kinds)


# The training response answers the built-in models and your own (``TableModel``), trained with
# BCE or BPR; every other method is written for BCE on the built-in models (``ifru-unanchored``
# too: a row left with one label is a BCE notion, read from dot-product terms).
TRAINING_RESPONSE = {"model_kind": (Recommender, TableModel), "losses": ("bce", "bpr")}


def _methods(*entries: Method) -> dict[str, Method]:
    return {entry.name: entry for entry in entries}


METHODS: dict[str, Method] = _methods(
    Method("ifru", UnlearnConfig(), influence_update,
           summary="IFRU, the training-aware response: the change Adam would have made without D_r over the model's "
                   "own run (from its training trace), each segment's step solved as the nonlinear equation it is "
                   "(a step whose Newton corrections stall walked in shorter steps), continued along the epochs the "
                   "run trained past its best while the estimate of Retrain improves on validation (Retrain's own "
                   "stopping rule; BCE models whose trace recorded them), orphaned rows reset, and on LightGCN "
                   "Retrain's own second moments on the rows a request leaves unanchored (as ifru-own-moments); "
                   "validation cannot veto forgetting, no tuned constant", **TRAINING_RESPONSE),
    Method("ifru-uncalibrated", UnlearnConfig(calibrated=False), influence_update,
           summary="IFRU's training response as derived, without the model's calibration (ifru_ext.unlearning."
                   "calibrate); the same as ifru for a model that has none", **TRAINING_RESPONSE),
    Method("ifru-fixed-steps", UnlearnConfig(adaptive_steps=False, own_moments=False), influence_update,
           summary="ifru with every segment walked in one implicit step, kept as it is where its Newton corrections "
                   "stall, and the Original's second moments everywhere (the default until 2026-12-07: a large "
                   "request's first segment on a short run forgets less); uses a calibration fitted for it (ifru "
                   "fidelity --calibrate-for ifru-fixed-steps)", **TRAINING_RESPONSE),
    Method("ifru-fixed-steps-uncalibrated", UnlearnConfig(adaptive_steps=False, own_moments=False, calibrated=False),
           influence_update,
           summary="ifru-fixed-steps without the model's calibration", **TRAINING_RESPONSE),
    Method("ifru-linear", UnlearnConfig(corrections=0, horizon="recorded"), influence_update,
           summary="IFRU's training response linearised around the run, at its returned epoch (the default until "
                   "2026-12-06): 2-4x faster than ifru, forgets less of a large poisoned request; uses a calibration "
                   "fitted for it (ifru fidelity --calibrate-for ifru-linear)", **TRAINING_RESPONSE),
    Method("ifru-linear-uncalibrated", UnlearnConfig(corrections=0, horizon="recorded", calibrated=False),
           influence_update, summary="ifru-linear without the model's calibration", **TRAINING_RESPONSE),
    Method("ifru-corrected", UnlearnConfig(corrections=1, horizon="recorded"), influence_update,
           summary="ifru-linear with one Newton correction per segment (the remaining loss's true gradient at "
                   "E + δ): more forgetting of poisoned rows at about twice the cost; uses a calibration "
                   "fitted for it (calibrate(..., config=...), ifru fidelity --calibrate-for ifru-corrected)",
           **TRAINING_RESPONSE),
    Method("ifru-horizon", UnlearnConfig(corrections=0, horizon="validation"), influence_update,
           summary="ifru-linear run on past the returned epoch while Retrain's own early stopping, "
                   "read from the Original's validation AUC after its best epoch plus the answer's change of it, "
                   "would go on; uses a calibration fitted for it (ifru fidelity --calibrate-for ifru-horizon)",
           **TRAINING_RESPONSE),
    Method("ifru-trajectory", UnlearnConfig(corrections=2, horizon="trajectory"), influence_update,
           summary="ifru, requiring the run's tail (an error, not the recorded horizon, where the trace has none); "
                   "uses ifru-nonlinear's calibration; models trained with bce",
           model_kind=(Recommender, TableModel), losses=("bce",)),
    Method("ifru-trajectory-uncalibrated", UnlearnConfig(corrections=2, horizon="trajectory", calibrated=False),
           influence_update, summary="ifru-trajectory without the model's calibration",
           model_kind=(Recommender, TableModel), losses=("bce",)),
    Method("ifru-corrected-uncalibrated", UnlearnConfig(corrections=1, horizon="recorded", calibrated=False),
           influence_update,
           summary="ifru-corrected without the model's calibration", **TRAINING_RESPONSE),
    Method("ifru-nonlinear", UnlearnConfig(corrections=2, horizon="recorded"), influence_update,
           summary="ifru answered at the run's returned epoch (each segment's implicit step solved as the nonlinear "
                   "equation it is, three Newton steps from the previous segment's answer; no walk along the tail); "
                   "the same calibration as ifru", **TRAINING_RESPONSE),
    Method("ifru-nonlinear-uncalibrated", UnlearnConfig(corrections=2, horizon="recorded", calibrated=False),
           influence_update,
           summary="ifru-nonlinear without the model's calibration (with a finer walk of the run, ifru train "
                   "--snapshots, the estimate reports/fidelity-segments measures)", **TRAINING_RESPONSE),
    Method("ifru-nonlinear-neighbours", UnlearnConfig(corrections=2, horizon="recorded", ratios=(1.0, 0.6)),
           influence_update,
           summary="ifru-nonlinear with the most important 60% of the rows one hop from a removed row's user or item "
                   "moving too (Algorithm 1's ratios (1.0, 0.6): LightGCN's default, so LightGCN gets "
                   "ifru-nonlinear's answer); uses a calibration fitted for it (ifru fidelity --calibrate-for "
                   "ifru-nonlinear-neighbours)",
           **TRAINING_RESPONSE),
    Method("ifru-nonlinear-neighbours-uncalibrated",
           UnlearnConfig(corrections=2, horizon="recorded", ratios=(1.0, 0.6), calibrated=False),
           influence_update, summary="ifru-nonlinear-neighbours without the model's calibration", **TRAINING_RESPONSE),
    Method("ifru-unanchored", UnlearnConfig(corrections=0, horizon="recorded", unanchored_flow=True),
           influence_update,
           summary="ifru-linear with the rows a request leaves unanchored (every remaining row of theirs has one "
                   "label, where they had both) answered by gradient flow, without their curvature; uses a calibration "
                   "fitted for it (ifru fidelity --calibrate-for ifru-unanchored)", model_kind=Recommender),
    Method("ifru-unanchored-uncalibrated",
           UnlearnConfig(corrections=0, horizon="recorded", unanchored_flow=True, calibrated=False), influence_update,
           Recommender, "ifru-unanchored without the model's calibration"),
    Method("ifru-own-moments", UnlearnConfig(own_moments=True), influence_update,
           summary="ifru with Retrain's Adam second moments on the rows a request leaves unanchored read at the "
                   "estimate's own table (their logits saturate, gradients fade and Retrain's steps grow): ifru's "
                   "answer on LightGCN, an option on MF; answers as ifru-original-moments where no row is left "
                   "unanchored; uses a calibration fitted for it (ifru fidelity --calibrate-for ifru-own-moments)",
           model_kind=Recommender),
    Method("ifru-own-moments-uncalibrated", UnlearnConfig(own_moments=True, calibrated=False), influence_update,
           Recommender, "ifru-own-moments without the model's calibration"),
    Method("ifru-original-moments", UnlearnConfig(own_moments=False), influence_update,
           summary="ifru with Retrain's second moments read at the Original's tables on every row: ifru's answer on "
                   "MF, LightGCN's default until 2026-12-07 (it forgets less of the Amazon-shaped poisoned requests); "
                   "uses a calibration fitted for it (ifru fidelity --calibrate-for ifru-original-moments)",
           **TRAINING_RESPONSE),
    Method("ifru-original-moments-uncalibrated", UnlearnConfig(own_moments=False, calibrated=False),
           influence_update, summary="ifru-original-moments without the model's calibration", **TRAINING_RESPONSE),
    Method("ifru-validation", UnlearnConfig(response="newton"), influence_update, Recommender,
           "IFRU's Newton step, exact Hessian and spillover, new graph, iterate picked by validation AUC (Adam for "
           "MF, CG for LightGCN): the previous default"),
    Method("ifru-adam", UnlearnConfig(response="newton", solver="adam"), influence_update, Recommender,
           "IFRU's Newton step by the Adam solve, validation-selected"),
    Method("ifru-reference", UnlearnConfig.preset("reference"), influence_update, Recommender,
           "IFRU as the authors' released code: reference Hessian, self-loops, old graph, Adam"),
    Method("ifru-cg", UnlearnConfig(response="newton", solver="cg", validation_select=False), influence_update,
           Recommender, "IFRU's exact Newton step by CG on the relative residual"),
    Method("ifru-cg-val", UnlearnConfig(response="newton", solver="cg"), influence_update, Recommender,
           "IFRU's Newton step by CG, iterate picked by validation AUC"),
    Method("ifru-no-spillover", UnlearnConfig(spillover=False), influence_update,
           summary="IFRU (training response) without the spillover term", **TRAINING_RESPONSE),
    Method("ifru-no-pruning", UnlearnConfig(ratios=(1.0, 1.0, 1.0)), influence_update,
           summary="IFRU (training response) keeping every row Algorithm 1 reaches", **TRAINING_RESPONSE),
    Method("scif", UnlearnConfig(method="scif", response="newton"), influence_update, Recommender,
           "SCIF (the authors' right-hand side), validation-selected Newton step"),
    Method("retrain", RetrainConfig(), retrain, Recommender, "Retrain from scratch on D_{-r} (the gold standard)",
           losses=("bce", "bpr")),
    Method("finetune", FinetuneConfig(), finetune, Recommender, "fine-tuning: Adam on D_{-r} from the trained model"),
    Method("alteraser", AltEraserConfig(), alteraser, Recommender,
           "AltEraser: alternating block-Newton steps on L_{-r}"),
    Method("alteraser-anchored", AltEraserConfig(objective="anchored"), alteraser, Recommender,
           "AltEraser on L_{-r} tilted so the trained model is stationary, with a proximal term (ours)"),
    Method("sisa", ShardedConfig(), unlearn_sharded, ShardedRecommender,
           "SISA: retrain the random shards holding removed rows, then the aggregator"),
    Method("receraser", ShardedConfig(), unlearn_sharded, ShardedRecommender,
           "RecEraser: retrain the InBP shards holding removed rows, then the aggregator"),
)

# The methods whose estimator a calibration can be fitted for (``calibrate(config=...)``): the
# training response, answered with the model's calibration.
CALIBRATABLE = tuple(name for name, entry in METHODS.items()
                     if isinstance(entry.config, UnlearnConfig) and entry.config.response == "training"
                     and entry.config.calibrated)


def method_for(model: torch.nn.Module, config: Any = None, method: str | None = None) -> Method:
    """The registry entry answering ``model`` with ``config`` and/or the named ``method``.

    By name: that entry (``config``, if given, must be of its type). By config: the entry
    whose default equals it, else the first of its type (for ``UnlearnConfig``, of the same
    ``method``). Neither: the model's own method if it is sharded, else ``ifru``. Raises
    ValueError for an unknown name, a config of another method's type, or a model the
    method does not accept.
    """
    if method is not None:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        entry = METHODS[method]
        if config is not None and type(config) is not type(entry.config):
            raise ValueError(f"method {method!r} takes a {type(entry.config).__name__}, got a {type(config).__name__}")
    elif config is not None:
        same_type = [e for e in METHODS.values() if type(e.config) is type(config)
                     and getattr(e.config, "method", None) == getattr(config, "method", None)]
        if not same_type:
            raise ValueError(f"no unlearning method takes a {type(config).__name__}; "
                             f"known configs: {sorted({type(e.config).__name__ for e in METHODS.values()})}")
        exact = [e for e in same_type if e.config == config]
        entry = (exact or same_type)[0]
        if isinstance(model, ShardedRecommender) and isinstance(config, ShardedConfig):
            entry = METHODS[model.method]
    else:
        entry = METHODS[model.method] if isinstance(model, ShardedRecommender) else METHODS["ifru"]
    if not entry.accepts(model):
        kind = f"a {model.method} model" if isinstance(model, ShardedRecommender) else f"a {type(model).__name__}"
        raise ValueError(f"method {entry.name!r} does not apply to {kind}; it answers a {entry.kind_name}"
                         + (" partitioned by it" if entry.model_kind is ShardedRecommender else ""))
    loss = training_loss(model)
    if loss not in entry.losses:
        answering = ", ".join(name for name, e in METHODS.items() if loss in e.losses and e.accepts(model))
        raise ValueError(f"method {entry.name!r} answers models trained with {'/'.join(entry.losses)}; this model was "
                         f"trained with {loss} (methods that answer it: {answering or 'none'})")
    return entry


def configure(method: str, overrides: Mapping[str, Any] | None = None) -> Any:
    """The default config of ``method`` with ``overrides`` (field → value) applied.

    Raises ValueError naming the options that the method's config does not have, and the
    ones it does.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    config = METHODS[method].config
    overrides = dict(overrides or {})
    names = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        options = ", ".join(sorted(names)) or "none"
        raise ValueError(f"method {method!r} has no option {', '.join(unknown)} (its options: {options})")
    return dataclasses.replace(config, **overrides)


def _changed_norm(before: torch.nn.Module, after: torch.nn.Module, rows: Tensor | None = None) -> float:
    """Norm of the change of every float parameter and buffer (graphs excluded: not state);
    with ``rows`` (``UnlearnResult.changed_rows``), of those rows of ``embedding`` only."""
    if rows is not None:
        old, new = before.embedding.detach(), after.embedding.detach()
        rows = rows.to(new.device)
        change = new.index_select(0, rows) - old.index_select(0, rows)
        return float(torch.linalg.vector_norm(change, dtype=torch.float64))
    old, new = before.state_dict(), after.state_dict()
    total = 0.0
    for key, value in new.items():
        if value.is_floating_point() and key in old and old[key].shape == value.shape:
            # The difference of two nearby floats is exact in their own precision.
            total += float(torch.linalg.vector_norm(value - old[key], dtype=torch.float64)) ** 2
    return total**0.5


# The logits on every training row per model state (the model's dtype: 4 bytes a row in float32),
# scored once instead of on each request (LightGCN: a propagation of the whole table): their
# largest magnitude is the blow-up check's scale, and the removed rows' ones give the forget loss
# before the request.
_TRAINING_LOGITS = ModelStateMemo()


def _training_logits(model: torch.nn.Module, dataset: RecDataset) -> tuple[Tensor, float]:
    """``model``'s logits on ``dataset``'s training rows ([n], CPU) and their max |·|, memoised
    per model state."""
    def score() -> tuple[Tensor, float]:
        logits = model.score_all(dataset.train.users, dataset.train.items).cpu()
        return logits, float(logits.abs().max()) if logits.numel() else 0.0

    return _TRAINING_LOGITS.get(model, dataset.train, score)


def _evidence(model: torch.nn.Module, result: UnlearnResult, dataset: RecDataset, removal: Tensor) -> None:
    """Fill ``result``'s update norm, forget loss before/after and status.

    The forget loss is the model's own training loss on the removed rows (``terms.forget_loss``:
    BCE with their labels; BPR in expectation over the negatives, on the label-1 rows). A
    non-empty request answered with the unchanged model is ``unchanged``, unless none of its rows
    is a term of the model's objective (a BPR model and label-0 rows: unchanged IS Retrain's
    answer, ``ok``)."""
    rows = dataset.train.select(removal)
    loss = training_loss(model)
    after = result.model.score_all(rows.users, rows.items).double().cpu()
    training, training_range = _training_logits(model, dataset)
    result.update_norm = _changed_norm(model, result.model, result.changed_rows)
    result.forget_loss_before = forget_loss(model, dataset, removal, loss,
                                            training.index_select(0, removal.cpu()).double())
    result.forget_loss_after = forget_loss(result.model, dataset, removal, loss, after)
    if result.update_norm == 0.0:
        result.status = "unchanged" if objective_rows(loss, dataset, removal).numel() else "ok"
    elif not bool(torch.isfinite(after).all()) or float(after.abs().max()) > 2 * max(training_range, 1.0):
        result.status = "blow-up"


def unlearn(model: torch.nn.Module, dataset: RecDataset, removal: Tensor, config: Any = None, *,
            method: str | None = None, strict: bool = False) -> UnlearnResult:
    """Answer a request to forget the training rows ``removal`` (int64 indices into ``dataset.train``).

    ``config`` (an ``UnlearnConfig``, ``RetrainConfig``, ``FinetuneConfig``,
    ``AltEraserConfig`` or ``ShardedConfig``) and/or ``method`` (a ``METHODS`` name) choose
    the method (``method_for``); default IFRU, or the partitioning method of a sharded
    model. ``model`` is not modified; the result holds a new one. Invalid indices raise
    ValueError (``validate_removal``); an empty request returns an unchanged copy.
    """
    entry = method_for(model, config, method)
    config = entry.config if config is None else config
    start = time.perf_counter()
    removal = validate_removal(dataset, removal)
    if removal.numel() == 0:
        return UnlearnResult(copy_model(model), entry.name, time.perf_counter() - start)
    clock = PhaseClock(model.reference_tensor.device, start)
    result = entry.run(model, dataset, removal, config, clock)
    result.method = entry.name
    result.seconds = time.perf_counter() - start
    result.phases = clock.phases
    result.num_removed = int(removal.numel())
    _evidence(model, result, dataset, removal)
    if strict and result.status != "ok":
        raise ValueError(f"method {entry.name!r} answered {removal.numel()} removed rows with status {result.status!r} "
                         f"(update norm {result.update_norm:.3g}, forget loss {result.forget_loss_before:.4f} → "
                         f"{result.forget_loss_after:.4f})")
    return result
