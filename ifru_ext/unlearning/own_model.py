"""Your own model: the protocol under which ``unlearn`` answers a request for a recommender you
wrote (README "Your own model", docs/ARCHITECTURE.md §6).

Subclass ``TableModel`` and define ``scores(table, users, items)``: the logits of the pairs
``(users[j], items[j])``, both rows of ``table`` (items offset by ``num_users``), as a
differentiable function of ``table`` that reads only those rows (any architecture on top of
them; parameters of your own are allowed and are held at their trained values). The model
keeps every user and item in ONE stacked table ``embedding [N, d]`` (users then items), so
the estimator can gather, differentiate and move the rows a request touches.

Train it with ``ifru_ext.train`` (BCE or BPR, ``TrainConfig.loss``), which records the
``TrainingTrace`` the default estimator needs; or run your own Adam loop and build the trace
with ``adam_trace`` at the epoch you keep. The estimator then uses your ``scores`` through
autograd (one backward pass per segment gives every term's Jacobian: ``terms.Terms``) and
the same Gauss–Newton solve as the built-in MF.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from ..models.trace import LOSSES, Snapshot, TrainingTrace

__all__ = ["TableModel", "adam_trace"]


class TableModel(nn.Module):
    """Base class of your own recommender over one stacked embedding table.

    Define ``scores(table, users, items) -> logits [n]`` (``users``, ``items``: int64 row
    indices of ``table``, items offset by ``num_users``); it must be a pure function of those
    rows (no dropout, no batch statistics, nothing read from other rows). ``embedding``
    ``[num_users + num_items, dim]`` is drawn from ``N(0, init_std²)`` (with ``seed``, from its
    own generator). ``forward``/``score_all`` take users and items NOT offset, as the built-in
    models do, so ``train``, ``evaluate`` and ``unlearn`` accept the model. ``trace``: the
    ``TrainingTrace`` of the run that trained it (set by ``train``, or ``adam_trace``).
    """

    num_layers = 0  # no graph: the table is scored as it is
    graph = None

    def __init__(self, num_users: int, num_items: int, dim: int, init_std: float = 0.1, seed: int | None = None) -> None:
        super().__init__()
        if num_users <= 0 or num_items <= 0 or dim <= 0 or not init_std >= 0:
            raise ValueError(f"need num_users, num_items, dim > 0 and init_std >= 0; got {num_users}, {num_items}, "
                             f"{dim}, {init_std}")
        self.num_users, self.num_items, self.dim = num_users, num_items, dim
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        self.embedding = nn.Parameter(torch.randn(num_users + num_items, dim, generator=generator) * init_std)
        self.trace: TrainingTrace | None = None

    @property
    def num_nodes(self) -> int:
        return self.num_users + self.num_items

    @property
    def reference_tensor(self) -> Tensor:
        return self.embedding

    def scores(self, table: Tensor, users: Tensor, items: Tensor) -> Tensor:
        """Logits [n] of the pairs of rows ``(users[j], items[j])`` of ``table`` [L, d]."""
        raise NotImplementedError("a TableModel defines scores(table, users, items)")

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        """Logits [n] for users, items int64 [n] (items NOT offset)."""
        return self.scores(self.embedding, users, items + self.num_users)

    @torch.no_grad()
    def score_all(self, users: Tensor, items: Tensor, chunk_size: int = 1 << 16) -> Tensor:
        """Logits [n] without autograd, ``chunk_size`` pairs at a time (items NOT offset)."""
        device = self.embedding.device
        users, items = users.to(device), items.to(device)
        out = self.embedding.new_empty(users.numel())
        for start in range(0, users.numel(), chunk_size):
            stop = start + chunk_size
            out[start:stop] = self(users[start:stop], items[start:stop])
        return out

    def check_row_local(self, users: Tensor, items: Tensor) -> None:
        """ValueError unless ``scores`` of the pairs (items NOT offset) reads only their own rows:
        the logits on the whole table must equal those on a table holding only those rows."""
        with torch.no_grad():
            table = self.embedding.detach()
            users, items = users.to(table.device), items.to(table.device) + self.num_users
            size = users.numel()
            whole = self.scores(table, users, items)
            private = torch.cat((table[users], table[items]))
            own = self.scores(private, torch.arange(size, device=table.device),
                              torch.arange(size, 2 * size, device=table.device))
        if whole.shape != (size,) or not torch.allclose(whole, own, rtol=1e-4, atol=1e-6 * float(whole.abs().max().clamp(min=1))):
            raise ValueError(f"{type(self).__name__}.scores must return one logit per pair and read only the rows it "
                             "is given (its users' and items' rows of the table): the unlearning estimator scores "
                             "each term on a copy of its own rows")


def adam_trace(optimizer: torch.optim.Optimizer, embedding: Tensor, initial: Tensor, *, epochs: int, rows: int,
               batch_size: int, loss: str = "bce", seed: int = 0, l2: float = 0.0,
               snapshots: Sequence[Snapshot] = ()) -> TrainingTrace:
    """The ``TrainingTrace`` of your own Adam run, read at the epoch you return.

    ``optimizer``: the ``torch.optim.Adam`` that trained ``embedding`` (your model's table),
    with its state as it was at the end of epoch ``epochs`` (the epoch whose table you keep;
    take a copy of the optimizer's ``state_dict`` with the model's when you early-stop);
    ``initial``: the table before the first step; ``rows``: the terms per epoch (BCE: the
    labelled training rows; BPR: the label-1 rows); ``batch_size``: the rows per step (steps per
    epoch ``ceil(rows / batch_size)``); ``loss``: "bce" or "bpr"; ``seed``: for BPR, the seed
    your negatives were drawn with by ``ifru_ext.training.bpr_negatives(dataset, rows, epoch,
    seed)`` (epochs 1-based) — the estimator redraws them; ``l2``: the ``(λ/2)‖E‖²`` of the
    objective; ``snapshots``: earlier points of the run, each the start of one more segment the
    response walks (``models.trace.SnapshotRecorder(limit)`` picks ``limit`` that cut the run into
    near-equal segments).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if not isinstance(optimizer, torch.optim.Adam):
        raise ValueError(f"the trace reads Adam's second moments; got a {type(optimizer).__name__}")
    group = next((g for g in optimizer.param_groups if any(p is embedding for p in g["params"])), None)
    state = optimizer.state.get(embedding, {})
    if group is None or "exp_avg_sq" not in state:
        raise ValueError("the optimizer holds no Adam state for this embedding: pass the table it trained, after a step")
    if group.get("amsgrad") or group.get("weight_decay"):
        raise ValueError("the trace models plain Adam (no amsgrad, no weight_decay: put λ in l2 and the loss)")
    steps = int(state["step"])
    per_epoch = math.ceil(rows / batch_size)
    if steps != epochs * per_epoch:
        raise ValueError(f"{steps} optimiser steps is not {epochs} epochs of ceil({rows}/{batch_size}) = {per_epoch} "
                         "steps: the estimator maps steps to epochs (BPR: to their negatives)")
    beta2 = group["betas"][1]
    second_moment = state["exp_avg_sq"].detach() / (1 - beta2**steps)
    return TrainingTrace(lr=float(group["lr"]), steps=steps, best_epoch=epochs, batch_size=batch_size, rows=rows,
                         seed=seed, l2=l2, beta2=beta2, eps=group["eps"], second_moment=second_moment.clone(),
                         initial=initial.detach().clone(), snapshots=list(snapshots), loss=loss)
