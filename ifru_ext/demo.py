"""A tour of the ops on the real BookCrossing training graph (5-core, 2% attack).

Runs each op next to its plain-PyTorch counterpart, checks they agree, and prints
times. `python -m ifru_ext demo` (or `make run`).
"""
from __future__ import annotations

import time
from typing import Callable

import torch

from . import ops
from .data import load_dataset
from .plain import autograd_hvp
from .unlearning.influence import removal_seed_counts


def _timed(fn: Callable[[], torch.Tensor], repeats: int = 3) -> tuple[torch.Tensor, float]:
    """Result and best wall time over ``repeats`` runs."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def main() -> None:
    dataset = load_dataset("bookcrossing", attack_fraction=0.02)
    stats = dataset.stats()
    print(f"BookCrossing: {stats['rows_kcore']:,} rows after 5-core, train {stats['train']:,} "
          f"({stats['users']:,} users, {stats['items']:,} items), removal set {stats['removed']:,}")
    train = dataset.train
    users, items, labels = train.users, train.items + dataset.num_users, train.labels
    graph = dataset.graph()
    coo = graph.to_sparse_coo()
    gen = torch.Generator().manual_seed(0)
    rows = []

    x = torch.randn(graph.num_nodes, 32, generator=gen)
    ours, t_ours = _timed(lambda: ops.propagate(x, graph, 1))
    ref, t_ref = _timed(lambda: (x + torch.sparse.mm(coo, x)) / 2)
    rows.append(("propagate (K=1, d=32)", "torch.sparse.mm", t_ours, t_ref, float((ours - ref).abs().max())))

    for name, d, lgcn in (("hvp MF (d=48)", 48, False), ("hvp LightGCN (K=1, d=32)", 32, True)):
        emb = torch.randn(graph.num_nodes, d, generator=gen) * 0.1
        v = torch.randn(graph.num_nodes, d, generator=gen)
        g = graph if lgcn else None
        ours, t_ours = _timed(lambda: ops.hvp(emb, v, users, items, labels, g, int(lgcn)))
        ref, t_ref = _timed(lambda: autograd_hvp(emb, v, users, items, labels, coo if lgcn else None, int(lgcn)))
        rows.append((name, "autograd double-backward", t_ours, t_ref, float((ours - ref).norm() / ref.norm())))

    adjacency = dataset.interaction_graph()
    seeds = removal_seed_counts(dataset, dataset.removal)
    (_, keep), t_imp = _timed(lambda: ops.importance(adjacency, seeds, (1.0, 0.6)))

    print(f"\n{'op':<28} {'baseline':<26} {'ours':>9} {'baseline':>10} {'speed-up':>9} {'diff':>9}")
    for name, baseline, t_ours, t_ref, diff in rows:
        print(f"{name:<28} {baseline:<26} {t_ours * 1e3:>7.1f}ms {t_ref * 1e3:>8.1f}ms {t_ref / t_ours:>8.1f}× {diff:>9.1e}")
    print(f"{'importance (1.0, 0.6)':<28} {'-':<26} {t_imp * 1e3:>7.1f}ms   keeps {int(keep.sum()):,} of "
          f"{graph.num_nodes:,} rows")


if __name__ == "__main__":
    main()
