"""What a model's training run leaves behind for the unlearning estimators.

An early-stopped model is not at a minimum of its loss: where it ended depends on how far
Adam carried it from its initial table. The training-aware estimator of Retrain
(docs/ARCHITECTURE.md §4) needs that run's learning rate and step count, Adam's second
moments at the returned epoch (its per-coordinate step scale) and the initial table (where a
row that loses every interaction stays under Retrain). ``train`` records a ``TrainingTrace``
on the model; checkpoints save and restore it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["TrainingTrace"]


@dataclass
class TrainingTrace:
    """The training run of a model, as far as the estimators need it.

    lr: Adam's learning rate; steps: optimiser steps up to the returned (best) epoch;
    best_epoch: that epoch; batch_size, rows: batch size and training rows; seed: the
    batch-order seed; l2: λ of the objective; beta2, eps: Adam's β₂ and ε;
    second_moment: Adam's bias-corrected ``v̂`` [N, d] at the returned epoch;
    initial: the table [N, d] training started from.
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

    def to_payload(self) -> dict[str, Any]:
        """Plain data for a checkpoint (tensors on the CPU)."""
        payload = dict(vars(self))
        payload["second_moment"] = self.second_moment.detach().cpu()
        payload["initial"] = self.initial.detach().cpu()
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any], shape: tuple[int, int]) -> "TrainingTrace":
        """Rebuild from ``to_payload``; ValueError when a field is missing or a table is not ``shape``."""
        names = set(cls.__dataclass_fields__)
        missing = sorted(names - set(payload))
        if missing:
            raise ValueError(f"training trace lacks {missing}")
        trace = cls(**{name: payload[name] for name in names})
        for name in ("second_moment", "initial"):
            table = getattr(trace, name)
            if not isinstance(table, Tensor) or tuple(table.shape) != shape or not bool(torch.isfinite(table).all()):
                raise ValueError(f"training trace {name} must be a finite tensor of shape {shape}")
        if trace.lr <= 0 or trace.steps < 0 or trace.rows <= 0:
            raise ValueError(f"training trace needs lr > 0, steps >= 0 and rows > 0, got {trace.lr}, {trace.steps}, {trace.rows}")
        return trace

    def to(self, device: torch.device | str, dtype: torch.dtype) -> "TrainingTrace":
        return TrainingTrace(**{**vars(self), "second_moment": self.second_moment.to(device, dtype),
                                "initial": self.initial.to(device, dtype)})
