"""`ifru-unanchored` next to Newton corrections, uncalibrated, on a poisoned-row cell's cached models.

Usage (from the repository root, after the cell's `ifru fidelity` run cached its models in OUT):
    python reports/fidelity-unanchored/nonlinear.py OUT FRACTION SOURCE {amazon|movielens|preset} SPEC...

Answers the cell's request (seed 1's flipped rows) with `UnlearnConfig(corrections=k, calibrated=False)`
and prints the forget completeness over every removed row, over the rows of users the request leaves
with one label (they had both), and over the rest. A SPEC `k` runs k corrections with and without
`unanchored_flow`; `kxS` runs k corrections without it on every segment of the trace cut into S equal
sub-segments (the same table and second moments, 1/S of the steps each): with k large enough for
each sub-segment's equation to converge, S = 1 is that equation's own answer (implicit in the true
gradient), and growing S follows the segment's nonlinear path in time instead of one implicit step.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from ifru_ext.data import load_dataset
from ifru_ext.models import load_checkpoint
from ifru_ext.models.trace import TrainingTrace
from ifru_ext.unlearning import UnlearnConfig, unlearn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fidelity-poison-tail"))
from anatomy import FILES, logits  # noqa: E402  (the reader options of the cells' files)

bce = torch.nn.functional.binary_cross_entropy_with_logits
whole_segments = TrainingTrace.segments


def cut_segments(parts: int):
    """TrainingTrace.segments with each segment cut into ``parts`` of equal length, read at its end."""
    return lambda trace: [(steps / parts, table, moment) for steps, table, moment in whole_segments(trace)
                          for _ in range(parts)]


def main(out: str, fraction: str, source: str, kind: str, *specs: str) -> None:
    dataset = load_dataset(source, attack_fraction=float(fraction), attack_seed=1, **FILES[kind])
    removal, train = dataset.removal, dataset.train
    original = load_checkpoint(f"{out}/original-poison-{fraction}-1.pt", dataset).model
    retrain = load_checkpoint(f"{out}/retrain-poison-{fraction}-1.pt", dataset).model
    kept = torch.ones(len(train), dtype=torch.bool)
    kept[removal] = False
    after = [torch.bincount(train.users[kept & (train.labels == label)], minlength=dataset.num_users) for label in (0, 1)]
    before = [torch.bincount(train.users[train.labels == label], minlength=dataset.num_users) for label in (0, 1)]
    unanchored = ((after[0] == 0) ^ (after[1] == 0)) & (before[0] > 0) & (before[1] > 0)
    rows = train.select(removal)
    group, labels = unanchored[rows.users], rows.labels.double()
    loss_o, loss_r = (bce(logits(model, rows), labels, reduction="none") for model in (original, retrain))
    print(f"{removal.numel()} removed rows, {int(group.sum())} of them of users the request leaves with one label")
    for spec in specs:
        k, _, parts = spec.partition("x")
        k, parts = int(k), int(parts or 1)
        TrainingTrace.segments = cut_segments(parts) if parts > 1 else whole_segments
        for flow in (False,) if "x" in spec else (False, True):
            result = unlearn(original, dataset, removal, UnlearnConfig(corrections=k, calibrated=False, unanchored_flow=flow))
            loss = bce(logits(result.model, rows), labels, reduction="none")

            def completeness(rows_of: torch.Tensor) -> float:
                return float((loss[rows_of].mean() - loss_o[rows_of].mean()) / (loss_r[rows_of].mean() - loss_o[rows_of].mean()))

            cut = f", segments cut in {parts}" if "x" in spec else ""
            print(f"corrections {k}{cut}, unanchored_flow {flow}: forget completeness {completeness(torch.ones_like(group)):.2f}; "
                  f"those users' rows {completeness(group):.2f}, the rest {completeness(~group):.2f}; "
                  f"{result.solve.iterations} CG iterations")


if __name__ == "__main__":
    main(*sys.argv[1:])
