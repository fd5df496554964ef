"""Typed wrappers over ``torch.ops.ifru.*`` plus their fake (meta) kernels and autograd.

Shapes: ``N`` nodes (users then items in one stacked table), ``d`` embedding width,
``n`` interactions, ``nnz`` stored CSR entries. The maths of every op: README "Op reference".

Derivatives (docs/ARCHITECTURE.md §3): ``propagate`` is differentiable in ``x`` (reverse
mode, any order). Every other derivative raises ``NotImplementedError`` naming the op and
the argument instead of coming back as zeros or None: a gradient with respect to
``propagate``'s ``weight``, any gradient through ``hvp``, ``bpr_hvp``, ``importance`` or
``csr_transpose`` (when backward reaches them), and forward-mode AD
(``torch.func.jvp``/``jacfwd``, ``torch.autograd.forward_ad``) through any op.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.autograd.forward_ad as forward_ad
from torch import Tensor

from . import _C  # noqa: F401  (loading the library registers the ops)
from .graph import CSRGraph

# The largest num_layers propagate, hvp and bpr_hvp accept: kMaxLayers in csrc/checks.h, where the
# bound is enforced (README "Errors"). Each layer is one full SpMM.
MAX_LAYERS = 64


def _graph_args(graph: CSRGraph | None) -> tuple[Tensor | None, Tensor | None, Tensor | None, bool]:
    """(rowptr, col, weight, symmetric) of an optional graph, as hvp and bpr_hvp take them."""
    if graph is None:
        return None, None, None, False
    return graph.rowptr, graph.col, graph.weight, graph.symmetric


def propagate(x: Tensor, graph: CSRGraph, num_layers: int) -> Tensor:
    """``(1/(K+1)) Σ_{k=0..K} A^k x`` for ``x [N, d]`` → ``[N, d]``, ``0 ≤ K ≤ MAX_LAYERS``;
    differentiable in ``x`` (reverse mode)."""
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
    rowptr, col, weight, symmetric = _graph_args(graph)
    return torch.ops.ifru.hvp(emb, v, users, items, labels, rowptr, col, weight, num_layers, l2, keep, symmetric)


def bpr_hvp(
    emb: Tensor,
    v: Tensor,
    users: Tensor,
    pos_items: Tensor,
    neg_items: Tensor,
    graph: CSRGraph | None = None,
    num_layers: int = 0,
    l2: float = 0.0,
    keep: Tensor | None = None,
) -> Tensor:
    """``H v`` of the mean BPR loss ``mean_j softplus(−f_u·(f_i − f_k))`` (+ ``l2/2·‖E‖²``) at ``emb``.

    emb, v: [N, d]; users, pos_items, neg_items: int64 [n], one (u, i, k) triple per entry, rows of
    the stacked table (items offset by the number of users); keep: bool [N] restricts to
    ``H_φφ v_φ``. With ``graph`` and ``num_layers ≥ 1`` this is the exact LightGCN
    ``Pᵀ H_BPR(P E) P v``.
    """
    rowptr, col, weight, symmetric = _graph_args(graph)
    return torch.ops.ifru.bpr_hvp(
        emb, v, users, pos_items, neg_items, rowptr, col, weight, num_layers, l2, keep, symmetric
    )


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


# ---------------------------------------------------------------- fake kernels
# Shapes only (torch.compile, opcheck), with the checks a trace cannot defer to the real
# kernel: every tensor on the op's device and num_layers within its bound.


def _check_devices(op: str, device: torch.device, **tensors: Tensor | None) -> None:
    for name, tensor in tensors.items():
        if tensor is not None and tensor.device != device:
            raise RuntimeError(f"{op}: {name} is on {tensor.device} but the op runs on {device}")


def _check_num_layers(op: str, num_layers: int) -> None:
    if not 0 <= num_layers <= MAX_LAYERS:
        raise ValueError(f"{op}: num_layers must lie in [0, {MAX_LAYERS}], got {num_layers}")


@torch.library.register_fake("ifru::propagate")
def _propagate_fake(rowptr, col, weight, x, num_layers, symmetric=False):
    _check_devices("ifru::propagate", x.device, rowptr=rowptr, col=col, weight=weight)
    _check_num_layers("ifru::propagate", num_layers)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.register_fake("ifru::hvp")
def _hvp_fake(emb, v, users, items, labels, rowptr, col, weight, num_layers, l2, keep, symmetric=False):
    _check_devices("ifru::hvp", emb.device, v=v, users=users, items=items, labels=labels, rowptr=rowptr, col=col,
                   weight=weight, keep=keep)
    _check_num_layers("ifru::hvp", num_layers)
    return torch.empty_like(emb, memory_format=torch.contiguous_format)


@torch.library.register_fake("ifru::bpr_hvp")
def _bpr_hvp_fake(emb, v, users, pos_items, neg_items, rowptr, col, weight, num_layers, l2, keep, symmetric=False):
    _check_devices("ifru::bpr_hvp", emb.device, v=v, users=users, pos_items=pos_items, neg_items=neg_items,
                   rowptr=rowptr, col=col, weight=weight, keep=keep)
    _check_num_layers("ifru::bpr_hvp", num_layers)
    return torch.empty_like(emb, memory_format=torch.contiguous_format)


@torch.library.register_fake("ifru::importance")
def _importance_fake(rowptr, col, seed_counts, ratios):
    _check_devices("ifru::importance", seed_counts.device, rowptr=rowptr, col=col)
    return torch.empty_like(seed_counts), torch.empty_like(seed_counts, dtype=torch.bool)


@torch.library.register_fake("ifru::csr_transpose")
def _csr_transpose_fake(rowptr, col, weight):
    _check_devices("ifru::csr_transpose", rowptr.device, col=col, weight=weight)
    return torch.empty_like(rowptr), torch.empty_like(col), torch.empty_like(weight)


# ---------------------------------------------------------------- autograd


def _propagate_setup_context(ctx, inputs, output):
    rowptr, col, weight, _, num_layers, symmetric = inputs
    ctx.save_for_backward(rowptr, col, weight)
    ctx.num_layers, ctx.symmetric = num_layers, symmetric


def _propagate_backward(ctx, grad):
    if ctx.needs_input_grad[2]:
        raise NotImplementedError(
            "ifru::propagate: no gradient with respect to weight (only x is differentiable; the graph is a "
            "constant): pass weight.detach()"
        )
    # d/dx of P x is Pᵀ, and Pᵀ = mean of (Aᵀ)^k: the same op on the transposed matrix.
    rowptr, col, weight = ctx.saved_tensors
    if not ctx.symmetric:
        rowptr, col, weight = torch.ops.ifru.csr_transpose(rowptr, col, weight)
    grad_x = torch.ops.ifru.propagate(rowptr, col, weight, grad, ctx.num_layers, ctx.symmetric)
    return None, None, None, grad_x, None, None


# Why an op has no derivative, for the error raised when one is asked of it.
_NOT_DIFFERENTIABLE = {
    "hvp": "a Hessian-vector product with no backward; differentiate ifru_ext.plain's formulation instead",
    "bpr_hvp": "a Hessian-vector product with no backward; differentiate the BPR loss with autograd instead",
    "importance": "Algorithm 1 is a discrete selection",
    "csr_transpose": "a permutation of the entries with no backward",
}


def _no_backward(name: str) -> Callable[..., Any]:
    arguments = [argument.name for argument in getattr(torch.ops.ifru, name).default._schema.arguments]

    def backward(ctx, *grads):
        wanted = [arg for arg, needed in zip(arguments, ctx.needs_input_grad) if needed]
        raise NotImplementedError(
            f"ifru::{name}: not differentiable ({_NOT_DIFFERENTIABLE[name]}), but a gradient with respect to "
            f"{', '.join(wanted)} was asked: pass detached tensors or call it under torch.no_grad()"
        )

    return backward


def _no_setup_context(ctx, inputs, output):
    pass


def _refuse_forward_ad(name: str, arguments: Sequence[str], args: Sequence[Any]) -> None:
    """NotImplementedError when an argument carries a forward-mode tangent (jvp, jacfwd, fwAD)."""
    if forward_ad._current_level < 0:  # no dual level entered: nothing can carry a tangent
        return
    for arg, value in zip(arguments, args):
        if isinstance(value, Tensor) and forward_ad.unpack_dual(value).tangent is not None:
            raise NotImplementedError(
                f"ifru::{name}: forward-mode AD (torch.func.jvp/jacfwd, torch.autograd.forward_ad) is not "
                f"supported, but {arg} has a tangent: use reverse mode (torch.autograd.grad, torch.func.vjp/jacrev)"
            )


# The torch.library autograd registration is one Python kernel on the Autograd key; this
# library holds ours, which refuses forward-mode tangents (torch.library has no hook for
# them: without one, the tangent is silently dropped) before the reverse-mode kernel that
# torch.library.register_autograd would have registered.
_LIBRARY = torch.library.Library("ifru", "IMPL")


def _register_autograd(name: str, backward: Callable[..., Any], setup_context: Callable[..., Any]) -> None:
    op = getattr(torch.ops.ifru, name).default
    try:  # the kernel torch.library.register_autograd builds (a private helper, stable since torch 2.4)
        from torch._library.autograd import Info, make_autograd_impl

        reverse_mode = make_autograd_impl(op, Info(backward, setup_context))
    except (ImportError, AttributeError, TypeError):  # another torch: reverse mode only, tangents dropped
        torch.library.register_autograd(f"ifru::{name}", backward, setup_context=setup_context)
        return
    arguments = [argument.name for argument in op._schema.arguments]

    def autograd_kernel(keyset, *args):
        _refuse_forward_ad(name, arguments, args)
        return reverse_mode(keyset, *args)

    _LIBRARY.impl(name, autograd_kernel, "Autograd", with_keyset=True)


_register_autograd("propagate", _propagate_backward, _propagate_setup_context)
for _name in _NOT_DIFFERENTIABLE:
    _register_autograd(_name, _no_backward(_name), _no_setup_context)
