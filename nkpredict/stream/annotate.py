"""Scored cells written back into a copy of the input ``.h5ad``, without loading ``X``.

:class:`ObsWriter` copies the input file byte for byte (``X``, ``var``, ``layers``,
``obsm``, ``uns`` ... are the input's), then opens the copy with h5py and adds the columns of
:data:`~nkpredict.stream.cells.CELL_COLUMNS` to ``obs`` with AnnData's own element encoding
(:func:`anndata.io.write_elem`: a float32 array, a categorical, a float64 array, a boolean
array and a string array), each created at full length once and filled span by span as the
scores arrive, and ``uns["nkpredict"]`` (provenance). Memory is one span's columns; disk is
one copy of the input. Columns of the same names already in ``obs`` are replaced; every
other ``obs`` column, the ``obs`` index and their order are kept.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np
import pandas as pd
from anndata.io import write_elem

from nkpredict.exceptions import ExpressionFormatError, InputError
from nkpredict.stream.cells import CALLS, CELL_COLUMNS

__all__ = ["UNS_KEY", "ObsWriter"]

UNS_KEY = "nkpredict"
"""``uns`` key of the provenance of the scores."""


def _placeholder(name: str, n_rows: int) -> Any:
    """A full-length column of the right AnnData encoding for ``name``."""
    if name == "nk_call":
        return pd.Categorical.from_codes(np.zeros(n_rows, dtype=np.int8), categories=list(CALLS))
    if name == "nk_out_of_domain":
        return np.zeros(n_rows, dtype=bool)
    if name == "nk_resistance_probability":
        return np.zeros(n_rows, dtype=np.float32)
    if name == "nk_domain_reasons":
        return np.full(n_rows, "", dtype=object)
    return np.zeros(n_rows, dtype=np.float64)


def _plain(value: Any) -> Any:
    """``uns`` values AnnData can write (None becomes an empty string)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value] if value else np.array([], dtype=str)
    return value


class ObsWriter:
    """Write per-cell columns into ``out``, a copy of the ``.h5ad`` file ``source``.

    Use as a context manager: :meth:`write` the rows of each span in input order, then
    :meth:`finish` with the provenance; on an error the partial copy is left for the
    caller's staging path to remove.

    Raises
    ------
    InputError
        ``source`` is not an ``.h5ad`` file.
    ExpressionFormatError
        Its ``obs`` cannot be read or written.
    """

    def __init__(self, source: str | Path, out: str | Path, n_rows: int) -> None:
        self.source = Path(source)
        if self.source.suffix.lower() != ".h5ad":
            raise InputError(
                f"{self.source}: an .h5ad output needs an .h5ad input (scores are written into "
                "a copy of it); write --out <name>.obs.parquet instead"
            )
        self.out = Path(out)
        self.n_rows = n_rows
        self.done = 0
        self._handle: h5py.File | None = None

    def __enter__(self) -> ObsWriter:
        shutil.copyfile(self.source, self.out)
        try:
            self._handle = h5py.File(self.out, "r+")
            obs = self._handle["obs"]
            for name in CELL_COLUMNS:
                if name in obs:
                    del obs[name]
                write_elem(obs, name, _placeholder(name, self.n_rows))
        except (OSError, KeyError) as exc:
            self._close()
            raise ExpressionFormatError(f"{self.source}: cannot write obs: {exc}") from exc
        return self

    def write(self, cells: pd.DataFrame) -> None:
        """Write the next rows: :func:`~nkpredict.stream.cells.cell_columns` of a span."""
        assert self._handle is not None
        obs = self._handle["obs"]
        start, stop = self.done, self.done + len(cells)
        for name in CELL_COLUMNS:
            column = cells[name]
            if name == "nk_call":
                obs[name]["codes"][start:stop] = column.cat.codes.to_numpy(dtype=np.int8)
            elif name == "nk_domain_reasons":
                obs[name][start:stop] = column.astype(str).to_numpy(dtype=object)
            else:
                obs[name][start:stop] = column.to_numpy()
        self.done = stop

    def finish(self, provenance: dict[str, Any]) -> None:
        """Order the new columns after the others and store ``uns["nkpredict"]``."""
        assert self._handle is not None
        if self.done != self.n_rows:
            raise ExpressionFormatError(f"{self.source}: scored {self.done} of {self.n_rows} cells")
        obs = self._handle["obs"]
        order = [str(c) for c in np.atleast_1d(obs.attrs.get("column-order", []))]
        kept = [c for c in order if c not in CELL_COLUMNS]
        obs.attrs["column-order"] = np.array([*kept, *CELL_COLUMNS], dtype=object)
        if "uns" not in self._handle:
            write_elem(self._handle, "uns", {})
        uns = self._handle["uns"]
        if UNS_KEY in uns:
            del uns[UNS_KEY]
        write_elem(uns, UNS_KEY, _plain(provenance))

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._close()
