"""Typed wrappers over ``torch.ops.ifru.*`` plus their fake (meta) kernels and autograd.

Shapes: ``N`` nodes (users then items in one stacked table), ``d`` embedding width,
``n`` interactions, ``nnz`` stored CSR entries. The maths of every op: README "Op reference".
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from . import _C  # noqa: F401  (loading the library registers the ops)
from .graph import CSRGraph


def propagate(x: Tensor, graph: CSRGraph, num_layers: int) -> Tensor:
    """``(1/(K+1)) Σ_{k=0..K} A^k x`` for ``x [N, d]`` → ``[N, d]``; differentiable in ``x``."""
    return torch.ops.ifru.propagate(graph.rowptr, graph.col, graph.weight, x, num_layers, graph.symmetric)


def hvp(
    emb: Tensor,
    v: Tensor,
    users: Tensor,
    items: Tensor,
    labels: Tensor,
    graph: CSRGraph | None = None,
    num_layers: int = 0,
    l2: float = 0.0,
    keep: Tensor | None = None,
) -> Tensor:
    """``H v`` of the mean BCE-with-logits loss (+ ``l2/2·‖E‖²``) at ``emb``.

    emb, v: [N, d]; users, items: int64 [n] rows of the stacked table (items offset by the
    number of users); labels: [n] in [0, 1]; keep: bool [N] restricts to ``H_φφ v_φ``.
    With ``graph`` and ``num_layers ≥ 1`` this is the exact LightGCN ``Pᵀ H_MF(P E) P v``.
    """
    rowptr, col, weight, symmetric = (
        (graph.rowptr, graph.col, graph.weight, graph.symmetric) if graph is not None else (None, None, None, False)
    )
    return torch.ops.ifru.hvp(emb, v, users, items, labels, rowptr, col, weight, num_layers, l2, keep, symmetric)


def importance(graph: CSRGraph, seed_counts: Tensor, ratios: Sequence[float]) -> tuple[Tensor, Tensor]:
    """Algorithm 1: ``seed_counts [N]`` (removed interactions per node), ``ratios`` = (a_0..a_K).

    Returns the final scores [N] and the kept-row mask (bool [N]); the top ``round(a_k·|S_k|)``
    of each hop are kept, ties to the lower index.
    """
    return torch.ops.ifru.importance(graph.rowptr, graph.col, seed_counts, list(ratios))


def csr_transpose(graph: CSRGraph) -> CSRGraph:
    """``Aᵀ`` (stable: transposed rows list source rows in ascending order)."""
    rowptr, col, weight = torch.ops.ifru.csr_transpose(graph.rowptr, graph.col, graph.weight)
    return CSRGraph(rowptr, col, weight, graph.num_nodes, graph.symmetric)


def with_cuda() -> bool:
    """Whether this build compiled the CUDA kernels."""
    return torch.ops.ifru.with_cuda()


@torch.library.register_fake("ifru::propagate")
def _propagate_fake(rowptr, col, weight, x, num_layers, symmetric=False):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.register_fake("ifru::hvp")
def _hvp_fake(emb, v, users, items, labels, rowptr, col, weight, num_layers, l2, keep, symmetric=False):
    return torch.empty_like(emb, memory_format=torch.contiguous_format)


@torch.library.register_fake("ifru::importance")
def _importance_fake(rowptr, col, seed_counts, ratios):
    return torch.empty_like(seed_counts), torch.empty_like(seed_counts, dtype=torch.bool)


@torch.library.register_fake("ifru::csr_transpose")
def _csr_transpose_fake(rowptr, col, weight):
    return torch.empty_like(rowptr), torch.empty_like(col), torch.empty_like(weight)


def _propagate_setup_context(ctx, inputs, output):
    rowptr, col, weight, _, num_layers, symmetric = inputs
    ctx.save_for_backward(rowptr, col, weight)
    ctx.num_layers, ctx.symmetric = num_layers, symmetric


def _propagate_backward(ctx, grad):
    # d/dx of P x is Pᵀ, and Pᵀ = mean of (Aᵀ)^k: the same op on the transposed matrix.
    rowptr, col, weight = ctx.saved_tensors
    if not ctx.symmetric:
        rowptr, col, weight = torch.ops.ifru.csr_transpose(rowptr, col, weight)
    grad_x = torch.ops.ifru.propagate(rowptr, col, weight, grad, ctx.num_layers, ctx.symmetric)
    return None, None, None, grad_x, None, None


torch.library.register_autograd("ifru::propagate", _propagate_backward, setup_context=_propagate_setup_context)
