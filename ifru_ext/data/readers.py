"""Ratings files → raw rows: a frame with columns user, item (str ids) and rating.

Plain, ``.xz`` and ``.gz`` files; a generic delimited format (``read_ratings``) and the
original BookCrossing file (``read_bookcrossing``). Every malformed row raises
ValueError naming its 1-based line; nothing is skipped silently. Vectorised with
pandas; the only per-line loop is a scan that locates the first malformed line after
pandas has already reported a problem.
"""
from __future__ import annotations

import csv
import gzip
import io
import lzma
import os
import re
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["REQUIRED_COLUMNS", "read_bookcrossing", "read_ratings"]

_BX_HEADER = ["User-ID", "ISBN", "Book-Rating"]
REQUIRED_COLUMNS = ("user", "item", "rating")


_COMPRESSED = {".xz": ("xz", lzma.open), ".gz": ("gzip", gzip.open)}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed according to its suffix (.xz, .gz, else plain).

    ValueError for a directory and for a compressed file that does not decompress
    (truncated, corrupt, or not of its suffix's format); FileNotFoundError for a missing one.
    """
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a ratings file")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such ratings file")
    kind, opener = _COMPRESSED.get(path.suffix.lower(), ("plain", open))
    try:
        with opener(path, "rb") as handle:
            return handle.read()
    except (EOFError, lzma.LZMAError, zlib.error, gzip.BadGzipFile) as error:
        # BadGzipFile: not gzip at all; EOFError: truncated; LZMAError/zlib.error: corrupt data.
        raise ValueError(
            f"{path}: not a readable {kind} file ({type(error).__name__}: {error}); "
            f"a {path.suffix} file must be complete {kind} data"
        ) from None


def _first_bad_line(text: str, sep: str, num_fields: int, first_line: int) -> tuple[int, int] | None:
    """(line, field count) of the first line ≥ ``first_line`` without ``num_fields`` fields.

    A targeted scan, run only after pandas has reported a field-count problem, to name
    the 1-based line. Single-character separators honour quotes like pandas' C parser.
    """
    lines = io.StringIO(text, newline="")
    if len(sep) == 1:
        reader = csv.reader(lines, delimiter=sep)
        for fields in reader:
            if reader.line_num >= first_line and len(fields) != num_fields:
                return reader.line_num, len(fields)
    else:
        for line_no, line in enumerate(lines, start=1):
            count = len(line.rstrip("\r\n").split(sep))
            if line_no >= first_line and count != num_fields:
                return line_no, count
    return None


def _read_table(
    path: Path,
    raw: bytes,
    sep: str,
    columns: Sequence[str],
    header: bool,
    encoding: str,
    max_rows: int | None,
) -> pd.DataFrame:
    """Parse ``raw`` into a validated frame with columns user, item (str), rating (numeric)."""
    columns = list(columns)
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing or len(set(columns)) != len(columns):
        raise ValueError(f"columns must name each field once and include {REQUIRED_COLUMNS}; got {columns} (missing {missing})")
    if not raw.strip():
        raise ValueError(f"{path}: the file is empty")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{path}: line {line} is not valid {encoding} ({error.reason} at byte {error.start}); "
            "pass the file's real encoding, e.g. encoding='latin-1'"
        ) from None

    first_data_line = 2 if header else 1
    num_fields = len(columns)
    pos = {name: columns.index(name) for name in REQUIRED_COLUMNS}

    def field_count_error(cause: str) -> ValueError:
        bad = _first_bad_line(text, sep, num_fields, first_line=first_data_line)
        where = f"line {bad[0]}: expected {num_fields} fields {tuple(columns)}, found {bad[1]}" if bad else cause
        return ValueError(f"{path}: malformed row: {where}")

    try:
        frame = pd.read_csv(
            io.BytesIO(raw),
            # pandas' C parser takes 1-char separators only; the python one reads longer ones as regexes.
            sep=sep if len(sep) == 1 else re.escape(sep),
            engine="c" if len(sep) == 1 else "python",
            header=None,
            skiprows=1 if header else 0,
            nrows=max_rows,
            encoding=encoding,
            # Ids stay strings ("0155061224" must not become 155061224); other fields are inferred.
            dtype={pos["user"]: object, pos["item"]: object},
            na_filter=False,
            skip_blank_lines=False,  # keeps row r on line r + first_data_line
        )
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: no data rows") from None
    except pd.errors.ParserError as error:  # a row with too many fields
        raise field_count_error(str(error).strip()) from None
    if frame.shape[1] != num_fields:
        raise field_count_error(f"expected {num_fields} fields {tuple(columns)}, found {frame.shape[1]}")
    if len(frame) == 0:
        raise ValueError(f"{path}: no data rows")

    # Short rows come back as "" (C parser) or None (python parser): a field is missing or empty.
    empty = np.zeros(len(frame), dtype=bool)
    for position in range(num_fields):
        values = frame[position]
        if not pd.api.types.is_numeric_dtype(values):
            empty |= values.isna().to_numpy() | (values == "").to_numpy(dtype=bool, na_value=False)
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        bad = _first_bad_line(text, sep, num_fields, first_line=row + first_data_line)
        reason = f"expected {num_fields} fields, found {bad[1]}" if bad and bad[0] == row + first_data_line else "empty field"
        raise ValueError(f"{path}: malformed row: line {row + first_data_line}: {reason}")

    rating = frame[pos["rating"]]
    if not pd.api.types.is_numeric_dtype(rating):
        rating = pd.to_numeric(rating, errors="coerce")
    rating = rating.to_numpy(dtype=np.float64)
    finite = np.isfinite(rating)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"{path}: malformed row: line {row + first_data_line}: rating "
            f"{frame[pos['rating']].iloc[row]!r} is not a finite number"
        )
    integral = np.array_equal(rating, np.round(rating))
    return pd.DataFrame(
        {
            "user": frame[pos["user"]].to_numpy(),
            "item": frame[pos["item"]].to_numpy(),
            "rating": rating.astype(np.int64) if integral else rating,
        }
    )


def read_ratings(
    path: str | os.PathLike[str],
    sep: str = ",",
    columns: Sequence[str] = REQUIRED_COLUMNS,
    header: bool = False,
    encoding: str = "utf-8",
    max_rows: int | None = None,
) -> pd.DataFrame:
    """Read a generic ratings file: one interaction per line.

    ``columns`` names the file's fields in order and must contain ``user``, ``item``
    and ``rating``; other fields (e.g. ``timestamp``) are read and dropped.
    Examples: Amazon ``user,item,rating,timestamp`` →
    ``columns=("user", "item", "rating", "timestamp")``; MovieLens ``u.data`` →
    ``sep="\\t"`` with the same columns; MovieLens ``ratings.dat`` → ``sep="::"``.
    ``header=True`` skips a first header line. ``.xz``/``.gz`` suffixes are decompressed.
    ``max_rows`` keeps the first N data rows.

    Returns a frame with columns user, item (str) and rating (int64 when every rating
    is integral, else float64), in file order.

    Raises ValueError, naming the 1-based line of the first offender, for a row with
    the wrong number of fields, an empty field or a non-numeric rating; also for an
    empty file, bytes not decodable as ``encoding``, and ``columns`` lacking a
    required name. Nothing is skipped silently. Line numbers count physical lines
    (quoted fields spanning lines are not supported).
    """
    path = Path(path)
    return _read_table(path, _read_bytes(path), sep, columns, header, encoding, max_rows)


def read_bookcrossing(path: str | os.PathLike[str], max_rows: int | None = None) -> pd.DataFrame:
    """Read the original ``BX-Book-Ratings.csv`` (``;``-separated, quoted, latin-1, CRLF).

    Accepts plain, ``.xz`` and ``.gz`` files. Returns columns user, item (ISBN as
    written, str) and rating (int64, 0 = implicit). The header must be
    ``"User-ID";"ISBN";"Book-Rating"``; malformed rows raise ValueError as in
    ``read_ratings``.
    """
    path = Path(path)
    raw = _read_bytes(path)
    first_line = raw.split(b"\n", 1)[0].decode("latin-1").strip()
    found = [name.strip('"') for name in first_line.split(";")] if first_line else []
    if found != _BX_HEADER:
        raise ValueError(f"{path}: expected the BookCrossing header columns {_BX_HEADER}, found {found}")
    return _read_table(path, raw, ";", REQUIRED_COLUMNS, True, "latin-1", max_rows)
