"""Gene identifier harmonization to current HGNC symbols, with a report of what happened.

Accepted identifiers (surrounding whitespace is stripped, case does not matter):

- current HGNC symbols (``NCR3LG1``; ``ncr3lg1`` is accepted and reported as renamed);
- Ensembl gene IDs with or without version (``ENSG00000188211``, ``ENSG00000188211.5``;
  GENCODE's ``_PAR_Y`` copies map to the same symbol as their X-chromosome gene);
- Entrez gene IDs (``374383``);
- DepMap-style ``SYMBOL (ENTREZ)`` names (``NCR3LG1 (374383)``): the Entrez ID is used first,
  the symbol part (resolved like any symbol) when the ID is unknown;
- NK catalogue aliases (``B7-H6`` -> ``NCR3LG1``, ``PVRL2`` -> ``NECTIN2``);
- HGNC previous symbols, then HGNC alias symbols (``C10orf54`` -> ``VSIR``), when they point
  to exactly one current symbol; otherwise the identifier is *ambiguous* and dropped.

The first rule that matches wins, in the order exact current symbol > Ensembl > Entrez >
DepMap > catalogue alias > previous symbol > alias. Genome annotation:
:mod:`nkpredict.data.annotation`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
import orjson
import pandas as pd
from scipy import sparse

from nkpredict.catalog import Catalog, load_catalog
from nkpredict.data.annotation import GeneAnnotation, load_annotation
from nkpredict.exceptions import ExpressionFormatError, GeneMappingError

__all__ = [
    "ColumnPlan",
    "HarmonizationReport",
    "check_unique_genes",
    "column_plan",
    "duplicate_genes_message",
    "gene_like_fraction",
    "harmonize_matrix",
    "harmonize_values",
    "map_identifiers",
]

logger = logging.getLogger(__name__)

_ENSEMBL = re.compile(r"^(ENSG\d{11})(?:\.\d+)?(?:_PAR_Y)?$")
_ENTREZ = re.compile(r"^\d+$")
_DEPMAP = re.compile(r"^(.+?)\s*\((\d+)\)$")
_PREVIEW = 5


@dataclass
class HarmonizationReport:
    """What happened to each input gene identifier.

    Attributes
    ----------
    n_input : int
        Number of input identifiers (duplicates counted).
    mapped : dict[str, str]
        Every input identifier that ended up in the output -> its HGNC symbol.
    renamed : dict[str, str]
        The part of ``mapped`` whose identifier differs from its symbol (alias, previous symbol,
        Ensembl, Entrez, DepMap name, other case or surrounding whitespace).
    ambiguous : dict[str, list[str]]
        Dropped identifiers that name several current symbols -> the sorted candidates.
    unmapped : list[str]
        Dropped identifiers that match nothing, in input order.
    collided : dict[str, list[str]]
        Symbol -> the two or more input identifiers merged into it, in input order.
    """

    n_input: int
    mapped: dict[str, str] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    collided: dict[str, list[str]] = field(default_factory=dict)

    @property
    def symbols(self) -> list[str]:
        """The output symbols, unique, in order of first occurrence."""
        return list(dict.fromkeys(self.mapped.values()))

    def missing(self, required: Iterable[str]) -> list[str]:
        """Symbols of ``required`` that no input identifier mapped to, in ``required`` order."""
        present = set(self.mapped.values())
        return [symbol for symbol in dict.fromkeys(required) if symbol not in present]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy (plain dicts, lists, strings and ints)."""
        return asdict(self)

    def copy(self) -> HarmonizationReport:
        """A copy whose dicts and lists can be changed without touching this report."""
        return HarmonizationReport(
            n_input=self.n_input,
            mapped=self.mapped.copy(),
            renamed=self.renamed.copy(),
            ambiguous={i: list(c) for i, c in self.ambiguous.items()},
            unmapped=list(self.unmapped),
            collided={s: list(group) for s, group in self.collided.items()},
        )

    def summary(self) -> str:
        """One short human-readable line."""
        return (
            f"{self.n_input} input ids: {len(self.mapped)} mapped ({len(self.renamed)} renamed), "
            f"{len(self.ambiguous)} ambiguous, {len(self.unmapped)} unmapped, "
            f"{len(self.collided)} collisions"
        )


@dataclass(frozen=True)
class _Resolution:
    symbol: str | None
    candidates: tuple[str, ...] = ()


class _Resolver:
    """Resolves one identifier with the annotation and the catalogue aliases."""

    def __init__(self, annotation: GeneAnnotation, catalog: Catalog) -> None:
        self._annotation = annotation
        self._symbols = dict(annotation.symbols)
        self._symbols.update({s.upper(): s for s in catalog.symbols})
        self._catalog_aliases = catalog.alias_map()

    def resolve(self, identifier: str) -> _Resolution:
        """Ensembl, Entrez and DepMap patterns first (no current symbol has their shape),
        then names: current symbol > catalogue alias > previous symbol > alias."""
        key = identifier.strip().upper()
        match = _ENSEMBL.match(key)
        if match:
            return _Resolution(self._annotation.ensembl.get(match.group(1)))
        if _ENTREZ.match(key):
            return _Resolution(self._annotation.entrez.get(key))
        match = _DEPMAP.match(key)
        if match and match.group(2) in self._annotation.entrez:
            return _Resolution(self._annotation.entrez[match.group(2)])
        return self._resolve_name(match.group(1) if match else key)

    def _resolve_name(self, key: str) -> _Resolution:
        """Resolve an upper-cased name: symbol, catalogue alias, previous symbol, alias."""
        if key in self._symbols:
            return _Resolution(self._symbols[key])
        if key in self._catalog_aliases:
            return _Resolution(self._catalog_aliases[key])
        for table in (self._annotation.previous, self._annotation.aliases):
            candidates = table.get(key)
            if candidates:
                if len(candidates) == 1:
                    return _Resolution(next(iter(candidates)))
                return _Resolution(None, tuple(sorted(candidates)))
        return _Resolution(None)

    def looks_like_gene(self, identifier: str) -> bool:
        """True for a current symbol, an Ensembl gene ID, a known Entrez ID or a DepMap name."""
        key = identifier.strip().upper()
        return bool(
            key in self._symbols
            or _ENSEMBL.match(key)
            or key in self._annotation.entrez
            or _DEPMAP.match(key)
        )


@lru_cache(maxsize=8)
def _resolver(catalog: Catalog | None) -> _Resolver:
    return _Resolver(load_annotation(), catalog if catalog is not None else load_catalog())


def duplicate_genes_message(genes: Sequence[str], where: str = "") -> str:
    """The refusal of a header or sample that names the same gene identifier twice.

    The one rule for every input (CSV, TSV, Parquet, uploads, JSON bodies): an identifier that
    appears twice is refused with the gene named, since nothing says whether the copies are
    replicates, probes or a paste error. *Different* identifiers of one gene (an alias next to
    its symbol, two Ensembl versions) are merged by :func:`harmonize_matrix`'s documented rule
    (summed on the linear scale) and reported as collisions.
    """
    listed = _preview(list(genes))
    return (
        f"{where}gene {listed} appears more than once; each gene must be one column (sum or "
        "drop the copies; different identifiers of one gene are merged and reported)"
        if len(genes) == 1
        else f"{where}genes {listed} appear more than once; each gene must be one column (sum "
        "or drop the copies; different identifiers of one gene are merged and reported)"
    )


def check_unique_genes(labels: Sequence[object], where: str = "") -> None:
    """Refuse gene identifiers that appear more than once (see :func:`duplicate_genes_message`).

    Parameters
    ----------
    labels : sequence, length n_genes
        The gene identifiers of a header, as written (surrounding whitespace ignored).
    where : str
        Prefix of the message (``"<file>: "``).

    Raises
    ------
    ExpressionFormatError
        Naming the repeated identifiers.
    """
    seen: set[str] = set()
    repeated: dict[str, None] = {}
    for label in labels:
        key = str(label).strip()
        if key in seen:
            repeated[key] = None
        seen.add(key)
    if repeated:
        raise ExpressionFormatError(duplicate_genes_message(list(repeated), where))


def gene_like_fraction(labels: Iterable[object], catalog: Catalog | None = None) -> float:
    """Fraction of ``labels`` that look like gene identifiers (used to detect orientation).

    Counted as gene-like: current symbols, Ensembl gene IDs, known Entrez IDs and DepMap-style
    names. Aliases are not counted: too many short words (cell-line or patient codes) are
    someone's alias.

    Parameters
    ----------
    labels : iterable of object, length n
        Row or column labels; non-strings are converted with ``str``.

    Returns
    -------
    float
        In [0, 1]; 0 for no labels.
    """
    resolver = _resolver(catalog)
    flags = [resolver.looks_like_gene(str(label)) for label in labels]
    return float(np.mean(flags)) if flags else 0.0


PLAN_CACHE_SIZE = 128
"""Distinct identifier lists of up to :data:`PLAN_CACHE_MAX_IDS` identifiers whose mapping is
remembered (:func:`map_identifiers`)."""
PLAN_CACHE_MAX_IDS = 5_000
"""Longer identifier lists (whole profiles: 19,000 DepMap genes, 60,000 RNA-seq identifiers)
are remembered in a cache of their own, of :data:`LONG_PLAN_CACHE_SIZE` lists."""
LONG_PLAN_CACHE_SIZE = 4
"""Distinct long identifier lists remembered (a plan of 60,000 identifiers holds about 20 MB:
the cache stays under 100 MB); up to :data:`LONG_PLAN_MAX_IDS` identifiers each."""
LONG_PLAN_MAX_IDS = 100_000
"""Identifier lists longer than this are mapped afresh each time."""


RECENT_PLANS = 4
"""Identifier lists of at least :data:`RECENT_PLAN_MIN_IDS` identifiers whose plans are also
found by the lists' JSON text (see :func:`_mapping_plan`)."""
RECENT_PLAN_MIN_IDS = 1_000
KEPT_PER_PLAN = 8
"""Distinct gene selections (``keep`` of :func:`column_plan`, one per served model) whose
columns are remembered with each identifier list's mapping."""


@dataclass(frozen=True, eq=False)
class ColumnPlan:
    """Which columns of an input become which output columns, for one identifier list.

    Computed once per identifier list (and gene selection) and shared: treat it, its arrays,
    its Index and its report as read-only.

    Attributes
    ----------
    positions : ndarray of intp, shape (n_read,), or None
        The input columns read, ascending; ``None``: every column, each its own output column.
    codes : ndarray of intp, shape (n_read,)
        The output column of each column read, in ``range(len(symbols))``.
    symbols : Index of str, length n_symbols
        The HGNC symbol of each output column, in order of first occurrence.
    merged : bool
        Whether some output column sums several columns read (see :func:`harmonize_matrix`).
    report : HarmonizationReport
        What happened to every identifier of the list (also those not read).
    """

    positions: np.ndarray | None
    codes: np.ndarray
    symbols: pd.Index
    merged: bool
    report: HarmonizationReport
    _labels: tuple[str, ...] = field(repr=False)

    def harmonize(self, read: np.ndarray) -> np.ndarray:
        """The output columns from the columns read.

        Parameters
        ----------
        read : ndarray, shape (n_samples, n_read)
            log2(x+1) values of the input columns at :attr:`positions` (all of them when
            ``None``), NaN for missing.

        Returns
        -------
        ndarray of float64, shape (n_samples, n_symbols)
            ``read`` itself when no column is merged.

        Raises
        ------
        GeneMappingError
            When no identifier of the list maps to a symbol.
        """
        if logger.isEnabledFor(logging.INFO):
            logger.info("gene harmonization: %s", self.report.summary())
        if not self.report.mapped:
            raise GeneMappingError(
                "no gene identifier could be mapped to an HGNC symbol: "
                f"{_preview(list(self._labels))}"
            )
        if not self.merged:
            return read
        merged = _merge_columns(read.T, self.codes, len(self.symbols))
        return np.ascontiguousarray(merged.T)


@dataclass(frozen=True, eq=False)
class _MappingPlan:
    """The outcome of mapping one identifier list, computed once and shared (read-only:
    :meth:`report` hands out copies).

    ``positions`` (n_kept,) are the input positions that map to a symbol; ``codes`` (n_kept,)
    the output column of each, in ``range(len(symbols))``; ``identity`` is True when the
    input columns are already the output columns (every column kept, none merged).
    """

    ids: tuple[str, ...]
    mapped: dict[str, str]
    renamed: dict[str, str]
    ambiguous: dict[str, tuple[str, ...]]
    unmapped: tuple[str, ...]
    collided: dict[str, tuple[str, ...]]
    positions: np.ndarray
    codes: np.ndarray
    symbols: pd.Index
    identity: bool
    _kept: dict[object, ColumnPlan] = field(default_factory=dict, repr=False)
    _recent: list[tuple[object, ColumnPlan] | None] = field(
        default_factory=lambda: [None], repr=False
    )

    def report(self) -> HarmonizationReport:
        """A fresh report (the caller may change it without touching the cached plan)."""
        return self.all_columns.report.copy()

    @cached_property
    def all_columns(self) -> ColumnPlan:
        """Every mapped column, to every symbol (the plan of :func:`harmonize_values`)."""
        report = HarmonizationReport(
            n_input=len(self.ids),
            mapped=self.mapped,
            renamed=self.renamed,
            ambiguous={i: list(c) for i, c in self.ambiguous.items()},
            unmapped=list(self.unmapped),
            collided={s: list(group) for s, group in self.collided.items()},
        )
        return ColumnPlan(
            positions=None if self.identity else self.positions,
            codes=self.codes,
            symbols=self.symbols,
            merged=len(self.symbols) < self.positions.size,
            report=report,
            _labels=self.ids,
        )

    def columns(self, keep: Collection[str] | None) -> ColumnPlan:
        """The columns of the symbols in ``keep`` (all of them for ``None``, or when none of
        ``keep`` is mapped); remembered per ``keep``."""
        if keep is None:
            return self.all_columns
        recent = self._recent[0]  # one read: another thread may replace it
        if recent is not None and recent[0] is keep:  # the same model as the last call
            return recent[1]
        key = keep if isinstance(keep, tuple | frozenset) else tuple(keep)
        found = self._kept.get(key)
        if found is None:
            found = self._kept_columns(frozenset(keep))
            if len(self._kept) >= KEPT_PER_PLAN:
                self._kept.clear()
            self._kept[key] = found
        self._recent[0] = (keep, found)
        return found

    def _kept_columns(self, keep: frozenset[str]) -> ColumnPlan:
        every = self.all_columns
        wanted = np.fromiter((s in keep for s in self.symbols), dtype=bool, count=len(self.symbols))
        if wanted.all() or not wanted.any():
            return every
        read = wanted[self.codes]
        codes = (np.cumsum(wanted) - 1)[self.codes[read]]
        positions = self.positions[read]
        for array in (positions, codes):
            array.flags.writeable = False
        symbols = pd.Index(self.symbols[wanted].tolist(), dtype=object)
        return ColumnPlan(
            positions=positions,
            codes=codes,
            symbols=symbols,
            merged=len(symbols) < positions.size,
            report=every.report,
            _labels=self.ids,
        )


def _build_plan(ids: tuple[str, ...], catalog: Catalog | None) -> _MappingPlan:
    resolver = _resolver(catalog)
    mapped: dict[str, str] = {}
    ambiguous: dict[str, tuple[str, ...]] = {}
    unmapped: dict[str, None] = {}
    by_symbol: dict[str, list[str]] = {}
    for identifier in ids:
        resolution = resolver.resolve(identifier)
        if resolution.symbol is not None:
            mapped[identifier] = resolution.symbol
            by_symbol.setdefault(resolution.symbol, []).append(identifier)
        elif resolution.candidates:
            ambiguous[identifier] = resolution.candidates
        else:
            unmapped[identifier] = None
    positions = np.array([i for i, label in enumerate(ids) if label in mapped], dtype=np.intp)
    codes, uniques = pd.factorize(np.array([mapped[ids[i]] for i in positions], dtype=object))
    symbols = pd.Index([str(u) for u in uniques], dtype=object)
    identity = len(symbols) == len(ids) == positions.size
    codes = np.asarray(codes, dtype=np.intp)
    for array in (positions, codes):
        array.flags.writeable = False
    return _MappingPlan(
        ids=ids,
        mapped=mapped,
        renamed={i: s for i, s in mapped.items() if i != s},
        ambiguous=ambiguous,
        unmapped=tuple(unmapped),
        collided={s: tuple(g) for s, g in by_symbol.items() if len(g) > 1},
        positions=positions,
        codes=codes,
        symbols=symbols,
        identity=identity,
    )


@lru_cache(maxsize=PLAN_CACHE_SIZE)
def _cached_plan(ids: tuple[str, ...], catalog: Catalog | None) -> _MappingPlan:
    return _build_plan(ids, catalog)


@lru_cache(maxsize=LONG_PLAN_CACHE_SIZE)
def _cached_long_plan(ids: tuple[str, ...], catalog: Catalog | None) -> _MappingPlan:
    return _build_plan(ids, catalog)


_recent_plans: tuple[tuple[bytes, Catalog | None, _MappingPlan, Sequence[str]], ...] = ()
"""The plans of the last :data:`RECENT_PLANS` identifier lists of at least
:data:`RECENT_PLAN_MIN_IDS` identifiers, by the lists' JSON text (most recent first), with
the identifiers as passed (a tuple passed again, the same object, is found without its
text)."""


def _ids_text(ids: Sequence[str]) -> bytes | None:
    """The JSON text of ``ids``: equal texts are equal lists (strings quoted and escaped one
    way, numbers in their own spelling), one contiguous comparison instead of one per
    identifier. ``None`` when it could stand for other lists too (``null``: None and NaN alike)
    or the identifiers are not plain JSON values."""
    try:
        text = orjson.dumps(ids if type(ids) is list or type(ids) is tuple else list(ids))
    except (TypeError, orjson.JSONEncodeError):
        return None
    return None if _holds_null(text) else text


_N, _U, _L = ord("n"), ord("u"), ord("l")


def _holds_null(text: bytes) -> bool:
    """Whether ``null`` occurs in ``text`` (inside a string too: it then fails safe), by
    array scans (a few times faster than ``in`` over a long text)."""
    array = np.frombuffer(text, dtype=np.uint8)
    at = np.flatnonzero(array[:-3] == _N)
    for back, byte in ((1, _U), (2, _L), (3, _L)):
        if not at.size:
            break
        at = at[array[at + back] == byte]
    return bool(at.size)


def _mapping_plan(ids: Sequence[str], catalog: Catalog | None) -> _MappingPlan:
    """The plan for ``ids``; remembered per tuple of identifiers (requests repeat them).

    Long lists (a whole profile) are first looked up among the last few: the same tuple
    object (immutable, so the same identifiers; the service's body reader hands a repeated
    gene list back as one tuple), else by their JSON text (:func:`_ids_text`): building and
    comparing a tuple of 19,000 fresh strings costs more than writing and comparing their
    text."""
    global _recent_plans
    recent = _recent_plans  # one read: another thread may replace it
    if type(ids) is tuple:
        for _, seen_catalog, plan, seen_ids in recent:
            if seen_ids is ids and seen_catalog is catalog:
                return plan
    text = _ids_text(ids) if len(ids) >= RECENT_PLAN_MIN_IDS else None
    if text is not None:
        for seen, seen_catalog, plan, _ in recent:
            if seen_catalog is catalog and seen == text:
                return plan
    key = ids if type(ids) is tuple else tuple(ids)
    if len(key) <= PLAN_CACHE_MAX_IDS:
        found = _cached_plan(key, catalog)
    elif len(key) <= LONG_PLAN_MAX_IDS:
        found = _cached_long_plan(key, catalog)
    else:
        return _build_plan(key, catalog)
    if text is not None:
        _recent_plans = ((text, catalog, found, ids), *recent[: RECENT_PLANS - 1])
    return found


def column_plan(
    labels: Sequence[str], keep: Collection[str] | None = None, catalog: Catalog | None = None
) -> ColumnPlan:
    """How the columns ``labels`` become HGNC symbol columns (the plan of
    :func:`harmonize_values`), optionally only those of the symbols ``keep``.

    Remembered with the mapping of ``labels`` (see :func:`map_identifiers`) and per ``keep``,
    so an input whose identifiers were seen before reads only the columns it needs.

    Parameters
    ----------
    labels : sequence of str, length n_labels
        Gene identifiers of the columns.
    keep : collection of str, optional
        HGNC symbols wanted (e.g. the genes a model reads; a tuple or frozenset is remembered
        without conversion); the columns of other symbols are left out. When none of
        ``keep`` is mapped, every mapped column is kept (the output is never empty while some
        identifier maps).
    catalog : Catalog, optional
        Defaults to :func:`nkpredict.catalog.load_catalog`.

    Returns
    -------
    ColumnPlan
        Shared: its report describes every identifier of ``labels`` and must not be changed.
    """
    return _mapping_plan(labels, catalog).columns(keep)


def map_identifiers(
    ids: Sequence[str], catalog: Catalog | None = None
) -> tuple[dict[str, str], HarmonizationReport]:
    """Map gene identifiers to current HGNC symbols.

    The mapping of an identifier list is computed once and remembered (keyed by the tuple of
    identifiers, up to :data:`PLAN_CACHE_MAX_IDS` of them): a service answering requests
    with the same genes resolves them only on the first request. Every call returns new
    objects.

    Parameters
    ----------
    ids : sequence of str, length n
        Gene identifiers in any accepted form (see the module docstring); duplicates allowed.
    catalog : Catalog, optional
        Supplies the NK catalogue aliases; defaults to :func:`nkpredict.catalog.load_catalog`.

    Returns
    -------
    mapping : dict[str, str]
        Each mappable identifier -> its symbol (unmapped and ambiguous ones are absent).
    report : HarmonizationReport
        Renamed, ambiguous, unmapped and collided identifiers.
    """
    report = _mapping_plan(ids, catalog).report()
    return dict(report.mapped), report


def _preview(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_PREVIEW])
    return shown + (f" and {len(names) - _PREVIEW} more" if len(names) > _PREVIEW else "")


def _sum_linear(columns: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Merge log2(x+1) columns by group: log2(sum(max(2**x - 1, 0)) + 1), NaN-aware.

    Arrays are gene-major (one row per input column), matching pandas' block layout.

    Parameters
    ----------
    columns : ndarray, shape (n_columns, n_samples)
        log2(x+1) values, NaN for missing.
    codes : ndarray of int, shape (n_columns,)
        Output group of each column, in ``range(n_groups)``.

    Returns
    -------
    ndarray, shape (n_groups, n_samples)
        NaN where every column of a group is NaN in that sample.
    """
    present = ~np.isnan(columns)
    linear = np.where(present, np.maximum(np.exp2(columns) - 1.0, 0.0), 0.0)
    ones = np.ones(codes.size)
    groups = sparse.csr_matrix((ones, (codes, np.arange(codes.size))), shape=(n_groups, codes.size))
    totals = np.asarray(groups @ linear)
    counts = np.asarray(groups @ present.astype(float))
    return np.where(counts > 0, np.log2(totals + 1.0), np.nan)


def _merge_columns(columns: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Copy columns alone in their group; merge the others with :func:`_sum_linear`.

    Shapes (gene-major): ``columns`` (n_columns, n_samples), ``codes`` (n_columns,), result
    (n_groups, n_samples).
    """
    sizes = np.bincount(codes, minlength=n_groups)
    shared = np.flatnonzero(sizes > 1)
    if not shared.size:
        return columns
    alone = sizes[codes] == 1
    merged = np.empty((n_groups, columns.shape[1]))
    merged[codes[alone]] = columns[alone]
    local = np.full(n_groups, -1)
    local[shared] = np.arange(shared.size)
    merged[shared] = _sum_linear(columns[~alone], local[codes[~alone]], shared.size)
    return merged


def harmonize_matrix(
    matrix: pd.DataFrame, catalog: Catalog | None = None
) -> tuple[pd.DataFrame, HarmonizationReport]:
    """Rename the gene columns of an expression matrix to HGNC symbols, merging duplicates.

    Columns whose identifier cannot be mapped, or maps to several symbols, are dropped (and
    listed in the report). Columns that map to the same symbol (an alias next to its current
    symbol, two Ensembl versions, a duplicated column) are merged by summing on the *linear*
    scale: ``log2(sum_i(2**x_i - 1) + 1)``. Each column counts distinct reads/transcripts
    attributed to the gene under another name, so keeping one column (or averaging) would lose
    expression. NaN cells are skipped; a merged cell is NaN only when all its parts are NaN.
    Negative linear parts (log values below 0, e.g. background-corrected microarray) count as 0.

    Parameters
    ----------
    matrix : DataFrame, shape (n_samples, n_genes)
        Values on the log2(TPM+1) scale (see :func:`nkpredict.data.expression.to_log_tpm`); gene
        identifiers as columns, duplicates allowed.
    catalog : Catalog, optional
        Defaults to :func:`nkpredict.catalog.load_catalog`.

    Returns
    -------
    harmonized : DataFrame, shape (n_samples, n_symbols)
        float64, same index, one column per symbol in order of first occurrence.
    report : HarmonizationReport

    Raises
    ------
    GeneMappingError
        When no column maps to a symbol.
    """
    labels = [str(c) for c in matrix.columns]
    values = matrix.to_numpy(dtype=float)
    harmonized, symbols, report = harmonize_values(values, labels, catalog)
    if harmonized is values:  # never share memory with the caller's frame
        harmonized = values.copy()
    columns = symbols.rename(None)  # the frame's own Index, sharing the labels' hash table
    return pd.DataFrame(harmonized, index=matrix.index, columns=columns), report


def harmonize_values(
    values: np.ndarray, labels: Sequence[str], catalog: Catalog | None = None
) -> tuple[np.ndarray, pd.Index, HarmonizationReport]:
    """:func:`harmonize_matrix` on a plain array (the numpy path of request-sized inputs).

    Parameters
    ----------
    values : ndarray, shape (n_samples, n_labels)
        log2(x+1) values, NaN for missing.
    labels : sequence of str, length n_labels
        Gene identifiers of the columns.
    catalog : Catalog, optional
        Defaults to :func:`nkpredict.catalog.load_catalog`.

    Returns
    -------
    harmonized : ndarray, shape (n_samples, n_symbols)
        float64; ``values`` itself when every column maps to its own symbol.
    symbols : Index of str, length n_symbols
        One per output column, in order of first occurrence. Shared by every call with the
        same labels (it is remembered with their mapping): do not rename or change it; use
        ``symbols.rename(...)`` to get a separate one.
    report : HarmonizationReport

    Raises
    ------
    GeneMappingError
        When no column maps to a symbol.
    """
    mapping = _mapping_plan(labels, catalog)
    plan = mapping.all_columns
    values = np.asarray(values, dtype=np.float64)
    read = values if plan.positions is None else np.take(values, plan.positions, axis=1)
    return plan.harmonize(read), plan.symbols, mapping.report()
