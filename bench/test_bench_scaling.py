"""How cost grows with size: each op against its plain-PyTorch baseline on synthetic
power-law graphs of 1e5, 1e6 and 1e7 interactions (`bench/synthetic.py`).

Groups are named ``scaling: <op>`` and hold both implementations at every size
(``extra_info["interactions"]``); `bench/report.py` renders them as a table and a log-log plot.
Correctness is asserted once per op and size before either side is timed. With
``--benchmark-disable`` (the CI smoke) only the smallest size runs.
"""
from __future__ import annotations

import math
import os
import resource
from functools import cached_property
from pathlib import Path

import numpy as np
import pytest
import torch

import ifru_ext
from ifru_ext.graph import interaction_graph, lightgcn_graph
from ifru_ext.plain import autograd_hvp, sparse_mean_propagation
from synthetic import power_law_interactions
from test_bench_ops import DEVICE, embeddings, scipy_importance, sync

pytestmark = pytest.mark.scaling

SIZES = [100_000, 1_000_000, 10_000_000]
SMOKE_SIZE = SIZES[0]
# (rounds, warmup rounds) per size: the autograd baseline takes ~100 s a call at 1e7 on 2 cores.
ROUNDS = {100_000: (10, 1), 1_000_000: (5, 1), 10_000_000: (3, 0)}

HVP_CASES = {"MF": (48, 0), "LightGCN": (32, 1)}  # model: (d, num_layers), the paper defaults
IMPORTANCE_RATIOS = (1.0, 0.6)
REMOVAL_FRACTION = 0.02

# The double-backward HVP holds about seven float32 [n, d] tensors at once (gathered rows,
# their products and the saved grads; measured 27–29 bytes per interaction per column at 1e6
# and 1e7); 32 bytes leaves a margin. Full-size baseline runs are capped at 16 GiB so the
# 24 GiB machine keeps headroom; the correctness reference is chunked to 4 GiB instead.
AUTOGRAD_BYTES_PER_ENTRY = 32
AUTOGRAD_BUDGET = 16 * 2**30
REFERENCE_CHUNK_BUDGET = 4 * 2**30
HEADROOM = 2 * 2**30


def autograd_bytes(num_interactions: int, d: int) -> int:
    return AUTOGRAD_BYTES_PER_ENTRY * num_interactions * d


def available_bytes() -> int:
    """Memory free for this process now: GPU memory on CUDA, else Linux MemAvailable."""
    if DEVICE.type == "cuda":
        return torch.cuda.mem_get_info()[0]
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        return AUTOGRAD_BUDGET + HEADROOM
    line = next(line for line in meminfo.read_text().splitlines() if line.startswith("MemAvailable:"))
    return int(line.split()[1]) * 1024


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def chunked_autograd_hvp(emb, v, users, items, labels, adjacency, num_layers, num_chunks: int):
    """``autograd_hvp`` over interaction chunks, weighted by chunk size: the same ``H v`` (the
    loss is a mean over interactions and ``P`` does not depend on them) in 1/num_chunks the memory."""
    n = users.numel()
    bounds = [n * k // num_chunks for k in range(num_chunks + 1)]
    total = torch.zeros_like(emb)
    for start, stop in zip(bounds[:-1], bounds[1:]):
        chunk = slice(start, stop)
        total += autograd_hvp(emb, v, users[chunk], items[chunk], labels[chunk], adjacency, num_layers) * ((stop - start) / n)
    return total


class ScalingProblem:
    """One synthetic graph on DEVICE; the baselines' views of it are built on first use."""

    def __init__(self, num_interactions: int):
        data = power_law_interactions(num_interactions)
        self.num_interactions = num_interactions
        self.data = data
        self.users = data.users.to(DEVICE)  # int64 [n] user rows
        self.items = (data.items + data.num_users).to(DEVICE)  # int64 [n] item rows of the stacked table
        self.labels = data.labels.to(DEVICE)  # float32 [n]
        self.graph = lightgcn_graph(data.users, data.items, data.labels, data.num_users, data.num_items).to(DEVICE)
        self.checked: set[str] = set()  # ops already asserted correct at this size

    @cached_property
    def coo(self) -> torch.Tensor:
        return self.graph.to_sparse_coo()

    @cached_property
    def csr(self) -> torch.Tensor:
        return self.coo.to_sparse_csr()

    @cached_property
    def adjacency(self):
        """All interactions as a 0/1 graph (CPU), the ``importance`` input."""
        data = self.data
        return interaction_graph(data.users, data.items, data.num_users, data.num_items)

    @cached_property
    def seed_counts(self) -> torch.Tensor:
        """Removed interactions per node for a random 2% removal, float64 [N] (CPU)."""
        data = self.data
        generator = torch.Generator().manual_seed(1)
        removed = torch.randperm(self.num_interactions, generator=generator)
        removed = removed[: int(REMOVAL_FRACTION * self.num_interactions)]
        nodes = torch.cat([data.users[removed], data.items[removed] + data.num_users])
        return torch.bincount(nodes, minlength=data.num_nodes).to(torch.float64)


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"{n:.0e}".replace("+0", ""))
def scaling_problem(request) -> ScalingProblem:
    if request.param > SMOKE_SIZE and request.config.getoption("benchmark_disable"):
        pytest.skip(f"smoke run (--benchmark-disable) covers only {SMOKE_SIZE} interactions")
    return ScalingProblem(request.param)


def timed(benchmark, problem: ScalingProblem, group: str, impl: str, baseline: bool, run, **details) -> None:
    rounds, warmup_rounds = ROUNDS[problem.num_interactions]
    benchmark.group = f"scaling: {group}"
    benchmark.extra_info.update(impl=impl, baseline=baseline, interactions=problem.num_interactions, **details)
    benchmark.pedantic(run, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)
    # The machine may be shared: the load next to the timing tells how much to trust it.
    benchmark.extra_info.update(peak_rss_gib=round(peak_rss_gib(), 2), load_average=round(os.getloadavg()[0], 2))


# ------------------------------------------------------------------ propagate
@pytest.mark.parametrize("impl", ["ifru", "sparse.mm-csr"])
def test_propagate_scaling(benchmark, scaling_problem, impl):
    problem, d, num_layers = scaling_problem, 32, 1
    x, _ = embeddings(problem.graph.num_nodes, d)
    csr = problem.csr

    def run():
        if impl == "ifru":
            return sync(ifru_ext.propagate(x, problem.graph, num_layers))
        return sync(sparse_mean_propagation(csr, x, num_layers))

    if "propagate" not in problem.checked:
        torch.testing.assert_close(ifru_ext.propagate(x, problem.graph, num_layers),
                                   sparse_mean_propagation(csr, x, num_layers), rtol=1e-4, atol=1e-6)
        problem.checked.add("propagate")
    timed(benchmark, problem, f"propagate K={num_layers} d={d}", impl, impl == "sparse.mm-csr", run,
          nnz=problem.graph.nnz, d=d)


# ------------------------------------------------------------------ hvp
# ifru: the stateless op (its plan built on every call); ifru-planned: the prepared HVP a request's
# solve calls (``ifru_ext.plan_hvp`` once per problem, outside the timing; ``plan(v)`` timed).
@pytest.mark.parametrize("impl", ["ifru", "ifru-planned", "autograd"])
@pytest.mark.parametrize("model", list(HVP_CASES))
def test_hvp_scaling(benchmark, scaling_problem, model, impl):
    problem = scaling_problem
    d, num_layers = HVP_CASES[model]
    needed = autograd_bytes(problem.num_interactions, d)
    if impl == "autograd" and needed > min(AUTOGRAD_BUDGET, available_bytes() - HEADROOM):
        pytest.skip(f"autograd HVP needs ~{needed / 2**30:.1f} GiB at {problem.num_interactions} interactions: "
                    f"over the {AUTOGRAD_BUDGET / 2**30:.0f} GiB budget or the memory free now")
    emb, v = embeddings(problem.graph.num_nodes, d)
    graph, adjacency = (problem.graph, problem.coo) if num_layers else (None, None)
    args = (emb, v, problem.users, problem.items, problem.labels)

    plan = ifru_ext.plan_hvp(emb, problem.users, problem.items, problem.labels, graph, num_layers) \
        if impl == "ifru-planned" else None

    def run():
        if impl == "ifru":
            return sync(ifru_ext.hvp(*args, graph, num_layers))
        if impl == "ifru-planned":
            return sync(plan(v))
        return sync(autograd_hvp(*args, adjacency, num_layers))

    if model not in problem.checked:
        ours = ifru_ext.hvp(*args, graph, num_layers)
        reference = chunked_autograd_hvp(*args, adjacency, num_layers, math.ceil(needed / REFERENCE_CHUNK_BUDGET))
        # float32 on both sides with different summation orders: compare on the result's scale.
        torch.testing.assert_close(ours, reference, rtol=1e-3, atol=1e-4 * float(reference.abs().max()))
        problem.checked.add(model)
    if plan is not None:  # the prepared product is the stateless op's plan and kernel: the same bits
        assert torch.equal(plan(v), ifru_ext.hvp(*args, graph, num_layers))
    graph_details = {"nnz": graph.nnz} if graph is not None else {}  # MF uses no graph
    timed(benchmark, problem, f"hvp {model} d={d}", impl, impl == "autograd", run, d=d, **graph_details)


# ------------------------------------------------------------------ importance
@pytest.mark.parametrize("impl", ["ifru", "scipy"])
def test_importance_scaling(benchmark, scaling_problem, impl):
    problem = scaling_problem
    adjacency, seeds = problem.adjacency, problem.seed_counts

    def run():
        if impl == "ifru":
            return ifru_ext.importance(adjacency, seeds, IMPORTANCE_RATIOS)
        return scipy_importance(adjacency, seeds.numpy(), IMPORTANCE_RATIOS)

    if "importance" not in problem.checked:
        kept = ifru_ext.importance(adjacency, seeds, IMPORTANCE_RATIOS)[1]
        assert np.array_equal(kept.numpy(), scipy_importance(adjacency, seeds.numpy(), IMPORTANCE_RATIOS))
        problem.checked.add("importance")
    timed(benchmark, problem, f"importance K=1 {IMPORTANCE_RATIOS}", impl, impl == "scipy", run, nnz=adjacency.nnz)
