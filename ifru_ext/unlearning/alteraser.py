"""AltEraser baseline (Liu et al., arXiv:2208.06875): alternating damped block-Newton steps
on the remaining-data objective ``L_{-r}`` (``objective``) over the rows the removal touches.

AltEraser: the choices the paper's summary leaves open, and ours.

- Objective. ``remaining`` (default) is the paper's: minimise ``L_{-r}``. Our trained
  models are early-stopped and unregularised, so ``Ê`` is far from a minimiser of the
  training loss and minimising ``L_{-r}`` over the touched rows mostly overfits them
  (measured on BookCrossing: validation AUC falls every round at ρ = 1). ``anchored``
  minimises ``L_{-r}(E) − ⟨A, E⟩`` with ``A = (n/m)∇L_D(Ê)`` (old graph): ``Ê`` is then its
  own stationary point for an empty request, and ``∇Φ(Ê)`` is exactly the removal's
  effect (for LightGCN including the graph change), the right-hand side of IFRU. It is
  unbounded below along directions the remaining data do not constrain, so it needs the
  proximal term below (τ > 0).
- Proximal term ``(τ/2) Σ_v s_v ‖e_v − ê_v‖²`` over the active rows, ``s_v`` the row's mean
  curvature at ``Ê``: a trust region around the trained model in each row's own scale.
  All of it is ``Φ(E)``.
- Sub-problems: one d-dimensional problem per embedding row. A user phase moves every
  active user row with the item rows fixed, then an item phase does the converse; one
  user phase plus one item phase is a round. Active rows: the users and items of ``D_r``,
  optionally grown by ``hops`` neighbourhoods of the training interaction graph, minus rows
  with no remaining interaction (``D_{-r}`` says nothing about them: they keep ``ê_v``).
- MF curvature: the exact row Hessian ``H_v = Σ_{j ∋ v} ℓ''_j e_o e_oᵀ`` (+ λ and the
  proximal weight on the diagonal), ``e_o`` the other endpoint, built for all rows at once
  by degree-bucketed batched matmuls. With the other side fixed the rows are independent,
  so a phase is an exact block-Newton step, solved by one batched Cholesky factorisation.
- Damping. A row with fewer interactions than ``d`` has a singular ``H_v`` (no L2), and a
  row whose labels are separable has no minimiser. Each row solves ``(H_v + μ_v I) δ = −g_v``
  with Levenberg–Marquardt ``μ_v = ρ_v (s_v + s̄)``: ``s_v = tr(H_v)/d`` scales it to the
  row, and the phase mean ``s̄`` still bounds the step of a confidently-wrong row, whose
  ``ℓ''`` ≈ 0 while its gradient is not. A step is kept only if it lowers the row's ``Φ``
  (exact per row for MF): then ``ρ /= 3``, else ``ρ *= 4`` and the row retries, at most
  ``max_backtracks`` times per phase.
- LightGCN: sub-problems on the base rows ``e_v``, scores from the propagated table, the
  gradient exact (autograd through ``propagate`` over the whole of ``D_{-r}``). The rows of
  one side are coupled through their shared neighbours' propagated rows, and a
  block-diagonal step alone overshoots (measured: the item phase was rejected up to
  ρ ≈ 1e4), so each phase solves ``(H_φφ + μ) t = −g_φ`` jointly by truncated CG on exact
  Hessian-vector products (``ops.plan_hvp`` restricted to the phase's rows, prepared once), preconditioned by
  per-row blocks. The block of ``e_v`` is the Gauss–Newton diagonal block with the cross
  terms between different rows of ``F`` dropped, ``C_v = Σ_w P_wv² B_w`` with ``B_w`` the MF
  block at ``F``: for one layer ``¼(B_v + Σ_w Â_vw² B_w)``; for K layers
  ``(1/(K+1)²) Σ_k (Â∘Â)^k B`` (cross products of paths dropped). One ρ per phase; the
  step is kept only if ``Φ`` as a whole drops.
- Stopping: after each round, the relative gradient norm ``‖∇Φ‖/‖∇Φ(Ê)‖`` over the
  active rows (below ``tol``: converged), the whole-validation AUC (``patience`` rounds
  without a strict improvement; the best round is returned, the start being round 0),
  ``max_rounds``, or a round in which no step was accepted.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torch.nn.functional import softplus

from .. import ops
from ..data import RecDataset
from ..models import Recommender, copy_model
from ..training import EarlyStopping
from .base import PhaseClock, SolveReport, UnlearnResult
from .curvature import damped_newton_directions, row_newton_systems
from .objective import RemainingObjective, ratio, remaining_graph, squared_weights, within_hops
from .solvers import conjugate_gradient

__all__ = ["AltEraserConfig", "alteraser"]

Objective = Literal["remaining", "anchored"]
# Per-objective defaults of AltEraserConfig's None fields (chosen on BookCrossing MF validation AUC).
_OBJECTIVE_DEFAULTS: dict[str, dict[str, float]] = {
    "remaining": {"proximal": 0.0, "damping": 100.0},
    "anchored": {"proximal": 10.0, "damping": 1.0},
}

# Levenberg–Marquardt factor updates after an accepted / rejected step, and the value a
# zero factor jumps to on rejection (so damping = 0, a pure Newton step, can still back off).
_DAMPING_DOWN, _DAMPING_UP, _DAMPING_RESTART = 1 / 3, 4.0, 1e-3
# μ floor relative to the mean block diagonal: keeps float32 Cholesky of rank-deficient rows defined.
_DAMPING_FLOOR = 1e-7


@dataclass(frozen=True)
class AltEraserConfig:
    """AltEraser settings (the module docstring explains each choice).

    max_rounds: user phase + item phase rounds at most.
    tol: stop when ‖∇Φ‖ over the active rows falls below ``tol`` times its start value.
    hops: grow the active rows by this many neighbourhoods of the training interaction graph.
    objective: ``remaining`` — ``L_{-r}`` (the paper's AltEraser); ``anchored`` — ``L_{-r}``
        tilted so that the trained model is its own stationary point when nothing is removed.
    proximal: τ of the proximal term ``(τ/2) Σ_v s_v ‖e_v − ê_v‖²`` (``s_v`` the row's mean
        curvature at Ê); None: 0 for ``remaining``, 10 for ``anchored`` (which needs τ > 0).
    damping: initial Levenberg–Marquardt factor ρ; 0 is a pure Newton step. None: 100 for
        ``remaining``, 1 for ``anchored`` (the best validation AUC on BookCrossing MF, README).
    max_backtracks: rejected-step retries (ρ *= 4) per phase.
    l2: λ of the objective (the trained model's; the authors use 0).
    validation_select: return the round with the best validation AUC and stop after
        ``patience`` rounds without improvement; False returns the last round.
    cg_iterations, cg_tol: the LightGCN phase's preconditioned CG (iterations, relative residual).
    """

    max_rounds: int = 10
    tol: float = 1e-3
    hops: int = 0
    objective: Objective = "remaining"
    proximal: float | None = None
    damping: float | None = None
    max_backtracks: int = 6
    l2: float = 0.0
    validation_select: bool = True
    patience: int = 2
    cg_iterations: int = 3
    cg_tol: float = 1e-2

    def __post_init__(self) -> None:
        if self.objective not in _OBJECTIVE_DEFAULTS:
            raise ValueError(f"objective must be one of {sorted(_OBJECTIVE_DEFAULTS)}, got {self.objective!r}")
        proximal, damping = self.resolved()
        if self.max_rounds <= 0 or self.patience <= 0 or self.cg_iterations <= 0:
            raise ValueError(f"max_rounds, patience and cg_iterations must be positive: {self}")
        if min(self.tol, self.hops, damping, self.max_backtracks, self.l2, proximal, self.cg_tol) < 0:
            raise ValueError(f"tol, hops, damping, max_backtracks, l2, proximal and cg_tol must be >= 0: {self}")
        if self.objective == "anchored" and proximal == 0:
            raise ValueError("the anchored objective is unbounded below without a proximal term: proximal must be > 0")

    def resolved(self) -> tuple[float, float]:
        """``(proximal τ, damping ρ)`` with the objective's defaults in place of None."""
        defaults = _OBJECTIVE_DEFAULTS[self.objective]
        proximal = defaults["proximal"] if self.proximal is None else self.proximal
        damping = defaults["damping"] if self.damping is None else self.damping
        return proximal, damping


def _row_losses(row_values: Tensor, slots: Tensor, partners: Tensor, labels: Tensor) -> Tensor:
    """Data loss [a] (float64) at candidate rows ``row_values [a, d]``; slots [s] index them; partners [s, d]."""
    logits = (row_values[slots] * partners).sum(1).double()
    losses = softplus(logits) - labels * logits
    return torch.zeros(row_values.shape[0], dtype=torch.float64, device=slots.device).index_add_(0, slots, losses)


def _damping_scale(blocks: Tensor) -> tuple[Tensor, Tensor]:
    """What ρ multiplies: ``s_v + s̄`` [a], and the μ floor (0-dim), for blocks [a, d, d].

    ``s_v = tr(B_v)/d`` alone (Marquardt) fails for a row whose predictions are confidently
    wrong: ℓ'' ≈ 0 there while the gradient is not, so no ρ would shorten its step; the
    phase mean ``s̄`` (Levenberg) does. The floor keeps the Cholesky factorisation defined at ρ = 0.
    """
    row_scale = blocks.diagonal(dim1=1, dim2=2).mean(1)
    mean_scale = row_scale.mean()
    return row_scale + mean_scale, _DAMPING_FLOOR * mean_scale + torch.finfo(blocks.dtype).tiny


def _mf_phase(emb: Tensor, rows: Tensor, own: Tensor, other: Tensor, labels: Tensor, ridge: Tensor,
              linear: Tensor, factors: Tensor, config: AltEraserConfig) -> int:
    """One exact block-Newton phase of MF on ``rows`` (other side fixed), in place; returns rows moved.

    emb: [N, d]; rows: sorted int64 [a]; own/other/labels: the D_{-r} interactions with own ∈ rows.
    In sum units each row minimises ``Σ_j ℓ_j + (ridge_v/2)‖e‖² − ⟨linear_v, e⟩`` (ridge [N] and
    linear [N, d] carry λ, the proximal term and the anchor); factors: per-node
    Levenberg–Marquardt ρ [N], updated in place.
    """
    if rows.numel() == 0:
        return 0
    current, row_ridge, row_linear = emb[rows], ridge[rows], linear[rows]

    def penalty(values: Tensor) -> Tensor:  # [a], float64 like the data loss
        return (0.5 * row_ridge * values.pow(2).sum(1) - (row_linear * values).sum(1)).double()

    data_loss, grad, hessian = row_newton_systems(emb, own, other, labels, rows)
    loss = data_loss + penalty(current)
    grad = grad + row_ridge[:, None] * current - row_linear
    hessian = hessian + row_ridge[:, None, None] * torch.eye(emb.shape[1], dtype=emb.dtype, device=emb.device)
    scale, floor = _damping_scale(hessian)
    slots = torch.searchsorted(rows, own)
    partners = emb[other]  # the fixed side, [s, d]
    rho = factors[rows]
    pending = grad.abs().amax(1) > 0  # a row at an exact stationary point has nothing to do
    moved = torch.zeros_like(pending)
    for _ in range(config.max_backtracks + 1):
        direction, ok = damped_newton_directions(grad, hessian, rho * scale + floor)
        candidate = torch.where(pending[:, None], current + direction, current)
        candidate_loss = _row_losses(candidate, slots, partners, labels) + penalty(candidate)
        better = pending & ok & (candidate_loss < loss)
        current = torch.where(better[:, None], candidate, current)
        moved |= better
        rejected = pending & ~better
        rho = torch.where(better, rho * _DAMPING_DOWN,
                          torch.where(rejected, (rho * _DAMPING_UP).clamp(min=_DAMPING_RESTART), rho))
        pending = rejected
        if not bool(pending.any()):
            break
    emb[rows] = current
    factors[rows] = rho
    return int(moved.sum())


# --------------------------------------------------------------------------- AltEraser: LightGCN


def _lightgcn_curvature(emb: Tensor, rows: Tensor, objective: RemainingObjective) -> Tensor:
    """``C_v = Σ_w P_wv² B_w(F)`` for base rows ``rows`` [a] → [a, d, d], mean units, plus ``(λ + w_v) I``."""
    num_nodes, dim = emb.shape
    graph, num_layers = objective.graph, objective.num_layers
    selected = torch.zeros(num_nodes, dtype=torch.bool, device=emb.device)
    selected[rows] = True
    needed = within_hops(selected, graph, num_layers)
    needed_rows = needed.nonzero().squeeze(1)
    # Both directions of every D_{-r} interaction whose own endpoint is needed.
    own = torch.cat((objective.users, objective.items))
    other = torch.cat((objective.items, objective.users))
    labels = torch.cat((objective.labels, objective.labels))
    touching = needed[own]
    _, _, blocks = row_newton_systems(objective.table(emb), own[touching], other[touching], labels[touching],
                                      needed_rows)
    flat = blocks.reshape(-1, dim * dim) / objective.labels.numel()  # B on the needed rows [c, d²]
    # propagate gives (1/(K+1)) Σ_k (Â∘Â)^k B; one more 1/(K+1) makes the weights P∘P exactly for
    # K = 1 (P = (I + Â)/2 and I∘Â = 0); for K > 1 it drops the cross products of different paths.
    # Read on the needed rows and summed on ``rows`` only (no [N, d²] table).
    curvature = ops.propagate_rows(flat, squared_weights(graph), num_layers, x_rows=needed_rows, out_rows=rows)
    curvature = curvature.reshape(-1, dim, dim) / (num_layers + 1)
    ridge = torch.full((rows.numel(),), objective.l2, dtype=emb.dtype, device=emb.device)
    if objective.proximal is not None:
        ridge = ridge + objective.proximal[rows]
    return curvature + ridge[:, None, None] * torch.eye(dim, dtype=emb.dtype, device=emb.device)


def _lightgcn_phase(emb: Tensor, rows: Tensor, objective: RemainingObjective, factor: list[float],
                    config: AltEraserConfig) -> int:
    """One damped Newton phase of LightGCN on base ``rows``, kept only if ``Φ`` drops.

    The rows of one side are coupled through the propagated rows of their shared
    neighbours, so the phase's system ``(H_φφ + μ) t = −g_φ`` is solved jointly: truncated
    CG on exact Hessian-vector products (``ops.plan_hvp`` restricted to φ, prepared once), preconditioned by the
    per-row blocks ``C_v + μ_v I`` (batched Cholesky). Updates ``emb`` [N, d] in place and the
    phase's ρ (``factor[0]``); returns the rows moved.
    """
    if rows.numel() == 0:
        return 0
    keep = torch.zeros(emb.shape[0], dtype=torch.bool, device=emb.device)
    keep[rows] = True
    value, grad = objective.gradient(emb)
    rhs = -grad * keep[:, None]  # [N, d], zero outside φ
    blocks = _lightgcn_curvature(emb, rows, objective)  # [a, d, d]
    scale, floor = _damping_scale(blocks)
    for _ in range(config.max_backtracks + 1):
        apply, precondition = _damped_phase_system(emb, rows, keep, objective, blocks, factor[0] * scale + floor)
        step, _ = conjugate_gradient(apply, rhs, tol=config.cg_tol, max_iter=config.cg_iterations,
                                     preconditioner=precondition)
        candidate = emb + step
        with torch.no_grad():
            accepted = bool(objective.value(candidate) < value)
        if accepted:
            emb.copy_(candidate)
            factor[0] *= _DAMPING_DOWN
            return rows.numel()
        factor[0] = max(factor[0] * _DAMPING_UP, _DAMPING_RESTART)
    return 0


def _damped_phase_system(emb: Tensor, rows: Tensor, keep: Tensor, objective: RemainingObjective, blocks: Tensor,
                         damping: Tensor) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
    """``v ↦ (H_φφ + diag(w) + μ) v`` and its block preconditioner ``r ↦ (C_v + μ_v I)⁻¹ r_v``.

    keep: bool [N] marks φ = ``rows`` [a]; blocks ``C`` [a, d, d] already hold λ and the proximal
    weights; damping μ [a]. Both maps take and return [N, d] tensors that are zero outside φ.
    """
    shift = torch.zeros(emb.shape[0], dtype=emb.dtype, device=emb.device)  # proximal weight + μ, [N]
    if objective.proximal is not None:
        shift += objective.proximal
    shift[rows] += damping
    eye = torch.eye(emb.shape[1], dtype=emb.dtype, device=emb.device)
    factor, info = torch.linalg.cholesky_ex(blocks + damping[:, None, None] * eye)
    factor = torch.where((info == 0)[:, None, None], factor, eye)  # a failed block falls back to I

    # Prepared once per phase: the interactions φ reads, F = P E, the checks.
    hessian = ops.plan_hvp(emb, objective.users, objective.items, objective.labels, objective.graph,
                           objective.num_layers, objective.l2, keep)

    def apply(v: Tensor) -> Tensor:
        return hessian(v) + shift[:, None] * v * keep[:, None]

    def precondition(r: Tensor) -> Tensor:
        out = torch.zeros_like(r)
        out[rows] = torch.cholesky_solve(r[rows].unsqueeze(-1), factor).squeeze(-1)
        return out

    return apply, precondition


# --------------------------------------------------------------------------- AltEraser: driver


def _anchor(model: Recommender, dataset: RecDataset, removal: Tensor, l2: float) -> Tensor:
    """``(n/m)·∇L_D(Ê)`` [N, d] over the old graph: ``∇Φ(Ê)`` is then the removal's effect alone."""
    if model.num_layers > 0 and model.graph is None:
        raise ValueError("the LightGCN model has no graph: set the graph it was trained with first")
    nothing = torch.zeros(0, dtype=torch.int64)
    full = RemainingObjective(model, dataset, nothing, model.graph, l2)
    scale = len(dataset.train) / (len(dataset.train) - removal.numel())
    return full.gradient(model.embedding.detach())[1] * scale


def _active_rows(dataset: RecDataset, removal: Tensor, hops: int, device: torch.device) -> Tensor:
    """bool [N]: the users and items of ``D_r`` plus ``hops`` neighbourhoods over all training interactions."""
    users = dataset.train.users.to(device)
    items = (dataset.train.items + dataset.num_users).to(device)
    active = torch.zeros(dataset.num_users + dataset.num_items, dtype=torch.bool, device=device)
    removal = removal.to(device)
    active[users[removal]] = True
    active[items[removal]] = True
    for _ in range(hops):
        reached = active[users] | active[items]  # interactions with an active endpoint, [n]
        active[users[reached]] = True
        active[items[reached]] = True
    return active


def alteraser(model: Recommender, dataset: RecDataset, removal: Tensor, config: AltEraserConfig,
              clock: PhaseClock) -> UnlearnResult:
    """Runner (called by ``unlearn``): alternating damped block-Newton steps on ``Φ`` over the
    removal's rows.

    ``removal``: validated, non-empty int64 indices into ``dataset.train``. The input model
    is not modified; the result holds a copy whose rows outside the active set are unchanged
    (LightGCN: it predicts with the graph of ``D_{-r}``). Removing every training row raises
    ValueError. ``solve``: rounds run, the relative
    gradient norm ``‖∇Φ‖/‖∇Φ(Ê)‖`` over the active rows of the returned table, and why it
    stopped (``converged`` on ``tol``, ``validation`` on patience, ``stalled`` when no step
    was accepted in a round, or ``max_iter``). ``kept_rows``: the active rows. ``phases``:
    seconds of ``setup``, ``users``, ``items`` and ``check`` (gradient norm, validation AUC).
    """
    unlearned = copy_model(model)
    if removal.numel() == len(dataset.train):
        raise ValueError("the removal names every training row: nothing is left to re-optimise on")
    emb = model.embedding.detach().clone()
    device = emb.device
    graph = remaining_graph(model, dataset, removal)
    objective = RemainingObjective(model, dataset, removal, graph, config.l2)
    proximal, damping = config.resolved()
    scale = objective.curvature_scale(emb)
    # A row without remaining interactions is not determined by D_{-r}: it keeps its trained value.
    active = _active_rows(dataset, removal, config.hops, device) & (scale > 0)
    if proximal > 0:
        objective.proximal, objective.centre = proximal * scale * active, emb.clone()
    if config.objective == "anchored":
        objective.anchor = _anchor(model, dataset, removal, config.l2)
    user_rows = active[: dataset.num_users].nonzero().squeeze(1)
    item_rows = active[dataset.num_users :].nonzero().squeeze(1) + dataset.num_users

    phases: dict[str, Callable[[], int]]
    if model.num_layers == 0:
        # Φ in sum units (times m): per-row ridge m(λ + w_v) and linear term m(A_v + w_v ê_v).
        remaining = objective.labels.numel()
        weight = objective.proximal if objective.proximal is not None else torch.zeros_like(scale)  # w [N]
        ridge = remaining * (config.l2 + weight)
        linear = remaining * weight[:, None] * emb
        if objective.anchor is not None:
            linear += remaining * objective.anchor
        factors = torch.full_like(scale, damping)
        users, items, labels = objective.users, objective.items, objective.labels
        by_user, by_item = active[users], active[items]
        phases = {
            "users": lambda: _mf_phase(emb, user_rows, users[by_user], items[by_user], labels[by_user],
                                       ridge, linear, factors, config),
            "items": lambda: _mf_phase(emb, item_rows, items[by_item], users[by_item], labels[by_item],
                                       ridge, linear, factors, config),
        }
    else:
        user_factor, item_factor = [damping], [damping]
        phases = {
            "users": lambda: _lightgcn_phase(emb, user_rows, objective, user_factor, config),
            "items": lambda: _lightgcn_phase(emb, item_rows, objective, item_factor, config),
        }

    def active_gradient_norm() -> Tensor:
        return objective.gradient(emb)[1][active].norm()

    start_norm = active_gradient_norm()
    # The best round by validation AUC (the start is round 0), or the last without selection.
    stopper = EarlyStopping(config.patience)
    stopper.update(0, objective.valid_auc(emb), lambda: (emb.clone(), start_norm))
    clock.lap("setup")
    rounds, status = 0, "max_iter"
    for rounds in range(1, config.max_rounds + 1):
        moved = 0
        for name, phase in phases.items():
            moved += phase()
            clock.lap(name)
        norm, valid_auc = active_gradient_norm(), objective.valid_auc(emb)
        clock.lap("check")
        stopper.update(rounds, valid_auc, lambda: (emb.clone(), norm), accept=not config.validation_select)
        if moved == 0:
            status = "stalled"
            break
        if ratio(norm, start_norm) < config.tol:
            status = "converged"
            break
        if config.validation_select and stopper.should_stop(rounds):
            status = "validation"
            break

    best_emb, best_norm = stopper.best_state
    with torch.no_grad():
        unlearned.embedding.copy_(best_emb)
    if graph is not None:
        unlearned.set_graph(graph)
    report = SolveReport(rounds, ratio(best_norm, start_norm), status)
    return UnlearnResult(unlearned, "alteraser", solve=report, kept_rows=int(active.sum()))
