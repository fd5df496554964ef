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
respect to each of those rows; ``ℓ' = σ(x) − y`` and ``ℓ'' = σ(x)σ(−x)`` are the same for both
losses. Dot-product terms are summed row by row in one fused pass (``TermIncidence``: pairs
``ops.pair_sums``, triples ``ops.triple_sums``); a scorer's terms by their Jacobians
(``Terms.evaluate``). The Gauss–Newton operator, its diagonal blocks, the influence right-hand
side and the removed gradient share are then written once (``response.py``).
"""
from __future__ import annotations

import copy
import math
from typing import Callable, NamedTuple, Sequence

import torch
from torch import Tensor
from torch.nn.functional import softplus

from .. import ops
from ..data import RecDataset
from ..graph import kept_rowptr
from ..models.trace import TrainingTrace
from ..training.bpr import NegativeSampler, bpr_rows

__all__ = ["BPR_EPOCHS", "Scorer", "TermIncidence", "TermOrigin", "TermStatistics", "Terms", "bpr_forget_loss",
           "bpr_terms", "endpoint_sums", "forget_loss", "objective_rows", "segment_epochs"]

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


class TermOrigin(NamedTuple):
    """The training rows of ``dataset`` a set of BCE terms is: term ``j`` is row ``rows[j]``
    (int64 [s], on the CPU)."""

    dataset: RecDataset
    rows: Tensor

    def many(self) -> bool:
        """Whether sorting the terms' entries would cost more than one pass over the dataset's
        (``TermIncidence.from_dataset``; ``RecDataset.sorting_beats_a_pass``)."""
        return not self.dataset.sorting_beats_a_pass(self.rows.numel())


class Terms:
    """A batch of loss terms on a table.

    ``columns``: the rows each term reads, int64 [s] each — ``(users, items)`` for BCE,
    ``(users, items, negatives)`` for BPR (items offset into the stacked table); ``labels``
    [s]; ``weights`` [s] or None: each term's multiplicity (BPR: ``1/E`` for the triples of
    ``E`` epochs); ``scorer``: None for dot products, else a model's own ``scores``, which
    must read only the rows it is given (``TableModel``). ``origin`` (optional): BCE terms that are
    training rows of a dataset, their columns in its stacked-table ids, and which rows they are
    (``TermOrigin``), so that ``incidence`` can read the dataset's node index.
    """

    def __init__(self, columns: Sequence[Tensor], labels: Tensor, weights: Tensor | None = None,
                 scorer: Scorer | None = None, origin: "TermOrigin | None" = None) -> None:
        self.columns, self.labels, self.weights, self.scorer = tuple(columns), labels, weights, scorer
        self.origin = origin
        self._incidence: TermIncidence | None = None

    def __len__(self) -> int:
        return self.labels.numel()

    @property
    def pairwise(self) -> bool:
        """BPR's triples (three rows) rather than single pairs."""
        return len(self.columns) == 3

    def subset(self, index: Tensor) -> "Terms":
        """The terms ``index`` (a bool mask or int64 positions). A mask is turned into positions once,
        and every field gathered with ``index_select``: indexing each with the mask ran its own scan
        of it and a slower gather (BookCrossing LightGCN 1%, 345k terms: ~2 ms a request)."""
        if index.dtype == torch.bool:
            index = index.nonzero().squeeze(1)

        def pick(values: Tensor) -> Tensor:
            return values.index_select(0, index.to(values.device))

        origin = None if self.origin is None else TermOrigin(self.origin.dataset, pick(self.origin.rows))
        return Terms(tuple(pick(column) for column in self.columns), pick(self.labels),
                     None if self.weights is None else pick(self.weights), self.scorer, origin)

    def weighted(self, values: Tensor) -> Tensor:
        """``values`` [s, k] times each term's multiplicity (unchanged when there is none)."""
        return values if self.weights is None else values * self.weights[:, None]

    @property
    def dot_products(self) -> bool:
        """Terms scored by dot products (BCE pairs or BPR triples on MF or LightGCN, no scorer):
        ``TermIncidence`` serves them."""
        return self.scorer is None

    def incidence(self, num_nodes: int) -> "TermIncidence":
        """The terms' incidence on every row of an ``num_nodes``-row table (built once, kept): read
        off their dataset's node index (``TermIncidence.from_dataset``) when they have an
        ``origin`` on that table and are many, else sorted (``TermIncidence.grouped``)."""
        if self._incidence is None or self._incidence.shape[0] != num_nodes:
            origin = self.origin
            if origin is not None and origin.dataset.num_users + origin.dataset.num_items == num_nodes and \
                    origin.many():
                self._incidence = TermIncidence.from_dataset(self)
            else:
                self._incidence = TermIncidence.grouped(self, self.columns, num_nodes, num_nodes)
        return self._incidence

    def evaluate(self, table: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """``(x [s, 1], J)`` at ``table`` [L, d] for a scorer's terms: the logits and, per column
        ``c``, the Jacobian ``∂x_j/∂t_{columns[c][j]}`` [s, d], by one backward pass: each term
        scores a private copy of its rows, so the gradient of the summed logits, row by row, is
        each term's Jacobian (exact for a scorer that reads only the rows it is given).
        Dot-product terms never gather their Jacobians: ``TermIncidence`` sums them in one pass."""
        if self.scorer is None:
            raise ValueError("Terms.evaluate is for a scorer's terms; dot-product terms are summed by TermIncidence")
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


class TermStatistics(NamedTuple):
    """Per-row sums over dot-product terms at one table, each [a, d] (``w`` the terms'
    multiplicity, ``J = ∂x/∂t_v``): what a segment of the training response reads of them."""

    gradient: Tensor   # Σ w ℓ' J
    squared: Tensor    # Σ w ℓ'² J⊙J: the squared per-term gradients
    curvature: Tensor  # Σ w ℓ'' J⊙J: the Gauss–Newton diagonal


class TermIncidence:
    """Dot-product terms (no scorer) as seen from ``a`` rows: a CSR ``[a, ·]`` with one entry per
    (row, term reading it), from which one fused pass takes every per-row sum the response needs —
    the gradient ``Σ ℓ' ∂x/∂t_v``, the squared per-term gradients and the Gauss–Newton diagonal
    ``Σ ℓ'' (∂x/∂t_v)²`` — with the logits, and no per-term ``[s, d]`` Jacobian is gathered.

    - Pairs (BCE, ``x_j = t_u·t_i``): ``∂x_j/∂t_u = t_i``, so a row's sum runs over the other rows
      of its entries (``column``), ``ops.pair_sums`` (BookCrossing MF 2%, 349k entries: one pass
      against a sampled product and three sparse ones).
    - Triples (BPR, ``x_j = t_u·(t_i − t_k)``): an entry is term ``j`` seen from its column ``c``,
      ``ops.triple_sums``. Each entry carries its own copy of its term (``term_columns``, labels
      and weights per entry), so the op reads them in order: through the terms' own arrays, read
      out of order, the loads of their row ids missed cache and the op ran ~2× slower
      (BookCrossing, 308k entries).

    Built from a grouping of the entries by row (``rowptr`` [a+1], and per entry its term [e] and
    the column ``end`` [e] the row is of it): ``grouped`` sorts them (every row of a table, or the
    removed terms on the moving rows); ``ops.HVPPlan.incidence`` lists them as the Gauss–Newton
    plan of the same terms grouped them (MF's remaining terms on the moving rows: one counting sort
    serves both). ``num_nodes``: ``L``, the table's rows.
    """

    def __init__(self, terms: Terms, rowptr: Tensor, term: Tensor, end: Tensor, num_nodes: int) -> None:
        self.terms, self.rowptr, self.shape = terms, rowptr, (rowptr.numel() - 1, num_nodes)
        if terms.pairwise:  # each entry gets its own copy of its term, so triple_sums reads them in order
            self.term_columns = tuple(column.index_select(0, term) for column in terms.columns)  # [e] each
            self.column = torch.arange(0, 3 * term.numel(), 3, device=term.device) + end
        else:  # the other row: entry (term j, end e) reads column 1 − e of term j
            self.column = torch.cat((terms.columns[1], terms.columns[0])).index_select(0, end * len(terms) + term)
        self.labels = terms.labels.index_select(0, term)  # per entry [e]
        self.weights = None if terms.weights is None else terms.weights.index_select(0, term)
        # The table rows the CSR's rows are (``touched``), ascending; None: row r is table row r, or
        # the caller names them (``statistics``).
        self.rows: Tensor | None = None
        self._touched: TermIncidence | None = None

    def touched(self) -> "TermIncidence":
        """The same entries, in the same order, on only the rows that have any (``rows``): their
        sums cost what the terms touch, where every row's cost the table's size (BookCrossing
        LightGCN, one user's removed terms: 20 entries, 4.6 ms a pass over all 53,750 rows). When
        they touch most rows (more than half), this incidence itself: summing every row costs no
        more there, and the sums need no gathers to be read (BookCrossing LightGCN 1%: the compact
        form of its remaining terms took the request 285 → 300 ms). Built once, kept."""
        if self._touched is None:
            rows = (self.rowptr[1:] > self.rowptr[:-1]).nonzero().squeeze(1)
            if 2 * rows.numel() > self.shape[0]:
                self._touched = self
            else:
                touched = copy.copy(self)
                touched.rowptr = torch.cat((self.rowptr[:1], self.rowptr.index_select(0, rows + 1)))
                touched.shape, touched.rows = (rows.numel(), self.shape[1]), rows
                self._touched = touched._touched = touched
        return self._touched

    @classmethod
    def grouped(cls, terms: Terms, slots: Sequence[Tensor], rows: int, num_nodes: int) -> "TermIncidence":
        """The entries of ``terms`` on ``rows`` rows, sorted: ``slots[c][j]`` is the position of
        column ``c`` of term ``j`` among the rows (``rows`` or more: not one of them; the columns
        themselves for every row of the table). Pairs: a row's other rows ascending, so pair_sums
        reads the table in address order (BookCrossing LightGCN, every row: in term order instead,
        ~40% slower); triples: terms in order."""
        size = len(terms)
        entry_rows = torch.cat(tuple(slots))  # entry c·s + j of the concatenation: term j seen from column c
        entry = torch.arange(entry_rows.numel(), device=entry_rows.device)
        present = entry_rows < rows
        if not bool(present.all()):  # some columns' rows are not among the rows (e.g. moving rows only)
            entry = present.nonzero().squeeze(1)
            entry_rows = entry_rows.index_select(0, entry)
        term, end = entry % max(size, 1), torch.div(entry, max(size, 1), rounding_mode="floor")
        # within a row: triples by term and column, pairs by the other row (column 1 − c of term j)
        within = 3 * term + end if terms.pairwise else \
            torch.cat((terms.columns[1], terms.columns[0])).index_select(0, entry)
        order = torch.argsort(entry_rows * (3 * size if terms.pairwise else num_nodes) + within)
        rowptr = torch.zeros(rows + 1, dtype=torch.int64, device=entry_rows.device)
        rowptr[1:] = torch.bincount(entry_rows, minlength=rows).cumsum(0)
        return cls(terms, rowptr, term.index_select(0, order), end.index_select(0, order), num_nodes)

    @classmethod
    def from_dataset(cls, terms: Terms) -> "TermIncidence":
        """BCE ``terms`` with an ``origin``, on every row of their dataset's stacked table, read off
        its node index (``RecDataset.node_incidence``, whose order within a node is ``grouped``'s):
        the index's entries whose row is one of the terms, kept in order. O(n) where ``grouped``
        sorts (BookCrossing LightGCN 1%: 690k entries, ~13 against ~29 ms; the same grouping)."""
        dataset, rows = terms.origin
        index = dataset.node_incidence
        term_of = torch.full((len(dataset.train),), -1, dtype=torch.int64)
        term_of.index_copy_(0, rows, torch.arange(rows.numel()))
        entry_term = term_of.index_select(0, index.rows)  # each entry's term, −1 where its row is none
        present = entry_term >= 0
        kept = present.nonzero().squeeze(1)
        device = terms.labels.device
        return cls(terms, kept_rowptr(index.rowptr, present).to(device), entry_term.index_select(0, kept).to(device),
                   index.ends.index_select(0, kept).to(device), index.rowptr.numel() - 1)

    def statistics(self, table: Tensor, rows: Tensor | None = None) -> TermStatistics:
        """The sums at ``table`` [L, d] on the incidence's rows, whose ids in ``table`` are ``rows``
        [a] (None: the incidence's own ``rows``, or every row of ``table``)."""
        rows = self.rows if rows is None else rows
        if self.terms.pairwise:
            return TermStatistics(*ops.triple_sums(table, *self.term_columns, self.labels, self.weights, self.rowptr,
                                                   self.column))
        rows_table = table if rows is None else table.index_select(0, rows)
        return TermStatistics(*ops.pair_sums(rows_table, table, self.rowptr, self.column, self.labels, self.weights))


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


def forget_loss(model: torch.nn.Module, dataset: RecDataset, rows: Tensor, loss: str,
                logits: Tensor | None = None) -> float:
    """The mean training loss on the removed ``rows``: BCE with their trained labels, or BPR's
    expected loss (``bpr_forget_loss``). ``logits`` (BCE; float64 [r] on the CPU, optional): the
    model's logits on ``rows``, when the caller holds them already."""
    if loss == "bpr":
        return bpr_forget_loss(model, dataset, rows)
    selected = dataset.train.select(rows.cpu())
    if logits is None:
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
