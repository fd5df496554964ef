"""The plain-PyTorch formulation of the fused ops, kept for comparison (benchmarks, the demo
and ``UnlearnConfig(backend="autograd")``): ``torch.sparse.mm`` propagation and the
double-backward Hessian-vector product.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.functional import binary_cross_entropy_with_logits


def sparse_mean_propagation(adjacency: Tensor, x: Tensor, num_layers: int) -> Tensor:
    """Mean of x, Ax, …, A^K x with ``torch.sparse.mm`` (``adjacency`` COO or CSR [N, N], x [N, d])."""
    layer, total = x, x
    for _ in range(num_layers):
        layer = torch.sparse.mm(adjacency, layer)
        total = total + layer
    return total / (num_layers + 1)


def autograd_hvp(emb: Tensor, v: Tensor, users: Tensor, items: Tensor, labels: Tensor,
                 adjacency: Tensor | None = None, num_layers: int = 0, l2: float = 0.0,
                 keep: Tensor | None = None) -> Tensor:
    """``H v`` of the mean BCE loss (+ l2/2‖E‖²) by double backward; F = P E when ``adjacency`` is given.

    emb, v [N, d]; users, items [n] rows of the stacked table; keep bool [N] gives H_φφ v_φ.
    """
    e = emb.detach().requires_grad_(True)
    f = e if adjacency is None or num_layers == 0 else sparse_mean_propagation(adjacency, e, num_layers)
    loss = binary_cross_entropy_with_logits((f[users] * f[items]).sum(1), labels)
    if l2:
        loss = loss + 0.5 * l2 * (e * e).sum()
    (grad,) = torch.autograd.grad(loss, e, create_graph=True)
    mask = None if keep is None else keep[:, None].to(v.dtype)
    (hv,) = torch.autograd.grad(grad, e, v if mask is None else v * mask)
    return hv if mask is None else hv * mask
