"""Recommenders over ONE stacked embedding table (docs/ARCHITECTURE.md §2).

``E [N, d]`` with ``N = num_users + num_items``: user ``u`` is row ``u``, item ``i`` is
row ``num_users + i``. The score of a pair is ``x_ui = f_u · f_i`` with ``F = E`` (MF)
or ``F = P E`` (LightGCN, ``P = (1/(K+1)) Σ_k Â^k``). Both models keep the
parameters in that single table, which is the layout the unlearning code (influence
functions, ``ifru_ext.ops.hvp``) works on.

The LightGCN graph is state that is NOT learned and NOT saved: it is held in
non-persistent buffers (so ``.to()`` / ``.double()`` move it with the model, and
``state_dict`` leaves it out) and swapped with ``set_graph`` — an unlearned model
predicts with the graph of ``D_{-r}``.
"""
from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..graph import CSRGraph
from ..ops import MAX_LAYERS, propagate
from .trace import TrainingTrace

__all__ = ["DEFAULTS", "MF", "GraphModel", "LightGCN", "Recommender", "build_model", "copy_model"]

# Paper / authors'-code defaults per model (docs/ARCHITECTURE.md §5): width, layers, init std.
DEFAULTS: dict[str, dict[str, Any]] = {
    "mf": {"dim": 48, "num_layers": 0, "init_std": 1e-3},
    "lightgcn": {"dim": 32, "num_layers": 1, "init_std": 1e-4},
}


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` that shares its ``trace`` (when it has one): the trace is a
    read-only record of the original training run (four [N, d] tables), which every answer to
    a request carries unchanged, so copying it per request would only cost time."""
    trace = getattr(model, "trace", None)
    return copy.deepcopy(model, memo={} if trace is None else {id(trace): trace})


class GraphModel(nn.Module):
    """What every model here shares: user/item counts, a propagation graph held in
    non-persistent buffers, and chunked no-grad scoring from one scoring table.

    Subclasses set ``num_users``, ``num_items`` and ``num_layers`` before calling
    ``init_graph()``, and define ``graph_nodes`` (the graph's node count),
    ``reference_tensor`` (whose device/dtype the graph follows) and ``scoring_table``.
    """

    num_users: int
    num_items: int
    num_layers: int

    def init_graph(self) -> None:
        # The graph lives in non-persistent buffers: moved by .to(), absent from state_dict.
        self.register_buffer("graph_rowptr", None, persistent=False)
        self.register_buffer("graph_col", None, persistent=False)
        self.register_buffer("graph_weight", None, persistent=False)
        self._graph_symmetric = False

    @property
    def num_nodes(self) -> int:
        """``N = num_users + num_items``, the rows of one stacked table."""
        return self.num_users + self.num_items

    @property
    def graph_nodes(self) -> int:
        return self.num_nodes

    @property
    def reference_tensor(self) -> Tensor:
        raise NotImplementedError

    @property
    def graph(self) -> CSRGraph | None:
        """The propagation graph on the model's device/dtype, or None (MF, or not set)."""
        if self.graph_rowptr is None:
            return None
        return CSRGraph(self.graph_rowptr, self.graph_col, self.graph_weight, self.graph_nodes, self._graph_symmetric)

    def set_graph(self, graph: CSRGraph | None) -> None:
        """Use ``graph`` (``graph_nodes`` nodes, e.g. ``dataset.graph(removal)``) from now on.

        It is moved to the model's device and dtype. Models without layers (MF:
        ``P = I``) ignore it, so callers may treat every model alike.
        """
        if graph is not None and graph.num_nodes != self.graph_nodes:
            raise ValueError(f"graph has {graph.num_nodes} nodes, the model needs {self.graph_nodes}")
        if self.num_layers == 0 or graph is None:
            self.graph_rowptr = self.graph_col = self.graph_weight = None
            return
        reference = self.reference_tensor
        graph = graph.to(reference.device, reference.dtype)
        self.graph_rowptr, self.graph_col, self.graph_weight = graph.rowptr, graph.col, graph.weight
        self._graph_symmetric = graph.symmetric

    def scoring_table(self) -> Tensor:
        """The table ``F [N, d]`` whose row dot products are the logits."""
        raise NotImplementedError

    @staticmethod
    def pair_logits(table: Tensor, num_users: int, users: Tensor, items: Tensor) -> Tensor:
        """``f_u · f_i`` for rows of ``table [N, d]``: users, items int64 [n] (items NOT offset) → [n]."""
        # One gather (and so one scatter-add in backward) for both endpoints.
        user_rows, item_rows = table[torch.stack((users, items + num_users))]
        return (user_rows * item_rows).sum(-1)

    @torch.no_grad()
    def score_all(self, users: Tensor, items: Tensor, chunk_size: int = 1 << 16) -> Tensor:
        """Logits [n] without autograd, building the scoring table once and scoring
        ``chunk_size`` pairs at a time.

        users, items: int64 [n] on any device (items NOT offset); the result is on the
        model's device.
        """
        table = self.scoring_table()
        users, items = users.to(table.device), items.to(table.device)
        out = table.new_empty(users.numel())
        for start in range(0, users.numel(), chunk_size):
            stop = start + chunk_size
            out[start:stop] = self.pair_logits(table, self.num_users, users[start:stop], items[start:stop])
        return out


class Recommender(GraphModel):
    """Base class of the backbones: a stacked embedding table and dot-product scores.

    Attributes: ``num_users``, ``num_items``, ``dim``, ``num_layers`` (0 for MF),
    ``embedding`` (``nn.Parameter [N, d]``), ``graph`` (``CSRGraph | None``),
    ``init_std``, and ``trace`` (the ``TrainingTrace`` of the run that trained it, set by
    ``train`` and by checkpoints; None for an untrained model). Subclasses define
    ``propagated``.
    """

    name: ClassVar[str]

    def __init__(
        self,
        num_users: int,
        num_items: int,
        dim: int,
        num_layers: int,
        init_std: float,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if num_users <= 0 or num_items <= 0 or dim <= 0 or not 0 <= num_layers <= MAX_LAYERS or not init_std >= 0:
            raise ValueError(
                f"need num_users, num_items, dim > 0, 0 <= num_layers <= {MAX_LAYERS} and init_std >= 0; got "
                f"{num_users}, {num_items}, {dim}, {num_layers}, {init_std}"
            )
        self.num_users, self.num_items, self.dim = num_users, num_items, dim
        self.num_layers, self.init_std = num_layers, init_std
        self.embedding = nn.Parameter(torch.randn(self.num_nodes, dim, generator=generator) * init_std)
        self.init_graph()
        self.trace: TrainingTrace | None = None

    @property
    def reference_tensor(self) -> Tensor:
        return self.embedding

    def propagated(self) -> Tensor:
        """The scoring table ``F [N, d]`` (``E`` for MF, ``P E`` for LightGCN); differentiable."""
        raise NotImplementedError

    def scoring_table(self) -> Tensor:
        return self.propagated()

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        """Logits [n] for users, items int64 [n] (items NOT offset); one propagation per call."""
        return self.pair_logits(self.propagated(), self.num_users, users, items)

    def config(self) -> dict[str, Any]:
        """Plain values that rebuild this architecture: ``build_model(**model.config())``."""
        return {
            "name": self.name,
            "num_users": self.num_users,
            "num_items": self.num_items,
            "dim": self.dim,
            "num_layers": self.num_layers,
            "init_std": self.init_std,
        }

    def extra_repr(self) -> str:
        return f"num_users={self.num_users}, num_items={self.num_items}, dim={self.dim}, num_layers={self.num_layers}"


class MF(Recommender):
    """Matrix factorisation: ``x_ui = e_u · e_i``."""

    name = "mf"

    def __init__(
        self, num_users: int, num_items: int, dim: int, init_std: float, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(num_users, num_items, dim, 0, init_std, generator)

    def propagated(self) -> Tensor:
        return self.embedding


class LightGCN(Recommender):
    """LightGCN: ``x_ui = f_u · f_i`` with ``F = P E`` over the graph set by ``set_graph``."""

    name = "lightgcn"

    def __init__(
        self,
        num_users: int,
        num_items: int,
        dim: int,
        num_layers: int,
        init_std: float,
        graph: CSRGraph | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if num_layers < 1:
            raise ValueError(f"LightGCN needs num_layers >= 1, got {num_layers} (use MF for 0)")
        super().__init__(num_users, num_items, dim, num_layers, init_std, generator)
        self.set_graph(graph)

    def propagated(self) -> Tensor:
        graph = self.graph
        if graph is None:
            raise RuntimeError("LightGCN has no graph: call model.set_graph(dataset.graph(removal)) first")
        return propagate(self.embedding, graph, self.num_layers)


def build_model(
    name: str,
    num_users: int,
    num_items: int,
    dim: int | None = None,
    num_layers: int | None = None,
    init_std: float | None = None,
    graph: CSRGraph | None = None,
    *,
    seed: int | None = None,
) -> Recommender:
    """A model by name ("mf" | "lightgcn"), unset arguments taken from ``DEFAULTS``.

    Defaults: MF d = 48, init N(0, 1e-3²) (std 1e-3); LightGCN 1 layer, d = 32, std 1e-4.
    ``seed`` draws the initial table from its own generator (else the global RNG).
    MF accepts ``num_layers`` only as 0 or None and ignores ``graph``.
    """
    if name not in DEFAULTS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(DEFAULTS)}")
    defaults = DEFAULTS[name]
    dim = defaults["dim"] if dim is None else dim
    num_layers = defaults["num_layers"] if num_layers is None else num_layers
    init_std = defaults["init_std"] if init_std is None else init_std
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    if name == "mf":
        if num_layers != 0:
            raise ValueError(f"MF has no layers, got num_layers={num_layers}")
        return MF(num_users, num_items, dim, init_std, generator)
    return LightGCN(num_users, num_items, dim, num_layers, init_std, graph, generator)
