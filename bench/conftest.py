"""Shared fixtures: the real BookCrossing training graph (5-core, > 5, 2% attack) as the paper uses it,
and the smoke run's epoch caps."""
from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ifru_ext.data import RecDataset, load_dataset
from ifru_ext.training import TrainConfig

# Under --benchmark-disable (CI's smoke run: each benchmark body runs once and no ratio is read) the
# trainings that only set a baseline's scale, Retrain's, stop after this many epochs: they took
# ~110 of the smoke's ~400 s on two cores.
SMOKE_EPOCHS = 1
# ... and the Originals the requests answer after this many: enough for a trace with two snapshots
# before the returned epoch, so a request still walks the response's three segments.
SMOKE_ORIGINAL_EPOCHS = 3


# Process settings that move memory-bound timings by more than the changes measured here (README,
# "Performance"): PyTorch's request for 2 MB pages and glibc's mmap / trim thresholds.
MEMORY_SETTINGS = ("THP_MEM_ALLOC_ENABLE", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
TRANSPARENT_HUGEPAGE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record the memory settings of the run in its JSON (``bench/report.py`` prints them): the
    ones of ``MEMORY_SETTINGS`` that are set, and the kernel's transparent-huge-page mode."""
    settings = {name: os.environ[name] for name in MEMORY_SETTINGS if name in os.environ}
    if TRANSPARENT_HUGEPAGE.exists():
        mode = re.search(r"\[(\w+)\]", TRANSPARENT_HUGEPAGE.read_text())
        if mode:
            settings["transparent_hugepage"] = mode.group(1)
    machine_info["memory_settings"] = settings


def pytest_configure(config):
    torch.manual_seed(0)
    config.addinivalue_line("markers", "scaling: synthetic power-law scaling suite (1e5 to 1e7 interactions, ~15 min)")


@pytest.fixture(scope="session")
def bookcrossing() -> RecDataset:
    return load_dataset("bookcrossing", attack_fraction=0.02)


def _capped_in_smoke(request, epochs: int):
    """``TrainConfig -> TrainConfig``: unchanged, or capped at ``epochs`` in the smoke run."""
    smoke = bool(request.config.getoption("benchmark_disable"))

    def config_for(config: TrainConfig) -> TrainConfig:
        return replace(config, max_epochs=min(config.max_epochs, epochs)) if smoke else config

    return config_for


@pytest.fixture(scope="session")
def baseline_training(request):
    """``TrainConfig -> TrainConfig`` for a training that is a timed baseline (Retrain): unchanged,
    or capped at ``SMOKE_EPOCHS`` in the smoke run."""
    return _capped_in_smoke(request, SMOKE_EPOCHS)


@pytest.fixture(scope="session")
def original_training(request):
    """``TrainConfig -> TrainConfig`` for an Original that requests answer: unchanged, or capped at
    ``SMOKE_ORIGINAL_EPOCHS`` in the smoke run."""
    return _capped_in_smoke(request, SMOKE_ORIGINAL_EPOCHS)
