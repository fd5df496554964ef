"""Your own model (ifru_ext.unlearning.own_model): the README example run as written, the
autograd path against the built-in MF's closed forms (float64, BCE and BPR: the plain-PyTorch
reference of the default estimator), scores that read other rows refused, and a trace built
from your own Adam loop."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from ifru_ext.models import build_model, copy_model
from ifru_ext.training import TrainConfig, bpr_loss, bpr_negatives, bpr_rows, train
from ifru_ext.unlearning import TableModel, UnlearnConfig, adam_trace, unlearn
from ifru_ext.unlearning.response import ResponsePlan, training_damping

from test_train import BX_FILE, planted_dataset

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(scope="module")
def planted():
    return planted_dataset()


class DotMF(TableModel):
    """The built-in MF's scores, written as your own model."""

    def scores(self, table, users, items):
        return (table[users] * table[items]).sum(-1)


class BiasedMF(TableModel):
    """x_ui = p_u · q_i + b_u + b_i (the README's model)."""

    def scores(self, table, users, items):
        u, i = table[users], table[items]
        return (u[:, :-1] * i[:, :-1]).sum(-1) + u[:, -1] + i[:, -1]


def readme_example() -> str:
    """The code block that follows the README's ``<!-- own-model example -->`` marker."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- own-model example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README lost its own-model example"
    return match.group(1)


@pytest.mark.skipif(not BX_FILE.exists(), reason=f"{BX_FILE} not present")
def test_the_readme_example_runs_as_written():
    namespace: dict = {}
    exec(compile(readme_example(), "README.md (own-model example)", "exec"), namespace)
    result, model, data = namespace["result"], namespace["model"], namespace["data"]
    assert isinstance(model, TableModel) and model.trace is not None and model.trace.loss == "bce"
    assert result.status == "ok" and result.method == "ifru" and result.update_norm > 0
    assert result.forget_loss_after > result.forget_loss_before  # the removed rows look unseen
    assert not torch.equal(result.model.embedding, model.embedding) and result.num_removed == 168
    assert len(data.train) == 8424  # the small real slice the example reads


@pytest.mark.parametrize("loss", ["bce", "bpr"])
def test_the_autograd_path_is_the_built_in_mf_to_float64_rounding(planted, loss):
    """Your-model path (one backward pass through ``scores`` per term set) against the MF's
    closed-form Jacobians (applied by the fused Gauss–Newton op): operator, its diagonal, right-hand
    side, removed share and the answer."""
    mf = build_model("mf", planted.num_users, planted.num_items, dim=4, init_std=0.1, seed=0).double()
    train(mf, planted, TrainConfig(lr=0.05, batch_size=256, max_epochs=8, patience=8, loss=loss), progress=False)
    own = DotMF(planted.num_users, planted.num_items, dim=4).double()
    with torch.no_grad():
        own.embedding.copy_(mf.embedding)
    own.trace = mf.trace
    removal = torch.arange(0, len(planted.train), 29)
    keep = torch.zeros(mf.num_nodes, dtype=torch.bool)
    keep[torch.cat((planted.train.users[removal], planted.train.items[removal] + planted.num_users))] = True
    emb = mf.embedding.detach()
    rows = removal if loss == "bce" else removal[planted.train.labels[removal] == 1]

    def plan(scorer):
        return ResponsePlan(planted, rows, keep, 0, None, None, torch.device("cpu"), torch.float64, trace=mf.trace,
                            scorer=scorer)

    closed, autograd = plan(None), plan(own.scores)
    v = torch.randn(int(keep.sum()), 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    diagonal = (training_damping(mf.trace) + 1e-3)[keep]
    for segment in range(len(mf.trace.segments())):
        at = closed.local(emb)
        first, second = closed.system(at, diagonal, segment), autograd.system(at, diagonal, segment)
        for a, b in ((first.apply(v), second.apply(v)), (first.curvature_diagonal, second.curvature_diagonal),
                     (first.precondition(v), second.precondition(v)),
                     (closed.influence(at, segment), autograd.influence(at, segment)),
                     (closed.removed_share(at, first, segment), autograd.removed_share(at, second, segment))):
            assert float((a - b).norm()) <= 1e-10 * float(a.norm())
    built_in, yours = unlearn(mf, planted, removal), unlearn(own, planted, removal)
    answer, yours_answer = built_in.model.embedding.detach(), yours.model.embedding.detach()
    assert float((answer - yours_answer).norm()) <= 1e-10 * float((answer - emb).norm())
    assert yours.status == "ok" and yours.forget_loss_after == pytest.approx(built_in.forget_loss_after, rel=1e-9)


def test_scores_that_read_other_rows_are_refused(planted):
    class Centred(TableModel):
        def scores(self, table, users, items):  # reads the mean of the whole table
            return ((table[users] - table.mean(0)) * table[items]).sum(-1)

    model = Centred(planted.num_users, planted.num_items, dim=4, seed=0)
    train(model, planted, TrainConfig(lr=0.05, batch_size=256, max_epochs=2, patience=2), progress=False)
    with pytest.raises(ValueError, match="read only the rows it is given"):
        unlearn(model, planted, torch.arange(10))


def test_methods_for_the_built_in_models_refuse_your_own(planted):
    model = BiasedMF(planted.num_users, planted.num_items, dim=3, seed=0)
    train(model, planted, TrainConfig(lr=0.05, batch_size=256, max_epochs=2, patience=2), progress=False)
    for method in ("ifru-validation", "retrain", "finetune", "ifru-unanchored"):
        with pytest.raises(ValueError, match="does not apply to a BiasedMF"):
            unlearn(model, planted, torch.arange(10), method=method)
    # its terms are not dot products, so no row would ever be found unanchored
    with pytest.raises(ValueError, match="unanchored_flow answers the built-in models trained with bce; this is a "
                                         "TableModel"):
        unlearn(model, planted, torch.arange(10), UnlearnConfig(unanchored_flow=True, tol=1e-4))


@pytest.mark.parametrize("loss", ["bce", "bpr"])
def test_a_trace_from_your_own_adam_loop(planted, loss):
    """Your own training loop: Adam over shuffled batches (BPR: the negatives of
    ``bpr_negatives``), the trace read by ``adam_trace`` at the epoch kept."""
    model = BiasedMF(planted.num_users, planted.num_items, dim=4, init_std=0.1, seed=0).double()
    initial = model.embedding.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    train_rows = planted.train
    rows = bpr_rows(planted) if loss == "bpr" else torch.arange(len(train_rows))
    epochs, batch_size, seed = 3, 256, 7
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(1, epochs + 1):
        negatives = bpr_negatives(planted, rows, epoch, seed) if loss == "bpr" else None
        for batch in torch.randperm(rows.numel(), generator=generator).split(batch_size):
            users, items = train_rows.users[rows[batch]], train_rows.items[rows[batch]]
            if loss == "bpr":
                objective = bpr_loss(model(users, items), model(users, negatives[batch]))
            else:
                objective = torch.nn.functional.binary_cross_entropy_with_logits(
                    model(users, items), train_rows.labels[rows[batch]].double())
            optimizer.zero_grad()
            objective.backward()
            optimizer.step()
    model.trace = adam_trace(optimizer, model.embedding, initial, epochs=epochs, rows=rows.numel(),
                             batch_size=batch_size, loss=loss, seed=seed)
    steps = epochs * math.ceil(rows.numel() / batch_size)
    moments = optimizer.state[model.embedding]["exp_avg_sq"]
    assert model.trace.steps == steps and torch.equal(model.trace.second_moment, moments / (1 - 0.999**steps))
    removal = torch.arange(0, len(train_rows), 31)
    result = unlearn(model, planted, removal)
    assert result.status == "ok" and result.update_norm > 0 and result.forget_loss_after > result.forget_loss_before
    with pytest.raises(ValueError, match="is not 4 epochs"):
        adam_trace(optimizer, model.embedding, initial, epochs=4, rows=rows.numel(), batch_size=batch_size)
    with pytest.raises(ValueError, match="Adam's second moments"):
        adam_trace(torch.optim.SGD(model.parameters(), lr=0.1), model.embedding, initial, epochs=1, rows=1,
                   batch_size=1)


def test_your_model_is_copied_not_modified(planted):
    model = BiasedMF(planted.num_users, planted.num_items, dim=3, seed=0)
    train(model, planted, TrainConfig(lr=0.05, batch_size=256, max_epochs=3, patience=3), progress=False)
    before = copy_model(model)
    result = unlearn(model, planted, torch.arange(0, 200, 3))
    assert torch.equal(model.embedding, before.embedding) and type(result.model) is BiasedMF
    assert result.model.trace is model.trace  # the record of the run is shared, not copied
