"""Each op against the plain-PyTorch way of computing the same thing, on real BookCrossing.

Every benchmark group holds our op and its plain-PyTorch counterpart, timed in the same
run; `bench/report.py` turns the groups into ratios. Correctness is asserted before timing.
The hvp groups also hold the prepared HVP (`ifru_ext.plan_hvp`) and a floor probe (a tight C++
gather of the rows the planned HVP reads, `torch.ops.ifru._gather_floor`), each with its achieved
GB/s (`bytes` / median) in the details.
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
from ifru_ext.unlearning.terms import Terms

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


# ------------------------------------------------------------------ propagate_rows
PROPAGATE_ROWS_IMPLS = ["ifru", "ifru-propagate", "sparse.mm-csr"]


@pytest.mark.parametrize("impl", PROPAGATE_ROWS_IMPLS)
@pytest.mark.parametrize("d", [32, 64])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_propagate_rows(benchmark, problem, impl, d, num_layers):
    """A request's ``P v``: ``v`` on Algorithm 1's rows for the 2% attack set, ``P v`` wanted on their
    ``K``-hop reach (the LightGCN product's first half). ``ifru-propagate`` and ``sparse.mm-csr``
    zero-fill the [N, d] table, propagate every row and gather the wanted ones."""
    dataset, _, _, _, graph = problem
    keep = pruning_mask(dataset, num_layers)
    x_rows = keep.nonzero().squeeze(1)
    out_rows = (ifru_ext.propagate(keep.to(torch.float32)[:, None], graph, num_layers)[:, 0] > 0).nonzero().squeeze(1)
    x, _ = embeddings(x_rows.numel(), d)
    csr = graph.to_sparse_coo().to_sparse_csr()

    def scattered():
        return torch.zeros(graph.num_nodes, d, dtype=x.dtype, device=DEVICE).index_copy_(0, x_rows, x)

    def run():
        if impl == "ifru":
            return sync(ifru_ext.propagate_rows(x, graph, num_layers, x_rows=x_rows, out_rows=out_rows))
        if impl == "ifru-propagate":
            return sync(ifru_ext.propagate(scattered(), graph, num_layers).index_select(0, out_rows))
        return sync(sparse_mean_propagation(csr, scattered(), num_layers).index_select(0, out_rows))

    reference = sparse_mean_propagation(csr.double(), scattered().double(), num_layers)[out_rows]
    torch.testing.assert_close(run().double(), reference, rtol=1e-4, atol=1e-6)
    benchmark.group = f"propagate_rows K={num_layers} d={d}"
    benchmark.extra_info.update(impl=impl, baseline=impl == "sparse.mm-csr", nnz=graph.nnz, rows=graph.num_nodes, d=d,
                                x_rows=x_rows.numel(), out_rows=out_rows.numel())
    benchmark(run)


# ------------------------------------------------------------------ hvp
HVP_CASES = {
    # name: (d, num_layers, keep)  MF uses d = 48, LightGCN d = 32 with one layer (paper defaults);
    # keep: None, "2%" (Algorithm 1 on the 2% attack set) or "user" (the rows one user's request touches)
    "MF": (48, 0, None),
    "MF pruned": (48, 0, "2%"),
    "MF pruned to one user": (48, 0, "user"),
    "LightGCN": (32, 1, None),
    "LightGCN pruned": (32, 1, "2%"),
}
# ifru: the stateless op; ifru-planned: HVPPlan(v) on [N, d] (a drop-in for hvp); ifru-planned-local:
# HVPPlan.local on keep's rows only; floor: _gather_floor of the rows the planned HVP reads.
HVP_IMPLS = ["ifru", "ifru-planned", "ifru-planned-local", "autograd", "floor"]
SINGLE_USER_ROWS = 10  # as bench/test_bench_requests.py


def pruning_mask(dataset, num_layers):
    """Algorithm 1 keep-mask for the 2% attack set: the 0-hop rows for MF, (1.0, 0.6) for LightGCN."""
    adjacency = dataset.interaction_graph()
    seeds = removal_seed_counts(dataset, dataset.removal)
    # MF at (1.0, 1.0) keeps nearly every node; prune to the 0-hop rows to show the skip path.
    ratios = (1.0, 0.6) if num_layers else (1.0,)
    return ifru_ext.importance(adjacency, seeds, ratios)[1].to(DEVICE)


def single_user_mask(dataset):
    """The rows a request deleting one user's whole history touches: the user and its items."""
    counts = torch.bincount(dataset.train.users)
    user = int((counts == SINGLE_USER_ROWS).nonzero()[0])
    rows = dataset.train.users == user
    keep = torch.zeros(dataset.num_users + dataset.num_items, dtype=torch.bool)
    keep[user] = True
    keep[dataset.train.items[rows] + dataset.num_users] = True
    return keep.to(DEVICE)


def hvp_traffic(plan, graph, num_layers, d, itemsize):
    """What the planned HVP must read per call, and the floor probe's gather of the same rows.

    Returns (bytes, table rows, floor index): bytes = rows read × d × itemsize + index bytes. The MF
    part reads, per plan interaction, its endpoints' rows of E (or F = P E) and the rows of v at its
    kept endpoints, then per incidence the other endpoint's row of E and, when kept, of v; LightGCN
    adds the 2K SpMM layers of P v and Pᵀ z (each reads one row per stored entry). The floor index
    lists the same rows of the table [E; v on the inner rows], in the HVP's order.
    """
    num_nodes = plan.emb.shape[0]
    ends, slot = plan._ends, plan._incidence_slot
    pairs = ends.shape[1] - 1
    first = torch.cat([ends[0], torch.where(ends[1] >= 0, num_nodes + ends[1], -1)]).t().reshape(-1)
    j = torch.div(slot >> 1, pairs, rounding_mode="floor")
    end = torch.where(slot & 1 == 1, 0, 1 + (slot >> 1) % pairs)
    other, other_local = ends[0][end, j], ends[1][end, j]
    second = torch.stack([other, torch.where(other_local >= 0, num_nodes + other_local, -1)], 1).reshape(-1)
    index = torch.cat([first[first >= 0], second[second >= 0]])
    index_bytes = 8 * (ends.numel() + slot.numel() + 3 * plan._inner_rows.numel())
    if num_layers:
        spmm = graph.col.repeat(2 * num_layers)  # x[col] of every stored entry, per layer
        index = torch.cat([index, spmm])
        index_bytes += 2 * num_layers * graph.nnz * (8 + itemsize) + 2 * num_layers * 8 * graph.num_nodes
    return index.numel() * d * itemsize + index_bytes, num_nodes + plan._inner_rows.numel(), index


@pytest.mark.parametrize("impl", HVP_IMPLS)
@pytest.mark.parametrize("case", list(HVP_CASES))
def test_hvp(benchmark, problem, impl, case):
    dataset, users, items, labels, graph = problem
    d, num_layers, pruned = HVP_CASES[case]
    keep = {None: None, "2%": lambda: pruning_mask(dataset, num_layers), "user": lambda: single_user_mask(dataset)}
    keep = keep[pruned]() if pruned else None
    if impl == "ifru-planned-local" and keep is None:
        pytest.skip("without keep the local call is the planned call")
    emb, v = embeddings(graph.num_nodes, d)
    coo = graph.to_sparse_coo()
    lgcn_graph = graph if num_layers else None
    plan = ifru_ext.plan_hvp(emb, users, items, labels, lgcn_graph, num_layers, 0.0, keep)
    hvp_bytes, table_rows, floor_index = hvp_traffic(plan, graph, num_layers, d, emb.element_size())
    v_rows = v[plan.rows]
    table = torch.randn(table_rows, d, generator=torch.Generator().manual_seed(1)).to(DEVICE, emb.dtype)

    def run():
        if impl == "ifru":
            return sync(ifru_ext.hvp(emb, v, users, items, labels, lgcn_graph, num_layers, 0.0, keep))
        if impl == "ifru-planned":
            return sync(plan(v))
        if impl == "ifru-planned-local":
            return sync(plan.local(v_rows))
        if impl == "floor":
            return sync(torch.ops.ifru._gather_floor(table, floor_index))
        return sync(autograd_hvp(emb, v, users, items, labels, coo if num_layers else None, num_layers, keep=keep))

    if impl != "floor":  # correctness first, in float64, against the autograd HVP
        dgraph = lgcn_graph and lgcn_graph.to(dtype=torch.float64)
        reference = autograd_hvp(emb.double(), v.double(), users, items, labels.double(), coo.double() if num_layers else None, num_layers, keep=keep)
        ours = ifru_ext.hvp(emb.double(), v.double(), users, items, labels.double(), dgraph, num_layers, 0.0, keep)
        plan64 = ifru_ext.plan_hvp(emb.double(), users, items, labels.double(), dgraph, num_layers, 0.0, keep)
        assert float((ours - reference).norm() / reference.norm()) < 1e-10
        assert torch.equal(plan64(v.double()), ours)
    floor_bytes = floor_index.numel() * (d * emb.element_size() + 8)
    benchmark.group = f"hvp {case}"
    benchmark.extra_info.update(impl=impl, baseline=impl == "autograd", interactions=int(users.numel()),
                                planned_interactions=plan.interactions.numel(), kept_rows=plan.num_rows, d=d,
                                bytes=floor_bytes if impl == "floor" else hvp_bytes)
    benchmark(run)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:  # achieved bandwidth: the bytes the planned HVP must read / this median
        benchmark.extra_info["GB/s"] = round(benchmark.extra_info["bytes"] / stats.stats.median / 1e9, 2)


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


# ------------------------------------------------------------------ pair_sums
def sparse_pair_sums(rows_table, table, rowptr, col, labels):
    """The three sums as the response took them before ops.pair_sums: the logits by one sampled
    product over the CSR pattern, then one CSR sparse product per sum."""
    shape = (rows_table.shape[0], table.shape[0])

    def matrix(values):
        return torch.sparse_csr_tensor(rowptr, col, values, shape, check_invariants=False)

    logits = torch.sparse.sampled_addmm(matrix(torch.zeros_like(labels)), rows_table, table.T, beta=0.0).values()
    p = torch.sigmoid(logits)
    squared_table = table.square()
    return (matrix(p - labels) @ table, matrix((p - labels).square()) @ squared_table,
            matrix(p * (1 - p)) @ squared_table)


PAIR_SUMS_CASES = ["MF 2% moving rows", "every row"]


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("impl", ["ifru", "sparse.mm-csr", "floor"])
@pytest.mark.parametrize("case", PAIR_SUMS_CASES)
def test_pair_sums(benchmark, problem, impl, case):
    """The per-row sums a segment of the training response reads (MF, d = 48): on the rows a 2%
    request moves (the endpoints of the 2% attack set; the Gauss–Newton diagonal, the remaining
    gradient and its squares) or on every row (LightGCN's gradients before Pᵀ)."""
    dataset, users, items, labels, _ = problem
    num_nodes = dataset.num_users + dataset.num_items
    if case == "every row":
        moving = torch.arange(num_nodes, device=DEVICE)
    else:
        removal = dataset.removal.to(DEVICE)
        moving = torch.unique(torch.cat((users[removal], items[removal])))
    position = torch.full((num_nodes,), -1, dtype=torch.int64, device=DEVICE)
    position[moving] = torch.arange(moving.numel(), device=DEVICE)
    entry_rows = torch.cat((position[users], position[items]))
    others, entry_labels = torch.cat((items, users)), torch.cat((labels, labels))
    present = entry_rows >= 0
    order = torch.argsort(entry_rows[present] * num_nodes + others[present])
    col, entry_labels = others[present][order], entry_labels[present][order]
    rowptr = torch.zeros(moving.numel() + 1, dtype=torch.int64, device=DEVICE)
    rowptr[1:] = torch.bincount(entry_rows[present], minlength=moving.numel()).cumsum(0)
    table, _ = embeddings(num_nodes, 48)
    rows_table = table[moving]

    def run():
        if impl == "ifru":
            return sync(ifru_ext.pair_sums(rows_table, table, rowptr, col, entry_labels))
        if impl == "floor":
            return sync(torch.ops.ifru._gather_floor(table, col))
        return sync(sparse_pair_sums(rows_table, table, rowptr, col, entry_labels))

    if impl != "floor":  # correctness first, in float64, against the sparse formulation
        args64 = (rows_table.double(), table.double(), rowptr, col, entry_labels.double())
        for ours, reference in zip(ifru_ext.pair_sums(*args64), sparse_pair_sums(*args64)):
            torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)
    benchmark.group = f"pair_sums {case}"
    benchmark.extra_info.update(impl=impl, baseline=impl == "sparse.mm-csr", entries=int(col.numel()),
                                rows=int(moving.numel()), d=48, bytes=int(col.numel()) * (48 * 4 + 8))
    benchmark(run)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:  # achieved bandwidth: the other rows read once / this median
        benchmark.extra_info["GB/s"] = round(benchmark.extra_info["bytes"] / stats.stats.median / 1e9, 2)


# ------------------------------------------------------------------ triple_sums
def per_term_triple_sums(table, users, items, negatives, labels, num_rows):
    """The three sums as the response took them before ops.triple_sums: each term's logit and
    Jacobians gathered as [s, d] tensors, every product scattered onto the rows column by column."""
    f_users = table.index_select(0, users)
    difference = table.index_select(0, items) - table.index_select(0, negatives)
    p = torch.sigmoid((f_users * difference).sum(1, keepdim=True))
    slope, curvature = p - labels[:, None], p * (1 - p)
    out = [table.new_zeros(num_rows, table.shape[1]) for _ in range(3)]
    for column, jacobian in zip((users, items, negatives), (difference, f_users, -f_users)):
        squared = jacobian.square()
        for sums, value in zip(out, (slope * jacobian, slope.square() * squared, curvature * squared)):
            sums.index_add_(0, column, value)
    return tuple(out)


@pytest.mark.parametrize("impl", ["ifru", "per-term", "floor"])
def test_triple_sums(benchmark, problem, impl):
    """BPR's per-row sums a segment of the training response reads on every row (LightGCN BPR's
    gradients before Pᵀ; d = 48): one epoch's triples, each positive with a uniform negative."""
    dataset, users, items, labels, _ = problem
    num_nodes = dataset.num_users + dataset.num_items
    positive = labels == 1
    users, items = users[positive], items[positive]
    generator = torch.Generator().manual_seed(0)
    negatives = (torch.randint(0, dataset.num_items, (users.numel(),), generator=generator)
                 + dataset.num_users).to(DEVICE)
    ones = torch.ones(users.numel(), device=DEVICE)
    # As the response calls it: one copy of its term per entry, in entry order (TermIncidence).
    incidence = Terms((users, items, negatives), ones).incidence(num_nodes)
    rowptr, col, (entry_users, entry_items, entry_negatives) = incidence.rowptr, incidence.column, incidence.term_columns
    entry_labels = incidence.labels
    table, _ = embeddings(num_nodes, 48)
    column = col % 3  # the floor reads each entry's two other rows
    others = torch.stack((torch.where(column == 0, entry_items, entry_users),
                          torch.where(column == 2, entry_items, entry_negatives)), 1).reshape(-1)

    def ours(table, labels):
        return ifru_ext.triple_sums(table, entry_users, entry_items, entry_negatives, labels, None, rowptr, col)

    def run():
        if impl == "ifru":
            return sync(ours(table, entry_labels))
        if impl == "floor":
            return sync(torch.ops.ifru._gather_floor(table, others))
        return sync(per_term_triple_sums(table, users, items, negatives, ones, num_nodes))

    if impl != "floor":  # correctness first, in float64, against the per-term formulation
        table64 = table.double()
        expected = per_term_triple_sums(table64, users, items, negatives, ones.double(), num_nodes)
        for sums, reference in zip(ours(table64, entry_labels.double()), expected):
            torch.testing.assert_close(sums, reference, rtol=1e-10, atol=1e-12)
    benchmark.group = "triple_sums every row"
    benchmark.extra_info.update(impl=impl, baseline=impl == "per-term", entries=int(col.numel()),
                                terms=int(users.numel()), d=48, bytes=int(col.numel()) * (2 * 48 * 4 + 8))
    benchmark(run)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:  # achieved bandwidth: each entry's two other rows read once / this median
        benchmark.extra_info["GB/s"] = round(benchmark.extra_info["bytes"] / stats.stats.median / 1e9, 2)
