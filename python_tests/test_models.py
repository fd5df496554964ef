"""Tests of ifru_ext.models: forward against plain-PyTorch references, gradients, graph swaps."""
from __future__ import annotations

import copy

import pytest
import torch

from ifru_ext.graph import lightgcn_graph
from ifru_ext.models import DEFAULTS, MF, LightGCN, build_model

NUM_USERS, NUM_ITEMS = 7, 9


def random_rows(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """users, items (NOT offset), labels [n]; the last user and item stay isolated."""
    gen = torch.Generator().manual_seed(seed)
    users = torch.randint(0, NUM_USERS - 1, (n,), generator=gen)
    items = torch.randint(0, NUM_ITEMS - 1, (n,), generator=gen)
    labels = torch.randint(0, 2, (n,), generator=gen).float()
    return users, items, labels


def dense_propagation(users, items, labels, num_layers: int) -> torch.Tensor:
    """``P = (1/(K+1)) Σ_k Â^k`` [N, N] float64 built densely from the positive rows."""
    n = NUM_USERS + NUM_ITEMS
    adj = torch.zeros(n, n, dtype=torch.float64)
    pos = labels > 0.5
    adj[users[pos], items[pos] + NUM_USERS] = 1.0
    adj[items[pos] + NUM_USERS, users[pos]] = 1.0
    inv_sqrt = adj.sum(1).clamp(min=1).rsqrt()
    norm = inv_sqrt[:, None] * adj * inv_sqrt[None, :]
    power, total = torch.eye(n, dtype=torch.float64), torch.eye(n, dtype=torch.float64)
    for _ in range(num_layers):
        power = norm @ power
        total = total + power
    return total / (num_layers + 1)


def test_build_model_defaults_follow_the_paper():
    mf = build_model("mf", NUM_USERS, NUM_ITEMS)
    gcn = build_model("lightgcn", NUM_USERS, NUM_ITEMS)
    assert isinstance(mf, MF) and isinstance(gcn, LightGCN)
    assert (mf.dim, mf.num_layers, mf.init_std) == (48, 0, 1e-3)
    assert (gcn.dim, gcn.num_layers, gcn.init_std) == (32, 1, 1e-4)
    assert mf.embedding.shape == (NUM_USERS + NUM_ITEMS, 48)
    assert mf.graph is None and gcn.graph is None
    # The init std is the paper's: 1e-3 is a standard deviation, not a variance.
    big = build_model("mf", 2000, 3000, seed=0)
    assert abs(big.embedding.std().item() - 1e-3) < 2e-5


def test_config_rebuilds_the_model_and_seed_is_deterministic():
    model = build_model("lightgcn", NUM_USERS, NUM_ITEMS, dim=5, num_layers=2, init_std=0.1, seed=3)
    twin = build_model(**model.config(), seed=3)
    assert twin.config() == model.config() == {
        "name": "lightgcn", "num_users": NUM_USERS, "num_items": NUM_ITEMS, "dim": 5, "num_layers": 2, "init_std": 0.1,
    }
    assert torch.equal(twin.embedding, model.embedding)
    assert not torch.equal(build_model(**model.config(), seed=4).embedding, model.embedding)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "bpr"}, "unknown model"),
        ({"name": "mf", "num_layers": 1}, "MF has no layers"),
        ({"name": "lightgcn", "num_layers": 0}, "num_layers >= 1"),
        ({"name": "mf", "dim": 0}, "dim > 0"),
    ],
)
def test_build_model_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model(num_users=NUM_USERS, num_items=NUM_ITEMS, **kwargs)


def test_mf_forward_is_the_dot_product_of_user_and_item_rows():
    model = build_model("mf", NUM_USERS, NUM_ITEMS, dim=4, init_std=1.0, seed=0).double()
    users, items, _ = random_rows(30, seed=1)
    table = model.embedding.detach()
    expected = torch.stack([table[u] @ table[NUM_USERS + i] for u, i in zip(users.tolist(), items.tolist())])
    torch.testing.assert_close(model(users, items), expected)
    torch.testing.assert_close(model.score_all(users, items, chunk_size=7), expected)


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_lightgcn_forward_matches_dense_propagation(num_layers):
    users, items, labels = random_rows(40, seed=2)
    graph = lightgcn_graph(users, items, labels, NUM_USERS, NUM_ITEMS, dtype=torch.float64)
    model = build_model("lightgcn", NUM_USERS, NUM_ITEMS, dim=3, num_layers=num_layers, init_std=1.0, seed=0).double()
    model.set_graph(graph)
    table = dense_propagation(users, items, labels, num_layers) @ model.embedding.detach()
    torch.testing.assert_close(model.propagated(), table)
    expected = (table[users] * table[items + NUM_USERS]).sum(-1)
    torch.testing.assert_close(model(users, items), expected)
    torch.testing.assert_close(model.score_all(users, items, chunk_size=6), expected)


def test_lightgcn_gradient_matches_autograd_through_dense_propagation():
    users, items, labels = random_rows(40, seed=3)
    model = build_model("lightgcn", NUM_USERS, NUM_ITEMS, dim=3, num_layers=2, init_std=1.0, seed=0).double()
    model.set_graph(lightgcn_graph(users, items, labels, NUM_USERS, NUM_ITEMS))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(users[:5], items[:5]), labels[:5].double())
    (grad,) = torch.autograd.grad(loss, model.embedding)

    emb = model.embedding.detach().clone().requires_grad_()
    table = dense_propagation(users, items, labels, 2) @ emb
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        (table[users[:5]] * table[items[:5] + NUM_USERS]).sum(-1), labels[:5].double()
    )
    (expected,) = torch.autograd.grad(ref, emb)
    torch.testing.assert_close(grad, expected)
    # Propagation spreads the gradient beyond the rows of the batch.
    touched = torch.zeros(NUM_USERS + NUM_ITEMS, dtype=torch.bool)
    touched[users[:5]] = touched[items[:5] + NUM_USERS] = True
    assert grad[~touched].abs().sum() > 0


def test_mf_gradient_reaches_exactly_the_batch_rows():
    model = build_model("mf", NUM_USERS, NUM_ITEMS, dim=3, init_std=1.0, seed=0)
    users, items = torch.tensor([0, 2]), torch.tensor([1, 1])
    model(users, items).sum().backward()
    nonzero = model.embedding.grad.abs().sum(1) > 0
    assert nonzero.nonzero().flatten().tolist() == [0, 2, NUM_USERS + 1]


def test_set_graph_swaps_predictions_and_follows_dtype_and_device():
    users, items, labels = random_rows(40, seed=4)
    model = build_model("lightgcn", NUM_USERS, NUM_ITEMS, dim=3, init_std=1.0, seed=0)
    full = lightgcn_graph(users, items, labels, NUM_USERS, NUM_ITEMS)
    reduced = lightgcn_graph(users[10:], items[10:], labels[10:], NUM_USERS, NUM_ITEMS)
    model.set_graph(full)
    before = model.score_all(users, items)
    model.set_graph(reduced)
    assert torch.equal(model.graph.col, reduced.col)
    assert not torch.allclose(model.score_all(users, items), before)

    model.double()  # the graph weights follow the embedding dtype; indices stay int64
    assert model.graph.weight.dtype == torch.float64 and model.graph.rowptr.dtype == torch.int64
    model.set_graph(full)  # a float32 graph is cast on the way in
    assert model.graph.weight.dtype == torch.float64
    torch.testing.assert_close(model.score_all(users, items).float(), before)

    assert list(model.state_dict()) == ["embedding"]  # the graph is not state
    assert torch.equal(copy.deepcopy(model).graph.col, full.col)


def test_graph_errors_and_mf_ignores_graphs():
    users, items, labels = random_rows(20, seed=5)
    graph = lightgcn_graph(users, items, labels, NUM_USERS, NUM_ITEMS)
    gcn = build_model("lightgcn", NUM_USERS, NUM_ITEMS)
    with pytest.raises(RuntimeError, match="set_graph"):
        gcn(users, items)
    with pytest.raises(ValueError, match="nodes"):
        gcn.set_graph(lightgcn_graph(users, items, labels, NUM_USERS + 1, NUM_ITEMS))
    mf = build_model("mf", NUM_USERS, NUM_ITEMS, graph=graph)
    mf.set_graph(graph)
    assert mf.graph is None


def test_score_all_needs_no_grad_and_handles_empty_input():
    model = build_model("mf", NUM_USERS, NUM_ITEMS, seed=0)
    users, items, _ = random_rows(10, seed=6)
    scores = model.score_all(users, items)
    assert not scores.requires_grad and scores.shape == (10,)
    assert model.score_all(users[:0], items[:0]).shape == (0,)


def test_defaults_table_matches_build_model():
    for name, values in DEFAULTS.items():
        config = build_model(name, NUM_USERS, NUM_ITEMS).config()
        assert {key: config[key] for key in values} == values
