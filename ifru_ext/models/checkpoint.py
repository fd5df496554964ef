"""Model checkpoints tied to the dataset split they were trained on.

A checkpoint is ``torch.save`` of a plain dict — tensors, str, numbers, lists,
dicts, None — so it loads with ``torch.load(weights_only=True)`` (no pickled code):

``format``      "ifru-checkpoint-v2" (v1 files, whose ``removal`` was named ``exclude``, still load)
``model``       ``Recommender.config()`` (rebuilds the architecture)
``state``       the model's ``state_dict`` on the CPU (the graph is not in it)
``split_hash``  ``RecDataset.split_hash`` of the training data
``removal``     int64 [r] training rows the model does not reflect, or None: the rows its
                training left out (Retrain on ``D_{-r}``) and every row in the ledger
``graph_removal`` int64 [g] or None: the rows the graph a LightGCN predicts with leaves
                out; loading rebuilds exactly ``dataset.graph(graph_removal)``. Usually
                ``removal``; an ``ifru-reference`` answer keeps the old graph, so it keeps the
                input's. Absent in older files: ``removal``.
``ledger``      ``Ledger.to_payload()`` (``ledger.py``): the requests answered so far and the
                union of the rows they forgot (a subset of ``removal``); absent or None in
                older files: an empty ledger
``trace``       ``TrainingTrace.to_payload()`` of the run that trained the model, or None
                (absent in older files: they load, and the training-aware estimator says
                what is missing)
``loss``        the training objective, "bce" or "bpr" (``training_loss`` of the model; the
                trace's when there is one, and loading refuses a disagreement or a "bpr"
                without a trace). Absent in older files: "bce", the only loss then
``meta``        free plain data (training config, dataset arguments, results)

Writes are atomic: a temporary file in the target directory, then ``os.replace``.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data import RecDataset
from .ledger import Ledger, union
from .recommender import Recommender, build_model
from .trace import LOSSES, TrainingTrace, training_loss

__all__ = ["FORMAT", "Checkpoint", "atomic_save", "load_checkpoint", "read_checkpoint", "read_payload", "save_checkpoint"]

FORMAT = "ifru-checkpoint-v2"
# The previous format: the same fields, ``removal`` stored under the key ``exclude``.
_FORMAT_V1 = "ifru-checkpoint-v1"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (graph set when it has layers), the rows it does not
    reflect (``removal``), the rows its graph leaves out (``graph_removal``), the deletion
    ``ledger``, meta and the ``loss`` that trained it ("bce" | "bpr", also ``model.trace.loss``)."""

    model: Recommender
    removal: Tensor | None
    meta: dict[str, Any] = field(default_factory=dict)
    ledger: Ledger = field(default_factory=Ledger)
    graph_removal: Tensor | None = None

    @property
    def loss(self) -> str:
        """The loss that trained the model ("bce" | "bpr"): ``training_loss(model)``."""
        return training_loss(self.model)

    @property
    def trained_without(self) -> Tensor:
        """Rows the model's training left out (``removal`` minus the ledger), sorted int64."""
        removal = union(self.removal)
        return removal[~torch.isin(removal, self.ledger.rows)]


_SAME = object()  # graph_removal's default: the same rows as removal


def _rows_or_none(rows: Tensor | None) -> Tensor | None:
    return None if rows is None else torch.as_tensor(rows, dtype=torch.int64).reshape(-1).cpu()


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Recommender,
    dataset: RecDataset,
    removal: Tensor | None = None,
    meta: dict[str, Any] | None = None,
    *,
    ledger: Ledger | None = None,
    graph_removal: Any = _SAME,
) -> Path:
    """Write ``model`` trained on ``dataset`` minus ``removal`` (int64 train indices) to ``path``.

    ``ledger``: the requests the model has answered (its rows must lie in ``removal``);
    ``graph_removal``: the rows the model's graph leaves out (default ``removal``; None: the
    full graph). ``meta`` must hold plain data only (what ``torch.load(weights_only=True)``
    accepts). Parent directories are created. Returns the path.
    """
    path = Path(path)
    ledger = ledger or Ledger()
    removal = _rows_or_none(removal)
    if ledger.rows.numel() and not bool(torch.isin(ledger.rows, union(removal)).all()):
        raise ValueError("every ledger row must be in removal (the rows the model does not reflect)")
    payload = {
        "format": FORMAT,
        "model": model.config(),
        "state": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        "split_hash": dataset.split_hash,
        "removal": removal,
        "graph_removal": removal if graph_removal is _SAME else _rows_or_none(graph_removal),
        "ledger": ledger.to_payload(),
        "trace": None if model.trace is None else model.trace.to_payload(),
        "loss": training_loss(model),
        "meta": dict(meta or {}),
    }
    return atomic_save(payload, path)


def atomic_save(payload: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """``torch.save(payload)`` to ``path`` (parents created) so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temp file in the same directory makes os.replace an atomic rename: readers see
    # the old checkpoint or the new one, never a partial file. os.open with mode 0o666
    # honours the umask (mkstemp would force 0o600).
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


def read_payload(path: str | os.PathLike[str], format: str | tuple[str, ...], fields: dict[str, type]) -> dict[str, Any]:
    """The dict saved at ``path``, checked to be of ``format`` (or one of several) with each of
    ``fields`` of its type.

    Loads with ``weights_only=True`` (no code runs). Raises FileNotFoundError for a missing
    file and ValueError for anything else that is not such a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # arbitrary bytes can fail torch.load in any way (KeyError, ...): all mean "not one"
        raise ValueError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from None
    formats = (format,) if isinstance(format, str) else format
    if not isinstance(payload, dict) or payload.get("format") not in formats:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: not an {formats[0]} checkpoint (format {found!r})")
    for key, kind in fields.items():
        if not isinstance(payload.get(key), kind):
            raise ValueError(f"{path}: checkpoint field {key!r} is missing or not a {kind.__name__}")
    return payload


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw checkpoint dict, structurally validated but not checked against a dataset.

    Raises FileNotFoundError for a missing file and ValueError for anything that is
    not an intact checkpoint of this format. ``graph_removal`` is filled in for older files
    and ``ledger`` is a ``Ledger`` (empty for older files); ``loss`` is "bce" for older files.
    """
    payload = read_payload(path, (FORMAT, _FORMAT_V1), {"model": dict, "state": dict, "split_hash": str, "meta": dict})
    if payload["format"] == _FORMAT_V1:
        payload["removal"] = payload.pop("exclude", None)
        payload["format"] = FORMAT
    for key in ("removal", "graph_removal"):
        rows = payload.get(key)
        if rows is not None and not (isinstance(rows, Tensor) and rows.dtype == torch.int64 and rows.dim() == 1):
            raise ValueError(f"{path}: checkpoint field {key!r} must be None or an int64 vector")
    payload.setdefault("loss", "bce")  # older files: BCE, the only loss then
    if not isinstance(payload["loss"], str) or payload["loss"] not in LOSSES:
        raise ValueError(f"{path}: checkpoint field 'loss' must be one of {LOSSES}, got {payload['loss']!r}")
    if "graph_removal" not in payload:  # older files: the graph was rebuilt from removal
        payload["graph_removal"] = payload.get("removal")
    try:
        payload["ledger"] = Ledger.from_payload(payload.get("ledger"))
    except ValueError as error:
        raise ValueError(f"{path}: invalid ledger: {error}") from None
    return payload


def load_checkpoint(
    path: str | os.PathLike[str],
    dataset: RecDataset,
    expected_model: str | None = None,
    device: torch.device | str = "cpu",
) -> Checkpoint:
    """Load a checkpoint written by ``save_checkpoint`` for ``dataset``.

    Refuses, with a ValueError naming both sides, a checkpoint of another split
    (``split_hash``), another model kind than ``expected_model`` ("mf" | "lightgcn"),
    a user/item count other than the dataset's, or parameters whose shapes disagree
    with the recorded architecture; also a file that is not an intact checkpoint.
    A model with layers gets the graph ``dataset.graph(graph_removal)``, the one it predicted
    with when saved. Rows of ``removal``, ``graph_removal`` or the ledger outside the
    training set, or ledger rows outside ``removal``, are refused.
    """
    payload = read_checkpoint(path)
    config = payload["model"]
    if payload["split_hash"] != dataset.split_hash:
        raise ValueError(
            f"{path}: checkpoint belongs to another dataset split (split hash {payload['split_hash'][:12]}…, "
            f"this dataset {dataset.split_hash[:12]}…): check the dataset, threshold, k-core, seeds and attack fraction"
        )
    if expected_model is not None and config.get("name") != expected_model:
        raise ValueError(f"{path}: checkpoint holds a {config.get('name')!r} model, expected {expected_model!r}")
    sizes = (config.get("num_users"), config.get("num_items"))
    if sizes != (dataset.num_users, dataset.num_items):
        raise ValueError(f"{path}: checkpoint has (users, items) = {sizes}, the dataset {(dataset.num_users, dataset.num_items)}")
    try:
        model = build_model(**config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: invalid model config {config}: {error}") from None
    expected_shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    found_shapes = {key: tuple(value.shape) if isinstance(value, Tensor) else None for key, value in payload["state"].items()}
    if found_shapes != expected_shapes:
        raise ValueError(f"{path}: parameter shapes {found_shapes} do not match the {config['name']} model {expected_shapes}")
    model.load_state_dict(payload["state"])
    if payload.get("trace") is not None:
        try:
            model.trace = TrainingTrace.from_payload(payload["trace"], tuple(model.embedding.shape))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: invalid training trace: {error}") from None
    if training_loss(model) != payload["loss"]:
        raise ValueError(f"{path}: checkpoint says loss {payload['loss']!r} but its training trace says "
                         f"{training_loss(model)!r}" + ("" if model.trace is not None else " (no trace)"))
    model.to(device)
    removal, graph_removal, ledger = payload["removal"], payload["graph_removal"], payload["ledger"]
    n = len(dataset.train)
    for key, rows in (("removal", removal), ("graph_removal", graph_removal)):
        if rows is not None and rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= n):
            raise ValueError(f"{path}: checkpoint field {key!r} has rows outside the training set [0, {n})")
    try:
        ledger.check(dataset, removal)
    except ValueError as error:
        raise ValueError(f"{path}: invalid ledger: {error}") from None
    if model.num_layers > 0:
        model.set_graph(dataset.graph(graph_removal))
    return Checkpoint(model=model, removal=removal, meta=payload["meta"], ledger=ledger, graph_removal=graph_removal)
