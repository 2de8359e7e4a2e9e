"""Tables written incrementally and atomically: one Parquet row group or CSV/TSV rows per chunk."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nkpredict.exceptions import InputError
from nkpredict.io import TABLE_SUFFIXES, atomic_path

__all__ = ["TableWriter"]


class TableWriter:
    """Append DataFrames to one ``.parquet``, ``.csv`` or ``.tsv`` file, atomically.

    Parquet: a :class:`pyarrow.parquet.ParquetWriter` writing one row group per appended
    frame, with the schema of the first. Text: the header once, then rows. Everything goes
    to a temporary sibling renamed onto ``path`` when the ``with`` block succeeds; on error
    the temporary file is removed and ``path`` is left as it was.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in TABLE_SUFFIXES:
            raise InputError(f"{self.path}: output must end in {', '.join(TABLE_SUFFIXES)}")
        self.n_rows = 0
        self._stack = ExitStack()
        self._parquet: pq.ParquetWriter | None = None
        self._text: Any = None

    def __enter__(self) -> TableWriter:
        self._staging = self._stack.enter_context(atomic_path(self.path))
        if self.suffix != ".parquet":
            self._text = self._stack.enter_context(self._staging.open("w", encoding="utf-8"))
        return self

    def write(self, frame: pd.DataFrame) -> None:
        """Append the rows of ``frame`` (same columns every time; index not written)."""
        if self._text is not None:
            sep = "\t" if self.suffix == ".tsv" else ","
            frame.to_csv(self._text, index=False, sep=sep, header=self.n_rows == 0)
        else:
            if self._parquet is None:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                self._parquet = pq.ParquetWriter(self._staging, table.schema)
                self._stack.callback(self._parquet.close)
            else:
                table = pa.Table.from_pandas(
                    frame, schema=self._parquet.schema, preserve_index=False
                )
            self._parquet.write_table(table)
        self.n_rows += len(frame)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stack.__exit__(exc_type, exc, traceback)
