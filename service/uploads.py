"""Uploaded expression files: which are accepted, how they are stored, and how large they may
grow.

An upload is written to a private temporary directory and read there by the library's
:func:`~nkpredict.data.expression.read_expression`. Nothing reaches the parser before its
size is known to be bounded:

- text (CSV/TSV, gzipped or not) is counted while it is stored (decompressed in 1 MiB
  chunks, stopped at ``NKP_MAX_UPLOAD_EXPANDED_BYTES``); its lines and the fields of its
  header line must fit the samples and columns allowed (``NKP_MAX_SAMPLES``,
  ``NKP_MAX_UPLOAD_COLUMNS``) for the orientation asked for;
- Parquet is checked from its metadata: rows and columns, the pages' uncompressed sizes, the
  cells as float64 once read, at most one text column (the labels), whose values, read as a
  dictionary (not expanded), may be at most ``NKP_MAX_UPLOAD_CELL_BYTES`` long.
"""

from __future__ import annotations

import gzip
import re
import shutil
import tempfile
import zlib
from pathlib import Path, PurePath
from typing import IO

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fastapi import UploadFile

from nkpredict.data.expression import file_kind, read_expression
from nkpredict.exceptions import NKPredictError
from nkpredict.vocabulary import Orientation
from service.config import ServiceSettings
from service.errors import ServiceError, library_error_status

__all__ = ["UPLOAD_SUFFIXES", "read_upload", "safe_name", "upload_suffix"]

CHUNK_BYTES = 1 << 20
MAX_FIELD_BYTES = 256
"""Bytes of the header line read per allowed column when counting its fields."""
UPLOAD_SUFFIXES = (".csv", ".tsv", ".txt", ".tab", ".parquet", ".pq")
"""Accepted upload extensions; the text formats may also be gzipped (``.csv.gz``)."""
PARQUET_SUFFIXES = (".parquet", ".pq")


def upload_suffix(filename: str) -> str:
    """``.csv``, ``.tsv.gz``, ``.parquet``...: the part of the name that picks the reader.

    Raises
    ------
    ServiceError
        415 ``unsupported_file_type`` for any other ending (and gzipped Parquet).
    """
    suffixes = [s.lower() for s in PurePath(filename).suffixes]
    gzipped = suffixes[-1:] == [".gz"]
    if gzipped:
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext not in UPLOAD_SUFFIXES or (gzipped and ext in PARQUET_SUFFIXES):
        raise ServiceError(
            415,
            "unsupported_file_type",
            f"cannot read {filename!r}: expected a file ending in "
            f"{', '.join(UPLOAD_SUFFIXES)} (text formats may end in .gz)",
            {"filename": filename, "accepted": list(UPLOAD_SUFFIXES)},
        )
    return ext + (".gz" if gzipped else "")


def safe_name(filename: str | None) -> str:
    """The upload's file name without directories or unusual characters (for messages)."""
    name = PurePath(filename or "upload").name
    return re.sub(r"[^\w.\-]+", "_", name)[:100] or "upload"


def _too_expanded(name: str, limit: int) -> ServiceError:
    return ServiceError(
        413,
        "upload_too_large",
        f"{name} expands to more than {limit} bytes uncompressed (NKP_MAX_UPLOAD_EXPANDED_BYTES)",
        {"filename": name, "max_upload_expanded_bytes": limit},
    )


def _limits(orientation: Orientation, settings: ServiceSettings) -> tuple[int, int]:
    """Most rows (header excluded) and columns an upload may have in ``orientation``."""
    samples, columns = settings.max_samples, settings.max_upload_columns
    if orientation == "samples":
        return samples, columns + 1
    if orientation == "genes":
        return columns, samples + 1
    return max(samples, columns), max(samples, columns) + 1


def _too_many(name: str, what: str, found: int, limit: int, setting: str) -> ServiceError:
    code = "too_many_samples" if setting == "NKP_MAX_SAMPLES" else "upload_too_large"
    return ServiceError(
        413,
        code,
        f"{name} has {found} {what}; the limit is {limit} ({setting})",
        {"filename": name, what.replace(" ", "_"): found, "limit": limit},
    )


def _check_shape(
    name: str, rows: int, columns: int, orientation: Orientation, settings: ServiceSettings
) -> None:
    """413 when ``rows`` (data rows) or ``columns`` exceed what ``orientation`` allows."""
    max_rows, max_columns = _limits(orientation, settings)
    if columns > max_columns:
        setting = "NKP_MAX_SAMPLES" if orientation == "genes" else "NKP_MAX_UPLOAD_COLUMNS"
        raise _too_many(name, "columns", columns, max_columns, setting)
    if rows > max_rows:
        setting = "NKP_MAX_SAMPLES" if orientation == "samples" else "NKP_MAX_UPLOAD_COLUMNS"
        raise _too_many(name, "rows", rows, max_rows, setting)


def _copy_counting(
    source: IO[bytes], target: IO[bytes], name: str, limit: int, max_lines: int
) -> int:
    """Copy in 1 MiB chunks; stop at ``limit`` bytes or beyond ``max_lines`` lines."""
    written = lines = 0
    while chunk := source.read(CHUNK_BYTES):
        written += len(chunk)
        if written > limit:
            raise _too_expanded(name, limit)
        lines += chunk.count(b"\n")
        if lines > max_lines + 1:  # the header line and one final line without a newline
            raise ServiceError(
                413,
                "too_many_samples",
                f"{name} has more than {max_lines} rows (NKP_MAX_SAMPLES / "
                "NKP_MAX_UPLOAD_COLUMNS for this orientation)",
                {"filename": name, "limit": max_lines},
            )
        target.write(chunk)
    return lines


def _header_fields(path: Path, separator: str, max_bytes: int) -> int:
    """Fields of the first line, reading at most ``max_bytes`` of it (more: over the limit)."""
    with path.open("rb") as source:
        head = source.read(max_bytes)
    line = head.split(b"\n", 1)[0]
    return line.count(separator.encode()) + 1


def _store_upload(
    upload: UploadFile,
    directory: Path,
    suffix: str,
    name: str,
    orientation: Orientation,
    settings: ServiceSettings,
) -> Path:
    """Write the upload into ``directory`` (text gunzipped on the way) within the limits."""
    limit = settings.max_upload_expanded_bytes
    max_rows, max_columns = _limits(orientation, settings)
    path = directory / f"upload{suffix.removesuffix('.gz')}"
    if suffix in PARQUET_SUFFIXES:
        with path.open("wb") as target:
            shutil.copyfileobj(upload.file, target, length=CHUNK_BYTES)
        return path
    try:
        with path.open("wb") as target:
            if suffix.endswith(".gz"):
                with gzip.GzipFile(fileobj=upload.file, mode="rb") as source:
                    _copy_counting(source, target, name, limit, max_rows)  # type: ignore[arg-type]
            else:
                _copy_counting(upload.file, target, name, limit, max_rows)
    except (OSError, EOFError, zlib.error) as exc:
        raise ServiceError(
            422, "invalid_expression", f"{name} is not a valid gzip file: {exc}", {"filename": name}
        ) from None
    # A field is at least one separator: a header line longer than this has too many.
    fields = _header_fields(path, file_kind(path), max_columns * MAX_FIELD_BYTES)
    if fields > max_columns:
        setting = "NKP_MAX_SAMPLES" if orientation == "genes" else "NKP_MAX_UPLOAD_COLUMNS"
        raise _too_many(name, "columns", fields, max_columns, setting)
    return path


def _check_parquet(
    path: Path, name: str, orientation: Orientation, settings: ServiceSettings
) -> None:
    """Refuse a Parquet file whose data, once read, could exceed the limits.

    Parquet's compressed pages say little (a column of zeros, or one long string repeated,
    encodes to almost nothing), so the checks use the metadata: rows and columns, the pages'
    uncompressed sizes, rows x columns x 8 bytes as float64, and the lengths of the one text
    column's distinct values, read as a dictionary (never expanded to one string per row).
    """
    limit = settings.max_upload_expanded_bytes
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError, pa.ArrowException):
        return  # not Parquet after all: read_expression reports it
    metadata = parquet.metadata
    rows, columns = metadata.num_rows, metadata.num_columns
    _check_shape(name, rows, columns, orientation, settings)
    encoded = sum(
        metadata.row_group(g).column(c).total_uncompressed_size
        for g in range(metadata.num_row_groups)
        for c in range(columns)
    )
    if encoded > limit or rows * columns * 8 > limit:
        raise _too_expanded(name, limit)
    schema = parquet.schema_arrow
    text = [f.name for f in schema if _is_text(f.type)]
    if len(text) > 1:
        raise ServiceError(
            422,
            "invalid_expression",
            f"{name} has {len(text)} text columns; expression files have one (the labels) "
            "and numbers elsewhere",
            {"filename": name, "text_columns": text[:10]},
        )
    if text:
        _check_text_cells(path, text[0], name, settings.max_upload_cell_bytes)


def _is_text(kind: pa.DataType) -> bool:
    """String or binary, plain or dictionary-encoded."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )


def _check_text_cells(path: Path, column: str, name: str, limit: int) -> None:
    """The longest value of Parquet text ``column``, read as a dictionary, is within ``limit``."""
    try:
        table = pq.read_table(path, columns=[column], read_dictionary=[column])
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ServiceError(
            422, "invalid_expression", f"{name}: cannot read column {column!r}: {exc}"
        ) from None
    longest = 0
    for chunk in table.column(0).chunks:
        values = chunk.dictionary if pa.types.is_dictionary(chunk.type) else chunk
        if len(values):
            longest = max(longest, pc.max(pc.binary_length(values)).as_py() or 0)
    if longest > limit:
        raise ServiceError(
            413,
            "upload_too_large",
            f"{name}: a value of column {column!r} is {longest} bytes long; the limit is "
            f"{limit} (NKP_MAX_UPLOAD_CELL_BYTES)",
            {"filename": name, "max_upload_cell_bytes": limit},
        )


def read_upload(
    upload: UploadFile, orientation: Orientation, settings: ServiceSettings
) -> pd.DataFrame:
    """Read an uploaded matrix from a private temporary file (blocking: run it in a thread).

    Parameters
    ----------
    upload : UploadFile
        CSV/TSV (optionally gzipped) or Parquet.
    orientation : Orientation
        What the file's rows are.
    settings : ServiceSettings
        ``max_upload_expanded_bytes``, ``max_upload_columns``, ``max_upload_cell_bytes``
        and ``max_samples`` apply, before the file is parsed.

    Returns
    -------
    DataFrame, shape (n_samples, n_genes)
        As :func:`~nkpredict.data.expression.read_expression` reads it.

    Raises
    ------
    ServiceError
        413, 415 or 422 (the library's refusals mapped by :mod:`service.errors`, with the
        temporary path replaced by the upload's name).
    """
    name = safe_name(upload.filename)
    suffix = upload_suffix(name)
    with tempfile.TemporaryDirectory(prefix="nkpredict-upload-") as tmp:
        path = _store_upload(upload, Path(tmp), suffix, name, orientation, settings)
        if suffix in PARQUET_SUFFIXES:
            _check_parquet(path, name, orientation, settings)
        try:
            frame = read_expression(path, orientation=orientation)
        except NKPredictError as exc:
            status, code = library_error_status(exc)
            message = str(exc).replace(str(path), name)
            raise ServiceError(status, code, message, {"filename": name}) from None
    n_samples = frame.shape[0]
    if n_samples > settings.max_samples:
        raise ServiceError(
            413,
            "too_many_samples",
            f"{name} holds {n_samples} samples; the limit is {settings.max_samples}",
            {"n_samples": n_samples, "max_samples": settings.max_samples},
        )
    return frame
