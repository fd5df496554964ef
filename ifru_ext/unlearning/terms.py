"""The loss terms of a training objective, as the training-aware response reads them
(docs/ARCHITECTURE.md §6, "Losses and models").

Every objective the estimator answers is a sum of terms ``ℓ(x_j, y_j) = softplus(x_j) − y_j·x_j``
over a logit ``x_j`` that reads a few rows of the scoring table:

- BCE: one term per labelled training row, ``x = s(u, i)``, ``y`` its label;
- BPR: one term per positive row and epoch, the triple ``x = s(u, i) − s(u, k)`` with the
  epoch's negative ``k`` (``training.bpr_negatives``) and ``y = 1`` (so ``ℓ = −log σ(x)``).

``s`` is the dot product of the two rows (MF; LightGCN on its propagated table) or a model's
own scoring function (``TableModel.scores``), differentiated by autograd. What the estimator
needs of a term is the rows it reads (``Terms.columns``), its logit and its Jacobian with
respect to each of those rows (``Terms.evaluate``); ``ℓ' = σ(x) − y`` and ``ℓ'' = σ(x)σ(−x)``
are the same for both losses. The Gauss–Newton operator, its diagonal blocks, the influence
right-hand side and the removed gradient share are then written once (``response.py``).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import torch
from torch import Tensor
from torch.nn.functional import softplus

from .. import ops
from ..data import RecDataset
from ..models.trace import TrainingTrace
from ..training.bpr import NegativeSampler, bpr_rows

__all__ = ["BPR_EPOCHS", "PairIncidence", "PairStatistics", "Scorer", "Terms", "bpr_forget_loss", "bpr_terms", "endpoint_sums",
           "forget_loss", "objective_rows", "segment_epochs"]

# ``scores(table [L, d], users [s], items [s]) -> logits [s]``: rows of ``table`` (items offset).
Scorer = Callable[[Tensor, Tensor, Tensor], Tensor]

# How many epochs of negatives stand for a segment of a BPR run: the triples of its last
# BPR_EPOCHS epochs, each weighted 1/E (None: every epoch of the segment). The linearised run
# integrates each segment's gradient over all its epochs; one epoch's triples are a sample of
# them, and inverting a sampled operator over-responds (E[(G+Λ)⁻¹] ⪰ (E[G]+Λ)⁻¹). Measured
# (docs §6, BookCrossing MF, 2% genuine, three requests): forget completeness 1.14 with one
# epoch, 0.99 with 3, 0.96 with 8 and 0.95 with every epoch; 8 bounds the operator at 8 epochs'
# triples.
BPR_EPOCHS: int | None = 8


def endpoint_sums(num_rows: int, columns: Sequence[Tensor], values: Sequence[Tensor]) -> Tensor:
    """``out [num_rows, d]`` with ``values[c][j]`` added at row ``columns[c][j]``, column by column:
    the scatter every per-term sum of the estimator ends in."""
    out = values[0].new_zeros(num_rows, values[0].shape[1])
    for column, value in zip(columns, values):
        out.index_add_(0, column, value)
    return out


class Terms:
    """A batch of loss terms on a table.

    ``columns``: the rows each term reads, int64 [s] each — ``(users, items)`` for BCE,
    ``(users, items, negatives)`` for BPR (items offset into the stacked table); ``labels``
    [s]; ``weights`` [s] or None: each term's multiplicity (BPR: ``1/E`` for the triples of
    ``E`` epochs); ``scorer``: None for dot products, else a model's own ``scores``, which
    must read only the rows it is given (``TableModel``).
    """

    def __init__(self, columns: Sequence[Tensor], labels: Tensor, weights: Tensor | None = None,
                 scorer: Scorer | None = None) -> None:
        self.columns, self.labels, self.weights, self.scorer = tuple(columns), labels, weights, scorer
        self._incidence: PairIncidence | None = None

    def __len__(self) -> int:
        return self.labels.numel()

    @property
    def pairwise(self) -> bool:
        """BPR's triples (three rows) rather than single pairs."""
        return len(self.columns) == 3

    def subset(self, index: Tensor) -> "Terms":
        """The terms ``index`` (a bool mask or int64 positions)."""
        return Terms(tuple(column[index] for column in self.columns), self.labels[index],
                     None if self.weights is None else self.weights[index], self.scorer)

    def weighted(self, values: Tensor) -> Tensor:
        """``values`` [s, k] times each term's multiplicity (unchanged when there is none)."""
        return values if self.weights is None else values * self.weights[:, None]

    @property
    def dot_product_pairs(self) -> bool:
        """Pairs scored by dot products (BCE on MF or LightGCN): ``PairIncidence`` serves them."""
        return self.scorer is None and not self.pairwise

    def incidence(self, num_nodes: int) -> "PairIncidence":
        """The pairs' incidence on every row of an ``num_nodes``-row table (built once, kept)."""
        if self._incidence is None or self._incidence.shape[0] != num_nodes:
            self._incidence = PairIncidence(self, self.columns, num_nodes, num_nodes)
        return self._incidence

    def evaluate(self, table: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """``(x [s, 1], J)`` at ``table`` [L, d]: the logits and, per column ``c``, the Jacobian
        ``∂x_j/∂t_{columns[c][j]}`` [s, d]."""
        if self.scorer is not None:
            return self._autograd(table)
        if not self.pairwise:
            users, items = self.columns
            f_users, f_items = table.index_select(0, users), table.index_select(0, items)
            return (f_users * f_items).sum(1, keepdim=True), (f_items, f_users)
        users, items, negatives = self.columns
        f_users = table.index_select(0, users)
        difference = table.index_select(0, items) - table.index_select(0, negatives)
        return (f_users * difference).sum(1, keepdim=True), (difference, f_users, -f_users)

    def _autograd(self, table: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The model's own scores, differentiated by one backward pass: each term scores a private
        copy of its rows, so the gradient of the summed logits, row by row, is each term's
        Jacobian (exact for a scorer that reads only the rows it is given)."""
        size, width = len(self), table.shape[1]
        if size == 0:
            return table.new_zeros(0, 1), tuple(table.new_zeros(0, width) for _ in self.columns)
        private = torch.cat([table.index_select(0, column) for column in self.columns]).detach().requires_grad_(True)
        ids = [torch.arange(c * size, (c + 1) * size, device=table.device) for c in range(len(self.columns))]
        with torch.enable_grad():
            logits = self.scorer(private, ids[0], ids[1])
            if self.pairwise:
                logits = logits - self.scorer(private, ids[0], ids[2])
            (grad,) = torch.autograd.grad(logits.sum(), private)
        return logits.detach().reshape(size, 1).to(table.dtype), tuple(grad.split(size))


class PairStatistics(NamedTuple):
    """Per-row sums over dot-product pair terms at one table, each [a, d] (``w`` the terms'
    multiplicity, ``J = ∂x/∂t_v``): what a segment of the training response reads of them."""

    gradient: Tensor   # Σ w ℓ' J
    squared: Tensor    # Σ w ℓ'² J⊙J: the squared per-term gradients
    curvature: Tensor  # Σ w ℓ'' J⊙J: the Gauss–Newton diagonal


class PairIncidence:
    """Dot-product pair terms (``x_j = t_u·t_i``, no scorer) as seen from ``a`` rows: a CSR
    ``[a, L]`` pattern with one entry per (row, term reading it), at the term's other row.

    Since ``∂x_j/∂t_u = t_i``, every per-row sum the response takes over such terms — the
    gradient ``Σ ℓ' ∂x/∂t_v``, the squared per-term gradients and the Gauss–Newton diagonal
    ``Σ ℓ'' (∂x/∂t_v)²`` — is a sum over the row's entries of the other row, and
    ``ops.pair_sums`` takes all three with the logits in one pass (BookCrossing MF 2%, 349k
    entries: one pass against a sampled product and three sparse ones; no per-term ``[s, d]``
    Jacobian is gathered). ``slots[c][j]``: the position of column ``c`` of term ``j`` among the
    rows (``a`` or more: not one of them; the columns themselves for every row of the table);
    ``num_nodes``: ``L``, the table's rows.
    """

    def __init__(self, terms: Terms, slots: Sequence[Tensor], rows: int, num_nodes: int) -> None:
        users, items = terms.columns
        # Entry p of the two columns' concatenation is term p mod s seen from column p div s.
        entry_rows, others = torch.cat(tuple(slots)), torch.cat((items, users))
        entries = None  # every entry is one of the rows': no selection to gather through
        present = entry_rows < rows
        if not bool(present.all()):  # some columns' rows are not among the rows (e.g. moving rows only)
            entries = present.nonzero().squeeze(1)
            entry_rows, others = entry_rows.index_select(0, entries), others.index_select(0, entries)
        # Grouped by row, a row's other rows ascending: pair_sums then reads the table in address
        # order (BookCrossing LightGCN, every row: in term order instead, ~40% slower).
        order = torch.argsort(entry_rows * num_nodes + others)
        self.column = others.index_select(0, order)  # per entry [e]
        term = (order if entries is None else entries.index_select(0, order)) % len(terms)
        self.labels = terms.labels.index_select(0, term)
        self.weights = None if terms.weights is None else terms.weights.index_select(0, term)
        self.rowptr = torch.zeros(rows + 1, dtype=torch.int64, device=users.device)
        self.rowptr[1:] = torch.bincount(entry_rows, minlength=rows).cumsum(0)
        self.shape = (rows, num_nodes)

    def statistics(self, rows_table: Tensor, table: Tensor) -> PairStatistics:
        """The sums at ``table`` [L, d], ``rows_table`` [a, d] its rows' own entries."""
        return PairStatistics(*ops.pair_sums(rows_table, table, self.rowptr, self.column, self.labels, self.weights))


def objective_rows(loss: str, dataset: RecDataset, removal: Tensor) -> Tensor:
    """The rows of ``removal`` that are terms of the objective: every row for BCE; for BPR only
    the label-1 rows (a label-0 row is neither a positive nor excluded from the negatives, so a
    BPR Retrain without it is the same run)."""
    if loss == "bpr":
        return removal[dataset.train.labels[removal.cpu()].to(removal.device) == 1]
    return removal


def segment_epochs(trace: TrainingTrace, count: int | None = BPR_EPOCHS) -> list[list[int]]:
    """Per segment of ``trace.segments()``, the epochs (1-based) whose triples stand for it: the
    last ``count`` of the epochs the segment spans (None: all of them)."""
    per_epoch = max(math.ceil(trace.rows / trace.batch_size), 1)
    out, start, steps = [], 0, 0
    for segment_steps, _, _ in trace.segments():
        steps += segment_steps
        end = max(round(steps / per_epoch), start + 1)
        first = start + 1 if count is None else max(start + 1, end - count + 1)
        out.append(list(range(first, end + 1)))
        start = end
    return out


def bpr_terms(dataset: RecDataset, removal: Tensor, reach: Tensor, epochs: Sequence[int], seed: int,
              sampler: NegativeSampler | None = None) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor, Tensor]:
    """The BPR triples of ``epochs`` (weights ``1/len(epochs)`` each) that read a row of ``reach``
    (bool [N]), in global stacked ids: ``((users, items, negatives), removed [bool], weights)``.
    ``removal``: the removed positive rows. Draws every positive's negative of each epoch (O(n⁺)
    per epoch: the negatives have no index)."""
    train, sampler = dataset.train, sampler or NegativeSampler(dataset)
    positives = bpr_rows(dataset)
    reach = reach.cpu()
    users, items = train.users[positives], train.items[positives] + dataset.num_users
    gone = torch.isin(positives, removal.cpu())
    touches = reach[users] | reach[items]
    parts = []
    for epoch in epochs:
        negatives = sampler(positives, epoch, seed) + dataset.num_users
        take = touches | reach[negatives]
        parts.append((users[take], items[take], negatives[take], gone[take]))
    columns = tuple(torch.cat([part[c] for part in parts]) for c in range(3))
    removed = torch.cat([part[3] for part in parts])
    return columns, removed, torch.full((removed.numel(),), 1.0 / len(epochs), dtype=torch.float64)


def bpr_forget_loss(model: torch.nn.Module, dataset: RecDataset, rows: Tensor, chunk_size: int = 256) -> float:
    """BPR's loss on the label-1 rows among ``rows``, in expectation over the negatives: per row
    ``(u, i)`` the mean of ``softplus(−(x_ui − x_uk))`` over every item ``k`` that is not one of
    ``u``'s training positives (the items BPR draws negatives from), averaged over the rows;
    nan when there is no such row. Independent of any epoch's draw, so Original, Retrain and an
    estimate are compared on the same footing."""
    train = dataset.train
    rows = rows.cpu()
    rows = rows[train.labels[rows] == 1]
    if rows.numel() == 0:
        return float("nan")
    table = model.scoring_table() if hasattr(model, "scoring_table") else None
    total = 0.0
    with torch.no_grad():
        for start in range(0, rows.numel(), chunk_size):
            chunk = rows[start:start + chunk_size]
            users, items = train.users[chunk], train.items[chunk]
            scores = _user_item_scores(model, table, dataset, users).double().cpu()  # [c, I]
            excluded = _positive_mask(dataset, users)
            positive = scores.gather(1, items[:, None])
            losses = softplus(scores - positive).masked_fill(excluded, 0.0)
            total += float((losses.sum(1) / (~excluded).sum(1).clamp(min=1)).sum())
    return total / rows.numel()


def forget_loss(model: torch.nn.Module, dataset: RecDataset, rows: Tensor, loss: str) -> float:
    """The mean training loss on the removed ``rows``: BCE with their trained labels, or BPR's
    expected loss (``bpr_forget_loss``)."""
    if loss == "bpr":
        return bpr_forget_loss(model, dataset, rows)
    selected = dataset.train.select(rows.cpu())
    logits = model.score_all(selected.users, selected.items).double().cpu()
    return float(torch.nn.functional.binary_cross_entropy_with_logits(logits, selected.labels.double()))


def _user_item_scores(model: torch.nn.Module, table: Tensor | None, dataset: RecDataset, users: Tensor) -> Tensor:
    """Logits [c, I] of ``users`` against every item: from the scoring table when the model has one."""
    if table is not None:
        return table[users.to(table.device)] @ table[dataset.num_users:].T
    items = torch.arange(dataset.num_items)
    return model.score_all(users.repeat_interleave(dataset.num_items), items.repeat(users.numel())).reshape(
        users.numel(), dataset.num_items)


def _positive_mask(dataset: RecDataset, users: Tensor) -> Tensor:
    """bool [c, I]: each of ``users``' training positives (BPR's excluded negatives)."""
    train = dataset.train
    distinct, inverse = torch.unique(users, return_inverse=True)
    incident = dataset.incident_rows(distinct)  # user ids are their own stacked rows
    incident = incident[train.labels[incident] == 1]
    mask = torch.zeros(distinct.numel(), dataset.num_items, dtype=torch.bool)
    mask[torch.searchsorted(distinct, train.users[incident]), train.items[incident]] = True
    return mask[inverse]
