"""A model's embedding tables and raw-id mappings in a standalone, RecBole-style folder.

``export_recbole(model, dataset, folder)`` writes:

``user_embedding.npy``  float32 [U, d]: the user rows of the scoring table ``F`` (docs/ARCHITECTURE.md §2)
``item_embedding.npy``  float32 [I, d]: the item rows of ``F``; the logit of a pair is
                        ``user_embedding[u] · item_embedding[i]`` (sigmoid: the probability)
``state_dict.pt``       ``torch.save`` of the learned table ``E`` under RecBole's MF/BPR and
                        LightGCN parameter names ``user_embedding.weight`` [U, d] and
                        ``item_embedding.weight`` [I, d] (MF: ``F = E``; LightGCN: ``F = P E``
                        with the graph the model predicts with, which ``E`` alone does not carry)
``user_id.tsv``         header ``user_id:token``, then the raw user token of row 0, 1, …
``item_id.tsv``         header ``item_id:token``, then the raw item token of row 0, 1, …
``export.json``         format, model config, sizes, the scoring rule, and ``meta`` (provenance)

Row ``k`` of a table is the token on line ``k + 2`` of its mapping file. RecBole itself
reserves row 0 of each table for ``[PAD]`` and numbers tokens in its own order, so a RecBole
model takes these rows by token (``dataset.token2id``), not by position. Nothing here is
pickled code: the ``.npy`` files load with ``allow_pickle=False``, ``state_dict.pt`` with
``weights_only=True``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from ..data import RecDataset
from .recommender import Recommender

__all__ = ["EXPORT_FORMAT", "EXPORT_FILES", "Exported", "export_recbole", "read_export"]

EXPORT_FORMAT = "ifru-recbole-export-v1"
EXPORT_FILES = ("user_embedding.npy", "item_embedding.npy", "state_dict.pt", "user_id.tsv", "item_id.tsv",
                "export.json")
_FIELDS = {"user": "user_id", "item": "item_id"}


def _tokens(ids: np.ndarray, kind: str) -> list[str]:
    """The raw ids as strings; ValueError for one a TSV line cannot hold (a tab or line break)."""
    tokens = [str(token) for token in ids]
    bad = [token for token in tokens if any(char in token for char in "\t\r\n")]
    if bad:
        raise ValueError(f"{len(bad)} {kind} id(s) contain a tab or line break and cannot be written as tokens, "
                         f"e.g. {bad[:3]!r}")
    return tokens


def export_recbole(model: Recommender, dataset: RecDataset, folder: str | os.PathLike[str],
                   meta: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """Write ``model`` (trained on ``dataset``, graph set for LightGCN) into ``folder`` (which
    must exist) as the files of ``EXPORT_FILES``, described in the module docstring.

    ``meta`` (JSON-serialisable) is stored in ``export.json``. Returns the file names written.
    ValueError when the model's sizes are not the dataset's, a LightGCN has no graph, or a raw
    id holds a tab or line break.
    """
    folder = Path(folder)
    if (model.num_users, model.num_items) != (dataset.num_users, dataset.num_items):
        raise ValueError(f"model has (users, items) = {(model.num_users, model.num_items)}, the dataset "
                         f"{(dataset.num_users, dataset.num_items)}")
    if model.num_layers > 0 and model.graph is None:
        raise ValueError("a LightGCN model needs its graph (set_graph) to export its scoring table")
    tokens = {"user": _tokens(dataset.user_ids, "user"), "item": _tokens(dataset.item_ids, "item")}
    with torch.no_grad():
        scoring = model.scoring_table().detach().to("cpu", torch.float32)
        learned = model.embedding.detach().to("cpu", torch.float32)
    split = {"user": slice(0, model.num_users), "item": slice(model.num_users, model.num_nodes)}
    description = {
        "format": EXPORT_FORMAT,
        "model": model.config(),
        "num_users": model.num_users,
        "num_items": model.num_items,
        "dim": model.dim,
        "score": "logit(u, i) = user_embedding.npy[u] · item_embedding.npy[i]; row k is line k + 2 of user_id.tsv / "
                 "item_id.tsv",
        "state_dict": "the learned table E under RecBole's names (MF: E is the scoring table; LightGCN: the scoring "
                      "table is P E over the model's graph)",
        "meta": dict(meta or {}),
    }
    text = json.dumps(description, indent=2) + "\n"  # serialised first: a failure here writes nothing
    for kind, field in _FIELDS.items():
        np.save(folder / f"{kind}_embedding.npy", scoring[split[kind]].numpy(), allow_pickle=False)
        (folder / f"{field}.tsv").write_text("".join(f"{token}\n" for token in [f"{field}:token", *tokens[kind]]),
                                             encoding="utf-8")
    torch.save({f"{kind}_embedding.weight": learned[split[kind]].clone() for kind in _FIELDS},
               folder / "state_dict.pt")
    (folder / "export.json").write_text(text, encoding="utf-8")
    return EXPORT_FILES


@dataclass
class Exported:
    """An export read back: raw tokens in row order, the scoring tables, the learned table's
    ``state_dict`` and the ``export.json`` description."""

    user_tokens: list[str]
    item_tokens: list[str]
    user_embedding: np.ndarray
    item_embedding: np.ndarray
    state_dict: dict[str, Tensor]
    description: dict[str, Any]

    def score(self, user: str, item: str) -> float:
        """The logit of the raw ``user`` and ``item`` tokens."""
        user_row = self.user_embedding[self.user_tokens.index(user)]
        return float(user_row @ self.item_embedding[self.item_tokens.index(item)])


def read_export(folder: str | os.PathLike[str]) -> Exported:
    """Read a folder written by ``export_recbole``; ValueError for a missing or inconsistent part."""
    folder = Path(folder)
    missing = [name for name in EXPORT_FILES if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"{folder}: not an {EXPORT_FORMAT} folder (missing {missing})")
    description = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    if description.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{folder}: export.json has format {description.get('format')!r}, expected {EXPORT_FORMAT!r}")
    tokens, tables = {}, {}
    for kind, field in _FIELDS.items():
        lines = (folder / f"{field}.tsv").read_text(encoding="utf-8").split("\n")
        if lines[0] != f"{field}:token" or lines[-1] != "":
            raise ValueError(f"{folder / f'{field}.tsv'}: expected the header {field}:token and one token per line")
        tokens[kind] = lines[1:-1]
        tables[kind] = np.load(folder / f"{kind}_embedding.npy", allow_pickle=False)
        if tables[kind].shape != (len(tokens[kind]), description["dim"]):
            raise ValueError(f"{folder}: {kind}_embedding.npy has shape {tables[kind].shape}, the mapping "
                             f"{len(tokens[kind])} tokens of width {description['dim']}")
    state = torch.load(folder / "state_dict.pt", map_location="cpu", weights_only=True)
    return Exported(tokens["user"], tokens["item"], tables["user"], tables["item"], state, description)
