"""Training: the paper's protocol (``train``), BPR's reproducible triples (``bpr``) and the one
early-stopping rule it and the baselines share (``early_stopping``)."""
from .bpr import BPR_ROUNDS, NegativeSampler, bpr_loss, bpr_negatives, bpr_rows
from .early_stopping import EarlyStopping, snapshot
from .train import (LOSSES, PLATEAU_TOLERANCES, SCHEDULE_MODELS, SCHEDULES, EpochLog, TrainConfig, TrainResult,
                    check_validation, model_arguments, shuffled_batches, train, train_new)

__all__ = [
    "BPR_ROUNDS",
    "LOSSES",
    "PLATEAU_TOLERANCES",
    "SCHEDULES",
    "SCHEDULE_MODELS",
    "EarlyStopping",
    "EpochLog",
    "NegativeSampler",
    "TrainConfig",
    "TrainResult",
    "bpr_loss",
    "bpr_negatives",
    "bpr_rows",
    "check_validation",
    "model_arguments",
    "shuffled_batches",
    "snapshot",
    "train",
    "train_new",
]
