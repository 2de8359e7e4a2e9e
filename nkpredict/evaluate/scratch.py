"""Scratch folders of parallel cross-validation, and those that ended jobs left behind.

The parallel fits of :func:`nkpredict.evaluate.cv.cross_validate` share the prepared matrix
through a file in a temporary folder (hundreds of megabytes for a large cohort). The folder
goes with its job, on errors and interruptions too, but not when the job is killed outright
(SIGKILL, or the kernel's out-of-memory killer, a likely end of an oversized job), and each
such job would leave its matrix in the temporary directory for good.

So each folder is named after the machine and the process that made it
(``nkpredict-cv-<host>-<pid>-<random>``), and :func:`scratch_folder` first removes the folders
of this machine whose process no longer runs. A folder of another machine (a temporary
directory shared over the network), of a process that still runs (or whose number a new
process took since), or in an older naming is never touched.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["SCRATCH_PREFIX", "remove_abandoned", "scratch_folder"]

logger = logging.getLogger(__name__)

SCRATCH_PREFIX = "nkpredict-cv-"
"""Start of the name of every scratch folder (in :func:`tempfile.gettempdir`)."""

_HOST_CHARACTERS = re.compile(r"[^A-Za-z0-9.-]+")


def _host() -> str:
    """This machine's name as it appears in folder names (letters, digits, dots and dashes;
    the process id and the random part are read from the right)."""
    return _HOST_CHARACTERS.sub(".", socket.gethostname())[:64] or "host"


def _owner(name: str) -> tuple[str, int] | None:
    """The host and process id in a scratch folder's name; None for other names (an older
    naming, or not a scratch folder)."""
    if not name.startswith(SCRATCH_PREFIX):
        return None
    owner, _, random_part = name[len(SCRATCH_PREFIX) :].rpartition("-")
    host, _, pid = owner.rpartition("-")
    if not host or not random_part or not pid.isdigit():
        return None
    return host, int(pid)


def _running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # it exists (another user's), or the number is not ours to judge
    return True


def remove_abandoned(directory: Path | None = None) -> list[Path]:
    """Remove the scratch folders in ``directory`` (the temporary directory by default)
    that a process of this machine made and that process has ended; the folders removed."""
    root = Path(tempfile.gettempdir() if directory is None else directory)
    host = _host()
    removed: list[Path] = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        owner = _owner(entry.name)
        if owner is None or owner[0] != host or owner[1] == os.getpid() or _running(owner[1]):
            continue
        if not entry.is_dir() or entry.is_symlink():
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry)
    if removed:
        logger.info(
            "removed %d scratch folder(s) of ended jobs from %s: %s",
            len(removed),
            root,
            ", ".join(p.name for p in removed),
        )
    return removed


@contextmanager
def scratch_folder() -> Iterator[Path]:
    """A new scratch folder named after this machine and process, removed on exit; the
    folders that ended jobs of this machine left behind are removed first."""
    remove_abandoned()
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{_host()}-{os.getpid()}-") as path:
        yield Path(path)
