"""Figures of the studies and sweeps (matplotlib, imported lazily so the package works without it)."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..metrics import METRICS

__all__ = ["plot_bars", "plot_pruning", "plot_sweep", "plot_timing"]


@contextmanager
def _figure(path: Path, columns: int = 1, size: tuple[float, float] = (6, 3.5)) -> Iterator[list]:
    """Axes of a new figure (Agg backend) saved to ``path`` when the block ends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, columns, figsize=size, squeeze=False)
    try:
        yield list(axes[0])
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)


def plot_pruning(rows: list[dict[str, Any]], path: Path) -> None:
    """Fig. 7: test AUC_0 (line) and seconds (bars) per pruning ratio pair."""
    labels = [f"({r['a0']:.1f},{r['a1']:.1f})" for r in rows]
    with _figure(path, size=(8, 3.5)) as (left,):
        left.plot(labels, [r["auc_0"] for r in rows], "o-", color="tab:blue")
        left.set_ylabel("test AUC_0", color="tab:blue")
        left.set_xlabel("pruning ratios (a_0, a_1)")
        right = left.twinx()
        right.bar(labels, [r["seconds"] for r in rows], alpha=0.3, color="tab:orange")
        right.set_ylabel("seconds per request", color="tab:orange")
        left.tick_params(axis="x", rotation=45)


def plot_timing(rows: list[dict[str, Any]], retrain_seconds: float, path: Path) -> None:
    """Table 3 as a figure: seconds of an IFRU request vs removal ratio, Retrain as a line."""
    with _figure(path) as (axis,):
        axis.plot([r["fraction"] * 100 for r in rows], [r["seconds"] for r in rows], "o-", label="IFRU request")
        axis.axhline(retrain_seconds, color="gray", linestyle="--", label="Retrain (default ratio)")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("removed share of the training set (%)")
        axis.set_ylabel("seconds")
        axis.legend()


def plot_bars(groups: dict[str, dict[str, float]], path: Path, title: str) -> None:
    """Test AUC_0/1/2 side by side for each named model (Fig. 4 harmlessness, Fig. 6 spillover)."""
    with _figure(path, columns=len(METRICS), size=(10, 3.2)) as axes:
        for axis, metric in zip(axes, METRICS):
            values = [aucs[metric] for aucs in groups.values()]
            axis.bar(list(groups), values, color=[f"C{i}" for i in range(len(groups))])
            spread = max(values) - min(values)
            axis.set_ylim(min(values) - max(spread, 0.002), max(values) + max(spread, 0.002) * 0.5)
            axis.set_title(f"{title}: test {metric.upper()}", fontsize=9)
            axis.tick_params(axis="x", rotation=30, labelsize=8)


def plot_sweep(summary: dict[str, Any], path: Path) -> None:
    """Fig. 5: each method's test AUC_0/1/2 against the swept value (removal ratio or attack seed)."""
    values = summary["values"]
    as_percent = summary["key"] == "attack_fraction"
    xs = [v * 100 for v in values] if as_percent else values
    with _figure(path, columns=len(METRICS), size=(12, 3.5)) as axes:
        for axis, metric in zip(axes, METRICS):
            for name, series in summary["methods"].items():
                axis.plot(xs, series[metric], "o-", label=name)
            axis.set_xlabel("removed share of the training set (%)" if as_percent else summary["key"])
            axis.set_title(f"test {metric.upper()}")
        axes[0].legend(fontsize=8)
