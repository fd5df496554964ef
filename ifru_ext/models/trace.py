"""What a model's training run leaves behind for the unlearning estimators.

An early-stopped model is not at a minimum of its loss: where it ended depends on how far
Adam carried it from its initial table. The training-aware estimator of Retrain
(docs/ARCHITECTURE.md §4) needs that run's learning rate and step count, Adam's second
moments at the returned epoch (its per-coordinate step scale) and the initial table (where a
row that loses every interaction stays under Retrain). ``train`` records a ``TrainingTrace``
on the model; checkpoints save and restore it. The trace also says which loss trained the
model ("bce" or "bpr"; ``training_loss``): the estimators are written for one of them and must
refuse the other rather than treat a BPR model as BCE.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = ["UNRECORDED_ESTIMATOR", "LOSSES", "DEFAULT_SNAPSHOTS", "PLATEAU_TOLERANCES", "STOPPING_SETTINGS", "Snapshot",
           "SnapshotRecorder", "TrainingTrace", "training_loss"]

# The training objectives a trace can record (``TrainConfig.loss``); traces written before the
# field existed are "bce", the only loss there was.
LOSSES = ("bce", "bpr")
# The estimator a calibration without ``calibrated_for`` was fitted for: the only one before the
# field existed, the linear training response in its segment-displacement form (no estimator of
# today answers with it, so such a scale is not applied: ``UnlearnConfig.estimator``).
UNRECORDED_ESTIMATOR = "training(corrections=0)"
# The early-stopping settings of a run (``TrainConfig`` fields of these names) and their types: a
# Retrain of the model stops the way its run did.
STOPPING_SETTINGS: dict[str, type] = {"max_epochs": int, "patience": int, "wait_until_decelerating": bool,
                                      "wait_through_plateaus": bool, "plateau_tolerance": str, "scaled_patience": bool}
# How far below the best epoch's validation AUC an epoch may be and still not be a miss, when a run
# waits through plateaus (``TrainConfig.plateau_tolerance``); traces whose ``stopping`` predates the
# setting were trained with the first.
PLATEAU_TOLERANCES = ("paired", "noise")
# The stopping settings added after ``stopping`` was first recorded, and the value of each a trace
# recorded before it was trained with.
_LATER_STOPPING = {"plateau_tolerance": PLATEAU_TOLERANCES[0], "scaled_patience": False}


@dataclass
class TrainingTrace:
    """The training run of a model, as far as the estimators need it.

    lr: Adam's learning rate; steps: optimiser steps up to the returned (best) epoch;
    best_epoch: that epoch; batch_size, rows: batch size and training rows (BPR: the label-1
    rows, one triple each per epoch); seed: the batch-order seed (BPR: also the negatives'
    seed, ``bpr_negatives``); l2: λ of the objective; beta2, eps: Adam's β₂ and ε;
    second_moment: Adam's bias-corrected ``v̂`` [N, d] at the returned epoch;
    initial: the table [N, d] training started from;
    snapshots: earlier points of the run before the returned epoch (``TrainConfig.snapshots`` of
    them at most, ``DEFAULT_SNAPSHOTS`` unless set; fewer in a shorter run), near-equal segments
    apart (``SnapshotRecorder``), each
    ``Snapshot(steps, table, second_moment)`` (tables in bfloat16: the estimator needs their
    shape, not their last digits);
    loss: the training objective, "bce" or "bpr" (``LOSSES``; "bce" for traces that predate it);
    calibration: the training-aware response's scale fitted at training time against one real
    Retrain (``ifru_ext.unlearning.calibrate``); None: not calibrated (and traces that predate it);
    calibrated_for: the estimator it was fitted for (``UnlearnConfig.estimator``; traces that
    predate the field were fitted for the earlier linear response, ``UNRECORDED_ESTIMATOR``, whose
    scale no estimator of today applies);
    validation_tail: the whole-validation AUC at the returned epoch and after each epoch the run
    trained past it before early stopping gave up (its patience), in order — how the Original's
    own run went on from where it was returned (the horizon rule, ``UnlearnConfig.horizon``); one
    value when the run was returned at its last epoch (an epoch cap: a Retrain with the same cap
    cannot train longer either); None: not recorded (traces written before 2026-12-03);
    stopping: how the run stopped (``STOPPING_SETTINGS``: epoch cap, patience, the two rules, the
    plateau tolerance and the scaled patience; a ``stopping`` recorded before those reads ``"paired"``
    and False), so that a Retrain rebuilt from the trace (``unlearning.retrain_config``) stops the same way (a
    fine-tuned model's trace keeps those of the run that trained it from scratch); None: not
    recorded (traces written before 2026-12-04, or of your own runs): a Retrain takes the defaults;
    tail: the epochs the run trained past the returned one before its patience ran out, one
    ``Snapshot`` per epoch in order (the first ``patience`` of them; tables in bfloat16, as
    ``snapshots``): where the run itself went from the returned table, which the trajectory horizon
    (``UnlearnConfig.horizon``) continues the response along; empty when the run was returned at its
    last epoch; None: not recorded (traces written before 2026-12-06).
    """

    lr: float
    steps: int
    best_epoch: int
    batch_size: int
    rows: int
    seed: int
    l2: float
    beta2: float
    eps: float
    second_moment: Tensor
    initial: Tensor
    snapshots: list["Snapshot"] = field(default_factory=list)
    loss: str = "bce"
    calibration: float | None = None
    calibrated_for: str | None = None
    validation_tail: tuple[float, ...] | None = None
    stopping: dict[str, int | bool | str] | None = None
    tail: list["Snapshot"] | None = None

    def to_payload(self) -> dict[str, Any]:
        """Plain data for a checkpoint (tensors on the CPU)."""
        payload = dict(vars(self))
        payload["second_moment"] = self.second_moment.detach().cpu()
        payload["initial"] = self.initial.detach().cpu()
        payload["snapshots"] = [snap.to_payload() for snap in self.snapshots]
        payload["tail"] = None if self.tail is None else [snap.to_payload() for snap in self.tail]
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any], shape: tuple[int, int]) -> "TrainingTrace":
        """Rebuild from ``to_payload``; ValueError when a field is missing or a table is not ``shape``."""
        names = set(cls.__dataclass_fields__) - {"snapshots", "loss", "calibration", "calibrated_for",
                                                       "validation_tail", "stopping", "tail"}
        missing = sorted(names - set(payload))
        if missing:
            raise ValueError(f"training trace lacks {missing}")
        snapshots = [Snapshot.from_payload(snap, shape, "snapshots") for snap in payload.get("snapshots") or []]
        tail = payload.get("tail")  # older traces: not recorded
        if tail is not None:
            if not isinstance(tail, list):
                raise ValueError(f"training trace tail must be a list of snapshots or None, got {type(tail).__name__}")
            tail = [Snapshot.from_payload(snap, shape, "tail") for snap in tail]
        loss = payload.get("loss", "bce")  # older traces: BCE, the only loss then
        if loss not in LOSSES:
            raise ValueError(f"training trace loss must be one of {LOSSES}, got {loss!r}")
        calibration = payload.get("calibration")  # older traces: not calibrated
        if calibration is not None and not (isinstance(calibration, float) and 0 < calibration < math.inf):
            raise ValueError(f"training trace calibration must be a finite float > 0 or None, got {calibration!r}")
        calibrated_for = payload.get("calibrated_for", UNRECORDED_ESTIMATOR if calibration is not None else None)
        if not (calibrated_for is None or isinstance(calibrated_for, str)) or (calibrated_for is None) != (calibration is None):
            raise ValueError(f"training trace calibrated_for must name the estimator of its calibration, got {calibrated_for!r}")
        aucs = payload.get("validation_tail")  # older traces: not recorded
        if aucs is not None:
            if not (isinstance(aucs, (tuple, list)) and aucs and all(isinstance(a, float) and 0 <= a <= 1 for a in aucs)):
                raise ValueError(f"training trace validation_tail must be a non-empty sequence of AUCs in [0, 1], got {aucs!r}")
            aucs = tuple(aucs)
        stopping = payload.get("stopping")  # older traces: not recorded
        if isinstance(stopping, dict):  # recorded before a later setting: how the run was trained
            stopping = {**_LATER_STOPPING, **stopping}
        if stopping is not None and not (
                isinstance(stopping, dict) and set(stopping) == set(STOPPING_SETTINGS)
                and all(type(stopping[name]) is kind for name, kind in STOPPING_SETTINGS.items())
                and stopping["max_epochs"] > 0 and stopping["patience"] > 0
                and stopping["plateau_tolerance"] in PLATEAU_TOLERANCES):
            raise ValueError(f"training trace stopping must give {sorted(STOPPING_SETTINGS)} (positive integers, "
                             f"booleans and one of {', '.join(PLATEAU_TOLERANCES)}), got {stopping!r}")
        trace = cls(**{name: payload[name] for name in names}, snapshots=snapshots, loss=loss,
                    calibration=calibration, calibrated_for=calibrated_for, validation_tail=aucs, stopping=stopping,
                    tail=tail)
        for name in ("second_moment", "initial"):
            table = getattr(trace, name)
            if not isinstance(table, Tensor) or tuple(table.shape) != shape or not bool(torch.isfinite(table).all()):
                raise ValueError(f"training trace {name} must be a finite tensor of shape {shape}")
        if trace.lr <= 0 or trace.steps < 0 or trace.rows <= 0:
            raise ValueError(f"training trace needs lr > 0, steps >= 0 and rows > 0, got {trace.lr}, {trace.steps}, {trace.rows}")
        tail_steps = [trace.steps] + [snap.steps for snap in tail or []]
        if not all(earlier < later for earlier, later in zip(tail_steps, tail_steps[1:])):
            raise ValueError(f"training trace tail must be snapshots after the returned epoch's {trace.steps} "
                             f"steps, in order; got steps {tail_steps[1:]}")
        return trace

    def to(self, device: torch.device | str, dtype: torch.dtype) -> "TrainingTrace":
        return TrainingTrace(**{**vars(self), "second_moment": self.second_moment.to(device, dtype),
                                "initial": self.initial.to(device, dtype),
                                "snapshots": [snap.to(device, dtype) for snap in self.snapshots],
                                "tail": None if self.tail is None else [snap.to(device, dtype) for snap in self.tail]})

    def segments(self) -> list[tuple[int, Tensor | None, Tensor]]:
        """The run cut at every snapshot it holds: ``(steps in the segment, table at its end (None:
        the model's own), Adam's v̂ there)`` in training order; the last segment ends at the
        returned epoch. Without snapshots, one segment of ``steps``."""
        earlier = [snap for snap in self.snapshots if 0 < snap.steps < self.steps]
        points = [(snap.steps, snap.table, snap.second_moment) for snap in earlier]
        points.append((self.steps, None, self.second_moment))
        return _cut(points, 0)

    def returned_later(self, epochs: int, table: Tensor) -> "TrainingTrace":
        """This trace as if the run had been returned ``epochs`` epochs later along its ``tail``
        (1 ≤ epochs ≤ len(tail)); ``table`` [N, d]: the table it did return. The returned epoch and
        the tail's epochs before the new one become snapshots (the segments the trajectory horizon
        walked to get there, ``UnlearnConfig.horizon``), that epoch's steps and second moments the
        returned ones; the tail is empty and the validation tail that epoch's AUC alone, as for a
        run returned at its last epoch: an answer there is Retrain's stopping epoch already (the
        epochs after it scored lower), and the Original's later tables lack the answer's change.
        The trace of an answer returned past the run's epoch, so that a later request walks the run
        to where that answer is."""
        if not self.tail or not 1 <= epochs <= len(self.tail):
            raise ValueError(f"returned_later: epochs must lie in [1, {len(self.tail or [])}] (the recorded tail), "
                             f"got {epochs}")
        returned = Snapshot(self.steps, table.detach().to(torch.bfloat16), self.second_moment.to(torch.bfloat16))
        later = self.tail[epochs - 1]
        aucs = None if self.validation_tail is None else self.validation_tail[epochs:epochs + 1]
        return TrainingTrace(**{**vars(self), "steps": later.steps, "best_epoch": self.best_epoch + epochs,
                                "second_moment": later.second_moment.to(self.second_moment),
                                "snapshots": [*self.snapshots, returned, *self.tail[:epochs - 1]],
                                "validation_tail": aucs or None, "tail": []})

    def tail_segments(self) -> list[tuple[int, Tensor, Tensor]]:
        """The epochs past the returned one (``tail``; none when not recorded), cut as ``segments``:
        ``(steps in the epoch, table at its end, Adam's v̂ there)``, the first starting at the
        returned epoch."""
        return _cut([(snap.steps, snap.table, snap.second_moment) for snap in self.tail or []], self.steps)


def _cut(points: list[tuple[int, Any, Tensor]], start: int) -> list[tuple[int, Any, Tensor]]:
    """``(steps taken, table, v̂)`` points of a run, in order, as segments from step ``start``:
    ``(steps since the previous point, table, v̂)``."""
    out = []
    for steps, table, moment in points:
        out.append((steps - start, table, moment))
        start = steps
    return out


def training_loss(model: Any) -> str:
    """The loss that trained ``model``: its trace's ("bce" | "bpr"), or "bce" for a model without
    a trace (untrained, or loaded from a checkpoint older than traces: BCE was the only loss)."""
    trace = getattr(model, "trace", None)
    return "bce" if trace is None else trace.loss


# Snapshots a trace keeps before the returned epoch unless ``TrainConfig.snapshots`` says otherwise
# (each holds two [N, d] tables), and so segments the training-aware response walks: BookCrossing MF,
# 2% / 8% genuine requests, forget completeness 1.11 / 1.18 with two, 1.15 / 1.22 with four at 5/3
# of the cost, 1.09 / 1.17 with one (the earlier, displacement form of the step, calibrated). A run
# that memorises its rows needs many more (reports/fidelity-segments).
DEFAULT_SNAPSHOTS = 2


@dataclass
class Snapshot:
    """An earlier point of a training run: ``steps`` taken, the ``table`` [N, d] and Adam's
    bias-corrected ``second_moment`` [N, d] then."""

    steps: int
    table: Tensor
    second_moment: Tensor

    def to_payload(self) -> dict[str, Any]:
        return {"steps": self.steps, "table": self.table.cpu(), "second_moment": self.second_moment.cpu()}

    @classmethod
    def from_payload(cls, payload: Any, shape: tuple[int, int], field_name: str) -> "Snapshot":
        """From ``to_payload``; ValueError naming the trace's ``field_name`` unless it holds steps
        and two tables of ``shape``."""
        if not (isinstance(payload, dict) and isinstance(payload.get("steps"), int)
                and all(isinstance(payload.get(k), Tensor) and tuple(payload[k].shape) == shape
                        for k in ("table", "second_moment"))):
            raise ValueError(f"training trace {field_name} must hold steps and two tables of shape {shape}")
        return cls(payload["steps"], payload["table"], payload["second_moment"])

    def to(self, device: torch.device | str, dtype: torch.dtype) -> "Snapshot":
        return Snapshot(self.steps, self.table.to(device, dtype), self.second_moment.to(device, dtype))


class SnapshotRecorder:
    """Keeps epoch-end snapshots of a run in bounded memory and picks ``limit`` of them that cut the
    run into near-equal segments.

    Every ``stride``-th epoch is recorded; when more than ``HELD_PER_PICK·limit`` are held, every
    other one is dropped and the stride doubles. ``before(steps)`` returns, of those taken before
    ``steps``, the ones nearest to the interior points ``(i + 1)/(limit + 1)`` of ``steps`` (all of
    them when there are no more than ``limit``). Picking the first and the last held one instead
    (what this did before 2026-12-05) left a long run's last segment a few epochs long and its
    middle one most of the run (epochs 32 and 128 of a 130-epoch run).
    """

    # Held snapshots per pick. With 2 (the earlier recorder's) a 130-epoch run holds epochs 32, 64, 96
    # and 128, and its points 43 and 87 get 32 and 96; with 4 it holds every 16th and they get 48 and
    # 80. Training holds twice the memory for it (each snapshot two [N, d] bfloat16 tables).
    HELD_PER_PICK = 4

    def __init__(self, limit: int = DEFAULT_SNAPSHOTS) -> None:
        self.limit, self.stride, self.held = limit, 1, []  # held: (epoch, Snapshot)

    def record(self, epoch: int, steps: int, table: Tensor, second_moment: Tensor) -> None:
        if epoch % self.stride or self.limit == 0:
            return
        self.held.append((epoch, Snapshot(steps, table.detach().to(torch.bfloat16),
                                          second_moment.detach().to(torch.bfloat16))))
        if len(self.held) > self.HELD_PER_PICK * self.limit:
            self.stride *= 2
            self.held = [(e, snap) for e, snap in self.held if e % self.stride == 0]

    def before(self, steps: int) -> list[Snapshot]:
        earlier = [snap for _, snap in self.held if snap.steps < steps]
        if len(earlier) <= self.limit:
            return earlier
        picked: set[int] = set()
        for point in range(1, self.limit + 1):  # each interior point takes the nearest snapshot not yet taken
            target = point * steps / (self.limit + 1)
            picked.add(min((i for i in range(len(earlier)) if i not in picked),
                           key=lambda i: abs(earlier[i].steps - target)))
        return [earlier[i] for i in sorted(picked)]
