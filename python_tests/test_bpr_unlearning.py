"""The default estimator on BPR models (ifru_ext.unlearning.terms / response): the Gauss–Newton
operator over the triples and the influence right-hand side (LightGCN spillover included)
against float64 autograd references, the label-0 rows BPR never trained on, orphaned users,
refusals, and forgetting on a real BookCrossing slice against Retrain."""
from __future__ import annotations

import warnings
from dataclasses import replace

import pytest
import torch
from torch.nn.functional import softplus

from ifru_ext.data import load_dataset
from ifru_ext.models import build_model
from ifru_ext.training import TrainConfig, bpr_negatives, bpr_rows, train
from ifru_ext.unlearning import UnlearnConfig, unlearn
from ifru_ext.unlearning.influence import influence_gradient
from ifru_ext.unlearning.response import ResponsePlan, orphaned_rows, training_damping
from ifru_ext.unlearning.terms import BPR_EPOCHS, bpr_forget_loss, segment_epochs

from test_train import BX_FILE, planted_dataset

BPR = TrainConfig(lr=0.05, batch_size=256, max_epochs=8, patience=8, loss="bpr")


@pytest.fixture(scope="module")
def planted():
    return planted_dataset()


def trained(dataset, name: str, config: TrainConfig = BPR, removal=None):
    model = build_model(name, dataset.num_users, dataset.num_items, dim=4, init_std=0.1, seed=0).double()
    train(model, dataset, config, removal=removal, progress=False)
    return model


def dense_propagation(graph, num_layers: int):
    """``table ↦ P table`` with the dense ``Â`` of ``graph`` (identity for MF)."""
    if graph is None:
        return lambda table: table
    dense = graph.to_sparse_coo().to_dense()

    def propagate(table):
        power, total = table, table
        for _ in range(num_layers):
            power = dense @ power
            total = total + power
        return total / (num_layers + 1)

    return propagate


def segment_triples(dataset, trace, removal, segment: int):
    """Every BPR triple of ``segment``'s epochs (``segment_epochs``), in stacked ids, as
    (users, items, negatives, removed [bool], weights)."""
    epochs = segment_epochs(trace, BPR_EPOCHS)[segment]
    positives = bpr_rows(dataset)
    parts = [(dataset.train.users[positives], dataset.train.items[positives] + dataset.num_users,
              bpr_negatives(dataset, positives, epoch, trace.seed) + dataset.num_users) for epoch in epochs]
    users, items, negatives = (torch.cat([part[c] for part in parts]) for c in range(3))
    removed = torch.isin(positives, removal).repeat(len(epochs))
    return users, items, negatives, removed, torch.full((users.numel(),), 1.0 / len(epochs), dtype=torch.float64)


def test_segments_read_the_last_epochs_of_each_segment(planted):
    trace = trained(planted, "mf").trace
    epochs = segment_epochs(trace, None)
    assert [e for segment in epochs for e in segment] == list(range(1, trace.best_epoch + 1))  # every epoch once
    last = segment_epochs(trace, 1)
    assert [segment[-1] for segment in epochs] == [segment[0] for segment in last]
    assert len(epochs) == len(trace.segments())


@pytest.mark.parametrize("name", ["mf", "lightgcn"])
def test_the_operator_is_gauss_newton_over_the_remaining_triples(planted, name):
    model = trained(planted, name)
    trace = model.trace
    positives = bpr_rows(planted)
    removal = positives[::23]
    graph = planted.graph(removal, dtype=torch.float64) if model.num_layers else None
    keep = torch.ones(model.num_nodes, dtype=torch.bool)
    keep[::5] = False  # a pruned operator: rows outside keep neither move nor receive
    plan = ResponsePlan(planted, removal, keep, model.num_layers, graph, model.graph, torch.device("cpu"),
                        torch.float64, trace=trace)
    segment = len(trace.segments()) - 1
    emb = model.embedding.detach()
    system = plan.system(plan.local(emb), (training_damping(trace) + trace.l2)[keep], segment)

    users, items, negatives, removed, weights = segment_triples(planted, trace, removal, segment)
    users, items, negatives, weights = users[~removed], items[~removed], negatives[~removed], weights[~removed]
    propagate = dense_propagation(graph, model.num_layers)

    def logits(flat):
        table = propagate(flat.view_as(emb))
        return (table[users] * (table[items] - table[negatives])).sum(1)

    jacobian = torch.func.jacfwd(logits)(emb.reshape(-1))  # [m, N·d]
    prob = torch.sigmoid(logits(emb.reshape(-1)))
    reference = jacobian.T @ ((prob * (1 - prob) * weights)[:, None] * jacobian) / len(positives)
    reference += torch.diag((training_damping(trace) + trace.l2).reshape(-1))
    v = torch.randn(int(keep.sum()), model.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = (reference @ plan.scatter(v).reshape(-1)).view_as(emb)[keep]
    assert float((system.apply(v) - expected).norm() / expected.norm()) < 1e-10
    if name == "mf":  # the preconditioner inverts the operator's own diagonal, BPR's three rows included
        diagonal = reference.diagonal().view_as(emb)[keep]
        assert torch.allclose(system.precondition(diagonal * v), v, atol=1e-10)


@pytest.mark.parametrize("loss", ["bce", "bpr"])
def test_the_lightgcn_right_hand_side_is_the_exact_spillover_gradient(planted, loss):
    """``g = ∇L_d + ∇L_s`` from the plan's terms only equals the autograd gradient over EVERY
    remaining term with the old and the new graph: terms the graph change does not reach cancel."""
    config = replace(BPR, loss=loss)
    model = trained(planted, "lightgcn", config)
    trace = model.trace
    removal = bpr_rows(planted)[::9] if loss == "bpr" else torch.arange(0, len(planted.train), 41)
    new_graph = planted.graph(removal, dtype=torch.float64)
    keep = torch.zeros(model.num_nodes, dtype=torch.bool)
    keep[torch.arange(0, model.num_nodes, 3)] = True  # need not hold every endpoint: the plan adds them
    plan = ResponsePlan(planted, removal, keep, 1, new_graph, model.graph, torch.device("cpu"), torch.float64,
                        trace=trace)
    emb = model.embedding.detach()
    got = plan.influence(emb, 0, spillover=True)
    if loss == "bce":
        expected = influence_gradient(emb, planted, removal, 1, model.graph, new_graph, True)[keep]
    else:
        users, items, negatives, removed, weights = segment_triples(planted, trace, removal, 0)
        old, new = dense_propagation(model.graph, 1), dense_propagation(new_graph, 1)
        table = emb.clone().requires_grad_(True)

        def losses(f):
            return weights * softplus(-(f[users] * (f[items] - f[negatives])).sum(1))

        f_old = old(table)
        total = losses(f_old)[removed].sum() + losses(f_old)[~removed].sum() - losses(new(table))[~removed].sum()
        (expected,) = torch.autograd.grad(total, table)
        expected = expected[keep]
    assert float((got - expected).norm() / expected.norm()) < 1e-10


@pytest.mark.parametrize("name", ["mf", "lightgcn"])
def test_label_zero_rows_are_not_in_a_bpr_models_objective(planted, name):
    model = trained(planted, name)
    labels = planted.train.labels
    negatives = (labels == 0).nonzero().squeeze(1)[:25]
    positives = (labels == 1).nonzero().squeeze(1)[:25]
    # Only label-0 rows: Retrain is the same run, so the unchanged model is the exact answer.
    result = unlearn(model, planted, negatives)
    assert result.status == "ok" and result.update_norm == 0.0 and result.solve.status == "not_in_objective"
    assert torch.equal(result.model.embedding, model.embedding) and result.model is not model
    # A mixed request answers exactly as its label-1 rows alone.
    mixed = unlearn(model, planted, torch.cat((negatives, positives)))
    alone = unlearn(model, planted, positives)
    assert torch.equal(mixed.model.embedding, alone.model.embedding) and mixed.status == "ok"
    assert mixed.forget_loss_after > mixed.forget_loss_before  # the positives look less preferred
    # A BCE model trained on those rows does forget them: the check for an unchanged answer stays.
    bce = trained(planted, name, replace(BPR, loss="bce"))
    assert unlearn(bce, planted, negatives).update_norm > 0


def test_a_user_without_remaining_positives_goes_back_to_its_initial_row(planted):
    model = trained(planted, "mf")
    train_rows = planted.train
    # A user holding both labels: remove its positives only; its label-0 rows stay, but BPR
    # never read them, so Retrain leaves the user at its initial row.
    user = next(u for u in range(planted.num_users)
                if bool(((train_rows.users == u) & (train_rows.labels == 0)).any())
                and bool(((train_rows.users == u) & (train_rows.labels == 1)).any()))
    removal = ((train_rows.users == user) & (train_rows.labels == 1)).nonzero().squeeze(1)
    orphans = orphaned_rows(planted, removal, torch.device("cpu"), "bpr")
    assert orphans.nonzero().squeeze(1).tolist() == [user]  # items keep being drawn as negatives
    assert orphaned_rows(planted, removal, torch.device("cpu"), "bce").sum() == 0  # BCE: its label-0 rows remain
    result = unlearn(model, planted, removal)
    assert torch.equal(result.model.embedding[user], model.trace.initial[user])
    retrain = trained(planted, "mf", removal=removal)
    assert torch.equal(retrain.embedding[user], retrain.trace.initial[user])


def test_methods_written_for_bce_refuse_a_bpr_model(planted):
    model = trained(planted, "mf")
    for method in ("ifru-validation", "scif", "finetune", "alteraser", "ifru-unanchored"):
        with pytest.raises(ValueError, match="trained with bpr .*ifru"):
            unlearn(model, planted, torch.tensor([0, 1]), method=method)
    # a BPR triple's label is always 1: no row is ever left with one label, so the option is refused
    # also when its config is not the registry's
    with pytest.raises(ValueError, match="unanchored_flow answers the built-in models trained with bce; this is a "
                                         "model trained with bpr"):
        unlearn(model, planted, torch.tensor([0, 1]), UnlearnConfig(unanchored_flow=True, tol=1e-4))
    with pytest.raises(ValueError, match="Newton response is written for BCE"):
        from ifru_ext.unlearning.base import PhaseClock
        from ifru_ext.unlearning.influence import influence_update
        influence_update(model, planted, torch.tensor([0, 1]), UnlearnConfig(response="newton"),
                         PhaseClock(torch.device("cpu")))


def test_the_default_answers_a_bpr_model_at_its_returned_epoch(planted):
    """``horizon="auto"`` walks the run's tail for BCE models only (BPR's tail triples are not built):
    a BPR model, whose trace records the tail too, gets the default's response at the returned epoch —
    ``ifru-nonlinear``'s answer — and no warning (nothing is missing that retraining would add)."""
    model = trained(planted, "mf")
    assert model.trace.tail is not None
    removal = torch.arange(0, len(planted.train), 7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        default = unlearn(model, planted, removal)
    at_returned = unlearn(model, planted, removal, method="ifru-nonlinear")
    assert default.epochs_past == 0 and default.update_norm > 0
    assert torch.equal(default.model.embedding, at_returned.model.embedding)


@pytest.mark.skipif(not BX_FILE.exists(), reason=f"{BX_FILE} not present")
def test_bpr_forgets_a_genuine_request_on_a_real_slice_like_retrain():
    """BookCrossing, a fifth of the users (whole histories; BPR's validation AUC rises there,
    where on the first 100k rows it falls from epoch 1), 2% of the rows: Retrain sends the
    removed positives' expected BPR loss from 0.24 to ≈ ln 2; the estimate follows (docs §6)."""
    data = load_dataset("bookcrossing", user_fraction=0.2)
    config = TrainConfig(lr=3e-3, batch_size=2048, max_epochs=30, patience=5, loss="bpr")

    def fit(removal=None):
        model = build_model("mf", data.num_users, data.num_items, init_std=0.1, seed=config.seed)
        train(model, data, config, removal=removal, progress=False)
        return model

    original = fit()
    rows = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))[: round(0.02 * len(data.train))]
    retrain = fit(rows)
    result = unlearn(original, data, rows)
    before, target = bpr_forget_loss(original, data, rows), bpr_forget_loss(retrain, data, rows)
    assert result.status == "ok" and result.forget_loss_before == pytest.approx(before)
    completeness = (result.forget_loss_after - before) / (target - before)
    assert target - before > 0.3 and 0.8 < completeness < 1.1


def test_retrain_retrains_as_the_model_was_trained(planted):
    model = trained(planted, "mf")
    removal = torch.arange(0, len(planted.train), 11)
    fresh = unlearn(model, planted, removal, method="retrain").model
    assert fresh.trace.loss == "bpr" and fresh.trace.lr == BPR.lr and fresh.trace.batch_size == BPR.batch_size
    assert fresh.trace.rows == len(bpr_rows(planted, removal))  # BPR's positives of D_{-r}


def test_bpr_models_are_never_silently_treated_as_bce(planted, tmp_path):
    from ifru_ext.experiments.apply import training_config
    from ifru_ext.experiments.cache import trained_model
    from ifru_ext.unlearning import RetrainConfig
    from ifru_ext.unlearning.sharded import train_sharded

    model = trained(planted, "mf")
    with pytest.raises(ValueError, match="loss 'bce' but the model was trained with 'bpr'"):
        unlearn(model, planted, torch.tensor([0, 1]), RetrainConfig(train=TrainConfig(loss="bce")))
    assert training_config({}, model, "cpu").loss == "bpr"  # ifru apply --verify-every retrains it as BPR
    with pytest.raises(ValueError, match="sharded methods train BCE"):
        train_sharded(planted, "mf", "sisa", config=TrainConfig(loss="bpr", max_epochs=1))
    # A cached checkpoint of the other loss is not reused: the run trains its own.
    bce = TrainConfig(lr=1e-2, max_epochs=2, patience=2)
    trained_model(tmp_path / "o.pt", "mf", planted, bce, None)
    cached, _ = trained_model(tmp_path / "o.pt", "mf", planted, TrainConfig(lr=1e-2, max_epochs=2, patience=2,
                                                                           loss="bpr"), None)
    assert cached.trace.loss == "bpr"
