"""Request bodies of ``/v1/predict`` and ``/v1/explain``: JSON text -> samples x genes array.

The two routes parse their body themselves (:func:`parse_samples_body`) instead of letting
FastAPI validate it into pydantic models:

- duplicated keys must be detected (``json.loads`` keeps the last one silently), which needs
  ``object_pairs_hook``; orjson parses first and the standard library only when orjson's result
  could hide a duplicate (:func:`load_json`);
- the samples go straight from the parsed JSON into one float64 array, without building a
  pydantic object per sample (the slow part for batches); when a long body's text proves
  that no sample value is a string or a boolean (:class:`_PlainValues`), without looking at
  the type of each value either.

A body of the plain shape (the same genes in every sample, keys without escapes, numbers
or null) is read first by the compiled scanner of :mod:`service.plain_bodies`, without a
Python object per gene or value; the rest of this module is the general parser, which reads
every other body and gives every refusal (the scanner declines what it cannot read exactly).

The options (every field but ``samples``) are validated by the pydantic models of
:mod:`service.schemas`. Every refusal is a :class:`~service.errors.ServiceError` with a code of
the catalogue in :mod:`service.errors`.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from typing import Any, TypeVar

import numpy as np
import orjson
import pandas as pd
from pydantic import ValidationError

from nkpredict.data.expression import detect_scale
from nkpredict.data.identifiers import (
    HarmonizationReport,
    duplicate_genes_message,
    map_identifiers,
)
from nkpredict.exceptions import ScaleError
from nkpredict.vocabulary import ScaleChoice
from service.errors import ServiceError
from service.plain_bodies import scan_plain_body
from service.schemas import PredictOptions

__all__ = [
    "DENSE_FACTOR",
    "DENSE_MIN_CELLS",
    "MAX_INT_DIGITS",
    "OTHER_GENES",
    "OptionsT",
    "SampleMatrix",
    "SparseRows",
    "count_byte",
    "load_json",
    "parse_samples_body",
    "samples_matrix",
]

_ALLOWED_VALUE_TYPES = frozenset({int, float, type(None)})

MAX_INT_DIGITS = 4_000
"""Longer JSON integers are read as floats (infinite, so refused as ``non_finite_value``)
instead of reaching Python's 4,300-digit limit of ``int()``."""
DENSE_MIN_CELLS = 1 << 16
DENSE_FACTOR = 4
"""Samples that list different genes become one samples x union-of-genes array only while
it has at most ``max(DENSE_MIN_CELLS, DENSE_FACTOR x cells sent)`` cells; sparser bodies
keep only the model's genes (see :func:`samples_matrix`), so memory follows the body."""
_SCAN_MIN_BYTES = 1 << 14
"""Bodies longer than this are scanned with numpy (bytes.count is ~10x slower per byte)."""
_OPEN_BRACE, _QUOTE, _E = ord("{"), ord('"'), ord("e")
_OBJECT_BYTES = 64
"""Bodies with more than one JSON object per this many bytes (and longer than
:data:`_SCAN_MIN_BYTES`) are parsed by the standard library: see :func:`load_json`."""
OTHER_GENES = "<other genes>"
"""Label of the columns standing for the genes a sparse body's reduction left out."""


def count_byte(raw: bytes, char: bytes) -> int:
    """Occurrences of the one-byte character ``char`` in ``raw`` (with numpy beyond
    :data:`_SCAN_MIN_BYTES`: :meth:`bytes.count` of one character is ~4x slower)."""
    if len(raw) <= _SCAN_MIN_BYTES:
        return raw.count(char)
    return _count_in(np.frombuffer(raw, dtype=np.uint8), ord(char))


def _count_in(text: np.ndarray, byte: int) -> int:
    """Occurrences of ``byte`` in a text held as uint8."""
    return int(np.count_nonzero(text == byte))


def _packed(cells: Iterable[Any], size: int) -> np.ndarray | None:
    """The ``size`` cells as a writeable float64 array when every one is a Python float, int
    or bool (``float()`` of each, as :func:`numpy.fromiter` converts them); ``None`` when one
    is anything else (``None``, a string, a container, an int beyond the float range) or
    their number is not ``size``.

    :func:`struct.pack_into` writes them straight into the array's memory, in half the time
    of ``fromiter``; it refuses strings (numeric or not), which ``fromiter`` would convert.
    """
    memory = bytearray(8 * size)  # packed into faster than into an array's buffer
    try:
        struct.pack_into(f"{size}d", memory, 0, *cells)
    except (struct.error, TypeError, ValueError, OverflowError):
        return None
    return np.frombuffer(memory, dtype=np.float64)


class _DuplicateKeys(dict[str, Any]):
    """A parsed JSON object that had duplicated keys (the last value kept, like json)."""

    duplicates: list[str]


class _NonFiniteConstant(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity`` in the JSON text."""


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    marked = _DuplicateKeys(obj)
    counts = Counter(k for k, _ in pairs)
    marked.duplicates = [k for k, n in counts.items() if n > 1]
    return marked


def _reject_constant(name: str) -> float:
    raise _NonFiniteConstant(name)


def _parse_int(text: str) -> int | float:
    """A JSON integer; beyond :data:`MAX_INT_DIGITS` digits a float (``inf``), never the
    ``ValueError`` of Python's integer-string conversion limit."""
    return int(text) if len(text) <= MAX_INT_DIGITS else float(text)


def _lone_surrogate(document: Any) -> str | None:
    """The first string (key or value) of ``document`` holding a lone UTF-16 surrogate.

    ``json`` decodes ``"\\ud800"`` into a string that cannot be encoded as UTF-8, so it
    could be neither matched to a gene nor written into an answer. Walked without recursion.
    """
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            candidates: Any = (item,)
        elif isinstance(item, dict):
            candidates = item.keys()
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
            continue
        else:
            continue
        for text in candidates:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return text.encode("ascii", "backslashreplace").decode("ascii")[:50]
    return None


def _counted_keys(document: Any) -> int:
    """Keys of a parsed body's objects: the top level, ``samples`` and each sample.

    -1 when the body is not an object (objects nested deeper are not counted).
    """
    if not isinstance(document, dict):
        return -1
    count = len(document)
    samples = document.get("samples")
    if isinstance(samples, dict):
        count += len(samples) + sum(len(s) for s in samples.values() if isinstance(s, dict))
    return count


@dataclass(frozen=True, eq=False)
class _Text:
    """The text of a long body (over :data:`_SCAN_MIN_BYTES`) that orjson parsed, every
    colon of it following a key of the top level, of ``samples`` or of a sample (see
    :func:`load_json`).

    ``array`` is the text as uint8 (numpy counts faster than :meth:`bytes.count`);
    ``n_keys`` the number of keys (colons).
    """

    array: np.ndarray
    n_keys: int

    def count(self, byte: int) -> int:
        """Occurrences of the character ``byte`` in the text."""
        return _count_in(self.array, byte)

    def booleans(self) -> int:
        """Occurrences of the words ``true`` and ``false`` in the text."""
        array = self.array
        ends = np.flatnonzero(array == _E)  # both words end in "e": one pass
        found = 0
        for word in (b"true", b"false"):
            at = ends[ends >= len(word) - 1]
            for back, byte in enumerate(reversed(word[:-1]), start=1):
                if not at.size:
                    break
                at = at[array[at - back] == byte]
            found += at.size
        return found


def _scalars(document: Any, kind: type) -> int:
    """The values of type ``kind`` in ``document``, its lists and its objects (walked
    without recursion)."""
    count, pending = 0, [document]
    while pending:
        item = pending.pop()
        if type(item) is kind:
            count += 1
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.values())
    return count


class _PlainValues:
    """What the text of a body proves about the values of its samples.

    A JSON string is the only place a ``"`` character occurs, and every string holds at
    least two: when the text has exactly two per key plus two per string of the options
    (every field but ``samples``), no sample value is a string. Likewise ``true`` and
    ``false`` are spelt out for every boolean: when the text holds no more of those words
    than the options have booleans, no sample value is a boolean. (Keys are strings: a
    quote or such a word inside one only adds, so the proof fails safe and the values' types
    are then looked at one by one, as they are in bodies of up to :data:`_SCAN_MIN_BYTES`,
    where that costs less than counting.)
    """

    def __init__(self, text: _Text, options: dict[str, Any]) -> None:
        self._text = text
        self._options = options

    def no_strings(self) -> bool:
        """No sample value is a string."""
        strings = self._text.n_keys + _scalars(self._options, str)
        return self._text.count(_QUOTE) == 2 * strings

    def no_booleans(self) -> bool:
        """No sample value is ``true`` or ``false``."""
        return self._text.booleans() == _scalars(self._options, bool)


def load_json(raw: bytes) -> Any:
    """Parse a request body; duplicated keys come back as :class:`_DuplicateKeys`.

    orjson parses first (a third of the time of :mod:`json`), but it keeps the last of
    duplicated keys without a word. Its result is used only when it provably had none: every
    key of every object is followed by a colon outside strings, so when the keys counted in
    the result equal the number of colons in the whole text, no key was dropped (and no
    colon hides in a string or a deeper object). Anything else (duplicates, colons in
    names, NaN, invalid text...) is parsed again by :func:`_load_json_strictly`, which
    finds the duplicates and gives the exact error.
    """
    return _load(raw)[0]


def _load(raw: bytes) -> tuple[Any, _Text | None]:
    """:func:`load_json`, with the body's :class:`_Text` when orjson's result of a long body
    is used."""
    if not raw.strip():
        raise ServiceError(400, "invalid_json", "the request body is empty (expected JSON)")
    text = np.frombuffer(raw, dtype=np.uint8) if len(raw) > _SCAN_MIN_BYTES else None
    if text is not None and _OBJECT_BYTES * _count_in(text, _OPEN_BRACE) > len(raw):
        # many tiny objects: orjson's working memory (about 12x the text on top of the
        # objects) would outgrow the objects themselves; the standard library builds them
        # directly (about a third of the peak, at a few times the time)
        return _load_json_strictly(raw), None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _load_json_strictly(raw), None
    colons = count_byte(raw, b":")
    if _counted_keys(document) == colons:
        return document, None if text is None else _Text(text, colons)
    return _load_json_strictly(raw), None


def _load_json_strictly(raw: bytes) -> Any:
    """The standard library's parser, marking duplicated keys, with precise errors."""
    try:
        document = json.loads(
            raw,
            object_pairs_hook=_object_pairs,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
        )
    except _NonFiniteConstant as exc:
        raise ServiceError(
            422,
            "non_finite_value",
            f"{exc} is not a valid expression value (JSON has no NaN/Infinity; "
            "use null for a missing value)",
        ) from None
    except json.JSONDecodeError as exc:
        raise ServiceError(
            400,
            "invalid_json",
            f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            {"line": exc.lineno, "column": exc.colno, "position": exc.pos},
        ) from None
    except UnicodeDecodeError as exc:
        raise ServiceError(400, "invalid_json", f"the body is not UTF-8 text: {exc}") from None
    except RecursionError:
        raise ServiceError(400, "invalid_json", "the JSON body is nested too deeply") from None
    if b"\\u" in raw:
        surrogate = _lone_surrogate(document)
        if surrogate is not None:
            raise ServiceError(
                400,
                "invalid_json",
                f"the body holds a lone UTF-16 surrogate (not text): {surrogate!r}",
            )
    return document


def _validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [str(p) for p in e["loc"]], "type": e["type"], "msg": e["msg"]}
        for e in exc.errors()
    ]


OptionsT = TypeVar("OptionsT", bound=PredictOptions)


@dataclass(frozen=True, eq=False)
class SparseRows:
    """A reduced sparse body (see :func:`_reduced_matrix`) without its dense array.

    Attributes
    ----------
    values, rows, columns : ndarray, shape (n_cells,)
        Each kept cell: its value, its sample (ascending) and its column.
    other : ndarray of float64, shape (n_samples,)
        The :data:`OTHER_GENES` column (one left-out value per sample, NaN for none).
    total : ndarray of float64, shape (n_samples,), optional
        The ``(total)`` column (counts scale: the sum of the other left-out values).
    n_columns : int
        Kept genes plus the one or two :data:`OTHER_GENES` columns.
    """

    values: np.ndarray
    rows: np.ndarray
    columns: np.ndarray
    other: np.ndarray
    total: np.ndarray | None
    n_columns: int

    def dense(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start:stop`` as the dense array, shape (stop - start, n_columns)."""
        out = np.full((stop - start, self.n_columns), np.nan)
        lo, hi = np.searchsorted(self.rows, [start, stop]).tolist()
        out[self.rows[lo:hi] - start, self.columns[lo:hi]] = self.values[lo:hi]
        extra = self.n_columns - (2 if self.total is not None else 1)
        out[:, extra] = self.other[start:stop]
        if self.total is not None:
            out[:, -1] = self.total[start:stop]
        return out

    def cells(self) -> np.ndarray:
        """Every value the dense array would hold (NaN left out), in no particular order."""
        parts = [self.values, self.other[~np.isnan(self.other)]]
        if self.total is not None:
            parts.append(self.total)
        return np.concatenate(parts)


@dataclass(frozen=True, eq=False)
class SampleMatrix:
    """The samples of a request body as one array (no DataFrame: the model takes arrays).

    Attributes
    ----------
    stored : ndarray of float64, shape (n_samples, n_genes), or SparseRows
        The values (NaN = not measured); a reduced sparse body keeps only its cells, see
        :attr:`values` and :meth:`rows`.
    sample_ids : list of str, length n_samples
        In request order.
    genes : list or tuple of str, length n_genes
        Gene identifiers as sent (a sparse body: those kept, see :func:`samples_matrix`); a
        tuple shared by the bodies that sent the same genes (:mod:`service.plain_bodies`).
    report : HarmonizationReport, optional
        For a sparse body reduced to the model's genes, the identifier report of every gene
        it sent (the report of ``genes`` would miss those left out); ``None`` otherwise.
    """

    stored: np.ndarray | SparseRows
    sample_ids: list[str]
    genes: list[str] | tuple[str, ...]
    report: HarmonizationReport | None = None

    @property
    def values(self) -> np.ndarray:
        """float64 values, shape (n_samples, n_genes); NaN = not measured (a sparse body's
        dense array is built on first use and kept)."""
        if isinstance(self.stored, np.ndarray):
            return self.stored
        return self._dense

    @cached_property
    def _dense(self) -> np.ndarray:
        stored = self.stored
        return stored if isinstance(stored, np.ndarray) else stored.dense(0, len(self.sample_ids))

    def rows(self, start: int, stop: int) -> np.ndarray:
        """The values of samples ``start:stop`` (a sparse body's without its whole array)."""
        if isinstance(self.stored, np.ndarray):
            return self.stored[start:stop]
        return self.stored.dense(start, stop)

    def cells(self) -> np.ndarray:
        """Every value of :attr:`values`, flat (what the scale is detected from)."""
        if isinstance(self.stored, np.ndarray):
            return self.stored.reshape(-1)
        return self.stored.cells()

    def to_frame(self) -> pd.DataFrame:
        """The same as a DataFrame (index ``sample_id``)."""
        index = pd.Index(self.sample_ids, name="sample_id")
        return pd.DataFrame(self.values, index=index, columns=self.genes)


def parse_samples_body(
    raw: bytes,
    max_samples: int,
    options_type: type[OptionsT],
    model_genes: Collection[str] | None = None,
    model_scale: ScaleChoice = "auto",
) -> tuple[SampleMatrix, OptionsT]:
    """Parse a /v1/predict or /v1/explain body into a samples x genes array and options.

    Parameters
    ----------
    raw : bytes
        The request body (already limited in size).
    max_samples : int
        Most samples accepted.
    options_type : type
        :class:`PredictOptions` or :class:`ExplainOptions`.
    model_genes : collection of str, optional
        HGNC symbols the model reads; a sparse body keeps only these (see
        :func:`samples_matrix`). ``None``: always the whole union of genes.
    model_scale : {"auto", "counts", "tpm", "log"}
        The model's scale setting, used when the body names none.

    Returns
    -------
    samples : SampleMatrix
        float64 values (n_samples, n_genes) in request order, genes as sent.
    options : PredictOptions or ExplainOptions

    Raises
    ------
    ServiceError
        400/413/422 with the codes listed in :mod:`service.errors`.
    """
    plain_body = scan_plain_body(raw, max_samples)
    if plain_body is not None:
        matrix = SampleMatrix(plain_body.values, plain_body.sample_ids, plain_body.genes)
        return matrix, _checked_options(options_type, plain_body.options)
    document, text = _load(raw)
    if not isinstance(document, dict):
        raise ServiceError(
            422, "validation_error", "the body must be a JSON object with a 'samples' field"
        )
    if isinstance(document, _DuplicateKeys):
        raise ServiceError(
            422,
            "duplicate_key",
            f"duplicated keys in the body: {', '.join(document.duplicates)}",
            {"keys": document.duplicates},
        )
    if "samples" not in document:
        raise ServiceError(
            422,
            "validation_error",
            "field 'samples' is required",
            [{"loc": ["samples"], "type": "missing", "msg": "Field required"}],
        )
    samples = document.pop("samples")
    options = _checked_options(options_type, document)
    scale = options.scale or model_scale
    plain = None if text is None else _PlainValues(text, document)
    return samples_matrix(samples, max_samples, model_genes, scale, plain), options


_OPTIONS_CACHE_SIZE = 64
_validated: dict[tuple[Any, ...], PredictOptions] = {}
"""Options already validated, by their type and fields (clients repeat the same options)."""


def _checked_options(options_type: type[OptionsT], document: dict[str, Any]) -> OptionsT:
    """The option fields ``document`` validated, or the 422 naming the first error."""
    try:
        return _validated_options(options_type, document)
    except ValidationError as exc:
        details = _validation_details(exc)
        first = details[0]
        raise ServiceError(
            422, "validation_error", f"{'.'.join(first['loc'])}: {first['msg']}", details
        ) from None


def _options_key(options_type: type, document: dict[str, Any]) -> tuple[Any, ...] | None:
    """What tells two option fields apart exactly: each name, value type and value (floats
    by ``repr``: ``-0.0`` is not ``0.0``, NaN is NaN); ``None`` for values that are not
    plain scalars (validation refuses them anyway)."""
    key: list[Any] = [options_type]
    for name, value in document.items():
        kind = type(value)
        if kind is float:
            key.append((name, kind, repr(value)))
        elif kind in (str, int, bool) or value is None:
            key.append((name, kind, value))
        else:
            return None
    return tuple(key)


def _validated_options(options_type: type[OptionsT], document: dict[str, Any]) -> OptionsT:
    """``options_type.model_validate(document)``, remembered for the last
    :data:`_OPTIONS_CACHE_SIZE` distinct fields (shared: read, never changed)."""
    key = _options_key(options_type, document)
    if key is None:
        return options_type.model_validate(document)
    found = _validated.get(key)
    if found is None:
        found = options_type.model_validate(document)
        if len(_validated) >= _OPTIONS_CACHE_SIZE:
            _validated.clear()
        _validated[key] = found
    return found  # type: ignore[return-value]


def _check_sample(sample_id: str, genes: Any) -> None:
    if not isinstance(genes, dict):
        raise ServiceError(
            422,
            "validation_error",
            f"sample {sample_id!r} must be an object mapping gene -> value",
            [{"loc": ["samples", sample_id], "type": "dict_type", "msg": "expected an object"}],
        )
    if isinstance(genes, _DuplicateKeys):
        raise ServiceError(
            422,
            "duplicate_gene",
            duplicate_genes_message(genes.duplicates, f"sample {sample_id!r}: "),
            {"sample_id": sample_id, "genes": genes.duplicates},
        )
    if not genes:
        raise ServiceError(
            422, "empty_samples", f"sample {sample_id!r} has no genes", {"sample_id": sample_id}
        )


def _first_bad_value(samples: dict[str, dict[str, Any]]) -> tuple[str, str, Any]:
    for sample_id, genes in samples.items():
        for gene, value in genes.items():
            if type(value) not in _ALLOWED_VALUE_TYPES:
                return sample_id, gene, value
    return "", "", None  # pragma: no cover - only called when a bad value exists


def _cells(rows: list[dict[str, Any]]) -> Iterable[Any]:
    """Every value of the samples ``rows``, sample after sample."""
    return rows[0].values() if len(rows) == 1 else chain.from_iterable(r.values() for r in rows)


def _layout_values(rows: list[dict[str, Any]], n_genes: int) -> np.ndarray:
    """The values of samples that list the same ``n_genes`` genes in the same order, and whose
    values are numbers or null (checked by the caller), as one array (n_samples, n_genes),
    NaN for null; straight from the dicts (:func:`_packed`), without a list per sample, unless
    some value is null.

    Raises
    ------
    OverflowError
        An integer beyond the float range.
    """
    packed = _packed(_cells(rows), len(rows) * n_genes)
    if packed is None:  # nulls, or an integer beyond the float range
        return _rows_with_nulls(rows)
    return packed.reshape(len(rows), n_genes)


def _rows_with_nulls(rows: list[dict[str, Any]]) -> np.ndarray:
    """:func:`_layout_values` of samples holding ``null`` values (NaN), a list per sample."""
    return np.array([list(r.values()) for r in rows], dtype=np.float64)


def _check_types(samples: dict[str, dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    """Every value a number or ``null``, else a 422 naming the first other one."""
    types = set(map(type, _cells(rows)))
    if not types <= _ALLOWED_VALUE_TYPES:
        sample_id, gene, value = _first_bad_value(samples)
        raise ServiceError(
            422,
            "non_numeric_value",
            f"sample {sample_id!r}, gene {gene!r}: {json.dumps(value)[:50]} is not a number",
            {"sample_id": sample_id, "gene": gene},
        )


def _plain_values(
    rows: list[dict[str, Any]], n_genes: int, plain: _PlainValues
) -> np.ndarray | None:
    """Samples that list the same genes as one array (n_samples, n_genes), NaN for null,
    when the conversion and ``plain`` prove every value a number or ``null``; ``None``
    when they do not (the values are then checked one by one).

    Cells that all pack as floats (:func:`_packed`) hold no string, so the text's quotes are
    counted only for a body with some other value (nulls, most often)."""
    packed = _packed(_cells(rows), len(rows) * n_genes)
    if packed is not None:
        values = packed.reshape(len(rows), n_genes)
    elif not plain.no_strings():
        return None
    else:
        try:  # numbers, booleans and nulls convert; so would numeric strings (none here)
            values = _rows_with_nulls(rows)
        except (TypeError, ValueError, OverflowError):  # an object, a list, a huge integer
            return None
    if ((values == 0) | (values == 1)).any() and not plain.no_booleans():
        return None  # some 0 or 1 might be a boolean
    return values


def samples_matrix(
    samples: Any,
    max_samples: int,
    model_genes: Collection[str] | None = None,
    scale: ScaleChoice = "auto",
    plain: _PlainValues | None = None,
) -> SampleMatrix:
    """Turn ``{sample: {gene: value}}`` into a float64 array (samples x genes) and labels.

    When every sample lists the same genes in the same order (the usual case) the values go
    into one array directly; otherwise the columns are the union of the genes in order of
    first appearance and unlisted genes are NaN. When that union array would be much larger
    than the body (more than ``max(DENSE_MIN_CELLS, DENSE_FACTOR x cells sent)`` cells, e.g.
    every sample naming other genes) and ``model_genes`` is given, only the genes that map
    to a model gene are kept (:func:`_reduced_matrix`), with the same predictions.
    ``plain``: what the body's text proves about the values (from :func:`parse_samples_body`).
    """
    if not isinstance(samples, dict):
        raise ServiceError(
            422,
            "validation_error",
            "'samples' must be an object mapping sample ID -> {gene: value}",
            [{"loc": ["samples"], "type": "dict_type", "msg": "expected an object"}],
        )
    if isinstance(samples, _DuplicateKeys):
        raise ServiceError(
            422,
            "duplicate_sample_id",
            f"duplicated sample IDs: {', '.join(samples.duplicates[:10])}",
            {"sample_ids": samples.duplicates},
        )
    n_samples = len(samples)
    if n_samples == 0:
        raise ServiceError(422, "empty_samples", "'samples' is empty: send at least one sample")
    if n_samples > max_samples:
        raise ServiceError(
            413,
            "too_many_samples",
            f"{n_samples} samples in one request; the limit is {max_samples} (split the batch "
            "or use /v1/predict/file)",
            {"n_samples": n_samples, "max_samples": max_samples},
        )
    for sample_id, genes in samples.items():
        _check_sample(sample_id, genes)
    rows = list(samples.values())
    genes = list(rows[0])
    same_layout = all(list(r) == genes for r in rows[1:])
    proven = None
    if same_layout and plain is not None:
        proven = _plain_values(rows, len(genes), plain)
    if proven is None:
        _check_types(samples, rows)
    report = None
    sparse: SparseRows | None = None
    try:
        if proven is not None:
            values = proven
        elif same_layout:
            values = _layout_values(rows, len(genes))
        else:
            cells = np.array(list(chain.from_iterable(r.values() for r in rows)), dtype=np.float64)
            names = np.fromiter(chain.from_iterable(rows), dtype=object, count=cells.size)
            # each cell's column in the union of the genes, in order of first appearance
            codes, union = pd.factorize(names)
            del names
            genes = union.tolist()
            lengths = np.fromiter(map(len, rows), dtype=np.intp, count=n_samples)
            row_of = np.repeat(np.arange(n_samples), lengths)
            dense_cells = max(DENSE_MIN_CELLS, DENSE_FACTOR * cells.size)
            if model_genes is not None and n_samples * len(genes) > dense_cells:
                sparse, genes, report = _reduced_matrix(
                    cells, codes, row_of, n_samples, genes, model_genes, scale
                )
            else:
                values = np.full((n_samples, len(genes)), np.nan)
                values[row_of, codes] = cells
    except OverflowError:
        raise ServiceError(
            422, "non_finite_value", "an expression value is too large for a float"
        ) from None
    if sparse is not None:
        if not np.isinf(sparse.cells()).any():
            return SampleMatrix(sparse, list(samples), genes, report)
        values = sparse.dense(0, n_samples)  # to name the first infinite cell
    infinite = np.isinf(values)
    if infinite.any():
        i, j = (int(k[0]) for k in np.nonzero(infinite))
        sample_id = list(samples)[i]
        raise ServiceError(
            422,
            "non_finite_value",
            f"sample {sample_id!r}, gene {genes[j]!r}: value out of the float range",
            {"sample_id": sample_id, "gene": genes[j]},
        )
    return SampleMatrix(values, list(samples), genes, report)


def _free_label(base: str, taken: set[str]) -> str:
    label = base
    while label in taken:
        label += "_"
    return label


def _counts_scale(values: np.ndarray) -> bool:
    """Whether :func:`~nkpredict.data.expression.detect_scale` takes cells ``values`` (n,)
    for counts: the same evidence (maximum, minimum, integer-ness) as the reduced columns,
    which keep the cells holding them. When detection refuses the values, ``False``: the
    preparation of the reduced matrix refuses them again, naming the sample and gene."""
    try:
        return detect_scale(pd.DataFrame(values[None, :])) == "counts"
    except ScaleError:
        return False


def _reduced_matrix(
    values: np.ndarray,
    codes: np.ndarray,
    row_of: np.ndarray,
    n_samples: int,
    union: list[str],
    model_genes: Collection[str],
    scale: ScaleChoice,
) -> tuple[SparseRows, list[str], HarmonizationReport]:
    """A sparse body as samples x (the genes that matter), with the same preparation result.

    ``values``, ``codes`` and ``row_of`` (n_cells,) are each cell sent: its value, its
    column in ``union`` (every gene named, in order of first appearance) and its sample.
    Kept columns: every gene identifier that maps to a model gene, plus the genes holding the
    largest, the smallest and the first non-integer value of the whole body (the scale is
    detected, and non-negative or integer values checked, on exactly the same evidence, and
    errors name a real gene). Two more columns (:data:`OTHER_GENES`) stand for the rest of
    each sample: one of its left-out values (so no sample that sent a value becomes empty)
    and, on the counts scale, the sum of the others (so library sizes are unchanged).
    Memory: a few arrays the size of the cells sent; the dense samples x kept genes array is
    built only when asked for (:meth:`SparseRows.dense`, a chunk of samples at a time).

    Returns
    -------
    values : SparseRows
        Its dense array has shape (n_samples, n_kept).
    genes : list of str, length n_kept
    report : HarmonizationReport
        The identifier report of the whole ``union`` (what the full array would have had).
    """
    mapping, report = map_identifiers(union)
    wanted = frozenset(model_genes)
    keep = np.fromiter((mapping.get(g) in wanted for g in union), dtype=bool, count=len(union))
    finite = ~np.isnan(values)
    if finite.any():
        keep[codes[np.nanargmax(values)]] = True
        keep[codes[np.nanargmin(values)]] = True
        fractional = finite & (values != np.round(values))
        if fractional.any():
            keep[codes[np.argmax(fractional)]] = True
    column = np.cumsum(keep) - 1
    kept_genes = [g for g, k in zip(union, keep, strict=True) if k]
    kept = keep[codes]
    dropped = ~kept & finite
    taken = {g for g in union if g.startswith(OTHER_GENES)}  # the labels a new one could hit
    extra = [_free_label(OTHER_GENES, taken)]
    counts = scale == "counts"
    kept_values = values[kept]
    kept_rows = row_of[kept]  # ascending: the cells are in sample order
    kept_columns = column[codes[kept]]
    finite_kept = ~np.isnan(kept_values)  # null cells stay NaN in the dense array
    other = np.full(n_samples, np.nan)
    rest_rows = row_of[dropped]  # ascending
    first = np.flatnonzero(np.diff(rest_rows, prepend=-1))  # each sample's first left-out cell
    rest_values = values[dropped]
    other[rest_rows[first]] = rest_values[first]
    del first
    if scale == "auto":
        counts = _counts_scale(values)
    total = None
    if counts:
        totals = np.bincount(rest_rows, weights=rest_values, minlength=n_samples)
        total = totals - np.nan_to_num(other)
        extra.append(_free_label(OTHER_GENES + " (total)", taken))
    sparse = SparseRows(
        kept_values[finite_kept],
        kept_rows[finite_kept],
        kept_columns[finite_kept],
        other,
        total,
        len(kept_genes) + len(extra),
    )
    return sparse, kept_genes + extra, report
