"""Command line: ``ifru`` / ``python -m ifru_ext`` with subcommands.

``train`` fits MF or LightGCN on the attacked training set (``--mode full``) or on
``D_{-r}`` (``--mode retrain``) and writes ``model.pt`` + ``summary.json``;
``evaluate`` reloads a checkpoint against its dataset and prints AUC_0/1/2 (or the ``--metrics``
chosen, ranking metrics included); ``unlearn``
answers one deletion request against a checkpoint's ledger and ``apply`` replays a log of
them, resumably (both in ``experiments/apply.py``); ``export`` writes a checkpoint's embedding
tables and raw-id mappings as a standalone RecBole-style folder (``models/export.py``); ``demo``
runs ``ifru_ext.demo.main()``.

Each subcommand is registered by an ``add_<name>_parser(subparsers)`` function that
sets ``handler`` (``args -> exit code``) on its parser; ``SUBCOMMANDS`` lists them.
Options shared between subcommands come from ``add_dataset_arguments`` /
``add_runtime_arguments`` and are resolved by ``dataset_spec`` / ``apply_runtime``.

Errors: every error is one line on stderr and a non-zero exit, never a traceback
(``IFRU_TRACEBACK=1`` re-raises): a usage error (an unknown option, a number out of
range — each numeric option is range-checked as it is parsed) exits 2, a refused input
(bad dataset, refused checkpoint or request, unusable output folder, an OS error) exits 1,
Ctrl-C exits 130. Outputs never destroy inputs: ``--out`` may not name a file or the input
checkpoint's folder, and a command's ``model.pt`` and ``summary.json`` are written as a
pair (staged in a temporary folder, then moved into place), so a failed write leaves the
previous outputs untouched. ``apply`` writes ``model.pt`` (ledger and progress inside) and
then ``progress.json`` after each request, each atomically.
"""
from __future__ import annotations

import argparse
import codecs
import dataclasses
import inspect
import json
import logging
import math
import os
import shutil
import sys
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from .data import PAPER_ATTACK_FRACTIONS, PRESETS, RecDataset, load_dataset, read_request
from .data.synthetic import is_planted_name
from .evaluation import RANKING_CHUNK, evaluate
from .experiments.fidelity import SCENARIOS, FidelitySpec, render_fidelity, run_fidelity
from .experiments import STUDIES, SWEEPS, ExperimentSpec, json_safe, render_markdown, render_sweep, run_experiment, run_sweep
from .experiments.apply import answer_request, apply_log
from .metrics import parse_metrics
from .models import DEFAULTS, Checkpoint, Recommender, load_checkpoint, read_checkpoint, save_checkpoint
from .models.export import EXPORT_FILES, export_recbole
from .models.ledger import describe
from .ops import MAX_LAYERS
from .training import LOSSES, PLATEAU_TOLERANCES, SCHEDULES, TrainConfig, model_arguments, train_new
from .unlearning import CALIBRATABLE, METHODS, RetrainConfig, calibrate, configure

__all__ = [
    "SUBCOMMANDS",
    "add_dataset_arguments",
    "add_runtime_arguments",
    "apply_runtime",
    "build_parser",
    "dataset_spec",
    "format_aucs",
    "main",
]

logger = logging.getLogger("ifru_ext")

# load_dataset's own keyword defaults: what applies when neither the command line nor a
# checkpoint sets a value (read from its signature, so the two cannot drift apart).
_DATASET_DEFAULTS: dict[str, Any] = {
    name: parameter.default for name, parameter in inspect.signature(load_dataset).parameters.items()
    if parameter.default is not inspect.Parameter.empty
}
# argparse destination → load_dataset keyword.
_DATASET_ARGS = {
    "dataset": "name_or_path",
    "threshold": "threshold",
    "kcore": "kcore",
    "split_seed": "seed",
    "attack_fraction": "attack_fraction",
    "attack_seed": "attack_seed",
    "max_rows": "max_rows",
    "user_fraction": "user_fraction",
    "sep": "sep",
    "columns": "columns",
    "header": "header",
    "encoding": "encoding",
}


# --------------------------------------------------------------------------- option types
# Each numeric option is parsed by one of these: a value out of range (NaN and infinity
# included) is argparse's one-line usage error naming the option, before anything runs.


def _bounded(kind: type, what: str, low: float | None = None, high: float | None = None,
             low_open: bool = False) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)`` (int or float) finite and within [low, high]
    (``(low, high]`` when ``low_open``); ``what`` describes the accepted values."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if (isinstance(value, float) and not math.isfinite(value)) or (
            low is not None and (value <= low if low_open else value < low)
        ) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what
    return parse


POSITIVE_INT = _bounded(int, "an integer > 0", low=0, low_open=True)
NON_NEGATIVE_INT = _bounded(int, "an integer >= 0", low=0)
SEED = _bounded(int, "an integer in [0, 2**32)", low=0, high=2**32 - 1)
LAYERS = _bounded(int, f"an integer in [1, {MAX_LAYERS}]", low=1, high=MAX_LAYERS)
FINITE_FLOAT = _bounded(float, "a finite number")
POSITIVE_FLOAT = _bounded(float, "a finite number > 0", low=0.0, low_open=True)
NON_NEGATIVE_FLOAT = _bounded(float, "a finite number >= 0", low=0.0)
FRACTION = _bounded(float, "a number in [0, 1]", low=0.0, high=1.0)
SHARE = _bounded(float, "a number in (0, 1]", low=0.0, high=1.0, low_open=True)


def _separator(text: str) -> str:
    r"""The separator as typed: ``\t`` (the two characters a shell passes for '\t') or ``tab`` is the
    tab character; anything else is taken literally (``::``, ``;``, ``|``)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a non-empty separator")
    return "\t" if text.lower() == "tab" else text.replace("\\t", "\t")


def _encoding(text: str) -> str:
    try:
        codecs.lookup(text)
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown text encoding {text!r} (e.g. utf-8, latin-1)") from None
    return text


# --------------------------------------------------------------------------- shared options


def _columns(text: str) -> list[str]:
    return [name.strip() for name in text.split(",")]


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """Options selecting and building the dataset; all default to None ("not given")."""
    group = parser.add_argument_group("dataset")
    group.add_argument(
        "--dataset",
        metavar="NAME|PATH",
        help=f"a preset ({', '.join(sorted(PRESETS))}), a ratings file, a RecBole atomic .inter file (typed "
        "header; user_id, item_id, and label or rating), or planted:N[:SEED], N synthetic power-law interactions "
        "labelled from planted factors (default: bookcrossing)",
    )
    group.add_argument("--sep", type=_separator,
                       help="field separator of a ratings file, taken literally; '\\t' or tab for a tab (default: ',')")
    group.add_argument(
        "--columns", type=_columns, metavar="user,item,rating[,timestamp]",
        help="the file's fields in order; must name user, item and rating (default: user,item,rating)",
    )
    group.add_argument(
        "--header", action=argparse.BooleanOptionalAction, help="the file starts with a header line (default: no)"
    )
    group.add_argument("--encoding", type=_encoding, help="text encoding of a ratings file (default: utf-8)")
    group.add_argument(
        "--threshold", type=FINITE_FLOAT,
        help="label = rating > THRESHOLD (preset default; required for a file, except a .inter with a label field)"
    )
    group.add_argument("--kcore", type=NON_NEGATIVE_INT,
                       help="k of the k-core filter on raw rows (preset default; required for a file)")
    group.add_argument("--max-rows", type=POSITIVE_INT, help="read only the first N raw rows (small slices)")
    group.add_argument("--user-fraction", type=SHARE,
                       help="keep the whole histories of a random share of the raw users (seeded by --split-seed): "
                            "the same data at a smaller scale")
    group.add_argument("--split-seed", type=SEED, help="seed of the 60/20/20 split shuffle (default: 1024)")
    group.add_argument(
        "--attack-fraction", type=FRACTION, metavar="F",
        help="fraction of training labels flipped = the removal set D_r "
        f"(default: {PAPER_ATTACK_FRACTIONS['mf']} for mf, {PAPER_ATTACK_FRACTIONS['lightgcn']} for lightgcn)",
    )
    group.add_argument(
        "--attack-seed", type=SEED,
        help="draw the attacked rows with this seed (default: the authors' choice, the last rows of the shuffled train split)",
    )


def dataset_spec(args: argparse.Namespace, model: str, recorded: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``load_dataset`` keyword arguments: defaults < ``recorded`` (a checkpoint's) < given options.

    The attack fraction defaults by ``model`` (``PAPER_ATTACK_FRACTIONS``). A dataset path is
    made absolute so a checkpoint still finds it from another directory.
    """
    spec = {**_DATASET_DEFAULTS, "attack_fraction": PAPER_ATTACK_FRACTIONS[model], **(recorded or {})}
    for dest, key in _DATASET_ARGS.items():
        value = getattr(args, dest)
        if value is not None:
            spec[key] = value
    name = str(spec["name_or_path"])
    spec["name_or_path"] = name if name in PRESETS or is_planted_name(name) else str(Path(name).resolve())
    return spec


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """--device and --threads."""
    group = parser.add_argument_group("runtime")
    group.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to compute (default: cpu)")
    group.add_argument(
        "--threads", type=POSITIVE_INT,
        help="CPU threads for torch (default: torch's choice; 1 is often fastest on a shared machine)",
    )


def apply_runtime(args: argparse.Namespace) -> None:
    """Apply --threads; refuse --device cuda without a visible GPU."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")


# --------------------------------------------------------------------------- evaluation and output


def check_output_folder(out: Path, inputs: Mapping[str, Path | None] | None = None, outputs: Sequence[str] = (),
                        input_checkpoint: Path | None = None) -> None:
    """Refuse, before any work, an ``--out`` that cannot hold the outputs or would overwrite an input.

    ValueError when ``out`` (or its nearest existing ancestor) is not a directory, when it is
    the folder of ``input_checkpoint`` (writing there would replace the trained model's files),
    or when one of the ``outputs`` (file names in ``out``) is one of the ``inputs``
    (description → path), also through links.
    """
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"--out {out}: {folder} exists and is not a directory")
            break
    resolved = out.resolve()
    if input_checkpoint is not None and resolved == input_checkpoint.resolve().parent:
        raise ValueError(f"--out {out} is the folder of the input checkpoint {input_checkpoint}: writing there "
                         "would overwrite the input; choose another folder")
    for name in outputs:
        target = out / name
        for what, source in (inputs or {}).items():
            if source is None:
                continue
            same = target.resolve() == source.resolve() or (
                target.exists() and source.exists() and os.path.samefile(target, source)
            )
            if same:
                raise ValueError(f"--out {out}: {target} would overwrite the {what} {source}")


def write_outputs(out: Path, write: Callable[[Path], Sequence[str]]) -> None:
    """Write a command's output files into ``out`` as one unit.

    ``write(folder)`` writes every file into ``folder`` (a fresh temporary folder next to
    ``out``, or inside it when ``out`` exists) and returns their names; only when it returns
    are they moved into ``out`` (renaming the whole folder when ``out`` is new). A failure
    removes the temporary folder and leaves ``out`` as it was.
    """
    tag = f"{os.getpid()}.{uuid.uuid4().hex[:12]}"
    fresh = not out.exists()
    if fresh:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = out.parent / f".{out.name}.tmp-{tag}"
    else:
        stage = out / f".ifru-tmp-{tag}"
    stage.mkdir()
    try:
        names = write(stage)
        if fresh:
            stage.rename(out)  # atomic: the folder appears with every file or not at all
        else:
            for name in names:
                os.replace(stage / name, out / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _write_model_and_summary(out: Path, model: Recommender, dataset: RecDataset, removal: Any,
                             meta: dict[str, Any], summary: Mapping[str, Any], **saved: Any) -> None:
    """``out/model.pt`` (with ``meta``; ``saved``: ``save_checkpoint``'s ``ledger`` and
    ``graph_removal``) and ``out/summary.json`` (``summary``), written as a pair."""
    text = json.dumps(json_safe(summary), indent=2) + "\n"  # serialised first: a failure here writes nothing

    def write(folder: Path) -> Sequence[str]:
        save_checkpoint(folder / "model.pt", model, dataset, removal, meta=meta, **saved)
        (folder / "summary.json").write_text(text)
        return ("model.pt", "summary.json")

    write_outputs(out, write)


def _dataset_file(spec: Mapping[str, Any]) -> Path | None:
    """The ratings file of a ``load_dataset`` spec that names a path (None for a preset)."""
    name = str(spec["name_or_path"])
    return None if name in PRESETS or is_planted_name(name) else Path(name)


def load_with_dataset(args: argparse.Namespace) -> tuple[Checkpoint, RecDataset, dict[str, Any]]:
    """The checkpoint ``args.checkpoint``, the dataset it was trained on (recorded options,
    overridden by any given) and that dataset's ``load_dataset`` arguments."""
    payload = read_checkpoint(args.checkpoint)
    spec = dataset_spec(args, payload["model"]["name"], recorded=payload["meta"].get("dataset"))
    dataset = load_dataset(**spec)
    return load_checkpoint(args.checkpoint, dataset, device=args.device), dataset, spec


def checkpoint_with_dataset(args: argparse.Namespace) -> tuple[Recommender, RecDataset, dict[str, Any], dict[str, Any]]:
    """The model in ``args.checkpoint``, the dataset it was trained on (recorded options, overridden
    by any given), that dataset's ``load_dataset`` arguments and the checkpoint's meta."""
    checkpoint, dataset, spec = load_with_dataset(args)
    return checkpoint.model, dataset, spec, checkpoint.meta


def format_aucs(aucs: Mapping[str, Mapping[str, float]]) -> str:
    """A small text table: one row per split, columns AUC_0, AUC_1, AUC_2."""
    lines = [f"{'split':<8}{'AUC_0':>8}{'AUC_1':>8}{'AUC_2':>8}"]
    for split, values in aucs.items():
        lines.append(f"{split:<8}" + "".join(f"{values[key]:>8.4f}" for key in ("auc_0", "auc_1", "auc_2")))
    return "\n".join(lines)


# --------------------------------------------------------------------------- train


def add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train MF or LightGCN (Original or Retrain) and save a checkpoint",
        description="Train on the attacked training set D (--mode full, the 'Original' model) or on "
        "D_{-r} = D minus the flipped rows (--mode retrain, the gold standard). Writes OUT/model.pt "
        "and OUT/summary.json and prints valid/test AUC_0/1/2.",
    )
    model = parser.add_argument_group("model")
    model.add_argument("--model", choices=sorted(DEFAULTS), default="mf", help="the recommender (default: mf)")
    model.add_argument("--dim", type=POSITIVE_INT, help=f"embedding width (default: {DEFAULTS['mf']['dim']} mf, {DEFAULTS['lightgcn']['dim']} lightgcn; 64 lightgcn with --schedule bpr)")
    model.add_argument("--layers", type=LAYERS, help=f"LightGCN layers K (default: {DEFAULTS['lightgcn']['num_layers']}; 2 with --schedule bpr)")
    model.add_argument(
        "--init-std", type=NON_NEGATIVE_FLOAT,
        help=f"std of the normal init (default: {DEFAULTS['mf']['init_std']:g} mf, {DEFAULTS['lightgcn']['init_std']:g} lightgcn; "
        "0.1 lightgcn with --schedule bpr)",
    )
    fit = parser.add_argument_group("training")
    fit.add_argument(
        "--mode", choices=("full", "retrain"), default="full",
        help="full: train on D with the attacked labels; retrain: train on D_{-r} (default: full)",
    )
    fit.add_argument(
        "--schedule", choices=sorted(SCHEDULES), default="paper",
        help="named optimiser preset: paper = the authors' (lr 1e-3 mf, 1e-4 lightgcn); fast = lr 3e-4 for "
        "lightgcn, ~3x fewer epochs for ~0.004 less validation AUC; bpr = the BPR loss, lr 1e-3, and for lightgcn "
        "d 64, K 2, init std 0.1 (top-K recommendation: BookCrossing test Recall@20 0.041 vs 0.005 for the paper's "
        "BCE lightgcn) (default: paper)",
    )
    fit.add_argument(
        "--loss", choices=LOSSES,
        help="bce: mean BCE over every labelled row (the paper's); bpr: -log σ(x_ui - x_uj) over the label-1 rows, "
        "one negative item per positive per epoch drawn from (seed, epoch, row), label-0 rows unused; early "
        "stopping stays on validation AUC either way (default: the schedule's, bce unless --schedule bpr)",
    )
    fit.add_argument("--lr", type=POSITIVE_FLOAT, help="Adam learning rate (overrides the schedule)")
    fit.add_argument("--batch-size", type=POSITIVE_INT, help="mini-batch size (default: 2048)")
    fit.add_argument("--epochs", type=POSITIVE_INT,
                     help="maximum epochs (default: 1000; early stopping usually ends sooner)")
    fit.add_argument("--patience", type=POSITIVE_INT,
                     help="stop after this many epochs without a better valid AUC (default: 10)")
    add_run_arguments(fit)
    fit.add_argument("--l2", type=NON_NEGATIVE_FLOAT, help="λ of the (λ/2)‖E‖² term (default: 0, as the authors)")
    fit.add_argument("--seed", type=SEED, help="seed of the initialisation and the batch shuffling (default: 1024)")
    fit.add_argument("--out", type=Path, help="output directory (default: runs/<model>-<mode>)")
    fit.add_argument(
        "--calibrate", action=argparse.BooleanOptionalAction, default=True,
        help="after training, fit the training response's scale against one Retrain of a random 2%% of the rows "
        "(ifru_ext.unlearning.calibrate; about doubles the training time) and save it in the checkpoint: every "
        "later ifru request uses it at no cost (--mode full; default: on)",
    )
    add_calibrate_for_argument(fit)
    fit.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=sys.stderr.isatty(),
        help="show a progress bar (needs tqdm; default: when stderr is a terminal)",
    )
    add_dataset_arguments(parser)
    add_runtime_arguments(parser)
    parser.set_defaults(handler=run_train)


def add_run_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--wait-until-decelerating, --wait-through-plateaus, --plateau-tolerance, --scaled-patience and
    --snapshots (the TrainConfig fields of those names) of every command that trains."""
    parser.add_argument(
        "--wait-until-decelerating", action=argparse.BooleanOptionalAction,
        help="count epochs for early stopping from the one where the training loss fell fastest, not while the "
        "optimiser is still speeding up out of a small initial table (default: on; "
        "--no-wait-until-decelerating: every epoch counts)")
    parser.add_argument(
        "--wait-through-plateaus", action=argparse.BooleanOptionalAction,
        help="count as a miss for early stopping only an epoch whose validation AUC is below the best epoch's by "
        "more than one standard deviation of their difference on the same rows, so a run crosses a level stretch "
        "it may climb out of (default: on; --no-wait-through-plateaus: every epoch without a strictly better "
        "AUC is a miss)")
    parser.add_argument(
        "--plateau-tolerance", choices=PLATEAU_TOLERANCES,
        help="how far below the best epoch's validation AUC an epoch may be and not be a miss, with "
        "--wait-through-plateaus: paired (one standard deviation of the two AUCs' difference on the same rows) or "
        "noise (one scoring's sampling deviation; the run goes on until the AUC has fallen by more than chance) "
        "(default: paired)")
    parser.add_argument(
        "--scaled-patience", action=argparse.BooleanOptionalAction,
        help="stop after max(--patience, best epoch - turning epoch) misses in a row: a run that took long to reach "
        "its best waits as long again for its next rise (default: the model's preset: on for lightgcn with the paper "
        "and fast schedules, off otherwise)")
    parser.add_argument(
        "--snapshots", type=NON_NEGATIVE_INT,
        help="earlier points of the run the model's training trace keeps (the epochs nearest to cutting the run into "
        "equal segments, two [N, d] tables each): the training response walks one segment more than this; more "
        "walk a long run more finely (reports/fidelity-segments; default: 2)")


STOPPING_FIELDS = ("wait_until_decelerating", "wait_through_plateaus", "plateau_tolerance", "scaled_patience")


def run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig overrides of --epochs (as max_epochs), of the stopping rule and of --snapshots that
    were given."""
    given = (("max_epochs", args.epochs), ("snapshots", args.snapshots),
             *((field, getattr(args, field)) for field in STOPPING_FIELDS))
    return {key: value for key, value in given if value is not None}


def add_original_calibration_arguments(parser: argparse.ArgumentParser, originals: str) -> None:
    """``--calibrate`` / ``--calibrate-for`` of the commands that train their own Originals."""
    parser.add_argument(
        "--calibrate", action=argparse.BooleanOptionalAction, default=True,
        help=f"calibrate {originals} (one more Retrain, cached with it) so ifru's answer uses its fitted scale; "
        "ifru-uncalibrated shows the answer without it (default: on)")
    add_calibrate_for_argument(parser)


def add_calibrate_for_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calibrate-for", choices=CALIBRATABLE,
                        default="ifru", help="the method whose estimator the calibration is fitted for (default: ifru; "
                        "a request answered by another estimator answers uncalibrated)")


def run_train(args: argparse.Namespace) -> int:
    apply_runtime(args)
    spec = dataset_spec(args, args.model)
    out = args.out or Path("runs") / f"{args.model}-{args.mode}"
    check_output_folder(out, {"ratings file": _dataset_file(spec)}, ("model.pt", "summary.json"))
    dataset = load_dataset(**spec)
    config = TrainConfig.for_model(
        args.model, args.schedule, lr=args.lr, batch_size=args.batch_size, max_epochs=args.epochs,
        patience=args.patience, l2=args.l2, seed=args.seed, device=args.device, loss=args.loss,
        snapshots=args.snapshots, **{field: getattr(args, field) for field in STOPPING_FIELDS},
    )
    removal = dataset.removal if args.mode == "retrain" else None
    logger.info("training %s (%s) on %d rows, %s", args.model, args.mode, len(dataset.remaining(removal)), config)
    architecture = model_arguments(args.model, args.schedule, dim=args.dim, num_layers=args.layers,
                                   init_std=args.init_std)
    model, result = train_new(args.model, dataset, config, removal, **architecture, progress=args.progress)
    aucs = evaluate(model, dataset)
    calibration = None
    if args.calibrate and removal is None:
        try:
            calibration = calibrate(model, dataset, train=config, config=METHODS[args.calibrate_for].config)
        except ValueError as error:  # the model is trained: save it, uncalibrated, and say why
            logger.warning("not calibrated: %s", error)

    summary = {
        "model": model.config(),
        "mode": args.mode,
        "schedule": args.schedule,
        "loss": config.loss,
        "train": dataclasses.asdict(config),
        "dataset": spec,
        "stats": dataset.stats(),
        "best_epoch": result.best_epoch,
        "best_valid_auc": result.best_valid_auc,
        "epochs": result.epochs,
        "seconds": result.seconds,
        "calibration": None if calibration is None else dataclasses.asdict(calibration),
        **aucs,
        "history": result.history,
    }
    _write_model_and_summary(out, model, dataset, removal, meta=summary, summary=summary)
    print(
        f"{args.model} {args.mode}: best epoch {result.best_epoch} of {result.epochs}, "
        f"{result.seconds:.1f} s, {len(dataset.remaining(removal))} training rows"
    )
    print(format_aucs(aucs))
    if calibration is not None:
        print(f"calibrated: response scale {calibration.scale:.3f} (forget loss on {calibration.rows} rows: "
              f"Retrain {calibration.forget_loss['retrain']:.4f}, uncalibrated {calibration.forget_loss['uncalibrated']:.4f}), "
              f"{calibration.seconds:.1f} s")
    print(f"saved {out / 'model.pt'} and {out / 'summary.json'}")
    return 0


# --------------------------------------------------------------------------- evaluate


def _metric_names(text: str) -> tuple[str, ...]:
    try:
        return parse_metrics(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_evaluate_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="print valid/test AUC_0/1/2 (or ranking metrics) of a checkpoint",
        description="Load a checkpoint, rebuild its dataset (the options recorded at training, each "
        "overridable below), verify the split hash and print AUC_0/1/2 on valid and test, or the metrics "
        "given with --metrics. LightGCN predicts with the graph recorded in the checkpoint (without its "
        "removed rows).",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="a model.pt written by 'train'")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table")
    parser.add_argument(
        "--metrics", type=_metric_names, default=("auc",),
        help="comma-separated metrics: auc (AUC_0/1/2), recall@K, ndcg@K, hr@K (full ranking over every item, "
        "leaving out the user's training items and, on test, its validation items; recall = hits / relevant "
        "items) (default: auc)",
    )
    parser.add_argument("--chunk-size", type=POSITIVE_INT, default=RANKING_CHUNK,
                        help=f"users scored at a time by the ranking metrics (default: {RANKING_CHUNK})")
    add_dataset_arguments(parser)
    add_runtime_arguments(parser)
    parser.set_defaults(handler=run_evaluate)


def format_metrics(values: Mapping[str, Mapping[str, float]]) -> str:
    """A small text table: one row per split, one column per metric (AUC_0/1/2 as ``format_aucs``)."""
    keys = list(next(iter(values.values()), {}))
    labels = [key.upper() if key.startswith("auc_") else key for key in keys]
    widths = [max(8, len(label) + 2) for label in labels]
    lines = [f"{'split':<8}" + "".join(f"{label:>{width}}" for label, width in zip(labels, widths))]
    for split, row in values.items():
        lines.append(f"{split:<8}" + "".join(f"{row[key]:>{width}.4f}" for key, width in zip(keys, widths)))
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    apply_runtime(args)
    model, dataset, _, _ = checkpoint_with_dataset(args)
    values = evaluate(model, dataset, metrics=args.metrics, chunk_size=args.chunk_size)
    print(json.dumps(json_safe(values)) if args.json else format_metrics(values))
    return 0


# --------------------------------------------------------------------------- unlearn


# Unlearning options of the command line → the config field each sets.
_METHOD_OPTIONS = {"solver": "--solver", "ratios": "--ratios", "damping": "--damping", "max_iter": "--max-iter"}


def _ratios(text: str) -> tuple[float, ...]:
    try:
        ratios = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers in [0, 1], got {text!r}") from None
    if not all(0.0 <= ratio <= 1.0 for ratio in ratios):  # NaN fails the comparison
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers in [0, 1], got {text!r}")
    return ratios


def add_unlearn_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "unlearn",
        help="answer a removal request on a trained checkpoint (any registered method)",
        description="Load a checkpoint written by 'train' (or by 'unlearn'/'apply': its deletion ledger "
        "carries over), forget the requested training interactions and save the unlearned model with the "
        "request added to the ledger. Rows an earlier request already forgot are reported and skipped; rows "
        "the model was never trained on (a --mode retrain checkpoint's removal) are refused. Default "
        "request: the dataset's removal set D_r (the attacked rows). "
        "Methods: " + "; ".join(f"{name}: {entry.summary}" for name, entry in METHODS.items()),
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="a model.pt written by 'train' or 'unlearn'")
    parser.add_argument("--pairs", type=Path,
                        help="file of raw ids to forget: 'user,item' pairs (comma, tab or space separated, optional "
                        "header naming the columns, e.g. CURE4Rec's uid,iid,...), a RecBole file with user_id:token "
                        "[item_id:token] fields, or users alone (forget their every row) (default: the attacked rows)")
    parser.add_argument("--whole-users", action="store_true",
                        help="forget every training row of each user named in --pairs, whatever items it names")
    parser.add_argument("--request-id", type=_request_id,
                        help="the id the ledger records the request under, unique in it (default: request-K)")
    _add_method_arguments(parser)
    parser.add_argument("--out", type=Path,
                        help="output directory, not the checkpoint's own (default: next to the checkpoint, "
                        "unlearned-<method>)")
    add_dataset_arguments(parser)
    add_runtime_arguments(parser)
    parser.set_defaults(handler=run_unlearn)


def _request_id(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a non-empty request id")
    return text.strip()


def _add_method_arguments(parser: argparse.ArgumentParser) -> None:
    """--method and the influence methods' options."""
    parser.add_argument("--method", choices=list(METHODS), default="ifru", metavar="METHOD",
                        help=f"unlearning method, one of {', '.join(METHODS)} (default: ifru)")
    options = parser.add_argument_group("method options (influence methods only: ifru*, scif)")
    options.add_argument("--solver", choices=("adam", "cg"), help="override the method's solver")
    options.add_argument("--ratios", type=_ratios, metavar="A0,A1[,...]",
                         help="Algorithm 1 pruning ratios (default: 1,1 mf; 1,0.6 lightgcn)")
    options.add_argument("--damping", type=NON_NEGATIVE_FLOAT, help="δ in (H + δI) t = g (default: 0)")
    options.add_argument("--max-iter", type=POSITIVE_INT, help="solver iterations at most (default: 100)")


def method_options(method: str, args: argparse.Namespace) -> dict[str, Any]:
    """The method options given on the command line (config field → value); one that
    ``method``'s config does not have is a ValueError naming the flag."""
    given = {field: getattr(args, field) for field in _METHOD_OPTIONS if getattr(args, field) is not None}
    fields = {f.name for f in dataclasses.fields(METHODS[method].config)}
    foreign = [_METHOD_OPTIONS[field] for field in given if field not in fields]
    if foreign:
        raise ValueError(f"{', '.join(foreign)} does not apply to --method {method} "
                         f"(it applies to the influence methods: ifru*, scif)")
    return given


def method_config(method: str, given: Mapping[str, Any], meta: Mapping[str, Any], device: str) -> Any:
    """``method``'s config with the ``given`` options; ``retrain`` retrains with the
    checkpoint's recorded training settings (``meta["train"]``) on ``device``."""
    if method == "retrain":
        recorded = meta.get("train")
        train_config = TrainConfig(**{**recorded, "device": device}) if isinstance(recorded, dict) else None
        return RetrainConfig(train=train_config)
    return configure(method, given)


def run_unlearn(args: argparse.Namespace) -> int:
    given = method_options(args.method, args)  # before any loading: a refused option costs nothing
    apply_runtime(args)
    out = args.out or args.checkpoint.parent / f"unlearned-{args.method}"
    check_output_folder(out, {"input checkpoint": args.checkpoint, "request file": args.pairs},
                        ("model.pt", "summary.json"), input_checkpoint=args.checkpoint)
    checkpoint, dataset, spec = load_with_dataset(args)
    check_output_folder(out, {"ratings file": _dataset_file(spec)}, ("model.pt", "summary.json"))
    rows = read_request(args.pairs, dataset, whole_users=args.whole_users) if args.pairs else dataset.removal
    config = method_config(args.method, given, checkpoint.meta, args.device)
    request_id = args.request_id or checkpoint.ledger.next_id()
    answer = answer_request(checkpoint, dataset, rows, request_id=request_id, method=args.method, config=config)
    result, new, plan = answer.result, answer.checkpoint, answer.plan
    aucs = evaluate(new.model, dataset)
    summary = {"method": args.method, "config": dataclasses.asdict(config), "dataset": spec,
               "request": request_id, "removed": int(plan.forget.numel()), "skipped": int(plan.skipped.numel()),
               "ledger": {"requests": new.ledger.ids, "rows": int(new.ledger.rows.numel())},
               "seconds": result.seconds, "phases": result.phases,
               "kept_rows": result.kept_rows, "solver": dataclasses.asdict(result.solve) if result.solve else None,
               "epochs_past": result.epochs_past, "status": result.status, **aucs}
    # The training settings travel with the model: a later retrain (or verification) uses them.
    meta = {**summary, **({"train": checkpoint.meta["train"]} if "train" in checkpoint.meta else {})}
    _write_model_and_summary(out, new.model, dataset, new.removal, meta=json_safe(meta), summary=summary,
                             ledger=new.ledger, graph_removal=new.graph_removal)
    if plan.skipped.numel():
        earlier = [e for e in checkpoint.ledger.entries if bool(torch.isin(e.rows, plan.skipped).any())]
        print(f"skipped {plan.skipped.numel()} of the {plan.skipped.numel() + plan.forget.numel()} requested rows: "
              f"already forgotten by {describe(earlier)}")
    print(f"{args.method}: forgot {plan.forget.numel()} interactions in {result.seconds:.2f} s "
          f"({result.kept_rows} rows updated)" + (f", solver {result.solve}" if result.solve else "")
          + (f"; answered {result.epochs_past} epoch(s) past the run's returned one, where the estimate of Retrain "
             "scores best on validation" if result.epochs_past else "")
          + (f"; status {result.status}" if plan.forget.numel() and result.status != "ok" else ""))
    print(f"ledger: {len(new.ledger)} requests, {new.ledger.rows.numel()} rows forgotten in all "
          f"(this one recorded as {request_id!r})")
    print(format_aucs(aucs))
    print(f"saved {out / 'model.pt'} and {out / 'summary.json'}")
    return 0


# --------------------------------------------------------------------------- apply


def add_apply_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "apply",
        help="replay a log of deletion requests against a checkpoint, one at a time, resumable",
        description="Replay LOG, a CSV of raw 'request_id,user,item' rows (an optional header line "
        "'request_id,user,item'; rows grouped by request id in the order ids first appear; 'ID,,' is a request "
        "without pairs), against a checkpoint: each request is answered with --method against the deletion "
        "ledger (rows already forgotten are skipped, rows the model never trained on refuse the whole log "
        "before any work), then OUT/model.pt (with the ledger) and OUT/progress.json are written atomically. "
        "Rerun with the same --out to resume: requests already in the ledger are skipped, none is applied "
        "twice. With --verify-every K, every K applied requests the model is compared with a retrain on D "
        "minus the ledger (the checkpoint's training settings): test AUC_0 and forget loss, one line each "
        "and in OUT/progress.json.",
    )
    parser.add_argument("log", type=Path, metavar="LOG", help="CSV of raw 'request_id,user,item' rows")
    parser.add_argument("--checkpoint", type=Path, required=True, help="a model.pt written by 'train' or 'unlearn'")
    parser.add_argument("--out", type=Path, required=True,
                        help="output directory (OUT/model.pt, OUT/progress.json), not the checkpoint's own; "
                        "rerun with the same one to resume")
    _add_method_arguments(parser)
    parser.add_argument("--verify-every", type=POSITIVE_INT, metavar="K",
                        help="retrain on D minus the ledger every K applied requests and report the drift "
                        "(default: never)")
    add_dataset_arguments(parser)
    add_runtime_arguments(parser)
    parser.set_defaults(handler=run_apply)


def run_apply(args: argparse.Namespace) -> int:
    given = method_options(args.method, args)
    apply_runtime(args)
    outputs = ("model.pt", "progress.json")
    check_output_folder(args.out, {"input checkpoint": args.checkpoint, "log": args.log}, outputs,
                        input_checkpoint=args.checkpoint)
    checkpoint, dataset, spec = load_with_dataset(args)
    check_output_folder(args.out, {"ratings file": _dataset_file(spec)}, outputs)
    config = method_config(args.method, given, checkpoint.meta, args.device)
    progress = apply_log(args.log, args.checkpoint, dataset, args.out, method=args.method, config=config,
                         verify_every=args.verify_every, device=args.device, meta={"dataset": spec}, report=print)
    applied = [record for record in progress["requests"] if record["status"] == "applied"]
    skipped = len(progress["requests"]) - len(applied)
    print(f"{progress['total']} requests in the log: {len(applied)} applied by this job"
          + (f", {skipped} already in the input checkpoint's ledger" if skipped else "")
          + f"; ledger {progress['ledger']['requests']} requests, {progress['ledger']['rows']} rows")
    print(f"saved {args.out / 'model.pt'} and {args.out / 'progress.json'}")
    return 0


# --------------------------------------------------------------------------- export


def add_export_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a checkpoint's embedding tables and raw-id mappings in a RecBole-style folder",
        description="Load a checkpoint with its dataset and write OUT/user_embedding.npy and OUT/item_embedding.npy "
        "(the scoring table: a pair's logit is the dot product of its rows), OUT/state_dict.pt (the learned table "
        "under RecBole's names user_embedding.weight / item_embedding.weight), OUT/user_id.tsv and OUT/item_id.tsv "
        "(header user_id:token / item_id:token, then the raw token of each row in order) and OUT/export.json, as one "
        "unit (README, 'Data formats').",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="a model.pt written by 'train', 'unlearn' or 'apply'")
    parser.add_argument("--format", choices=("recbole",), default="recbole", help="the layout (default: recbole)")
    parser.add_argument("--out", type=Path, required=True, help="output directory, not the checkpoint's own")
    add_dataset_arguments(parser)
    add_runtime_arguments(parser)
    parser.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    apply_runtime(args)
    check_output_folder(args.out, {"input checkpoint": args.checkpoint}, EXPORT_FILES, input_checkpoint=args.checkpoint)
    checkpoint, dataset, spec = load_with_dataset(args)
    check_output_folder(args.out, {"ratings file": _dataset_file(spec)}, EXPORT_FILES)
    meta = json_safe({"checkpoint": str(args.checkpoint.resolve()), "dataset": spec, "split_hash": dataset.split_hash,
                      "ledger": {"requests": checkpoint.ledger.ids, "rows": int(checkpoint.ledger.rows.numel())}})
    write_outputs(args.out, lambda folder: export_recbole(checkpoint.model, dataset, folder, meta))
    print(f"exported {checkpoint.model.name} ({dataset.num_users} users, {dataset.num_items} items, "
          f"dim {checkpoint.model.dim}) to {args.out}: {', '.join(EXPORT_FILES)}")
    return 0


# --------------------------------------------------------------------------- experiment


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _methods(text: str) -> tuple[str, ...]:
    names = _names(text)
    unknown = [name for name in names if name not in METHODS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    return names


def _sweep(text: str) -> tuple[str, list[str]]:
    key, _, values = text.partition("=")
    if key not in SWEEPS or not values:
        raise argparse.ArgumentTypeError(f"expected KEY=V1,V2,... with KEY one of {', '.join(SWEEPS)}, got {text!r}")
    return key, list(_names(values))


def add_experiment_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "experiment",
        help="the paper's experiment: Original, Retrain and unlearning methods, with a report",
        description="Train Original on the attacked data and Retrain on D_{-r} (cached in OUT, reused when the "
        "split matches), answer the removal request with each method, and write OUT/report.json and "
        "OUT/report.md (test AUC_0/1/2, completeness, seconds, speed-up over Retrain).",
    )
    parser.add_argument("--model", choices=sorted(DEFAULTS), default="mf", help="the backbone (default: mf)")
    parser.add_argument("--methods", type=_methods, default=("ifru", "scif"),
                        help=f"comma-separated, from {', '.join(METHODS)} (default: ifru,scif)")
    parser.add_argument("--removal-fraction", type=FRACTION,
                        help="share of training rows attacked and then removed (default: 0.02 mf, 0.01 lightgcn)")
    parser.add_argument("--studies", type=_names, default=(),
                        help=f"comma-separated in-depth studies: {', '.join(STUDIES)} (default: none)")
    parser.add_argument("--schedule", choices=sorted(SCHEDULES), default="paper", help="training preset (default: paper)")
    parser.add_argument("--epochs", type=POSITIVE_INT, help="maximum training epochs (default: 1000, early stopping)")
    add_run_arguments(parser)
    parser.add_argument("--seed", type=SEED, help="seed of initialisation and batches (default: 1024)")
    parser.add_argument("--out", type=Path, help="output directory (default: runs/experiment-<model>)")
    parser.add_argument("--sweep", type=_sweep, metavar="KEY=V1,V2,...",
                        help=f"one experiment per value of a dataset setting ({', '.join(SWEEPS)}), in OUT/KEY-V, "
                        "then OUT/sweep.{json,md,png}: e.g. attack_seed=1,2,3 (completeness mean ± std) or "
                        "attack_fraction=0.01,0.02,0.04,0.08 (the paper's Fig. 5)")
    add_original_calibration_arguments(parser, "the Original")
    add_dataset_arguments(parser)
    add_runtime_arguments(parser)
    parser.set_defaults(handler=run_experiment_command)


def run_experiment_command(args: argparse.Namespace) -> int:
    apply_runtime(args)
    if args.removal_fraction is not None:
        args.attack_fraction = args.removal_fraction
    out = args.out or Path("runs") / f"experiment-{args.model}"
    dataset = dataset_spec(args, args.model)
    check_output_folder(out, {"ratings file": _dataset_file(dataset)}, ("report.json", "report.md"))
    spec = ExperimentSpec(
        dataset=dataset, model=args.model, methods=args.methods,
        out=out, device=args.device, schedule=args.schedule,
        train_overrides={**run_overrides(args), **({"seed": args.seed} if args.seed is not None else {})},
        studies=args.studies, calibrated=args.calibrate, calibrate_for=args.calibrate_for,
    )
    if args.sweep:
        summary = run_sweep(spec, *args.sweep)
        print(render_sweep(summary))
        print(f"wrote {spec.out / 'sweep.json'}, {spec.out / 'sweep.md'} and {spec.out / 'sweep.png'}")
        return 0
    report = run_experiment(spec)
    print(render_markdown(report))
    print(f"wrote {spec.out / 'report.json'} and {spec.out / 'report.md'}")
    return 0


# --------------------------------------------------------------------------- fidelity


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(value) for value in _names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"expected one or more seeds >= 0, got {text!r}")
    return seeds


def add_fidelity_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fidelity",
        help="how close each method comes to Retrain, next to Retrain's own noise floor",
        description="For each seed draw a request (poison: flipped labels; genuine: random training rows; "
        "users: every row of random users), train Original, Retrain and a second Retrain (the noise floor), "
        "answer the request with each method and write OUT/report.{json,md}: test AUC_0/1/2 and completeness, "
        "forget-set loss and its completeness, membership-inference AUC, seconds (docs/ARCHITECTURE.md §6).",
    )
    parser.add_argument("--model", choices=sorted(DEFAULTS), default="mf", help="the backbone (default: mf)")
    parser.add_argument("--scenario", choices=SCENARIOS, default="genuine", help="the kind of request (default: genuine)")
    parser.add_argument("--fraction", type=FRACTION, default=0.02,
                        help="share of the training rows (poison, genuine) or of the users (users) (default: 0.02)")
    parser.add_argument("--seeds", type=_seeds, default=(1,), help="comma-separated request draws (default: 1)")
    parser.add_argument("--methods", type=_methods, default=("ifru", "ifru-reference"),
                        help=f"comma-separated, from {', '.join(METHODS)} (default: ifru,ifru-reference)")
    parser.add_argument("--schedule", choices=sorted(SCHEDULES), default="paper", help="training preset (default: paper)")
    parser.add_argument("--epochs", type=POSITIVE_INT, help="maximum training epochs (default: 1000, early stopping)")
    add_run_arguments(parser)
    parser.add_argument("--out", type=Path, help="output directory (default: runs/fidelity-<model>-<scenario>)")
    add_original_calibration_arguments(parser, "each Original")
    add_dataset_arguments(parser)
    add_runtime_arguments(parser)
    parser.set_defaults(handler=run_fidelity_command)


def run_fidelity_command(args: argparse.Namespace) -> int:
    apply_runtime(args)
    spec = dataset_spec(args, args.model)
    spec.pop("attack_fraction", None), spec.pop("attack_seed", None)  # the scenario draws the request
    fidelity = FidelitySpec(dataset=spec, model=args.model, scenario=args.scenario, fraction=args.fraction,
                            seeds=args.seeds, methods=args.methods, device=args.device, schedule=args.schedule,
                            out=args.out or Path("runs") / f"fidelity-{args.model}-{args.scenario}",
                            train_overrides=run_overrides(args),
                            calibrated=args.calibrate, calibrate_for=args.calibrate_for)
    report = run_fidelity(fidelity)
    print(render_fidelity(report))
    print(f"wrote {fidelity.out / 'report.json'} and {fidelity.out / 'report.md'}")
    return 0


# --------------------------------------------------------------------------- demo


def add_demo_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the end-to-end demonstration (ifru_ext.demo)")
    parser.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from . import demo  # lazily: the demo pulls in the whole unlearning stack

    return demo.main() or 0


# --------------------------------------------------------------------------- entry point

SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_train_parser,
    add_evaluate_parser,
    add_unlearn_parser,
    add_apply_parser,
    add_export_parser,
    add_experiment_parser,
    add_fidelity_parser,
    add_demo_parser,
)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (status 2); subcommand parsers inherit the class."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see '{self.prog} --help')\n")


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ifru", description="Recommendation unlearning via influence functions (IFRU) on fused torch ops."
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only (no per-epoch lines)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in SUBCOMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the subcommand, return its exit code.

    Every error is one line on stderr, never a traceback, and so is every warning the run raises
    (``ifru <command>: warning: ...``, not Python's file, line and source): errors in the inputs (bad
    dataset, refused checkpoint or output folder, an OS error such as a permission denied)
    return 1, as does any other exception (named by its type; ``IFRU_TRACEBACK=1`` re-raises
    it); Ctrl-C returns 130; usage errors (unknown options, numbers out of range) exit with
    argparse's status 2.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    logging.getLogger("ifru_ext").setLevel(logging.WARNING if args.quiet else logging.INFO)
    prefix = f"ifru {args.command}"

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"{prefix}: warning: {_one_line(message)}", file=sys.stderr)

    try:
        with warnings.catch_warnings():  # the caller's warning settings are restored on the way out
            warnings.showwarning = show_warning
            return args.handler(args)
    except KeyboardInterrupt:
        if os.environ.get("IFRU_TRACEBACK"):
            raise
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as error:
        if os.environ.get("IFRU_TRACEBACK"):
            raise
        print(f"{prefix}: error: {_one_line(error)}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 -- the last resort: one line, not a traceback
        if os.environ.get("IFRU_TRACEBACK"):
            raise
        print(f"{prefix}: error: {type(error).__name__}: {_one_line(error)} "
              "(IFRU_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        return 1
