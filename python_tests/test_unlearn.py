"""IFRU against the truth: the re-optimised minimiser on a small L2-regularised problem.

MF and LightGCN here use d = 1, which removes the continuous rotation symmetry
(E ↦ E R) that makes H singular for d ≥ 2 — with it the Newton step is only defined
up to that gauge and a parameter-space comparison would be meaningless.
"""
from __future__ import annotations

import pytest
import torch
from torch.nn.functional import binary_cross_entropy_with_logits

from ifru_ext import propagate
from ifru_ext.data import Interactions, RecDataset
from ifru_ext.models import build_model
from ifru_ext.unlearning.solvers import adam_solve, conjugate_gradient
from ifru_ext.unlearning import UnlearnConfig, unlearn
from ifru_ext.unlearning.influence import influence_gradient

L2 = 0.003
NO_PRUNING = (1.0, 1.0, 1.0, 1.0)


def planted_dataset(num_users=20, num_items=25, n=1200, seed=0) -> RecDataset:
    """Labels drawn from a planted rank-2 logistic model, so the fit is non-trivial."""
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.randn(num_users, 2, generator=gen), torch.randn(num_items, 2, generator=gen)
    users, items = torch.randint(0, num_users, (n,), generator=gen), torch.randint(0, num_items, (n,), generator=gen)
    labels = (torch.rand(n, generator=gen) < torch.sigmoid(2 * (a[users] * b[items]).sum(1))).float()
    train = Interactions(users, items, labels)
    return RecDataset(num_users, num_items, train, train, train, torch.zeros(0, dtype=torch.long), None, None)


def objective(emb, dataset, rows, graph, num_layers):
    """(1/n) Σ_rows ℓ + (λ/2)‖E‖² with n = |D| (the paper's eq. 7 normalisation)."""
    f = emb if num_layers == 0 else propagate(emb, graph, num_layers)
    users, items = dataset.train.users[rows], dataset.train.items[rows] + dataset.num_users
    loss = binary_cross_entropy_with_logits((f[users] * f[items]).sum(1), dataset.train.labels[rows].double(), reduction="sum")
    return loss / len(dataset.train) + 0.5 * L2 * (emb * emb).sum()


def minimise(start, dataset, rows, graph, num_layers):
    emb = start.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([emb], lr=1, max_iter=1000, tolerance_grad=1e-14, tolerance_change=1e-16,
                                  history_size=50, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = objective(emb, dataset, rows, graph, num_layers)
        loss.backward()
        return loss

    for _ in range(3):
        optimizer.step(closure)
    return emb.detach()


def all_scores(emb, dataset, graph, num_layers):
    f = emb if num_layers == 0 else propagate(emb, graph, num_layers)
    return f[: dataset.num_users] @ f[dataset.num_users :].T


@pytest.fixture(scope="module", params=["mf", "lightgcn"])
def trained(request):
    dataset = planted_dataset()
    num_layers = 0 if request.param == "mf" else 1
    model = build_model(request.param, dataset.num_users, dataset.num_items, dim=1, init_std=1.0, seed=0).double()
    model.set_graph(dataset.graph(dtype=torch.float64))
    everything = torch.ones(len(dataset.train), dtype=torch.bool)
    with torch.no_grad():
        model.embedding.copy_(minimise(model.embedding.detach(), dataset, everything, model.graph, num_layers))
    return model, dataset, num_layers


def relative_error(model, dataset, num_layers, removal, **config):
    """‖scores(IFRU) − scores(retrained optimum)‖ / ‖scores(retrained optimum) − scores(original)‖."""
    kept = torch.ones(len(dataset.train), dtype=torch.bool)
    kept[removal] = False
    new_graph = dataset.graph(removal=removal, dtype=torch.float64)
    optimum = minimise(model.embedding.detach(), dataset, kept, new_graph, num_layers)
    result = unlearn(model, dataset, removal, UnlearnConfig(response="newton", l2=L2, solver="cg", validation_select=False, tol=1e-10, max_iter=500, ratios=NO_PRUNING, **config))
    assert result.solve.status == "converged"
    target = all_scores(optimum, dataset, new_graph, num_layers)
    original = all_scores(model.embedding.detach(), dataset, model.graph, num_layers)
    estimate = all_scores(result.model.embedding.detach(), dataset, new_graph, num_layers)
    return float((estimate - target).norm() / (target - original).norm())


REMOVALS = {size: [torch.randperm(1200, generator=torch.Generator().manual_seed(s))[:size] for s in range(3)]
            for size in (2, 32)}


def test_ifru_matches_reoptimised_minimiser_to_first_order(trained):
    model, dataset, num_layers = trained
    errors = {size: [relative_error(model, dataset, num_layers, r) for r in sets] for size, sets in REMOVALS.items()}
    assert max(errors[2] + errors[32]) < 0.12, errors
    # The Newton step's error is second order in the shift: relatively smaller for smaller requests.
    assert sum(errors[2]) < sum(errors[32]), errors


def test_spillover_and_exact_hessian_matter_for_lightgcn(trained):
    model, dataset, num_layers = trained
    if num_layers == 0:
        pytest.skip("MF has no graph: no spillover")
    removal = REMOVALS[32][0]
    assert bool((dataset.train.labels[removal] == 1).any())  # some graph edges really go
    full = relative_error(model, dataset, num_layers, removal)
    no_spillover = relative_error(model, dataset, num_layers, removal, spillover=False)
    reference_hessian = relative_error(model, dataset, num_layers, removal, hessian="reference")
    assert full < 0.5 * no_spillover
    assert full < 0.5 * reference_hessian


def test_spillover_gradient_matches_finite_difference(trained):
    model, dataset, num_layers = trained
    if num_layers == 0:
        pytest.skip("MF has no graph")
    removal = REMOVALS[32][1]
    old_graph, new_graph = model.graph, dataset.graph(removal=removal, dtype=torch.float64)
    emb = model.embedding.detach()
    kept = torch.ones(len(dataset.train), dtype=torch.bool)
    kept[removal] = False
    users, items = dataset.train.users, dataset.train.items + dataset.num_users
    labels = dataset.train.labels.double()

    def spillover_loss(e):
        def summed(graph):
            f = propagate(e, graph, num_layers)
            return binary_cross_entropy_with_logits((f[users[kept]] * f[items[kept]]).sum(1), labels[kept], reduction="sum")
        return summed(old_graph) - summed(new_graph)

    direct = influence_gradient(emb, dataset, removal, num_layers, old_graph, new_graph, spillover=False)
    total = influence_gradient(emb, dataset, removal, num_layers, old_graph, new_graph, spillover=True)
    direction = torch.randn(emb.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    h = 1e-5
    finite_difference = (spillover_loss(emb + h * direction) - spillover_loss(emb - h * direction)) / (2 * h)
    assert float(((total - direct) * direction).sum()) == pytest.approx(float(finite_difference), rel=1e-6)


def test_cg_and_adam_agree_on_the_influence_system(trained):
    model, dataset, num_layers = trained
    removal = REMOVALS[32][2]
    exact = dict(response="newton", l2=L2, validation_select=False, ratios=NO_PRUNING)
    cg = unlearn(model, dataset, removal, UnlearnConfig(solver="cg", tol=1e-10, max_iter=500, **exact))
    adam = unlearn(model, dataset, removal, UnlearnConfig(solver="adam", adam_lr=2.0, tol=1e-6, max_iter=5000, **exact))
    delta_cg = (cg.model.embedding - model.embedding).detach()
    delta_adam = (adam.model.embedding - model.embedding).detach()
    assert float((delta_adam - delta_cg).norm() / delta_cg.norm()) < 0.02


def test_block_jacobi_preconditioner_solves_the_same_system_in_fewer_iterations(trained):
    model, dataset, num_layers = trained
    removal = REMOVALS[32][0]
    base = dict(response="newton", l2=L2, solver="cg", validation_select=False, tol=1e-10, max_iter=500, ratios=NO_PRUNING)
    plain = unlearn(model, dataset, removal, UnlearnConfig(**base))
    preconditioned = unlearn(model, dataset, removal, UnlearnConfig(preconditioner="block-jacobi", **base))
    torch.testing.assert_close(preconditioned.model.embedding, plain.model.embedding, rtol=1e-6, atol=1e-8)
    assert preconditioned.solve.iterations <= plain.solve.iterations


def test_solvers_on_a_known_spd_system():
    gen = torch.Generator().manual_seed(3)
    q = torch.linalg.qr(torch.randn(30, 30, generator=gen, dtype=torch.float64))[0]
    matrix = q @ torch.diag(torch.logspace(-2, 1, 30, dtype=torch.float64)) @ q.T
    g = torch.randn(30, 1, generator=gen, dtype=torch.float64)
    exact = torch.linalg.solve(matrix, g)
    t, report = conjugate_gradient(lambda v: matrix @ v, g, tol=1e-12, max_iter=200)
    assert report.status == "converged" and report.residual < 1e-12
    torch.testing.assert_close(t, exact, rtol=1e-9, atol=1e-10)
    # Without the true residual: the same iterate, one product fewer, the recursion's residual.
    products = []
    recursive_t, recursive = conjugate_gradient(lambda v: products.append(1) or matrix @ v, g, tol=1e-6,
                                                max_iter=200, true_residual=False)
    assert len(products) == recursive.iterations
    true_t, true = conjugate_gradient(lambda v: matrix @ v, g, tol=1e-6, max_iter=200)
    assert torch.equal(recursive_t, true_t) and recursive.status == true.status == "converged"
    assert recursive.residual == pytest.approx(true.residual, rel=1e-6)
    t, report = adam_solve(lambda v: matrix @ v, g, lr=0.05, tol=1e-5, max_iter=20000)
    assert report.residual < 1e-5
    # Every iteration reads the residual: CG stops where it converges (the identity in one step).
    t, report = conjugate_gradient(lambda v: v, g, tol=1e-12)
    assert (report.iterations, report.status) == (1, "converged") and torch.equal(t, g)
    # Indefinite: CG stops and says so instead of returning garbage silently.
    _, report = conjugate_gradient(lambda v: -matrix @ v, g, tol=1e-12, max_iter=50)
    assert (report.iterations, report.status) == (0, "negative_curvature")
    # Selection walks the same iterates (updated in place) and keeps a copy of the best: scores
    # peaking at the second iterate return plain CG's second iterate, not the last one scored.
    scores = iter([0.0, 1.0, 5.0, 2.0, 1.0, 0.0])
    best, report = conjugate_gradient(lambda v: matrix @ v, g, max_iter=50, select=lambda t: next(scores), patience=3)
    second, _ = conjugate_gradient(lambda v: matrix @ v, g, tol=0.0, max_iter=2)
    assert report.status == "validation" and report.iterations == 5 and torch.equal(best, second)


def test_empty_request_returns_the_model_unchanged(trained):
    model, dataset, _ = trained
    result = unlearn(model, dataset, torch.zeros(0, dtype=torch.long))
    assert torch.equal(result.model.embedding, model.embedding)
    assert result.model is not model


def test_a_request_does_not_score_the_original_again(trained, monkeypatch):
    """The evidence's forget loss before the request and the blow-up check's scale come from the
    original's training logits, scored once per model state (LightGCN: a propagation of the whole
    table), not on every request; the forget loss is the one scored directly."""
    model, dataset, _ = trained
    scored = []
    score_all = type(model).score_all

    def counting(self, *args, **kwargs):
        scored.append(self)
        return score_all(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "score_all", counting)
    config = UnlearnConfig(response="newton", l2=L2, solver="cg", validation_select=False, tol=1e-6, max_iter=50,
                           ratios=NO_PRUNING)
    unlearn(model, dataset, REMOVALS[2][0], config)
    scored.clear()
    second = unlearn(model, dataset, REMOVALS[2][1], config)
    assert not any(s is model for s in scored) and len(scored) == 1  # the answer's logits on the removed rows
    monkeypatch.undo()
    selected = dataset.train.select(REMOVALS[2][1])
    direct = binary_cross_entropy_with_logits(model.score_all(selected.users, selected.items).double(), selected.labels.double())
    assert second.forget_loss_before == pytest.approx(float(direct), rel=1e-12)


@pytest.mark.parametrize(
    "removal, fragment",
    [
        (torch.tensor([0, 5, 5]), "more than once"),
        (torch.tensor([3, 1200, -1]), "not training rows"),
        (torch.tensor([0.0, 1.0]), "integer"),
        (torch.tensor([[0, 1]]), "1-D"),
    ],
)
def test_bad_requests_are_refused_and_change_nothing(trained, removal, fragment):
    model, dataset, _ = trained
    before = model.embedding.detach().clone()
    with pytest.raises(ValueError, match=fragment):
        unlearn(model, dataset, removal)
    assert torch.equal(model.embedding, before)


def test_adam_solve_follows_torch_adam():
    gen = torch.Generator().manual_seed(4)
    matrix = torch.randn(12, 12, generator=gen, dtype=torch.float64)
    matrix = matrix @ matrix.T + torch.eye(12, dtype=torch.float64)
    g = torch.randn(12, 2, generator=gen, dtype=torch.float64)
    ours, report = adam_solve(lambda v: matrix @ v, g, lr=0.1, tol=0.0, max_iter=25)
    t = torch.zeros_like(g, requires_grad=True)
    optimizer = torch.optim.Adam([t], lr=0.1)
    for _ in range(25):
        t.grad = matrix @ t.detach() - g
        optimizer.step()
    assert report.iterations == 25
    torch.testing.assert_close(ours, t.detach(), rtol=1e-12, atol=1e-12)


def test_autograd_backend_gives_the_same_update(trained):
    model, dataset, num_layers = trained
    removal = REMOVALS[32][0]
    exact = dict(response="newton", l2=L2, solver="cg", validation_select=False, tol=1e-10, max_iter=500)
    fused = unlearn(model, dataset, removal, UnlearnConfig(**exact))
    plain = unlearn(model, dataset, removal, UnlearnConfig(backend="autograd", **exact))
    torch.testing.assert_close(plain.model.embedding, fused.model.embedding, rtol=1e-7, atol=1e-9)
