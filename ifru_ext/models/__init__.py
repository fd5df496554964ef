"""Models: the backbones over one stacked table (``recommender``), their checkpoints and the
deletion ledger a checkpoint carries (``ledger``)."""
from .checkpoint import Checkpoint, load_checkpoint, read_checkpoint, save_checkpoint
from .ledger import Ledger, LedgerEntry
from .recommender import DEFAULTS, MF, GraphModel, LightGCN, Recommender, build_model, copy_model

__all__ = [
    "DEFAULTS",
    "MF",
    "Checkpoint",
    "GraphModel",
    "Ledger",
    "LedgerEntry",
    "LightGCN",
    "Recommender",
    "build_model",
    "copy_model",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]
