"""The deletion ledger: what a model has been asked to forget, request by request.

A checkpoint carries one (``checkpoint.py``). ``rows`` is the cumulative set of training
rows forgotten by unlearning requests (sorted, distinct int64 indices into
``dataset.train``); ``entries`` lists the requests in the order they were answered: the
request id, the method that answered it, a UTC timestamp, the rows it forgot (only those no
earlier request had forgotten, so the entries' rows are disjoint and their union is
``rows``), how many of its rows were already forgotten (skipped), and the raw
``(user, item)`` ids of the rows it forgot.

A checkpoint's ``removal`` is every training row the model does not reflect: the rows its
training left out (``--mode retrain``) plus the ledger's rows. A new request is split by
``plan_request``: rows already in the ledger are skipped (reported, never forgotten twice),
rows the model was trained without are refused, the rest are forgotten.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor

from ..data import RecDataset

__all__ = ["Ledger", "LedgerEntry", "RequestPlan", "describe", "entry_for", "format_pairs", "now", "plan_request",
           "raw_pairs", "union"]


def union(*sets: Tensor | None) -> Tensor:
    """Sorted distinct int64 rows in any of ``sets`` (None counts as empty)."""
    parts = [torch.as_tensor(rows, dtype=torch.int64).reshape(-1).cpu() for rows in sets if rows is not None]
    return torch.unique(torch.cat(parts)) if parts else torch.empty(0, dtype=torch.int64)


def _sorted_rows(rows: Any, what: str) -> Tensor:
    if not (isinstance(rows, Tensor) and rows.dtype == torch.int64 and rows.dim() == 1):
        raise ValueError(f"ledger {what} must be an int64 vector")
    if rows.numel() > 1 and not bool((rows[1:] > rows[:-1]).all()):
        raise ValueError(f"ledger {what} must be sorted and distinct")
    return rows.cpu()


def now() -> str:
    """The current UTC time, ISO 8601 to the second (the ledger's timestamps)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class LedgerEntry:
    """One answered request: ``rows`` (sorted int64) it forgot, ``skipped`` rows of it that an
    earlier request had already forgotten, ``users``/``items`` the raw ids of ``rows``."""

    id: str
    method: str
    time: str
    rows: Tensor
    skipped: int = 0
    users: tuple[str, ...] = ()
    items: tuple[str, ...] = ()

    @property
    def num_rows(self) -> int:
        return int(self.rows.numel())

    def to_payload(self) -> dict[str, Any]:
        return {"id": self.id, "method": self.method, "time": self.time, "rows": self.rows.clone(),
                "num_rows": self.num_rows, "skipped": self.skipped, "users": list(self.users),
                "items": list(self.items)}

    @classmethod
    def from_payload(cls, payload: Any) -> "LedgerEntry":
        if not isinstance(payload, dict):
            raise ValueError("a ledger request must be a dict")
        for key, kind in (("id", str), ("method", str), ("time", str), ("skipped", int), ("users", list),
                          ("items", list)):
            if not isinstance(payload.get(key), kind):
                raise ValueError(f"ledger request field {key!r} is missing or not a {kind.__name__}")
        rows = _sorted_rows(payload.get("rows"), f"request {payload['id']!r} rows")
        if payload.get("num_rows", rows.numel()) != rows.numel():
            raise ValueError(f"ledger request {payload['id']!r}: num_rows {payload['num_rows']} but {rows.numel()} rows")
        if not len(payload["users"]) == len(payload["items"]) == rows.numel():
            raise ValueError(f"ledger request {payload['id']!r}: {rows.numel()} rows but "
                             f"{len(payload['users'])} users and {len(payload['items'])} items")
        return cls(payload["id"], payload["method"], payload["time"], rows, payload["skipped"],
                   tuple(map(str, payload["users"])), tuple(map(str, payload["items"])))


@dataclass(frozen=True)
class Ledger:
    """The requests a model has answered (``entries``) and the union of their rows (``rows``)."""

    entries: tuple[LedgerEntry, ...] = ()
    rows: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))

    def __post_init__(self) -> None:
        rows = _sorted_rows(self.rows, "rows")
        expected = union(*(entry.rows for entry in self.entries))
        if sum(entry.num_rows for entry in self.entries) != expected.numel() or not torch.equal(rows, expected):
            raise ValueError("ledger rows are not the disjoint union of its requests' rows")
        ids = [entry.id for entry in self.entries]
        if len(set(ids)) != len(ids):
            raise ValueError(f"ledger request ids repeat: {sorted({i for i in ids if ids.count(i) > 1})[:5]}")

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, request_id: object) -> bool:
        return any(entry.id == request_id for entry in self.entries)

    @property
    def ids(self) -> list[str]:
        return [entry.id for entry in self.entries]

    def next_id(self, prefix: str = "request") -> str:
        """A request id not in the ledger: ``prefix-k`` with the smallest free k > len(self)."""
        k = len(self.entries) + 1
        while f"{prefix}-{k}" in self:
            k += 1
        return f"{prefix}-{k}"

    def add(self, entry: LedgerEntry) -> "Ledger":
        """This ledger with ``entry`` appended (its rows must be new; its id unused)."""
        if entry.id in self:
            raise ValueError(f"request {entry.id!r} is already in the ledger")
        return Ledger(self.entries + (entry,), union(self.rows, entry.rows))

    def to_payload(self) -> dict[str, Any]:
        return {"rows": self.rows.clone(), "requests": [entry.to_payload() for entry in self.entries]}

    @classmethod
    def from_payload(cls, payload: Any) -> "Ledger":
        """The ledger saved by ``to_payload``; None (a file older than the field) is empty."""
        if payload is None:
            return cls()
        if not isinstance(payload, dict) or not isinstance(payload.get("requests"), list):
            raise ValueError("checkpoint field 'ledger' must be None or a dict with a 'requests' list")
        return cls(tuple(LedgerEntry.from_payload(entry) for entry in payload["requests"]),
                   _sorted_rows(payload.get("rows"), "rows"))

    def check(self, dataset: RecDataset, removal: Tensor | None) -> None:
        """ValueError unless every ledger row is a training row of ``dataset`` inside ``removal``."""
        n = len(dataset.train)
        if self.rows.numel() and (int(self.rows[0]) < 0 or int(self.rows[-1]) >= n):
            raise ValueError(f"ledger rows must lie in [0, {n})")
        outside = self.rows[~torch.isin(self.rows, union(removal))]
        if outside.numel():
            raise ValueError(f"{outside.numel()} ledger rows are not in the checkpoint's removal: {outside[:5].tolist()}")


@dataclass(frozen=True)
class RequestPlan:
    """A request split against a checkpoint: ``forget`` the new rows, ``skipped`` rows an earlier
    request already forgot, ``never_trained`` rows the model was trained without."""

    forget: Tensor
    skipped: Tensor
    never_trained: Tensor


def plan_request(rows: Tensor, removal: Tensor | None, ledger: Ledger) -> RequestPlan:
    """Split the validated request ``rows`` (int64 training rows) against a checkpoint's
    ``removal`` and ``ledger``."""
    rows = union(rows)
    removed = union(removal, ledger.rows)
    in_ledger = torch.isin(rows, ledger.rows)
    never = torch.isin(rows, removed) & ~in_ledger
    return RequestPlan(rows[~torch.isin(rows, removed)], rows[in_ledger], rows[never])


def raw_pairs(dataset: RecDataset, rows: Tensor) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The raw ``(user ids, item ids)`` of training ``rows``, as strings."""
    picked = dataset.train.select(torch.as_tensor(rows, dtype=torch.int64))
    return (tuple(str(x) for x in dataset.user_ids[picked.users.numpy()]),
            tuple(str(x) for x in dataset.item_ids[picked.items.numpy()]))


def entry_for(dataset: RecDataset, request_id: str, method: str, plan: RequestPlan,
              time: str | None = None) -> LedgerEntry:
    """The ledger entry recording that ``plan.forget`` was forgotten by ``method``."""
    users, items = raw_pairs(dataset, plan.forget)
    return LedgerEntry(request_id, method, time or now(), plan.forget.clone(), int(plan.skipped.numel()), users, items)


def format_pairs(dataset: RecDataset, rows: Tensor, limit: int = 5) -> str:
    """Up to ``limit`` raw ``(user, item)`` pairs of ``rows``, for messages."""
    users, items = raw_pairs(dataset, rows[:limit])
    return ", ".join(f"({u}, {i})" for u, i in zip(users, items)) + (", …" if rows.numel() > limit else "")


def describe(entries: Sequence[LedgerEntry]) -> str:
    """``id (method, n rows)`` for each entry."""
    return ", ".join(f"{entry.id} ({entry.method}, {entry.num_rows} rows)" for entry in entries)
