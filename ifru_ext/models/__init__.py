"""Models: the backbones over one stacked table (``recommender``) and their checkpoints."""
from .checkpoint import Checkpoint, load_checkpoint, read_checkpoint, save_checkpoint
from .recommender import DEFAULTS, MF, GraphModel, LightGCN, Recommender, build_model

__all__ = [
    "DEFAULTS",
    "MF",
    "Checkpoint",
    "GraphModel",
    "LightGCN",
    "Recommender",
    "build_model",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]
