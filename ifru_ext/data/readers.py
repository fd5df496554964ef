"""Ratings files → raw rows: a frame with columns user, item (str ids) and rating.

Plain, ``.xz`` and ``.gz`` files; a generic delimited format (``read_ratings``), the
original BookCrossing file (``read_bookcrossing``), RecBole atomic ``.inter`` files
(``read_inter``) and files of raw ids such as deletion requests (``read_ids``). Every
malformed row raises ValueError naming its 1-based line; nothing is skipped silently.
Vectorised with pandas; the only per-line loop is a scan that locates the first malformed
line after pandas has already reported a problem.
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

__all__ = [
    "ATOMIC_TYPES",
    "REQUIRED_COLUMNS",
    "inter_columns",
    "is_atomic_file",
    "read_atomic_header",
    "read_bookcrossing",
    "read_ids",
    "read_inter",
    "read_ratings",
]

_BX_HEADER = ["User-ID", "ISBN", "Book-Rating"]
REQUIRED_COLUMNS = ("user", "item", "rating")


_COMPRESSED = {".xz": ("xz", lzma.open), ".gz": ("gzip", gzip.open)}


def _read_bytes(path: Path, what: str = "ratings file", first_line: bool = False) -> bytes:
    """The file's bytes (``first_line``: its first line only), decompressed according to its
    suffix (.xz, .gz, else plain).

    ValueError for a directory and for a compressed file that does not decompress
    (truncated, corrupt, or not of its suffix's format); FileNotFoundError for a missing one.
    ``what`` names the kind of file in those messages.
    """
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a {what}")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such {what}")
    kind, opener = _COMPRESSED.get(path.suffix.lower(), ("plain", open))
    try:
        with opener(path, "rb") as handle:
            return handle.readline() if first_line else handle.read()
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
    ids: Sequence[str] = ("user", "item"),
    numbers: Sequence[str] = ("rating",),
) -> pd.DataFrame:
    """Parse ``raw`` into a validated frame with the columns ``ids`` (str) and ``numbers``
    (finite; int64 when every value is integral, else float64), in that order.

    ``columns`` names the file's fields in order; the others are read and dropped.
    """
    columns = list(columns)
    required = (*ids, *numbers)
    missing = [name for name in required if name not in columns]
    if missing or len(set(columns)) != len(columns):
        raise ValueError(f"columns must name each field once and include {required}; got {columns} (missing {missing})")
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
    pos = {name: columns.index(name) for name in required}

    def field_count_error(cause: str) -> ValueError:
        bad = _first_bad_line(text, sep, num_fields, first_line=first_data_line)
        where = f"line {bad[0]}: expected {num_fields} fields {tuple(columns)}, found {bad[1]}" if bad else cause
        # Every row alike is a file read with the wrong settings, not one bad row: say which.
        if bad is not None and bad[0] == first_data_line:
            if bad[1] == 1:
                where += f" (no separator {sep!r} in the line: is that the file's separator?)"
            elif bad[1] > num_fields:  # e.g. a timestamp field the default columns do not name
                extra = ("timestamp", *(f"field{k}" for k in range(num_fields + 2, bad[1] + 1)))  # one per unnamed field
                where += (f" (name every field in order with columns, on the command line --columns, "
                          f"e.g. {','.join((*columns, *extra))}; unused ones are dropped)")
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
            dtype={pos[name]: object for name in ids},
            na_filter=False,
            skip_blank_lines=False,  # keeps row r on line r + first_data_line
        )
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: no data rows") from None
    except pd.errors.ParserError as error:  # a row with too many fields
        raise field_count_error(str(error).strip()) from None
    except IndexError as error:  # the python parser's dtype positions past a row narrower than the id columns
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

    out = {name: frame[pos[name]].to_numpy() for name in ids}
    for name in numbers:
        out[name] = _finite_numbers(path, frame[pos[name]], name, first_data_line)
    return pd.DataFrame(out)


def _finite_numbers(path: Path, values: pd.Series, name: str, first_data_line: int) -> np.ndarray:
    """``values`` as int64 when all are integral, else float64; ValueError naming the line of
    the first value that is not a finite number."""
    numbers = values if pd.api.types.is_numeric_dtype(values) else pd.to_numeric(values, errors="coerce")
    numbers = numbers.to_numpy(dtype=np.float64)
    finite = np.isfinite(numbers)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"{path}: malformed row: line {row + first_data_line}: {name} {values.iloc[row]!r} is not a finite number"
        )
    return numbers.astype(np.int64) if np.array_equal(numbers, np.round(numbers)) else numbers


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


# --------------------------------------------------------------------------- RecBole atomic files
# https://recbole.io/docs/user_guide/data/atomic_files.html: tab-separated, one header line of
# ``name:type`` fields, type one of ATOMIC_TYPES. RecBole names users ``user_id`` and items
# ``item_id`` (its USER_ID_FIELD / ITEM_ID_FIELD defaults); a pointwise 0/1 label is ``label``.

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
_ATOMIC_SUFFIXES = (".inter", ".inter.gz", ".inter.xz")


def is_atomic_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a RecBole ``.inter`` file (also ``.inter.gz`` / ``.inter.xz``)."""
    return str(path).lower().endswith(_ATOMIC_SUFFIXES)


def _decoded_first_line(path: Path, line: bytes, encoding: str) -> str:
    try:
        return line.decode(encoding).rstrip("\r\n").lstrip("\ufeff")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: line 1 is not valid {encoding} ({error.reason})") from None


def _atomic_header(path: Path, line: bytes, encoding: str) -> dict[str, str]:
    text = _decoded_first_line(path, line, encoding)
    if not text.strip():
        raise ValueError(f"{path}: empty header line: a RecBole atomic file starts with tab-separated name:type fields")
    fields: dict[str, str] = {}
    for entry in text.split("\t"):
        parts = entry.strip().split(":")
        if len(parts) != 2 or not parts[0] or parts[1] not in ATOMIC_TYPES:
            raise ValueError(
                f"{path}: line 1: malformed RecBole header field {entry!r}: expected name:type with type one of "
                f"{', '.join(ATOMIC_TYPES)}, fields separated by tabs (header {text!r})"
            )
        if parts[0] in fields:
            raise ValueError(f"{path}: line 1: field {parts[0]!r} named twice in the RecBole header {text!r}")
        fields[parts[0]] = parts[1]
    return fields


def read_atomic_header(path: str | os.PathLike[str], encoding: str = "utf-8") -> dict[str, str]:
    """The fields of a RecBole atomic file's header, name → type, in file order (reads line 1 only).

    ValueError for a header that is not tab-separated ``name:type`` fields with known types
    (``ATOMIC_TYPES``), or names a field twice.
    """
    path = Path(path)
    return _atomic_header(path, _read_bytes(path, "RecBole atomic file", first_line=True), encoding)


def inter_columns(path: str | os.PathLike[str], fields: dict[str, str]) -> dict[str, str]:
    """Which header fields of an ``.inter`` file are ours: field name → user, item, label or rating.

    ``user_id:token`` and ``item_id:token`` are required; ``label:float`` (the 0/1 label) is
    used when present, else ``rating:float``; neither (implicit feedback) maps no label.
    ValueError naming the field for a missing id field or a field of the wrong type.
    """
    roles: dict[str, str] = {}
    for name, role, kind in (("user_id", "user", "token"), ("item_id", "item", "token"),
                             ("label", "label", "float"), ("rating", "rating", "float")):
        if name not in fields:
            if role in ("user", "item"):
                raise ValueError(f"{path}: the RecBole header has no {name}:token field (fields {list(fields)}); "
                                 "an .inter file names its users user_id and its items item_id")
            continue
        if fields[name] != kind:
            raise ValueError(f"{path}: field {name} is typed {fields[name]}, expected {name}:{kind}")
        if role != "rating" or "label" not in roles.values():
            roles[name] = role
    return roles


def read_inter(path: str | os.PathLike[str], encoding: str = "utf-8", max_rows: int | None = None) -> pd.DataFrame:
    """Read a RecBole atomic ``.inter`` file (plain, ``.gz`` or ``.xz``).

    Returns columns user, item (str tokens, as written) and, after them, ``label`` (int64 0/1)
    when the header has ``label:float``, else ``rating`` (int64 or float64) when it has
    ``rating:float``, else nothing more (implicit feedback: every row an interaction). Other
    fields (``timestamp``, token_seq reviews, ...) are read and dropped.

    ValueError for a malformed header (``read_atomic_header``, ``inter_columns``) and, naming
    the 1-based line, for a row with the wrong number of fields, an empty field, a
    non-numeric rating or label, or a label other than 0 or 1.
    """
    path = Path(path)
    raw = _read_bytes(path, "RecBole atomic file")
    fields = _atomic_header(path, raw.split(b"\n", 1)[0], encoding)
    roles = inter_columns(path, fields)
    names = [roles.get(name, f"field:{name}") for name in fields]  # "field:…" never clashes with a role
    numbers = [role for role in ("label", "rating") if role in roles.values()]
    frame = _read_table(path, raw, "\t", names, True, encoding, max_rows, ids=("user", "item"), numbers=numbers)
    if "label" in frame:
        wrong = ~np.isin(frame["label"].to_numpy(), (0, 1))
        if wrong.any():
            row = int(np.flatnonzero(wrong)[0])
            value = frame["label"].tolist()[row]
            raise ValueError(f"{path}: malformed row: line {row + 2}: label {value!r} is not 0 or 1")
    return frame


# --------------------------------------------------------------------------- files of raw ids

# Header names taken as the user / item column of an id file (case-insensitive): ours, RecBole's,
# CURE4Rec's (uid, iid), MovieLens' and BookCrossing's.
USER_FIELDS = ("user", "user_id", "uid", "userid", "user-id")
ITEM_FIELDS = ("item", "item_id", "iid", "itemid", "movieid", "isbn")


def read_ids(path: str | os.PathLike[str], encoding: str = "utf-8") -> pd.DataFrame:
    """Raw ids of a file naming users, or user–item pairs (deletion requests).

    Layouts, told apart by the first line:

    - a RecBole atomic file (a tab-separated ``name:type`` header with ``user_id:token`` and
      optionally ``item_id:token``; other fields dropped);
    - a delimited file whose header names a user column (``USER_FIELDS``) and optionally an
      item column (``ITEM_FIELDS``), other columns dropped — e.g. CURE4Rec's ``uid,iid,val[,tag]``;
    - header-less ``user,item`` pairs, one per line, separated by a comma, a tab or spaces.

    Delimited files split on commas when the first line has one, else on tabs, else on runs of
    spaces. Returns column user and, when the file names items, item (str, stripped), in file
    order. ValueError naming the line for a row with the wrong number of fields or an empty
    field, and for a file without rows.
    """
    path = Path(path)
    raw = _read_bytes(path, "request file")
    first = _decoded_first_line(path, raw.split(b"\n", 1)[0], encoding)
    if any(entry.strip().startswith(("user_id:", "item_id:")) for entry in first.split("\t")):
        fields = _atomic_header(path, raw.split(b"\n", 1)[0], encoding)
        if fields.get("user_id") != "token" or fields.get("item_id", "token") != "token":
            raise ValueError(f"{path}: a RecBole request file needs user_id:token (and optionally item_id:token), "
                             f"found {fields}")
        columns = [{"user_id": "user", "item_id": "item"}.get(name, f"field:{name}") for name in fields]
        sep, header = "\t", True
    else:
        if "," in first:
            sep = ","
        elif "\t" in first:
            sep = "\t"
        else:  # runs of spaces/tabs → one space, none at either end of a line (line numbers kept)
            sep = " "
            raw = re.sub(rb"(?m)^ | (?=\r?$)", b"", re.sub(rb"[ \t]+", b" ", raw))
            first = _decoded_first_line(path, raw.split(b"\n", 1)[0], encoding)
        names = [name.strip().strip('"').lower() for name in first.split(sep)]
        user = next((k for k, name in enumerate(names) if name in USER_FIELDS), None)
        item = next((k for k, name in enumerate(names) if name in ITEM_FIELDS), None)
        header = user is not None
        if header:
            columns = [f"field:{k}" for k in range(len(names))]
            columns[user] = "user"
            if item is not None:
                columns[item] = "item"
        else:
            columns = ["user", "item"]
    ids = ("user", "item") if "item" in columns else ("user",)
    frame = _read_table(path, raw, sep, columns, header, encoding, None, ids=ids, numbers=())
    return frame.apply(lambda column: column.astype(str).str.strip())
