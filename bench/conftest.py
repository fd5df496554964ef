"""Shared fixtures: the real BookCrossing training graph (5-core, > 5, 2% attack) as the paper uses it."""
from __future__ import annotations

import pytest
import torch

from ifru_ext.data import RecDataset, load_dataset


def pytest_configure(config):
    torch.manual_seed(0)
    config.addinivalue_line("markers", "scaling: synthetic power-law scaling suite (1e5 to 1e7 interactions, ~15 min)")


@pytest.fixture(scope="session")
def bookcrossing() -> RecDataset:
    return load_dataset("bookcrossing", attack_fraction=0.02)


