"""Experiments: the paper's experiment (``runner``), its studies, sweeps over dataset settings,
and the reports (``render``, ``plots``)."""
from .render import json_safe, render_markdown, render_sweep
from .runner import ExperimentSpec, run_experiment
from .studies import STUDIES
from .sweep import SWEEPS, run_sweep, summarize_sweep

__all__ = [
    "STUDIES",
    "SWEEPS",
    "ExperimentSpec",
    "json_safe",
    "render_markdown",
    "render_sweep",
    "run_experiment",
    "run_sweep",
    "summarize_sweep",
]
