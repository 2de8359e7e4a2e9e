"""Plain request bodies in one compiled pass: whole profiles without a Python object per gene.

A /v1/predict or /v1/explain body of the *plain shape* (every sample lists the same genes in
the same order, keys without escapes, values numbers or ``null``, options scalars) is read by
the C scanner :mod:`service._plain_scan` straight into one float64 array: no string per gene,
no float per value, no dict per sample. A whole profile of 19,000 genes costs a fraction of
orjson's parse of the same text, which builds all of those and which the model then mostly
ignores (it reads ~150 genes).

:func:`scan_plain_body` returns ``None`` for every other body, and for every body the general
parser of :mod:`service.bodies` refuses (duplicated keys, a string value, no samples, too many
samples, a number beyond the float range, text that is not UTF-8...): that parser then reads
it, so every answer and every refusal is the same with or without the scanner. Where the
extension was not compiled (no C compiler at install), every body goes that way.

The gene keys of the first sample are compared, as bytes, with those of the last few bodies
(:data:`RECENT_KEY_LISTS`): clients send the same identifiers request after request, and a
repeated list comes back as the *same* tuple of strings, decoded once (and its identifier
mapping is then found by that object).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

try:
    from service._plain_scan import scan as _scan
except ImportError:  # pragma: no cover - the extension is built by every install here
    _scan = None

__all__ = ["COMPILED", "RECENT_KEY_LISTS", "PlainBody", "scan_plain_body"]

COMPILED = _scan is not None
"""Whether the compiled scanner is available (else every body takes the general parser)."""

RECENT_KEY_LISTS = 8
"""Distinct gene lists remembered (as their text and their decoded strings)."""

_recent_genes: tuple[tuple[bytes, tuple[str, ...]], ...] = ()
"""The last gene lists: (keys as scanned, the strings), newest first."""


@dataclass(frozen=True, eq=False)
class PlainBody:
    """A plain body, read.

    Attributes
    ----------
    values : ndarray of float64, shape (n_samples, n_genes)
        Writeable; NaN for ``null``.
    sample_ids : list of str
        Unique, in request order.
    genes : tuple of str
        The gene keys as sent, unique; the same tuple for every body that sent the same list
        (the identifier mapping finds its plan by that object,
        :func:`nkpredict.data.identifiers.column_plan`).
    options : dict
        Every top-level field but ``samples``, parsed, its keys unique.
    """

    values: np.ndarray
    sample_ids: list[str]
    genes: tuple[str, ...]
    options: dict[str, Any]


def scan_plain_body(raw: bytes, max_samples: int) -> PlainBody | None:
    """``raw`` read by the compiled scanner; ``None`` when it is not of the plain shape or
    the general parser must answer it (see the module docstring)."""
    if _scan is None:
        return None
    scanned = _scan(raw, max_samples)
    if scanned is None:
        return None
    sample_ids, keys, n_genes, cells, spans = scanned
    if len(sample_ids) > 1 and len(set(sample_ids)) != len(sample_ids):
        return None  # duplicated sample IDs: refused by the general parser
    genes = _genes(keys, n_genes)
    if genes is None:
        return None
    options = _options(raw, spans)
    if options is None:
        return None
    values = np.frombuffer(cells, dtype=np.float64).reshape(len(sample_ids), n_genes)
    return PlainBody(values, sample_ids, genes, options)


def _genes(keys: bytes, n_genes: int) -> tuple[str, ...] | None:
    """The gene list of the scanned ``keys`` (each followed by ``"``); ``None`` when they
    are not UTF-8 or some gene is listed twice."""
    global _recent_genes
    recent = _recent_genes  # one read: another thread may replace it
    for seen, genes in recent:
        if seen == keys:
            return genes
    try:
        genes = tuple(keys.decode("utf-8").split('"')[:n_genes])
    except UnicodeDecodeError:
        return None
    if len(set(genes)) != n_genes:
        return None
    _recent_genes = ((keys, genes), *recent[: RECENT_KEY_LISTS - 1])
    return genes


def _options(raw: bytes, spans: list[tuple[int, int]]) -> dict[str, Any] | None:
    """The option members ``spans`` of ``raw`` as one dict; ``None`` when their text is
    not valid JSON (orjson) or a key is repeated."""
    if not spans:
        return {}
    text = b"{" + b",".join(raw[start:stop] for start, stop in spans) + b"}"
    try:
        options = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if len(options) != len(spans) or "samples" in options:
        return None
    return options
