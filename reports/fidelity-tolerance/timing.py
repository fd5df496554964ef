"""Whole-request medians of one checkout of the package, for interleaved A/B runs of two commits.

    python reports/fidelity-tolerance/timing.py REPO LABEL      # REPO: a checkout with its extension built

Trains (once, cached as runs/request-timing/<model>.pt, with the package on the path) the MF Original
to convergence and a LightGCN one capped at 15 epochs, as bench/test_bench_requests.py does, then
answers BookCrossing requests of genuine rows (one user's 10 rows, a seeded 0.1 / 2 / 8% of the rows;
LightGCN 1%) with the default ``unlearn``, two warm-ups and then the median of several, on 2 threads,
printing each request's median, minimum, CG products and phases. Run it alternately for the two
checkouts on a quiet machine.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, sys.argv[1])

import torch  # noqa: E402

from ifru_ext.data import load_dataset  # noqa: E402
from ifru_ext.training import TrainConfig, train_new  # noqa: E402
from ifru_ext.unlearning import unlearn  # noqa: E402

CACHE = Path("runs/request-timing")
REQUESTS = (("mf", "user", 0.0, 25), ("mf", "0.1%", 0.001, 9), ("mf", "2%", 0.02, 7), ("mf", "8%", 0.08, 5),
            ("lightgcn", "1%", 0.01, 5))


def original(name: str, dataset):
    path = CACHE / f"{name}.pt"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        model, _ = train_new(name, dataset, TrainConfig.for_model(name, max_epochs=15 if name == "lightgcn" else None))
        torch.save(model, path)
    return torch.load(path, weights_only=False)


def request_rows(dataset, share: float) -> torch.Tensor:
    if share == 0:
        user = int((torch.bincount(dataset.train.users) == 10).nonzero()[0])
        return (dataset.train.users == user).nonzero().squeeze(1)
    generator = torch.Generator().manual_seed(0)
    return torch.randperm(len(dataset.train), generator=generator)[: round(share * len(dataset.train))]


def main() -> None:
    torch.set_num_threads(2)
    dataset = load_dataset("bookcrossing")
    for name, label, share, rounds in REQUESTS:
        model, rows = original(name, dataset), request_rows(dataset, share)
        for _ in range(2):
            unlearn(model, dataset, rows)
        seconds, phases = [], {}
        for _ in range(rounds):
            start = time.perf_counter()
            result = unlearn(model, dataset, rows)
            seconds.append(time.perf_counter() - start)
            for phase, value in result.phases.items():
                phases.setdefault(phase, []).append(value)
        median = sorted(seconds)[rounds // 2] * 1e3
        by_phase = " ".join(f"{phase} {sorted(values)[rounds // 2] * 1e3:.1f}" for phase, values in phases.items())
        print(f"{sys.argv[2]:6s} {name:8s} {label:5s} median {median:7.1f} ms min {min(seconds) * 1e3:7.1f} "
              f"products {result.solve.iterations:3d} | {by_phase}", flush=True)


if __name__ == "__main__":
    main()
