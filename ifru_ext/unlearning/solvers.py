"""Iterative solvers for ``(H + δI) t = g`` given only ``v ↦ H v``.

Both run on the tensors' device; on a GPU convergence is read back to the host only every
``check_every`` iterations, so the loop is not stalled by a sync per step (on the CPU the read
is free, and every iteration checks: a converged solve stops at once).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..training import EarlyStopping
from .base import SolveReport

Operator = Callable[[Tensor], Tensor]


def _relative_residual(apply: Operator, damping: float, t: Tensor, g: Tensor, g_norm: Tensor) -> float:
    return float((apply(t) + damping * t - g).norm() / g_norm)


def conjugate_gradient(
    apply: Operator,
    g: Tensor,
    *,
    tol: float = 1e-6,
    max_iter: int = 200,
    damping: float = 0.0,
    preconditioner: Operator | None = None,
    check_every: int | None = None,
    select: Callable[[Tensor], float] | None = None,
    patience: int = 3,
    true_residual: bool = True,
) -> tuple[Tensor, SolveReport]:
    """(Preconditioned) conjugate gradients from t = 0, stopping on ‖r‖/‖g‖ < tol.

    ``H`` may be indefinite (the MF Hessian's user–item cross block carries ℓ'·I): when a
    search direction has pᵀ(H+δI)p ≤ 0 the iteration stops there (truncated CG) and
    reports ``negative_curvature``; raise ``damping`` δ to make the system definite.
    With ``select`` every iterate is scored and the best is returned, stopping after
    ``patience`` iterations without improvement (as ``adam_solve``). The reported residual is
    recomputed from ``t`` (one more product: the recursion's ``r`` drifts in floating point);
    ``true_residual=False`` reports the recursion's instead, for a solve whose answer only
    feeds another one.
    """
    if select is not None:
        return _select_best(_cg_iterates(apply, g, damping, preconditioner, max_iter), apply, g, damping,
                            select, patience)
    precondition = preconditioner or (lambda r: r)
    check_every = check_every or (1 if g.device.type == "cpu" else 5)
    t = torch.zeros_like(g)
    g_norm = g.norm()
    if float(g_norm) == 0.0:
        return t, SolveReport(0, 0.0, "zero_rhs")
    r = g.clone()
    z = precondition(r)
    p = z.clone()
    rz = (r * z).sum()
    active = torch.ones((), dtype=torch.bool, device=g.device)  # flips off on convergence / negative curvature
    curvature_ok = torch.ones_like(active)
    iterations = 0
    for iterations in range(1, max_iter + 1):
        hp = apply(p) + damping * p
        php = (p * hp).sum()
        curvature_ok = curvature_ok & (php > 0)
        step = torch.where(active & curvature_ok, rz / php.where(php != 0, torch.ones_like(php)), torch.zeros_like(php))
        t = t + step * p
        r = r - step * hp
        active = active & curvature_ok & (r.norm() / g_norm >= tol)
        z = precondition(r)
        rz_next = (r * z).sum()
        p = z + (rz_next / rz.where(rz != 0, torch.ones_like(rz))) * p
        rz = rz_next
        if iterations % check_every == 0 and not bool(active):
            break
    residual = _relative_residual(apply, damping, t, g, g_norm) if true_residual else float(r.norm() / g_norm)
    if not bool(curvature_ok):
        status = "negative_curvature"
    else:
        status = "converged" if residual < tol else "max_iter"
    return t, SolveReport(iterations, residual, status)


def _cg_iterates(apply: Operator, g: Tensor, damping: float, preconditioner: Operator | None, max_iter: int):
    """Plain CG iterates t_1, t_2, … (host-side control: used with per-iterate selection)."""
    precondition = preconditioner or (lambda r: r)
    t = torch.zeros_like(g)
    r = g.clone()
    z = precondition(r)
    p, rz = z.clone(), (r * z).sum()
    for _ in range(max_iter):
        hp = apply(p) + damping * p
        php = (p * hp).sum()
        if float(php) <= 0:
            return
        step = rz / php
        t = t + step * p
        r = r - step * hp
        yield t
        z = precondition(r)
        rz_next = (r * z).sum()
        p = z + (rz_next / rz) * p
        rz = rz_next


def _select_best(iterates, apply: Operator, g: Tensor, damping: float, select: Callable[[Tensor], float],
                 patience: int) -> tuple[Tensor, SolveReport]:
    """The iterate with the highest ``select`` score (t = 0 included), stopping after ``patience`` misses."""
    stopper, iterations = EarlyStopping(patience), 0
    zero = torch.zeros_like(g)
    stopper.update(0, select(zero), lambda: zero)
    for iterations, t in enumerate(iterates, start=1):
        stopper.update(iterations, select(t), lambda: t.detach().clone())
        if stopper.should_stop(iterations):
            break
    best_t = stopper.best_state
    g_norm = g.norm()
    residual = _relative_residual(apply, damping, best_t, g, g_norm) if float(g_norm) > 0 else 0.0
    return best_t, SolveReport(iterations, residual, "validation")


def adam_solve(
    apply: Operator,
    g: Tensor,
    *,
    lr: float,
    tol: float = 1e-6,
    max_iter: int = 200,
    damping: float = 0.0,
    check_every: int = 5,
    select: Callable[[Tensor], float] | None = None,
    patience: int = 3,
) -> tuple[Tensor, SolveReport]:
    """The paper's solver: Adam on ``½ tᵀ(H+δ)t − tᵀg`` from t = 0 (its gradient is ``(H+δ)t − g``).

    ``lr`` is large (1e3–5e4 in the paper) because H of a mean loss is tiny. Without
    ``select`` it stops on the relative residual like CG. With ``select`` (a score to
    maximise, e.g. validation AUC of the model the iterate gives) it evaluates every
    iterate, keeps the best and stops after ``patience`` iterations without improvement
    — the authors' released-code behaviour.
    """
    t = torch.zeros_like(g)
    g_norm = g.norm()
    if float(g_norm) == 0.0:
        return t, SolveReport(0, 0.0, "zero_rhs")
    # Adam written out (torch.optim.Adam's default update: β = (0.9, 0.999), ε = 1e-8, bias
    # correction): constructing torch.optim.Adam imports torch._dynamo, ~2.7 s on first use,
    # which would dominate a request that otherwise takes about a second.
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    first, second = torch.zeros_like(g), torch.zeros_like(g)

    def iterates():
        nonlocal t
        for step in range(1, max_iter + 1):
            grad = apply(t) + damping * t - g
            first.mul_(beta1).add_(grad, alpha=1 - beta1)
            second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (second / (1 - beta2**step)).sqrt_().add_(eps)
            t = t - (lr / (1 - beta1**step)) * first / denom
            yield t

    if select is not None:
        return _select_best(iterates(), apply, g, damping, select, patience)
    iterations = 0
    for iterations, _ in enumerate(iterates(), start=1):
        if iterations % check_every == 0 and _relative_residual(apply, damping, t, g, g_norm) < tol:
            break
    residual = _relative_residual(apply, damping, t, g, g_norm)
    return t.detach(), SolveReport(iterations, residual, "converged" if residual < tol else "max_iter")


def block_jacobi(blocks: Tensor) -> Operator:
    """``r ↦ B_v⁻¹ r_v`` row by row for SPD blocks ``[N, d, d]`` (batched Cholesky, factored once)."""
    factor = torch.linalg.cholesky(blocks)

    def apply(r: Tensor) -> Tensor:
        return torch.cholesky_solve(r.unsqueeze(-1), factor).squeeze(-1)

    return apply
