"""Plain-PyTorch / plain-Python float64 references for every op (independent of csrc/)."""
from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch import Tensor
from torch.nn.functional import binary_cross_entropy_with_logits

from ifru_ext.graph import CSRGraph


def random_interactions(num_users: int, num_items: int, n: int, gen: torch.Generator):
    """Random (users, items-offset, labels) with duplicates; some nodes stay isolated."""
    users = torch.randint(0, max(1, num_users - 1), (n,), generator=gen)  # last user never used
    items = torch.randint(0, max(1, num_items - 1), (n,), generator=gen)  # last item never used
    labels = torch.randint(0, 2, (n,), generator=gen).to(torch.float64)
    return users, items, labels


def random_negatives(num_users: int, num_items: int, n: int, gen: torch.Generator) -> Tensor:
    """A random item row (offset by num_users) per interaction, as BPR negatives; may equal the positive."""
    return torch.randint(num_users, num_users + num_items, (n,), generator=gen)


def random_csr(num_nodes: int, nnz: int, gen: torch.Generator, dtype=torch.float64) -> CSRGraph:
    """A general (asymmetric) CSR with random weights, duplicate entries and empty rows."""
    rows = torch.randint(0, max(1, num_nodes // 2), (nnz,), generator=gen) * 2  # odd rows stay empty
    rows = rows.clamp(max=num_nodes - 1)
    cols = torch.randint(0, num_nodes, (nnz,), generator=gen)
    order = torch.argsort(rows, stable=True)
    rows, cols = rows[order], cols[order]
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    rowptr[1:] = torch.cumsum(torch.bincount(rows, minlength=num_nodes), 0)
    weight = torch.rand(nnz, generator=gen, dtype=dtype) * 2 - 1
    return CSRGraph(rowptr, cols, weight, num_nodes, symmetric=False)


def random_symmetric_csr(num_nodes: int, num_edges: int, gen: torch.Generator, dtype=torch.float64) -> CSRGraph:
    """An unweighted symmetric adjacency with duplicate edges kept (multigraph)."""
    a = torch.randint(0, num_nodes, (num_edges,), generator=gen)
    b = torch.randint(0, num_nodes, (num_edges,), generator=gen)
    rows, cols = torch.cat([a, b]), torch.cat([b, a])
    order = torch.argsort(rows * num_nodes + cols, stable=True)
    rows, cols = rows[order], cols[order]
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    rowptr[1:] = torch.cumsum(torch.bincount(rows, minlength=num_nodes), 0)
    return CSRGraph(rowptr, cols, torch.ones(cols.numel(), dtype=dtype), num_nodes, symmetric=True)


def dense(graph: CSRGraph) -> Tensor:
    return graph.to_sparse_coo().to_dense()


def propagate_reference(graph: CSRGraph, x: Tensor, num_layers: int) -> Tensor:
    """Mean of x, Ax, …, A^K x with torch.sparse.mm."""
    a = graph.to_sparse_coo()
    layer, total = x, x.clone()
    for _ in range(num_layers):
        layer = torch.sparse.mm(a, layer)
        total = total + layer
    return total / (num_layers + 1)


def training_loss(emb: Tensor, users: Tensor, items: Tensor, labels: Tensor, propagation: Tensor | None, l2: float) -> Tensor:
    """Mean BCE-with-logits over the interactions (+ l2/2‖E‖²); F = propagation @ E if given."""
    f = emb if propagation is None else propagation @ emb
    scores = (f[users] * f[items]).sum(1)
    return binary_cross_entropy_with_logits(scores, labels) + 0.5 * l2 * (emb * emb).sum()


def propagation_matrix(graph: CSRGraph, num_layers: int) -> Tensor:
    a = dense(graph)
    p, power = torch.eye(graph.num_nodes, dtype=a.dtype), torch.eye(graph.num_nodes, dtype=a.dtype)
    for _ in range(num_layers):
        power = power @ a
        p = p + power
    return p / (num_layers + 1)


def bpr_training_loss(emb: Tensor, users: Tensor, pos_items: Tensor, neg_items: Tensor, propagation: Tensor | None,
                      l2: float) -> Tensor:
    """Mean BPR loss −log σ(f_u·f_i − f_u·f_k) over the triples (+ l2/2‖E‖²); F = propagation @ E
    if given."""
    f = emb if propagation is None else propagation @ emb
    x = (f[users] * f[pos_items]).sum(1) - (f[users] * f[neg_items]).sum(1)
    return -torch.nn.functional.logsigmoid(x).mean() + 0.5 * l2 * (emb * emb).sum()


def loss_hvp(loss, emb: Tensor, v: Tensor, graph=None, num_layers=0, keep=None) -> Tensor:
    """Autograd (double backward) HVP of loss(emb, propagation); with keep, H_φφ v_φ (zero outside φ)."""
    propagation = propagation_matrix(graph, num_layers) if graph is not None and num_layers > 0 else None
    mask = torch.ones(emb.shape[0], 1, dtype=emb.dtype) if keep is None else keep.to(emb.dtype)[:, None]
    _, hv = torch.autograd.functional.hvp(lambda e: loss(e, propagation), emb, v * mask)
    return hv * mask


def hvp_reference(emb, v, users, items, labels, graph=None, num_layers=0, l2=0.0, keep=None) -> Tensor:
    """Autograd HVP of training_loss; with keep, H_φφ v_φ (zero outside φ)."""
    loss = lambda e, propagation: training_loss(e, users, items, labels, propagation, l2)  # noqa: E731
    return loss_hvp(loss, emb, v, graph, num_layers, keep)


def gauss_newton_reference(emb, v, users, items, divisor, graph=None, num_layers=0, l2=0.0, keep=None,
                           neg_items=None) -> Tensor:
    """The Gauss–Newton product Jᵀ diag(σ(x)σ(−x)) J v / divisor + l2 v of the logits
    x(E) = f_u·f_i (with neg_items: f_u·(f_i − f_k)), F = P E, by autograd (jvp then vjp); with
    keep, restricted to φ."""
    propagation = propagation_matrix(graph, num_layers) if graph is not None and num_layers > 0 else None
    mask = torch.ones(emb.shape[0], 1, dtype=emb.dtype) if keep is None else keep.to(emb.dtype)[:, None]

    def logits(e: Tensor) -> Tensor:
        f = e if propagation is None else propagation @ e
        if neg_items is None:
            return (f[users] * f[items]).sum(1)
        return (f[users] * (f[items] - f[neg_items])).sum(1)

    x, jv = torch.autograd.functional.jvp(logits, emb, v * mask)
    curvature = torch.sigmoid(x) * torch.sigmoid(-x) / divisor
    _, gv = torch.autograd.functional.vjp(logits, emb, curvature * jv)
    return (gv + l2 * v * mask) * mask


def bpr_hvp_reference(emb, v, users, pos_items, neg_items, graph=None, num_layers=0, l2=0.0, keep=None) -> Tensor:
    """Autograd HVP of bpr_training_loss; with keep, H_φφ v_φ (zero outside φ)."""
    loss = lambda e, propagation: bpr_training_loss(e, users, pos_items, neg_items, propagation, l2)  # noqa: E731
    return loss_hvp(loss, emb, v, graph, num_layers, keep)


def importance_reference(graph: CSRGraph, seed_counts: Tensor, ratios) -> tuple[Tensor, Tensor]:
    """Algorithm 1 written out with Python sets and loops.

    Each node's incoming hop contributions are summed in ascending source order and then
    divided by its degree (the op's documented evaluation order), so float64 results match exactly.
    """
    rowptr, col = graph.rowptr.tolist(), graph.col.tolist()
    n = graph.num_nodes
    degree = [rowptr[v + 1] - rowptr[v] for v in range(n)]
    seeds = seed_counts.tolist()
    score = [seeds[v] / degree[v] if seeds[v] > 0 else 0.0 for v in range(n)]

    def top(nodes, fraction):
        ranked = sorted(nodes, key=lambda v: (-score[v], v))
        return set(ranked[: int(math.floor(fraction * len(ranked) + 0.5))])

    selected = top({v for v in range(n) if seeds[v] > 0}, ratios[0])
    kept = set(selected)
    for fraction in ratios[1:]:
        incoming = defaultdict(list)
        for v in sorted(selected):
            for neighbour in col[rowptr[v] : rowptr[v + 1]]:
                incoming[neighbour].append(score[v])
        new_score = list(score)
        for neighbour, values in incoming.items():
            total = 0.0
            for value in values:
                total += value
            new_score[neighbour] = score[neighbour] + total / degree[neighbour]
        score = new_score
        selected = top(set(incoming), fraction)
        kept |= selected
    mask = torch.zeros(n, dtype=torch.bool)
    mask[sorted(kept)] = True
    return torch.tensor(score, dtype=torch.float64), mask
