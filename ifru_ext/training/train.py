"""Training with the paper's protocol (docs/ARCHITECTURE.md §5).

Adam on the mean BCE-with-logits over all labelled training pairs (no negative
sampling; optional ``(λ/2)‖E‖²``), shuffled mini-batches of 2048 from a seeded
generator, early stopping on the whole-validation AUC with patience 10 once the training
loss decelerates (``TrainConfig.wait_until_decelerating``), where only epochs clearly below
the best are misses (``TrainConfig.wait_through_plateaus``), and the best state loaded back.
``removal`` trains on ``D_{-r}`` (Retrain): those rows leave the loss AND, for LightGCN, the graph.
``TrainConfig.loss = "bpr"`` trains instead on BPR triples over the label-1 rows (``bpr.py``), with
the same batches, early stopping and trace.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict

import torch
from torch import Tensor
from torch.nn.functional import binary_cross_entropy_with_logits

from ..data import RecDataset
from ..metrics import auc, auc_noise, auc_placements, paired_auc_sd
from ..models import Recommender, build_model
from ..models.trace import (DEFAULT_SNAPSHOTS, LOSSES, PLATEAU_TOLERANCES, STOPPING_SETTINGS, Snapshot, SnapshotRecorder,
                           TrainingTrace)
from .bpr import NegativeSampler, bpr_loss, bpr_rows
from .early_stopping import EarlyStopping, snapshot

try:  # optional: a progress bar when tqdm is installed
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm
except ImportError:  # pragma: no cover - depends on the environment
    tqdm = None

__all__ = ["LOSSES", "PLATEAU_TOLERANCES", "SCHEDULES", "SCHEDULE_MODELS", "EpochLog", "TrainConfig", "TrainResult",
           "check_validation", "model_arguments", "shuffled_batches", "train", "train_new"]

logger = logging.getLogger(__name__)

# Named learning-rate schedules per model. "paper" is the authors' setting and the
# default. "fast" trades ~0.004 validation AUC for ~3x fewer LightGCN epochs; MF is
# already fast and keeps its lr. Measured on BookCrossing (1% attack, seed 1024),
# best whole-validation AUC @ best epoch: lr 1e-4 (paper) 0.6577 @ 132;
# lr 3e-4 0.6535 @ 36; lr 4e-4 with batch 8192 0.6526 @ 52; lr 1e-3 0.6472 @ 9.
# The smaller step size generalises better, so no faster setting matched the paper's.
# "bpr" trains the BPR loss (bpr.py) for top-K recommendation; with it LightGCN takes the
# architecture of SCHEDULE_MODELS (d = 64, K = 2, init N(0, 0.1²)). Measured on BookCrossing
# (1% attack, seed 1024, one thread, early stopping on validation AUC), test AUC_0 / Recall@20 /
# NDCG@20 (full ranking; a user's train and valid items left out), best @ epochs run:
#   LightGCN BCE paper (d 32, K 1, lr 1e-4)        0.6570 / 0.0053 / 0.0032  132 @ 142
#   LightGCN BPR lr 1e-3, d 32, K 1, init 1e-4      0.5837 / 0.0376 / 0.0218  195 @ 205
#   LightGCN BPR lr 1e-3, d 64, K 2, init 0.1 (bpr) 0.5808 / 0.0406 / 0.0251  176 @ 186
#   MF BPR lr 1e-3, d 48, init 1e-3 (bpr)           0.5780 / 0.0365 / 0.0211  160 @ 170
#   MF BPR lr 1e-3, d 64, init 0.1                  0.5545 / 0.0177 / 0.0106  310 @ 320
#   item popularity (train positives)                   — / 0.0292 / 0.0173
#   MF BCE paper, 2% attack                         0.7327 / 0.0033 / 0.0018    8 @ 18
# BPR ranks every item far better than BCE, which learns the labelled pairs (rated items,
# whose AUC it wins); BPR's AUC on those pairs is low because a rated label-0 item looks like a
# positive to it. Validation AUC keeps creeping up long after validation Recall@20 peaks
# (LightGCN bpr: 0.0451 at epoch 90, 0.0427 at the AUC-selected 176), so the run is longer than
# it needs to be, but no worse on test than the paper's protocol selects.
SCHEDULES: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {"mf": {"lr": 1e-3}, "lightgcn": {"lr": 1e-4, "scaled_patience": True}},
    "fast": {"mf": {"lr": 1e-3}, "lightgcn": {"lr": 3e-4, "scaled_patience": True}},
    "bpr": {"mf": {"lr": 1e-3, "loss": "bpr"}, "lightgcn": {"lr": 1e-3, "loss": "bpr"}},
}
# build_model arguments a schedule sets when not given (``model_arguments``); the rest from
# models.DEFAULTS.
SCHEDULE_MODELS: dict[str, dict[str, dict[str, Any]]] = {
    "bpr": {"lightgcn": {"dim": 64, "num_layers": 2, "init_std": 0.1}},
}


def model_arguments(model: str, schedule: str = "paper", **given: Any) -> dict[str, Any]:
    """``build_model``'s ``dim`` / ``num_layers`` / ``init_std`` for ``model`` under ``schedule``:
    ``given`` (None = not given), else the schedule's (``SCHEDULE_MODELS``), else None (the
    model's defaults)."""
    preset = SCHEDULE_MODELS.get(schedule, {}).get(model, {})
    return {name: given.get(name) if given.get(name) is not None else preset.get(name)
            for name in ("dim", "num_layers", "init_std")}


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. ``for_model`` fills in a named schedule's values.

    ``loss`` (one of ``LOSSES``): "bce" (the paper's mean BCE over every labelled row) or "bpr" (the mean
    ``−log σ(x_ui − x_uj)`` over the label-1 rows, each with one negative item ``j`` per epoch
    from ``bpr_negatives``; label-0 rows are not used). ``l2`` is λ of the objective
    ``mean loss + (λ/2)‖E‖²`` (the authors use 0); the unlearning Hessian must use the same
    λ. ``log_every``: one log line every that many epochs (and at the last).
    ``wait_until_decelerating``: early stopping counts epochs from the one where the training
    loss fell fastest, once the next epoch falls by no more. While each epoch's fall is larger
    than the last, the optimiser is still speeding up out of its initial table (a small one:
    logits near 0 and gradients that grow with the table), and a dip of the validation AUC then
    is not the run turning (docs/ARCHITECTURE.md §5). False: every epoch counts (the plain rule).
    ``wait_through_plateaus``: an epoch counts as a miss only when its validation AUC is below the
    best epoch's by more than ``plateau_tolerance``; a level epoch resets the count, and the best
    epoch is still the one returned. A LightGCN grown from a small table crosses plateaus where its
    AUC stays level to 1e-5 for tens of epochs before rising again, and whether patience runs out
    there hangs on gains of 1e-5: a Retrain that edges past the plateau ends a different model
    (docs/ARCHITECTURE.md §5). False: every epoch without a strictly better AUC is a miss (the plain
    rule).
    ``plateau_tolerance`` (``PLATEAU_TOLERANCES``): "paired" (the default), one standard deviation of
    the two AUCs' difference on the same rows (``paired_auc_sd`` of both epochs' validation scores):
    two nearby epochs rank the validation rows almost alike, so it is small where the curve really
    falls and the run stops much as under the plain rule (the same model in every measured run whose
    curve fell after the plain rule's best). "noise", one scoring's sampling deviation (``auc_noise``
    of the validation labels): the run goes on until its AUC has fallen by more than chance could
    explain, through LightGCN's slow dips too (a steady dip is as many paired deviations deep after
    forty epochs as after four), at the price of long runs; neither keeps an Original and its
    Retrain in the same phase of every LightGCN run measured (docs/ARCHITECTURE.md §5).
    ``scaled_patience``: the run stops after ``max(patience, best − turning)`` misses, where
    ``turning`` is the epoch the stopping started from (``wait_until_decelerating``'s, else 0): a run
    that took long to reach its best waits as long again for its next rise. Off for a bare
    ``TrainConfig``; on in LightGCN's BCE presets ("paper", "fast"): on the nine LightGCN pairs
    replayed with their scores and the LightGCN cells of the fidelity matrix trained again with it,
    it kept every Original in its Retrain's phase, where the fixed patience split one (the
    MovieLens-shaped poisoned Original stopped at epoch 51 of a slow dip, its Retrain at 636), and
    returned the same epochs everywhere else, at up to twice the epochs trained (docs/ARCHITECTURE.md §5).
    ``snapshots``: the earlier points of the run the model's ``TrainingTrace`` keeps (the epochs
    nearest to cutting the run up to the returned one into equal parts, ``SnapshotRecorder``; each
    holds two ``[N, d]`` bfloat16 tables, and training holds up to four times as many), so the
    training response walks ``snapshots + 1`` segments of the run. More walk a long run more
    finely: on a run that memorises its rows, the removed rows' gradients are ~0 at every late
    snapshot, and the walk sees their fitting only through early ones (reports/fidelity-segments: a
    962-epoch planted run, uncalibrated, 0.10 of Retrain's forget loss with 2, 0.74 with 32; with
    two Newton corrections per segment 0.12 and 1.04). The default, 2, is what every estimator's
    committed numbers and calibrations were measured with (before 2026-12-05 with the first and
    the last snapshot held instead: reports/fidelity-picks). Besides these the trace keeps the
    epochs the run trained past the returned one (``TrainingTrace.tail``, at most ``patience`` of
    them, two bfloat16 tables each; training holds those after its best epoch so far), which the
    trajectory horizon reads.
    """

    lr: float = 1e-3
    batch_size: int = 2048
    max_epochs: int = 1000
    patience: int = 10
    seed: int = 1024
    device: str = "cpu"
    log_every: int = 1
    l2: float = 0.0
    loss: str = "bce"
    wait_until_decelerating: bool = True
    wait_through_plateaus: bool = True
    plateau_tolerance: str = "paired"
    scaled_patience: bool = False
    snapshots: int = DEFAULT_SNAPSHOTS

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.plateau_tolerance not in PLATEAU_TOLERANCES:
            raise ValueError(f"unknown plateau_tolerance {self.plateau_tolerance!r}; choose one of "
                             f"{', '.join(PLATEAU_TOLERANCES)}")
        if self.lr <= 0 or self.batch_size <= 0 or self.max_epochs <= 0 or self.patience <= 0 or self.log_every <= 0:
            raise ValueError(f"lr, batch_size, max_epochs, patience and log_every must be positive: {self}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")
        if isinstance(self.snapshots, bool) or not isinstance(self.snapshots, int) or self.snapshots < 0:
            raise ValueError(f"snapshots must be an int >= 0, got {self.snapshots!r}")

    def stopping(self) -> dict[str, int | bool | str]:
        """How a run by this config stops: its ``STOPPING_SETTINGS`` (what a trace records)."""
        return {name: getattr(self, name) for name in STOPPING_SETTINGS}

    @classmethod
    def for_model(cls, model: str, schedule: str = "paper", **overrides: Any) -> "TrainConfig":
        """The ``schedule`` ("paper" | "fast" | "bpr") preset for ``model``, then ``overrides`` (None = keep).
        The "bpr" schedule's LightGCN architecture is ``model_arguments``'s, not part of the config."""
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}; choose one of {sorted(SCHEDULES)}")
        if model not in SCHEDULES[schedule]:
            raise ValueError(f"schedule {schedule!r} has no preset for model {model!r}")
        preset = cls(**SCHEDULES[schedule][model])
        return replace(preset, **{key: value for key, value in overrides.items() if value is not None})


class EpochLog(TypedDict):
    """One epoch: mean training loss (BCE or BPR) over its batches (without the l2 term),
    whole-validation AUC, wall seconds (train + eval)."""

    epoch: int
    loss: float
    valid_auc: float
    seconds: float


@dataclass
class TrainResult:
    """Outcome of ``train``; the model passed in already holds the best state.

    ``epochs`` counts the training epochs run (1-based ``best_epoch`` among them;
    ``best_epoch == 0`` means the starting state was kept, see ``train(include_start=)``);
    ``seconds`` is the wall time of the whole call; ``history`` has one ``EpochLog`` per
    epoch, preceded by the epoch-0 record when the start was included.
    """

    best_epoch: int
    best_valid_auc: float
    epochs: int
    seconds: float
    stopped_early: bool
    history: list[EpochLog] = field(default_factory=list)


def _progress_bar(stack: contextlib.ExitStack, config: TrainConfig, enabled: bool) -> Any:
    """A tqdm bar over epochs entered on ``stack`` (log lines routed around it), or None."""
    if not enabled or tqdm is None:
        return None
    stack.enter_context(logging_redirect_tqdm())
    return stack.enter_context(tqdm(total=config.max_epochs, unit="epoch", dynamic_ncols=True, leave=False))


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> tuple[Tensor, ...]:
    """Index batches int64 [≤ batch_size] of one shuffled pass over ``n`` rows."""
    # Drawn on the CPU from a CPU generator, so the order is the same on every device.
    return torch.randperm(n, generator=generator).to(device).split(batch_size)


def check_validation(dataset: RecDataset) -> None:
    """Raise ValueError unless the validation split has both labels (early stopping needs its AUC)."""
    labels = dataset.valid.labels
    if not bool((labels == 0).any() and (labels == 1).any()):
        raise ValueError("the validation split needs both labels for early stopping on AUC")


def train(
    model: Recommender,
    dataset: RecDataset,
    config: TrainConfig,
    removal: Tensor | None = None,
    progress: bool = True,
    include_start: bool = False,
) -> TrainResult:
    """Fit ``model`` on ``dataset``'s training rows minus ``removal`` (int64 train indices).

    For LightGCN the graph is set to ``dataset.graph(removal)`` first. Each epoch is
    one shuffled pass (seeded by ``config.seed``) followed by the AUC on the whole
    validation split; training stops after ``config.patience`` epochs without a
    strictly better AUC (with ``config.wait_through_plateaus``: ``patience`` epochs each below
    the best by more than ``config.plateau_tolerance``) or at ``max_epochs``, and the best state is
    loaded back. With ``config.wait_until_decelerating`` the stopping starts afresh from the epoch
    whose training loss fell fastest, once the next one falls by no more (``include_start``: at once).
    ``config.loss == "bpr"``: the pass is over the label-1 rows (``bpr_rows``), each with its
    negative of the epoch (``bpr_negatives(dataset, rows, epoch, config.seed)``, epochs
    1-based); early stopping stays on the validation AUC of the labelled pairs.
    The model's ``trace`` records this run (``TrainingTrace``: the loss, learning rate, optimiser
    steps to the returned epoch, Adam's second moments there, the starting table).
    ``include_start`` (fine-tuning a trained model) scores the model as passed in as
    epoch 0 — its loss in the history is the exact mean loss over the rows (BPR: with the
    negatives of epoch 0) — so it is returned unless an epoch strictly beats its validation AUC.
    Raises ValueError when the training rows (BPR: the positive ones) are empty or the
    validation split lacks one of the two labels (its AUC would be undefined).
    """
    start_time = time.perf_counter()
    device = torch.device(config.device)
    rows = dataset.remaining(removal)
    if len(rows) == 0:
        raise ValueError("no training rows left to train on")
    check_validation(dataset)
    valid_labels = dataset.valid.labels

    sampler, positives = None, None
    if config.loss == "bpr":
        positives = bpr_rows(dataset, removal)
        if len(positives) == 0:
            raise ValueError("no positive (label-1) training rows left to train BPR on")
        sampler, rows = NegativeSampler(dataset), dataset.train.select(positives)

    model.to(device)
    if model.num_layers > 0:
        model.set_graph(dataset.graph(removal))
    users, items, labels = (t.to(device) for t in (rows.users, rows.items, rows.labels))

    def negatives_of(epoch: int) -> Tensor | None:
        """BPR: the negative item of each row at ``epoch``; BCE: None."""
        return None if sampler is None else sampler(positives, epoch, config.seed).to(device)

    def loss_of(batch: Tensor | slice, negatives: Tensor | None, score: Any = model) -> Tensor:
        """The mean loss over the rows ``batch`` (BCE, or BPR against ``negatives``) scored by ``score``."""
        if negatives is None:
            return binary_cross_entropy_with_logits(score(users[batch], items[batch]), labels[batch])
        batch_users = users[batch]
        logits = score(torch.cat((batch_users, batch_users)), torch.cat((items[batch], negatives[batch])))
        return bpr_loss(*logits.split(batch_users.numel()))

    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
    generator = torch.Generator().manual_seed(config.seed)

    history: list[EpochLog] = []
    stopper, stop = EarlyStopping(config.patience), False
    # A paired plateau tolerance: the auc_placements of the epoch being scored; each recorded state
    # keeps its epoch's, so an epoch's AUC is compared with the best's on the same rows.
    placements: tuple[Tensor, Tensor] | None = None
    # Measured on a MovieLens-shaped file (60k training rows), LightGCN at the paper's lr 1e-4 with
    # the plain rule returned epoch 4, every logit within 0.02 of 0 and its loss still falling faster
    # each epoch, where a Retrain by the same rule returned epoch 94 (docs/ARCHITECTURE.md §5).
    decelerating = include_start or not config.wait_until_decelerating
    speeding: tuple[int, float, Any] | None = None  # the last epoch while the loss sped up: epoch, AUC, state
    turned = 0  # the epoch the stopping started from (scaled_patience)

    def patience() -> int:
        """The misses in a row that stop the run: ``config.patience``, or with ``scaled_patience`` at
        least as many as the epochs from the turning one to the best."""
        return max(config.patience, stopper.best_step - turned) if config.scaled_patience else config.patience

    def offer(epoch: int, valid_auc: float) -> bool:
        """Hand an epoch to early stopping; whether it is the best so far. Once an epoch's loss
        falls by no more than the previous epoch's, the stopping starts afresh from that previous
        epoch (the fastest fall: where the loss turned), and the epochs before it are no longer
        candidates; before that each epoch's state is held, so the turning epoch can be one."""
        nonlocal stopper, decelerating, speeding, turned
        if not decelerating and len(history) >= 3:
            before, last, now = (record["loss"] for record in history[-3:])
            if last - now <= before - last:
                decelerating, stopper = True, EarlyStopping(config.patience)
                turning_epoch, turning_auc, turning_state = speeding
                stopper.update(turning_epoch, turning_auc, lambda: turning_state)
                turned = turning_epoch
        if decelerating:
            return stopper.update(epoch, valid_auc, state, tolerance=level())
        held = state()
        speeding = epoch, valid_auc, held
        return stopper.update(epoch, valid_auc, lambda: held)  # a candidate while no epoch decelerates

    initial, steps, recorder = model.embedding.detach().clone(), 0, SnapshotRecorder(config.snapshots)
    # The epochs after the best one so far, at most ``patience`` of them: the trace's ``tail``.
    past_best: list[tuple[int, Snapshot]] = []
    # How a from-scratch run of this model stops: fine-tuning (include_start) continues a trained
    # model, so its trace keeps the trained run's settings, not the fine-tune's patience and cap.
    stopping = ((model.trace.stopping if model.trace is not None else None) if include_start
                else config.stopping())
    beta2 = optimizer.param_groups[0]["betas"][1]

    def second_moment() -> Tensor | None:
        """Adam's bias-corrected v̂ [N, d] of the embedding (None before any step)."""
        moments = optimizer.state.get(model.embedding, {})
        return None if steps == 0 or "exp_avg_sq" not in moments else moments["exp_avg_sq"].detach() / (1 - beta2**steps)

    paired = config.wait_through_plateaus and config.plateau_tolerance == "paired"
    noise = auc_noise(valid_labels) if config.wait_through_plateaus and not paired else 0.0

    def level() -> float:
        """How far below the best epoch's validation AUC this epoch's may be and still not be a miss
        (``wait_through_plateaus``): "paired", one standard deviation of the two AUCs' difference on
        the same rows (``paired_auc_sd``; 0 before a best epoch); "noise", ``auc_noise`` of the
        validation labels; 0 (the plain rule) without the option."""
        if not paired:
            return noise
        if placements is None or stopper.best_state is None:
            return 0.0
        return paired_auc_sd(placements, stopper.best_state[2])

    def validate() -> float:
        """The model's validation AUC (and, for a paired ``level``, its placements)."""
        nonlocal placements
        scores = model.score_all(dataset.valid.users, dataset.valid.items)
        if paired:
            placements = auc_placements(scores, valid_labels)
        return auc(scores, valid_labels)

    def state() -> tuple[dict[str, Tensor], TrainingTrace | None, tuple[Tensor, Tensor] | None]:
        """The model's state, the trace of the run so far (the model's own before any step) and the
        epoch's validation placements."""
        second = second_moment()
        if second is None:
            return snapshot(model), model.trace, placements
        trace = TrainingTrace(lr=config.lr, steps=steps, best_epoch=epoch, batch_size=config.batch_size,
                              rows=len(rows), seed=config.seed, l2=config.l2, loss=config.loss, beta2=beta2,
                              eps=optimizer.param_groups[0]["eps"], second_moment=second.clone(), initial=initial,
                              snapshots=recorder.before(steps), stopping=stopping)
        return snapshot(model), trace, placements

    epoch = 0
    if include_start:
        model.eval()
        start_auc = validate()
        start_loss = loss_of(slice(None), negatives_of(0), model.score_all).item()
        history.append(EpochLog(epoch=0, loss=start_loss, valid_auc=start_auc, seconds=time.perf_counter() - start_time))
        offer(0, start_auc)
    with contextlib.ExitStack() as stack:
        bar = _progress_bar(stack, config, progress)
        for epoch in range(1, config.max_epochs + 1):
            epoch_start = time.perf_counter()
            model.train()
            # Summed on the device: no host sync per step.
            loss_sum = torch.zeros((), device=device)
            negatives = negatives_of(epoch)
            for batch in shuffled_batches(len(rows), config.batch_size, generator, device):
                loss = loss_of(batch, negatives)
                loss_sum += loss.detach() * batch.numel()
                if config.l2 > 0:
                    loss = loss + 0.5 * config.l2 * model.embedding.pow(2).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                steps += 1
            recorder.record(epoch, steps, model.embedding, second_moment())
            model.eval()
            valid_auc = validate()
            record = EpochLog(
                epoch=epoch,
                loss=loss_sum.item() / len(rows),
                valid_auc=valid_auc,
                seconds=time.perf_counter() - epoch_start,
            )
            history.append(record)

            improved = offer(epoch, valid_auc)
            past_best = [(earlier, held) for earlier, held in past_best if earlier > stopper.best_step]
            moment = second_moment()
            if epoch > stopper.best_step and len(past_best) < config.patience and moment is not None:
                past_best.append((epoch, Snapshot(steps, model.embedding.detach().to(torch.bfloat16),
                                                  moment.to(torch.bfloat16))))
            stop = decelerating and stopper.should_stop(epoch, patience())
            if epoch % config.log_every == 0 or stop or epoch == config.max_epochs:
                logger.info(
                    "epoch %4d  loss %.5f  valid AUC %.4f%s  %.1fs",
                    epoch, record["loss"], valid_auc, " *" if improved else "  ", record["seconds"],
                )
            if bar is not None:
                bar.update()
                bar.set_postfix(loss=f"{record['loss']:.4f}", auc=f"{valid_auc:.4f}",
                                best=f"{stopper.best_score:.4f}@{stopper.best_step}")
            if stop:
                break

    assert stopper.best_state is not None  # at least one epoch ran and a finite AUC beats -inf
    best_state, model.trace, _ = stopper.best_state
    model.load_state_dict(best_state)
    if model.trace is not None and stopper.best_step > 0:  # epoch 0: the model's own trace, not this run's
        # How the run went on past the returned epoch: the horizons read it (UnlearnConfig.horizon).
        aucs = tuple(float(record["valid_auc"]) for record in history if record["epoch"] >= stopper.best_step)
        model.trace = replace(model.trace, validation_tail=aucs,
                              tail=[held for later, held in past_best if later > stopper.best_step])
    return TrainResult(
        best_epoch=stopper.best_step,
        best_valid_auc=stopper.best_score,
        epochs=len(history) - int(include_start),
        seconds=time.perf_counter() - start_time,
        stopped_early=stop,
        history=history,
    )


def train_new(
    name: str,
    dataset: RecDataset,
    config: TrainConfig,
    removal: Tensor | None = None,
    *,
    dim: int | None = None,
    num_layers: int | None = None,
    init_std: float | None = None,
    progress: bool = False,
) -> tuple[Recommender, TrainResult]:
    """A new ``build_model(name, ...)`` (initial table drawn with ``config.seed``) trained by
    ``train`` on ``dataset`` minus ``removal``: Original (``removal=None``) or Retrain."""
    model = build_model(name, dataset.num_users, dataset.num_items, dim, num_layers, init_std, seed=config.seed)
    return model, train(model, dataset, config, removal=removal, progress=progress)
