"""Unlearning methods behind one registry (``registry.METHODS``) and one call, ``unlearn``.

Families, one module each: ``influence`` (IFRU, SCIF), ``retrain``, ``finetune``,
``alteraser``, ``sharded`` (SISA, RecEraser), ``calibration`` (the training response's scale,
fitted once per model against one Retrain); ``base`` holds what they share (result, solve
report, phase clock), ``solvers`` and ``curvature`` the numerical pieces, ``objective`` the
remaining-data objective of the warm-start methods, ``terms`` the loss terms (BCE, BPR) the
training response reads, ``own_model`` the protocol for your own model (``TableModel``,
``adam_trace``).
"""
from .alteraser import AltEraserConfig
from .base import PhaseClock, SolveReport, UnlearnResult
from .calibration import CALIBRATION_FRACTION, Calibration, calibrate
from .finetune import FinetuneConfig
from .influence import UnlearnConfig
from .own_model import TableModel, adam_trace
from .registry import CALIBRATABLE, METHODS, Method, configure, method_for, unlearn
from .retrain import RetrainConfig
from .sharded import ShardedConfig, ShardedRecommender, load_sharded, save_sharded, train_sharded

__all__ = [
    "CALIBRATION_FRACTION",
    "CALIBRATABLE",
    "METHODS",
    "AltEraserConfig",
    "Calibration",
    "FinetuneConfig",
    "Method",
    "PhaseClock",
    "RetrainConfig",
    "ShardedConfig",
    "ShardedRecommender",
    "SolveReport",
    "TableModel",
    "UnlearnConfig",
    "UnlearnResult",
    "adam_trace",
    "calibrate",
    "configure",
    "load_sharded",
    "method_for",
    "save_sharded",
    "train_sharded",
    "unlearn",
]
