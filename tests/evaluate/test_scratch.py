"""Scratch folders of parallel cross-validation: those of killed jobs are removed, no other."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from nkpredict.evaluate import scratch
from nkpredict.evaluate.cv import cross_validate
from nkpredict.evaluate.folds import CVConfig, make_folds


def _ended_pid() -> int:
    """The process id of a process that has ended (and was reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _folder(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir()
    (path / "matrix.npy").write_bytes(b"\0" * 64)
    return path


def test_only_folders_of_ended_processes_of_this_machine_are_removed(tmp_path: Path) -> None:
    host = scratch._host()
    dead = _ended_pid()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        abandoned = _folder(tmp_path, f"{scratch.SCRATCH_PREFIX}{host}-{dead}-a1b2c3")
        kept = [
            _folder(tmp_path, f"{scratch.SCRATCH_PREFIX}{host}-{sleeper.pid}-x1"),  # running
            _folder(tmp_path, f"{scratch.SCRATCH_PREFIX}{host}-{os.getpid()}-x2"),  # this one
            _folder(tmp_path, f"{scratch.SCRATCH_PREFIX}other.host-{dead}-x3"),  # elsewhere
            _folder(tmp_path, f"{scratch.SCRATCH_PREFIX}k2j4_l1"),  # the older naming
            _folder(tmp_path, f"unrelated-{host}-{dead}-x4"),
        ]
        not_a_folder = tmp_path / f"{scratch.SCRATCH_PREFIX}{host}-{dead}-file"
        not_a_folder.write_text("left alone")

        assert scratch.remove_abandoned(tmp_path) == [abandoned]
        assert not abandoned.exists()
        assert all(path.is_dir() for path in kept)
        assert not_a_folder.is_file()
        assert scratch.remove_abandoned(tmp_path) == []
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_host_name_with_dashes_still_names_its_process(monkeypatch) -> None:
    monkeypatch.setattr(scratch.socket, "gethostname", lambda: "node-7_gpu")
    assert scratch._host() == "node-7.gpu"
    assert scratch._owner(f"{scratch.SCRATCH_PREFIX}node-7.gpu-4242-abc_9") == ("node-7.gpu", 4242)
    assert scratch._owner(f"{scratch.SCRATCH_PREFIX}abc_9") is None
    assert scratch._owner(f"{scratch.SCRATCH_PREFIX}host-notapid-abc") is None


@pytest.mark.integration  # starts a pool of worker processes
def test_a_parallel_cross_validation_clears_what_a_killed_job_left(tmp_path, monkeypatch) -> None:
    """The folder of a job killed before it could clean up goes at the next parallel job,
    and that job's own folder goes at its end."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    abandoned = _folder(tmp_path, f"{scratch.SCRATCH_PREFIX}{scratch._host()}-{_ended_pid()}-z9")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 5)), columns=[f"G{i}" for i in range(5)])
    y = pd.Series((X["G0"] + rng.normal(size=40) > 0).astype(int), index=X.index)
    folds = make_folds(y, None, CVConfig(n_splits=2, n_repeats=1, random_state=0), "classification")
    result = cross_validate(
        {"linear": lambda: LogisticRegression()}, X, y, folds, "classification", n_jobs=2
    )
    assert len(result.predictions) == len(X)
    assert not abandoned.exists()
    assert list(tmp_path.glob(f"{scratch.SCRATCH_PREFIX}*")) == []
