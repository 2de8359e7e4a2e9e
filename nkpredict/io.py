"""Safe output: every file nkpredict writes appears complete or not at all.

Files are written to a temporary sibling and renamed into place, so a full disk or an
interrupted run never leaves a truncated file that looks finished. The temporary file is made
private by :func:`tempfile.mkstemp` (mode 0600); before it is renamed into place it gets the
mode any new file would get under the user's umask (0644 under the usual 022), so colleagues
on a shared server can read the outputs.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pandas as pd

from nkpredict.exceptions import InputError

__all__ = [
    "TABLE_SUFFIXES",
    "atomic_path",
    "atomic_paths",
    "follow_umask",
    "write_json",
    "write_table",
    "write_text",
    "write_with",
]

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: str | Path) -> None:
    """Give a file or directory made private by :mod:`tempfile` the mode the user's umask
    gives new ones (0644 / 0755 under the usual 022)."""
    base = 0o777 if Path(path).is_dir() else 0o666
    os.chmod(path, base & ~_umask())


def _publish(staging: Path, target: Path) -> None:
    """Give ``staging`` the umask's mode and rename it onto ``target``."""
    if staging.exists():  # a writer may have replaced or removed it
        follow_umask(staging)
    os.replace(staging, target)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(handle)
    staging = Path(name)
    try:
        yield staging
        _publish(staging, target)
    finally:
        staging.unlink(missing_ok=True)


@contextmanager
def atomic_paths(*paths: str | Path) -> Iterator[tuple[Path, ...]]:
    """Several outputs committed together: staging paths, renamed onto ``paths`` only once
    the block has written all of them; on any failure none of them is committed.

    Each staging path sits next to its target and keeps its suffix (``.csv``, ``.parquet``),
    so writers that choose the format by extension work unchanged. The renames happen after
    every write succeeded, so what can fail (a full disk) fails before anything is renamed.
    """
    targets = [Path(p) for p in paths]
    staged: list[Path] = []
    try:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(
                prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=target.parent
            )
            os.close(handle)
            staged.append(Path(name))
        yield tuple(staged)
        for staging, target in zip(staged, targets, strict=True):
            _publish(staging, target)
    finally:
        for staging in staged:
            staging.unlink(missing_ok=True)


def write_with(path: str | Path, writer: Callable[[IO[str]], object]) -> Path:
    """Atomically write a text file produced by ``writer(file_object)``."""
    with atomic_path(path) as staging, staging.open("w", encoding="utf-8") as handle:
        writer(handle)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Atomically write ``text`` to ``path``."""
    return write_with(path, lambda handle: handle.write(text))


def write_json(path: str | Path, data: Any) -> Path:
    """Atomically write ``data`` as indented JSON."""
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Atomically write ``frame`` as CSV, TSV or Parquet, chosen by the file extension."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"{target}: output must end in {', '.join(TABLE_SUFFIXES)}")
    with atomic_path(target) as staging:
        if suffix == ".parquet":
            frame.to_parquet(staging, index=False)
        else:
            frame.to_csv(staging, index=False, sep="\t" if suffix == ".tsv" else ",")
    return target
