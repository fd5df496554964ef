"""Each op against the plain-PyTorch way of computing the same thing, on real BookCrossing.

Every benchmark group holds our op and its plain-PyTorch counterpart, timed in the same
run; `bench/report.py` turns the groups into ratios. Correctness is asserted before timing.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import ifru_ext
from ifru_ext.graph import CSRGraph
from ifru_ext.plain import autograd_hvp, sparse_mean_propagation
from ifru_ext.unlearning.influence import removal_seed_counts

DEVICE = torch.device("cuda" if torch.cuda.is_available() and ifru_ext.with_cuda() else "cpu")


def sync(result):
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
    return result


@pytest.fixture(scope="module")
def problem(bookcrossing):
    train = bookcrossing.train
    users = train.users.to(DEVICE)
    items = (train.items + bookcrossing.num_users).to(DEVICE)
    labels = train.labels.to(DEVICE)
    graph = bookcrossing.graph().to(DEVICE)
    return bookcrossing, users, items, labels, graph


def embeddings(num_nodes: int, d: int, seed: int = 0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(num_nodes, d, generator=gen, dtype=torch.float64) * 0.1
    v = torch.randn(num_nodes, d, generator=gen, dtype=torch.float64)
    return emb.to(DEVICE, dtype), v.to(DEVICE, dtype)


# ------------------------------------------------------------------ propagate
PROPAGATE_IMPLS = ["ifru", "sparse.mm-coo", "sparse.mm-csr"]


@pytest.mark.parametrize("impl", PROPAGATE_IMPLS)
@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
@pytest.mark.parametrize("d", [32, 64])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_propagate(benchmark, problem, impl, backward, d, num_layers):
    _, _, _, _, graph = problem
    x, g = embeddings(graph.num_nodes, d)
    coo = graph.to_sparse_coo()
    matrices = {"sparse.mm-coo": coo, "sparse.mm-csr": coo.to_sparse_csr()}

    def run():
        xr = x.detach().requires_grad_(backward)
        out = ifru_ext.propagate(xr, graph, num_layers) if impl == "ifru" else sparse_mean_propagation(matrices[impl], xr, num_layers)
        if backward:
            (out,) = torch.autograd.grad(out, xr, g)
        return sync(out)

    reference = sparse_mean_propagation(coo.double(), x.double(), num_layers)
    if not backward:
        torch.testing.assert_close(run().double(), reference, rtol=1e-4, atol=1e-6)
    benchmark.group = f"propagate K={num_layers} d={d} {'fwd+bwd' if backward else 'fwd'}"
    benchmark.extra_info.update(impl=impl, baseline=impl == "sparse.mm-coo", nnz=graph.nnz, rows=graph.num_nodes, d=d)
    benchmark(run)


# ------------------------------------------------------------------ hvp
HVP_CASES = {
    # name: (d, num_layers, pruned)  MF uses d = 48, LightGCN d = 32 with one layer (paper defaults)
    "MF": (48, 0, False),
    "MF pruned": (48, 0, True),
    "LightGCN": (32, 1, False),
    "LightGCN pruned": (32, 1, True),
}


def pruning_mask(dataset, num_layers):
    """Algorithm 1 keep-mask for the 2% attack set: the 0-hop rows for MF, (1.0, 0.6) for LightGCN."""
    adjacency = dataset.interaction_graph()
    seeds = removal_seed_counts(dataset, dataset.removal)
    # MF at (1.0, 1.0) keeps nearly every node; prune to the 0-hop rows to show the skip path.
    ratios = (1.0, 0.6) if num_layers else (1.0,)
    return ifru_ext.importance(adjacency, seeds, ratios)[1].to(DEVICE)


@pytest.mark.parametrize("impl", ["ifru", "autograd"])
@pytest.mark.parametrize("case", list(HVP_CASES))
def test_hvp(benchmark, problem, impl, case):
    dataset, users, items, labels, graph = problem
    d, num_layers, pruned = HVP_CASES[case]
    keep = pruning_mask(dataset, num_layers) if pruned else None
    emb, v = embeddings(graph.num_nodes, d)
    coo = graph.to_sparse_coo()
    lgcn_graph = graph if num_layers else None

    def run():
        if impl == "ifru":
            return sync(ifru_ext.hvp(emb, v, users, items, labels, lgcn_graph, num_layers, 0.0, keep))
        return sync(autograd_hvp(emb, v, users, items, labels, coo if num_layers else None, num_layers, keep=keep))

    ours = ifru_ext.hvp(emb.double(), v.double(), users, items, labels.double(), lgcn_graph and lgcn_graph.to(dtype=torch.float64), num_layers, 0.0, keep)
    reference = autograd_hvp(emb.double(), v.double(), users, items, labels.double(), coo.double() if num_layers else None, num_layers, keep=keep)
    assert float((ours - reference).norm() / reference.norm()) < 1e-10
    benchmark.group = f"hvp {case}"
    benchmark.extra_info.update(impl=impl, baseline=impl == "autograd", interactions=int(users.numel()),
                                kept_rows=int(keep.sum()) if keep is not None else graph.num_nodes, d=d)
    benchmark(run)


# ------------------------------------------------------------------ importance
def scipy_importance(adjacency: CSRGraph, seed_counts: np.ndarray, ratios) -> np.ndarray:
    """Algorithm 1 with scipy.sparse: one sparse mat-vec per hop plus a lexsort top-fraction."""
    n = adjacency.num_nodes
    a = sp.csr_matrix((np.ones(adjacency.nnz), adjacency.col.numpy(), adjacency.rowptr.numpy()), shape=(n, n))
    degree = np.diff(adjacency.rowptr.numpy()).astype(np.float64)
    safe_degree = np.maximum(degree, 1)

    def top(member, score, ratio):
        nodes = np.flatnonzero(member)
        ranked = nodes[np.lexsort((nodes, -score[nodes]))]
        keep = np.zeros(n, dtype=bool)
        keep[ranked[: int(np.floor(ratio * len(nodes) + 0.5))]] = True
        return keep

    score = np.where(seed_counts > 0, seed_counts / safe_degree, 0.0)
    member = top(seed_counts > 0, score, ratios[0])
    kept = member.copy()
    for ratio in ratios[1:]:
        incoming = a.T @ np.where(member, score, 0.0)
        reached = (a.T @ member.astype(np.float64)) > 0
        score = score + np.where(reached, incoming / safe_degree, 0.0)
        member = top(reached, score, ratio)
        kept |= member
    return kept


@pytest.mark.parametrize("impl", ["ifru", "scipy"])
def test_importance(benchmark, bookcrossing, impl):
    adjacency = bookcrossing.interaction_graph()
    seeds = removal_seed_counts(bookcrossing, bookcrossing.removal)
    ratios = (1.0, 0.6)
    ours = ifru_ext.importance(adjacency, seeds, ratios)[1]
    assert np.array_equal(ours.numpy(), scipy_importance(adjacency, seeds.numpy(), ratios))
    benchmark.group = "importance K=1 (1.0, 0.6)"
    benchmark.extra_info.update(impl=impl, baseline=impl == "scipy", nnz=adjacency.nnz, kept=int(ours.sum()))
    if impl == "ifru":
        benchmark(ifru_ext.importance, adjacency, seeds, ratios)
    else:
        benchmark(scipy_importance, adjacency, seeds.numpy(), ratios)
