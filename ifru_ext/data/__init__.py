"""Data: ratings files → the paper's protocol → ``RecDataset``; deletion-request validation.

``readers`` parses files, ``protocol`` runs k-core / binarise / split / attack and finds
the bundled data, ``dataset`` holds the containers, ``requests`` validates requests.
"""
from .dataset import Interactions, NodeIncidence, RecDataset
from .protocol import (PAPER_ATTACK_FRACTIONS, PRESETS, Preset, attack_indices, binarize, build_dataset, data_dir, kcore, load_dataset,
                       split_indices)
from .readers import read_bookcrossing, read_ratings
from .requests import read_request, rows_of_raw_pairs, validate_removal

__all__ = [
    "PAPER_ATTACK_FRACTIONS",
    "PRESETS",
    "Interactions",
    "NodeIncidence",
    "Preset",
    "RecDataset",
    "attack_indices",
    "binarize",
    "build_dataset",
    "data_dir",
    "kcore",
    "load_dataset",
    "read_bookcrossing",
    "read_request",
    "rows_of_raw_pairs",
    "read_ratings",
    "split_indices",
    "validate_removal",
]
