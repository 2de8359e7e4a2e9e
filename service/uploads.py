"""Uploaded expression files: which are accepted, how they are stored, and how large they may
grow.

An upload is written to a private temporary directory and read there by the library's
:func:`~nkpredict.data.expression.read_expression`. Gzipped text is decompressed on the way
and Parquet files are sized from their metadata before any data is read, so that a small
compressed upload cannot expand into gigabytes (``NKP_MAX_UPLOAD_EXPANDED_BYTES``).
"""

from __future__ import annotations

import gzip
import re
import shutil
import tempfile
import zlib
from pathlib import Path, PurePath

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import UploadFile

from nkpredict.data.expression import read_expression
from nkpredict.exceptions import NKPredictError
from nkpredict.vocabulary import Orientation
from service.config import ServiceSettings
from service.errors import ServiceError, library_error_status

__all__ = ["UPLOAD_SUFFIXES", "read_upload", "safe_name", "upload_suffix"]

CHUNK_BYTES = 1 << 20
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


def _store_upload(upload: UploadFile, directory: Path, suffix: str, name: str, limit: int) -> Path:
    """Write the upload into ``directory``; gunzip text files on the way, at most ``limit``
    bytes, so that a small compressed upload cannot expand into gigabytes in memory."""
    if not suffix.endswith(".gz"):
        path = directory / f"upload{suffix}"
        with path.open("wb") as target:
            shutil.copyfileobj(upload.file, target, length=CHUNK_BYTES)
        return path
    path = directory / f"upload{suffix.removesuffix('.gz')}"
    written = 0
    try:
        with gzip.GzipFile(fileobj=upload.file, mode="rb") as source, path.open("wb") as target:
            while chunk := source.read(CHUNK_BYTES):
                written += len(chunk)
                if written > limit:
                    raise _too_expanded(name, limit)
                target.write(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise ServiceError(
            422, "invalid_expression", f"{name} is not a valid gzip file: {exc}", {"filename": name}
        ) from None
    return path


def _check_parquet_size(path: Path, name: str, limit: int) -> None:
    """Refuse Parquet files whose cells would take more than ``limit`` bytes as float64.

    Parquet's own sizes are of encoded pages (a column of zeros encodes to almost nothing),
    so the bound uses rows x columns from the file metadata, read before any data.
    """
    try:
        metadata = pq.read_metadata(path)
    except (OSError, ValueError, pa.ArrowException):
        return  # not Parquet after all: read_expression reports it
    expanded = metadata.num_rows * metadata.num_columns * 8  # float64 cells once read
    if expanded > limit:
        raise _too_expanded(name, limit)


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
        ``max_upload_expanded_bytes`` and ``max_samples`` apply.

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
    limit = settings.max_upload_expanded_bytes
    with tempfile.TemporaryDirectory(prefix="nkpredict-upload-") as tmp:
        path = _store_upload(upload, Path(tmp), suffix, name, limit)
        if suffix in PARQUET_SUFFIXES:
            _check_parquet_size(path, name, limit)
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
