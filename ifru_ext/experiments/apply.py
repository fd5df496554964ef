"""Deletion requests against a checkpoint's ledger, one at a time (``ifru unlearn``, ``ifru apply``).

``answer_request`` answers one request against a loaded checkpoint: the request is split by
its ledger (``models/ledger.py``): rows an earlier request already forgot are skipped and
reported (never forgotten twice: a request is a statement about data, and answering it again
must not move the model a second time), rows the model was trained without (a ``--mode
retrain`` checkpoint's removal) are refused, and the remaining rows are handed to
``unlearn``. The new checkpoint's ``removal`` and ledger are the unions; its graph is the one
the answering method left the model with: a method that moves to a new graph gets the graph
of ``D`` minus every row the model does not reflect (so forgetting A then B leaves
``D \\ (A ∪ B)``), one that keeps the old graph (``ifru-reference``) keeps the input's.
``retrain`` trains from scratch on ``D`` minus all of them.

``apply_log`` replays a log of requests (``read_log``: a CSV of raw ``request_id,user,item``
rows, one request per id, in the order of first appearance) against a checkpoint, writing
``OUT/model.pt`` (atomically, with the ledger and the job's progress in its meta) and
``OUT/progress.json`` after each request. Rerun with the same ``OUT`` it resumes from
``OUT/model.pt``: requests already in the ledger are skipped, so none is applied twice.
Every ``verify_every`` applied requests it retrains on ``D`` minus the ledger (the recorded
training config) and records the drift: test AUC_0, forget loss and membership AUC of the
current model next to the retrain's.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor

from ..data import RecDataset, rows_of_raw_pairs, validate_removal
from ..evaluation import evaluate, forget_loss, membership_auc
from ..graph import CSRGraph
from ..models import Checkpoint, Recommender, load_checkpoint, save_checkpoint
from ..models.ledger import RequestPlan, entry_for, format_pairs, now, plan_request, union
from ..training import TrainConfig, train_new
from ..unlearning import RetrainConfig, UnlearnResult, method_for, unlearn
from ..unlearning.retrain import retrain_config
from .render import json_safe

__all__ = ["Answer", "LogRequest", "answer_request", "apply_log", "encode_requests", "read_log", "verify"]

logger = logging.getLogger(__name__)

PROGRESS = "progress.json"
MODEL = "model.pt"


# --------------------------------------------------------------------------- one request


@dataclass
class Answer:
    """A request answered: the new ``checkpoint`` (model, removal, graph_removal, ledger; the
    input's meta), the method's ``result`` and the ``plan`` (forgotten / skipped rows)."""

    checkpoint: Checkpoint
    result: UnlearnResult
    plan: RequestPlan


def _same_graph(a: CSRGraph | None, b: CSRGraph | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.num_nodes == b.num_nodes and all(
        torch.equal(x.cpu(), y.to(x.dtype).cpu()) for x, y in ((a.rowptr, b.rowptr), (a.col, b.col), (a.weight, b.weight))
    )


def answer_request(checkpoint: Checkpoint, dataset: RecDataset, rows: Tensor, *, request_id: str,
                   method: str = "ifru", config: Any = None) -> Answer:
    """Forget the training ``rows`` (int64 indices into ``dataset.train``) of ``checkpoint``'s
    model with ``method`` and record the request as ``request_id`` in the ledger.

    Rows already in the ledger are skipped (``plan.skipped``); the rest go to
    ``unlearn`` (``retrain``: the union with every row the model does not reflect). Raises
    ValueError, changing nothing, for an invalid request, an id already in the ledger, or
    rows the model was trained without. The input checkpoint is not modified.
    """
    if request_id in checkpoint.ledger:
        raise ValueError(f"request {request_id!r} is already in the ledger (answered "
                         f"{next(e.time for e in checkpoint.ledger.entries if e.id == request_id)}); "
                         "request ids must be unique")
    rows = validate_removal(dataset, rows)
    plan = plan_request(rows, checkpoint.removal, checkpoint.ledger)
    if plan.never_trained.numel():
        raise ValueError(f"request {request_id!r}: {plan.never_trained.numel()} of its {rows.numel()} rows were never "
                         f"trained on by this model (its training left them out, e.g. --mode retrain): "
                         f"{format_pairs(dataset, plan.never_trained)}")
    model = checkpoint.model
    entry = method_for(model, config, method)
    removal = union(checkpoint.removal, plan.forget)
    to_method = removal if isinstance(config or entry.config, RetrainConfig) and plan.forget.numel() else plan.forget
    result = unlearn(model, dataset, to_method, config, method=entry.name)
    unlearned = result.model
    if plan.forget.numel() == 0:
        graph_removal = checkpoint.graph_removal
    elif unlearned.num_layers > 0 and _same_graph(unlearned.graph, model.graph):
        graph_removal = checkpoint.graph_removal  # the method kept the old graph (ifru-reference)
    else:
        graph_removal = removal
        if unlearned.num_layers > 0:  # the new graph leaves out every row the model does not reflect
            unlearned.set_graph(dataset.graph(removal))
    ledger = checkpoint.ledger.add(entry_for(dataset, request_id, entry.name, plan))
    new = Checkpoint(model=unlearned, removal=removal if removal.numel() or checkpoint.removal is not None else None,
                     meta=dict(checkpoint.meta), ledger=ledger, graph_removal=graph_removal)
    return Answer(new, result, plan)


# --------------------------------------------------------------------------- the log


@dataclass(frozen=True)
class LogRequest:
    """One request of a log: its id and the raw ids of its pairs (possibly none)."""

    id: str
    users: tuple[str, ...]
    items: tuple[str, ...]


def read_log(path: str | os.PathLike[str]) -> list[LogRequest]:
    """The requests of a CSV log of raw ``request_id,user,item`` rows.

    A first line ``request_id,user,item`` is a header. Rows are grouped by request id in the
    order each id first appears; a row ``ID,,`` declares a request without pairs (answered as
    empty). Raises ValueError naming the line of a row without exactly three fields, with an
    empty id, or with only one of user and item.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such log file" if not path.exists() else f"{path}: not a file")
    grouped: dict[str, tuple[list[str], list[str]]] = {}
    try:
        with path.open(newline="", encoding="utf-8") as file:
            for number, fields in enumerate(csv.reader(file), start=1):
                fields = [field.strip() for field in fields]
                if not fields or fields == [""]:
                    continue
                if number == 1 and [field.lower() for field in fields] == ["request_id", "user", "item"]:
                    continue
                if len(fields) != 3:
                    raise ValueError(f"{path}:{number}: expected 'request_id,user,item', got {len(fields)} fields")
                request, user, item = fields
                if not request:
                    raise ValueError(f"{path}:{number}: empty request id")
                if (user == "") != (item == ""):
                    raise ValueError(f"{path}:{number}: request {request!r} names a user without an item or an item "
                                     "without a user")
                users, items = grouped.setdefault(request, ([], []))
                if user:
                    users.append(user)
                    items.append(item)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a UTF-8 text file ({error})") from None
    except csv.Error as error:
        raise ValueError(f"{path}: not a readable CSV file ({error})") from None
    return [LogRequest(request, tuple(users), tuple(items)) for request, (users, items) in grouped.items()]


def encode_requests(requests: Sequence[LogRequest], dataset: RecDataset, source: str = "log") -> list[Tensor]:
    """Each request's training rows (sorted int64), by the raw ids of ``dataset``. A pair named
    twice in one request counts once; every training row of a pair is forgotten.

    Raises ValueError naming the request for ids the training set does not know or pairs it
    does not hold, before anything is answered.
    """
    return [rows_of_raw_pairs(dataset, request.users, request.items, source=f"{source}: request {request.id!r}",
                              merge_repeats=True) for request in requests]


# --------------------------------------------------------------------------- verification


def training_config(meta: dict[str, Any], model: Recommender, device: str) -> TrainConfig:
    """The checkpoint's recorded training settings (``meta["train"]``) on ``device``, else how
    the model's trace says it was trained (``retrain_config``: a BPR model retrains as BPR)."""
    recorded = meta.get("train")
    if isinstance(recorded, dict):
        return TrainConfig(**{**recorded, "device": device})
    return retrain_config(model, device)


def verify(checkpoint: Checkpoint, dataset: RecDataset, config: TrainConfig) -> dict[str, Any]:
    """Retrain on ``D`` minus every row ``checkpoint``'s model does not reflect (its removal:
    the ledger and any rows its training left out) and compare: test AUC_0, forget loss and
    membership AUC on the ledger's rows, for the current model and the retrain."""
    start = time.perf_counter()
    model = checkpoint.model
    architecture = model.config()
    retrained, _ = train_new(architecture["name"], dataset, config, checkpoint.removal, dim=architecture["dim"],
                             num_layers=architecture["num_layers"], init_std=architecture["init_std"])
    forgotten = checkpoint.ledger.rows
    record: dict[str, Any] = {"ledger_requests": len(checkpoint.ledger), "ledger_rows": int(forgotten.numel())}
    for name, scorer in (("model", model), ("retrain", retrained)):
        record[f"{name}_auc_0"] = evaluate(scorer, dataset, ("test",))["test"]["auc_0"]
        record[f"{name}_forget_loss"] = forget_loss(scorer, dataset, forgotten) if forgotten.numel() else math.nan
        record[f"{name}_membership_auc"] = membership_auc(scorer, dataset, forgotten) if forgotten.numel() else math.nan
    record["auc_0_drift"] = record["model_auc_0"] - record["retrain_auc_0"]
    record["forget_loss_drift"] = record["model_forget_loss"] - record["retrain_forget_loss"]
    record["seconds"] = time.perf_counter() - start
    return record


def describe_verification(record: dict[str, Any]) -> str:
    """One line for a verification record."""
    return (f"verify after {record['applied']} applied requests ({record['request']}, ledger "
            f"{record['ledger_rows']} rows): test AUC_0 {record['model_auc_0']:.4f} vs retrain "
            f"{record['retrain_auc_0']:.4f} (drift {record['auc_0_drift']:+.4f}); forget loss "
            f"{record['model_forget_loss']:.4f} vs retrain {record['retrain_forget_loss']:.4f} "
            f"(drift {record['forget_loss_drift']:+.4f}); {record['seconds']:.1f} s")


# --------------------------------------------------------------------------- the job


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, value: Any) -> None:
    """``value`` as JSON at ``path``, atomically (temporary file, then rename)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        temp.write_text(json.dumps(json_safe(value), indent=2) + "\n")
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _remove_stale_temporaries(out: Path) -> None:
    """Delete the temporary files of writes into ``out`` by processes that no longer run (a job
    killed mid-write); the complete files they would have replaced are untouched."""
    for temp in [*out.glob(f".{MODEL}.*.tmp"), *out.glob(f".{PROGRESS}.*.tmp")]:
        try:
            pid = int(temp.name.split(".")[-3])
            os.kill(pid, 0)
        except ValueError:
            continue  # not our naming: leave it
        except ProcessLookupError:
            temp.unlink(missing_ok=True)
        except PermissionError:
            continue  # a live process of another user


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` (an advisory lock, released by the kernel if the process dies) so two
    jobs never answer requests into the same folder at once."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with (out / ".lock").open("a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"--out {out}: another 'ifru apply' job is running on this folder") from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def apply_log(
    log: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str],
    dataset: RecDataset,
    out: str | os.PathLike[str],
    *,
    method: str = "ifru",
    config: Any = None,
    verify_every: int | None = None,
    device: str = "cpu",
    meta: dict[str, Any] | None = None,
    after_request: Callable[[int, str], None] | None = None,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Replay the requests of ``log`` (``read_log``) against the checkpoint at ``checkpoint``,
    one at a time with ``method`` (``config``), writing ``out/model.pt`` and
    ``out/progress.json`` after each; return the progress record.

    Resumes from ``out/model.pt`` when it exists (it must come from the same input
    checkpoint, by content): requests already in its ledger are skipped. Every
    ``verify_every`` requests applied by the job, ``verify`` retrains and the drift is recorded
    under ``"verifications"`` (and passed to ``report`` as one line). ``meta`` (plain data,
    e.g. the dataset arguments) is stored in the output checkpoint's meta next to the input's
    training config. A request answered with a status other than ``ok`` (``unlearn``'s evidence:
    ``unchanged``, ``blow-up``) is passed to ``report`` as one line and recorded; the job goes
    on. ``after_request(index, id)`` runs after each request is saved (a hook for tests). The
    whole log is validated before any request is answered.
    """
    log, checkpoint, out = Path(log), Path(checkpoint), Path(out)
    if verify_every is not None and verify_every <= 0:
        raise ValueError(f"verify_every must be a positive number of requests, got {verify_every}")
    if not checkpoint.is_file():
        raise FileNotFoundError(f"no checkpoint at {checkpoint}")
    requests = read_log(log)
    encoded = encode_requests(requests, dataset, source=str(log))
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with _exclusive(out):
            _remove_stale_temporaries(out)
            return _run(requests, encoded, log, checkpoint, dataset, out, method=method, config=config,
                        verify_every=verify_every, device=device, meta=meta, after_request=after_request,
                        report=report)
    except BaseException:
        if created and set(os.listdir(out)) <= {".lock"}:  # refused before the first write: leave no folder
            shutil.rmtree(out, ignore_errors=True)
        raise


def _run(requests: list[LogRequest], encoded: list[Tensor], log: Path, checkpoint: Path, dataset: RecDataset,
         out: Path, *, method: str, config: Any, verify_every: int | None, device: str, meta: dict[str, Any] | None,
         after_request: Callable[[int, str], None] | None, report: Callable[[str], None] | None) -> dict[str, Any]:
    """``apply_log`` once the log is read and ``out`` is locked."""
    base_hash = file_sha256(checkpoint)
    resumed = out / MODEL
    if resumed.exists():
        state = load_checkpoint(resumed, dataset, device=device)
        progress = state.meta.get("apply")
        recorded = progress.get("base", {}).get("sha256") if isinstance(progress, dict) else None
        if recorded is None:
            raise ValueError(f"--out {out} holds a {MODEL} that 'ifru apply' did not write; choose another folder")
        if recorded != base_hash:
            raise ValueError(f"--out {out} holds the job of another input checkpoint ({progress['base']['checkpoint']}); "
                             f"rerun with that checkpoint to resume, or choose another folder")
        logger.info("resuming from %s: %d requests in the ledger", resumed, len(state.ledger))
    else:
        state = load_checkpoint(checkpoint, dataset, device=device)
        progress = {"base": {"checkpoint": str(checkpoint.resolve()), "sha256": base_hash,
                             "ledger_requests": len(state.ledger)},
                    "requests": [], "verifications": []}
    never = state.trained_without
    for request, rows in zip(requests, encoded):
        refused = rows[torch.isin(rows, never)]
        if refused.numel():
            raise ValueError(f"{log}: request {request.id!r}: {refused.numel()} of its rows were never trained on by this "
                             f"model (its training left them out, e.g. --mode retrain): {format_pairs(dataset, refused)}")
    carried = {key: state.meta[key] for key in ("train", "dataset") if key in state.meta}
    train_config = training_config(state.meta, state.model, device) if verify_every else None
    progress.update(log=str(log.resolve()), total=len(requests))
    recorded_ids = {record["id"] for record in progress["requests"]}
    applied = sum(record["status"] == "applied" for record in progress["requests"])

    def save() -> None:
        progress["ledger"] = {"requests": len(state.ledger), "rows": int(state.ledger.rows.numel())}
        progress["complete"] = all(request.id in state.ledger for request in requests)
        save_checkpoint(out / MODEL, state.model, dataset, state.removal, json_safe({**carried, **(meta or {}),
                        "apply": progress}), ledger=state.ledger, graph_removal=state.graph_removal)
        _write_json(out / PROGRESS, progress)

    for index, (request, rows) in enumerate(zip(requests, encoded), start=1):
        if request.id in state.ledger:
            if request.id not in recorded_ids:  # answered before this job: by the input checkpoint
                progress["requests"].append({"index": index, "id": request.id, "status": "skipped",
                                             "reason": "already in the input checkpoint's ledger"})
                recorded_ids.add(request.id)
            continue
        answer = answer_request(state, dataset, rows, request_id=request.id, method=method, config=config)
        state, result = answer.checkpoint, answer.result
        applied += 1
        progress["requests"].append({
            "index": index, "id": request.id, "status": "applied", "method": result.method,
            "time": state.ledger.entries[-1].time, "rows": int(answer.plan.forget.numel()),
            "skipped_rows": int(answer.plan.skipped.numel()), "seconds": result.seconds,
            "result_status": result.status, "update_norm": result.update_norm, "epochs_past": result.epochs_past,
            "forget_loss_before": result.forget_loss_before, "forget_loss_after": result.forget_loss_after,
        })
        recorded_ids.add(request.id)
        logger.info("request %s (%d/%d): forgot %d rows, %d already forgotten, %s in %.2f s", request.id, index,
                    len(requests), answer.plan.forget.numel(), answer.plan.skipped.numel(), result.method,
                    result.seconds)
        if result.status != "ok" and report:
            report(f"request {request.id}: {result.method} answered with status {result.status} (update norm "
                   f"{result.update_norm:.3g}, forget loss {result.forget_loss_before:.4f} → "
                   f"{result.forget_loss_after:.4f}); recorded in progress.json, the job goes on")
        if verify_every and applied % verify_every == 0:
            record = {"applied": applied, "request": request.id, "time": now(),
                      **verify(state, dataset, train_config)}
            progress["verifications"].append(record)
            if report:
                report(describe_verification(record))
        save()  # the ledger, the model and this request's record in one atomic file
        if after_request:
            after_request(index, request.id)
    save()
    return progress
