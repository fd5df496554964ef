"""Training: the paper's protocol (``train``) and the one early-stopping rule it and the
baselines share (``early_stopping``)."""
from .early_stopping import EarlyStopping, snapshot
from .train import SCHEDULES, EpochLog, TrainConfig, TrainResult, check_validation, shuffled_batches, train, train_new

__all__ = [
    "SCHEDULES",
    "EarlyStopping",
    "EpochLog",
    "TrainConfig",
    "TrainResult",
    "check_validation",
    "shuffled_batches",
    "snapshot",
    "train",
    "train_new",
]
