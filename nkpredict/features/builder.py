"""The NK feature transformer: harmonized expression -> biology-shaped features.

Input is a samples x genes matrix of HGNC symbols on the log2(TPM+1) scale (see
:func:`nkpredict.data.expression.prepare_expression`). Output features, all computable for one
sample alone once the transformer is fitted:

``gene:<SYMBOL>``
    Expression of every catalogue ligand / effector gene.
``axis:<AXIS>``
    Signed mean standardized expression of the genes on one NK receptor axis or intracellular
    program (e.g. ``axis:NKp30``); see "Signed scores" below.
``load:activating``, ``load:inhibitory``, ``load:balance``
    Mean of the activating (resp. inhibitory) receptor-axis scores and their difference.
``pathway:<SET>``
    Signed mean standardized expression of the genes of a catalogue or user gene set.
``coverage:catalog``
    Fraction of the model's catalogue genes actually measured in the sample.
``genome:<SYMBOL>``
    Optional genome-wide genes, selected inside ``fit`` (:mod:`nkpredict.features.genome`: by
    their association with what the catalogue features leave unexplained, or with the label)
    (so cross-validation that refits the transformer per fold never leaks).

Signed scores: a set that mixes genes of opposite catalogue ``effect`` (the death receptors
and their decoys, IFN-gamma signalling and its negative regulators SOCS1/SOCS3/PTPN2) is not
averaged together: each gene gets ``+-1/n`` from :meth:`~nkpredict.catalog.Catalog.signed_weights`,
negative where it opposes the set's majority direction, so the score follows the activity of
what the set stands for. Sets whose genes share one direction are plain means, as before.

Standardization uses per-gene means and standard deviations learned in ``fit``, so a sample's
scores never depend on the other samples it is scored with.

Missing-gene policy: a gene absent from the input (or NaN for a sample) is filled with its
training median and lowers ``coverage:catalog``; a gene absent from the *training* data is
left out of the model (listed in ``absent_genes_``) and features with no genes left are
dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Tags

from nkpredict.catalog import Catalog, GeneSet, load_catalog
from nkpredict.estimator import check_fitted, describe_input
from nkpredict.exceptions import InputError
from nkpredict.fast.cache import PerObject
from nkpredict.features.genome import select_genome_genes
from nkpredict.positions import as_selector
from nkpredict.vocabulary import AGGREGATE_LEVELS, AggregateLevel, check_choice

__all__ = [
    "COVERAGE_FEATURE",
    "COVERAGE_UNIT",
    "GENOME_UNIT",
    "LIGAND_UNIT",
    "SCORE_PREFIXES",
    "FeatureSpec",
    "NKFeatureBuilder",
    "expected_sign",
    "is_score_feature",
]

logger = logging.getLogger(__name__)

COVERAGE_FEATURE = "coverage:catalog"
COVERAGE_UNIT = "COVERAGE"
GENOME_UNIT = "GENOME_WIDE"
LIGAND_UNIT = "NK_LIGANDS"
_GENE_PREFIX = "gene:"
SCORE_PREFIXES = ("axis:", "load:", "pathway:")
"""Name prefixes of the score features (kind ``"score"``: weighted means of gene features)."""
_POSITIVE_SD_FLOOR = 1e-3
_POSITION_CACHE_SIZE = 64
"""Distinct column layouts whose model-gene positions are remembered."""
_POSITION_CACHE_MAX_COLUMNS = 5_000
"""Wider inputs are reindexed directly (their look-up is not worth remembering)."""


@dataclass(frozen=True)
class FeatureSpec:
    """How one output feature is computed and to which units its attribution belongs.

    ``kind`` is ``"gene"`` (raw expression of ``genes[0]``), ``"score"`` (``sum(weights *
    z(genes))``) or ``"coverage"``. ``units`` maps each explanation level to ``{unit: share}``
    with shares summing to one, so feature attributions add up exactly at every level.
    """

    name: str
    kind: Literal["gene", "score", "coverage"]
    genes: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    units: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form."""
        return {
            "name": self.name,
            "kind": self.kind,
            "genes": list(self.genes),
            "weights": list(self.weights),
            "units": self.units,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=data["name"],
            kind=data["kind"],
            genes=tuple(data["genes"]),
            weights=tuple(float(w) for w in data["weights"]),
            units={level: dict(shares) for level, shares in data["units"].items()},
        )


def _equal_shares(units: Sequence[str]) -> dict[str, float]:
    unique = list(dict.fromkeys(units))
    return {unit: 1.0 / len(unique) for unit in unique}


def _mix(parts: Sequence[tuple[float, dict[str, float]]]) -> dict[str, float]:
    """Weighted mixture of share dictionaries, renormalised to sum to one."""
    total = sum(abs(w) for w, _ in parts)
    mixed: dict[str, float] = {}
    for weight, shares in parts:
        for unit, share in shares.items():
            mixed[unit] = mixed.get(unit, 0.0) + abs(weight) / total * share
    return mixed


class _Allocator:
    """Assigns genes to explanation units at axis and pathway level from the catalogue."""

    def __init__(self, catalog: Catalog, gene_sets: Sequence[GeneSet]) -> None:
        self._catalog = catalog
        self._axis_of = {g.symbol: g.axis for g in catalog.genes}
        self._sets_of: dict[str, list[str]] = {}
        for gene_set in gene_sets:
            if gene_set.category in ("mechanism", "user"):
                for gene in gene_set.genes:
                    self._sets_of.setdefault(gene, []).append(gene_set.name)

    def gene_axis(self, gene: str) -> dict[str, float]:
        return {self._axis_of.get(gene, "OTHER"): 1.0}

    def gene_pathway(self, gene: str) -> dict[str, float]:
        sets = self._sets_of.get(gene)
        if sets:
            return _equal_shares(sets)
        return {LIGAND_UNIT if gene in self._axis_of else "OTHER": 1.0}

    def score_units(
        self, genes: Sequence[str], weights: Sequence[float], axis: dict[str, float] | None
    ) -> dict[str, dict[str, float]]:
        gene_shares = _mix([(w, {g: 1.0}) for g, w in zip(genes, weights, strict=True)])
        axis_shares = axis or _mix(
            [(w, self.gene_axis(g)) for g, w in zip(genes, weights, strict=True)]
        )
        pathway_shares = _mix(
            [(w, self.gene_pathway(g)) for g, w in zip(genes, weights, strict=True)]
        )
        return {"gene": gene_shares, "axis": axis_shares, "pathway": pathway_shares}


@dataclass
class _PositionMemo:
    """Column positions of the model genes by input layout (see ``_column_positions``)."""

    by_names: dict[tuple[Any, ...], np.ndarray] = field(default_factory=dict)
    last: tuple[np.ndarray, np.ndarray] | None = None


def _measured_share(missing: np.ndarray) -> np.ndarray:
    """Share of False per row of a boolean matrix (n_samples, n_genes): exactly
    ``(~missing).mean(axis=1)``, at a fraction of the cost for request-sized inputs (the
    counts are integers, so any way of counting gives the same shares; ``count_nonzero``
    with an axis costs a one-sample request about 3 us, an integer row sum about 1 us)."""
    n_genes = missing.shape[1]
    return (n_genes - missing.sum(axis=1, dtype=np.intp)) / n_genes


def _check_frame(X: Any, method: str, allow_empty: bool = False) -> None:
    """Refuse what is not a samples x genes DataFrame (gene symbols as columns)."""
    if not isinstance(X, pd.DataFrame) or (X.shape[0] == 0 and not allow_empty):
        raise InputError(
            f"NKFeatureBuilder.{method} needs a non-empty samples x genes DataFrame with gene "
            f"symbols as columns; got {describe_input('X', X)}"
        )


def expected_sign(name: str) -> int:
    """The catalogue's expected direction of the feature called ``name`` on resistance.

    The ``effect`` (+1: higher expression, more resistant; -1: more sensitive) of the gene of a
    ``gene:<SYMBOL>`` feature when the embedded catalogue knows it and it is not contested; 0
    (no expectation) for every other feature: scores, genome-wide genes, the coverage, and
    genes of unclear or contested effect."""
    catalog = load_catalog()
    symbol = name[len(_GENE_PREFIX) :]
    if not name.startswith(_GENE_PREFIX) or symbol not in catalog.symbols:
        return 0
    gene = catalog.gene(symbol)
    return 0 if gene.contested else int(gene.effect)


def is_score_feature(name: str) -> bool:
    """Whether the feature called ``name`` is a score (an axis, load or pathway score: a
    weighted mean of gene features) rather than one gene or the coverage."""
    return name.startswith(SCORE_PREFIXES)


def _genome_spec(gene: str) -> FeatureSpec:
    """The ``genome:<SYMBOL>`` feature of one genome-wide gene (its attribution: the gene
    itself, and the genome-wide unit at axis and pathway level)."""
    return FeatureSpec(
        f"genome:{gene}",
        "gene",
        (gene,),
        (1.0,),
        {"gene": {gene: 1.0}, "axis": {GENOME_UNIT: 1.0}, "pathway": {GENOME_UNIT: 1.0}},
    )


class NKFeatureBuilder(TransformerMixin, BaseEstimator):
    """Turn a harmonized log2(TPM+1) matrix into NK-biology features.

    Parameters
    ----------
    gene_sets : sequence of GeneSet, optional
        User gene sets (e.g. from :func:`nkpredict.catalog.read_gmt`) scored like the
        catalogue's pathways.
    n_genome_genes : int, default 0
        Most extra genome-wide genes chosen in ``fit`` among the non-catalogue genes of the
        training matrix (:func:`~nkpredict.features.genome.select_genome_genes`). 0 switches
        this off.
    min_set_genes : int, default 2
        A gene set or axis contributes a score only if at least this many of its genes occur in
        the training data.
    genome_alpha : float or None, default None
        With a level (the default model's 0.05), a genome-wide gene joins only when it is
        associated with what the catalogue features leave unexplained (the residual screen,
        Bonferroni-corrected); ``None``: exactly the ``n_genome_genes`` genes most correlated
        with ``y``.
    """

    def __init__(
        self,
        gene_sets: Sequence[GeneSet] | None = None,
        n_genome_genes: int = 0,
        min_set_genes: int = 2,
        genome_alpha: float | None = None,
    ) -> None:
        self.gene_sets = gene_sets
        self.n_genome_genes = n_genome_genes
        self.min_set_genes = min_set_genes
        self.genome_alpha = genome_alpha

    # ------------------------------------------------------------------ fitting
    def fit(self, X: pd.DataFrame, y: Any = None) -> NKFeatureBuilder:
        """Learn gene statistics, the feature layout and (optionally) genome-wide genes.

        Parameters
        ----------
        X : DataFrame, shape (n_samples, n_genes)
            Harmonized log2(TPM+1) expression, columns are HGNC symbols.
        y : array-like, shape (n_samples,), optional
            Target; required only when ``n_genome_genes > 0``.
        """
        _check_frame(X, "fit")
        catalog = load_catalog()
        gene_sets = catalog.gene_sets + tuple(self.gene_sets or ())
        present = set(X.columns[X.notna().any(axis=0)])
        allocator = _Allocator(catalog, gene_sets)

        specs: list[FeatureSpec] = []
        specs += self._gene_specs(catalog, present, allocator)
        axis_specs = self._axis_specs(catalog, present, allocator)
        specs += axis_specs
        specs += self._load_specs(catalog, axis_specs, allocator)
        specs += self._set_specs(gene_sets, present, allocator)
        model_genes = list(dict.fromkeys(g for s in specs for g in s.genes))
        specs.append(
            FeatureSpec(
                COVERAGE_FEATURE,
                "coverage",
                units={level: {COVERAGE_UNIT: 1.0} for level in AGGREGATE_LEVELS},
            )
        )
        self.catalog_version_ = catalog.version
        self.absent_genes_ = tuple(g for g in catalog.all_genes() if g not in present)
        self._set_layout(X, specs, model_genes, [])
        genome = self._select_genome_genes(X, y, set(model_genes))
        if genome:
            self._set_layout(X, specs + [_genome_spec(g) for g in genome], model_genes, genome)
        logger.info(
            "feature builder fitted: %d features from %d genes (%d catalogue genes absent, "
            "%d genome-wide)",
            len(self.specs_),
            len(self.genes_in_),
            len(self.absent_genes_),
            len(genome),
        )
        return self

    def _set_layout(
        self,
        X: pd.DataFrame,
        specs: list[FeatureSpec],
        model_genes: list[str],
        genome: list[str],
    ) -> None:
        """Fix the features ``specs`` of the model genes and ``genome`` genes, with their
        training statistics from ``X``."""
        self.model_genes_ = tuple(model_genes)
        self.genome_genes_ = tuple(genome)
        self.specs_ = tuple(specs)
        genes_in = list(self.model_genes_) + list(self.genome_genes_)
        values = X.reindex(columns=genes_in).to_numpy(dtype=np.float64)
        self.genes_in_ = tuple(genes_in)
        self.median_ = np.nanmedian(values, axis=0)
        self.mean_ = np.nanmean(values, axis=0)
        self.scale_ = np.maximum(np.nanstd(values, axis=0), _POSITIVE_SD_FLOOR)
        self._compile()

    @staticmethod
    def _gene_specs(
        catalog: Catalog, present: set[str], allocator: _Allocator
    ) -> list[FeatureSpec]:
        return [
            FeatureSpec(
                f"{_GENE_PREFIX}{g.symbol}",
                "gene",
                (g.symbol,),
                (1.0,),
                {
                    "gene": {g.symbol: 1.0},
                    "axis": allocator.gene_axis(g.symbol),
                    "pathway": allocator.gene_pathway(g.symbol),
                },
            )
            for g in catalog.genes
            if g.symbol in present
        ]

    def _axis_specs(
        self, catalog: Catalog, present: set[str], allocator: _Allocator
    ) -> list[FeatureSpec]:
        specs = []
        for axis in catalog.axes:
            genes = [g for g in catalog.axis_genes(axis.name) if g in present]
            if not genes:
                continue
            weights = list(catalog.signed_weights(genes))
            units = allocator.score_units(genes, weights, {axis.name: 1.0})
            specs.append(
                FeatureSpec(f"axis:{axis.name}", "score", tuple(genes), tuple(weights), units)
            )
        return specs

    @staticmethod
    def _load_specs(
        catalog: Catalog, axis_specs: Sequence[FeatureSpec], allocator: _Allocator
    ) -> list[FeatureSpec]:
        kind_of = {a.name: a.kind for a in catalog.axes}
        by_kind: dict[str, list[FeatureSpec]] = {"activating": [], "inhibitory": []}
        for spec in axis_specs:
            axis_name = spec.name.removeprefix("axis:")
            if kind_of[axis_name] in by_kind:
                by_kind[kind_of[axis_name]].append(spec)
        if not by_kind["activating"] or not by_kind["inhibitory"]:
            return []

        def combine(sign_by_kind: dict[str, float], name: str) -> FeatureSpec:
            gene_weights: dict[str, float] = {}
            axes: list[str] = []
            for kind, sign in sign_by_kind.items():
                members = by_kind[kind]
                for spec in members:
                    axes.append(spec.name.removeprefix("axis:"))
                    for gene, weight in zip(spec.genes, spec.weights, strict=True):
                        gene_weights[gene] = gene_weights.get(gene, 0.0) + sign * weight / len(
                            members
                        )
            genes, weights = tuple(gene_weights), tuple(gene_weights.values())
            units = allocator.score_units(genes, weights, _equal_shares(axes))
            return FeatureSpec(name, "score", genes, weights, units)

        return [
            combine({"activating": 1.0}, "load:activating"),
            combine({"inhibitory": 1.0}, "load:inhibitory"),
            combine({"activating": 1.0, "inhibitory": -1.0}, "load:balance"),
        ]

    def _set_specs(
        self, gene_sets: Sequence[GeneSet], present: set[str], allocator: _Allocator
    ) -> list[FeatureSpec]:
        catalog = load_catalog()
        specs = []
        for gene_set in gene_sets:
            genes = [g for g in dict.fromkeys(gene_set.genes) if g in present]
            if len(genes) < self.min_set_genes:
                logger.info(
                    "gene set %s skipped: %d of its genes measured", gene_set.name, len(genes)
                )
                continue
            weights = list(catalog.signed_weights(genes))
            units = allocator.score_units(genes, weights, {gene_set.unit: 1.0})
            units["pathway"] = {gene_set.name: 1.0}
            specs.append(
                FeatureSpec(
                    f"pathway:{gene_set.name}", "score", tuple(genes), tuple(weights), units
                )
            )
        return specs

    def _select_genome_genes(self, X: pd.DataFrame, y: Any, exclude: set[str]) -> list[str]:
        """Genome-wide genes by :func:`~nkpredict.features.genome.select_genome_genes`: the
        residual screen on this builder's catalogue features (fitted just before), or the top
        correlations when ``genome_alpha`` is ``None``."""
        if self.n_genome_genes <= 0:
            return []
        if y is None:
            raise InputError("n_genome_genes > 0 needs the target y in fit")
        target = np.asarray(y)
        if target.shape[0] != X.shape[0]:
            raise InputError(
                f"y must have one value per sample: {target.shape[0]} values for "
                f"{X.shape[0]} samples"
            )
        features = None
        if self.genome_alpha is not None:
            features = self.transform_values(self.gene_values(X))
        return select_genome_genes(
            X.to_numpy(),  # a view of a single-dtype frame (a memory-mapped matrix stays one)
            [str(c) for c in X.columns],
            exclude,
            target,
            self.n_genome_genes,
            self.genome_alpha,
            features,
        )

    def _compile(self) -> None:
        """Build the dense index arrays and weight matrix used by ``transform``."""
        position = {g: i for i, g in enumerate(self.genes_in_)}
        n_model = len(self.model_genes_)
        direct, score_cols, cov_cols = [], [], []
        weights = np.zeros((len(self.genes_in_), len(self.specs_)))
        for j, spec in enumerate(self.specs_):
            if spec.kind == "gene":
                direct.append((j, position[spec.genes[0]]))
            elif spec.kind == "score":
                score_cols.append(j)
                for gene, weight in zip(spec.genes, spec.weights, strict=True):
                    weights[position[gene], j] = weight
            else:
                cov_cols.append(j)
        self._direct_out = np.array([j for j, _ in direct], dtype=np.intp)
        self._direct_in = np.array([i for _, i in direct], dtype=np.intp)
        self._score_cols = np.array(score_cols, dtype=np.intp)
        self._score_weights = weights[:, self._score_cols]
        self._coverage_cols = np.array(cov_cols, dtype=np.intp)
        self._n_model = n_model
        self._selectors = tuple(
            as_selector(p)
            for p in (self._direct_out, self._direct_in, self._score_cols, self._coverage_cols)
        )

    # ------------------------------------------------------------------ transform
    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # an unmeasured gene: filled with its training median
        return tags

    def _check_fitted(self) -> None:
        check_fitted(self, "specs_")

    def _column_positions(self, columns: pd.Index) -> np.ndarray:
        """Position in ``columns`` of each model gene, -1 where absent, shape (n_genes_in,).

        Remembered per tuple of column names (requests keep sending the same genes), and
        per label array for the frames prepared from one cached harmonization (whose column
        Index objects share one array): the memory belongs to the fitted state it was
        computed for.
        """
        state = _position_memo(self)
        labels = columns.values
        last = state.last
        if last is not None and last[0] is labels:
            return last[1]
        key = tuple(columns.tolist())
        positions = state.by_names.get(key)
        if positions is None:
            positions = np.asarray(columns.get_indexer(list(self.genes_in_)), dtype=np.intp)
            positions.flags.writeable = False
            if len(state.by_names) >= _POSITION_CACHE_SIZE:
                state.by_names.clear()
            state.by_names[key] = positions
        state.last = (labels, positions)
        return positions

    def gene_values(self, X: pd.DataFrame) -> np.ndarray:
        """Input genes in model order, shape (n_samples, n_genes_in); NaN where unmeasured."""
        self._check_fitted()
        _check_frame(X, "transform", allow_empty=True)
        if not X.columns.is_unique:
            return X.reindex(columns=list(self.genes_in_)).to_numpy(dtype=np.float64)
        return self.gene_values_of(X.to_numpy(dtype=np.float64), X.columns)

    def gene_values_of(self, values: np.ndarray, genes: pd.Index) -> np.ndarray:
        """:meth:`gene_values` of an array whose columns are the unique symbols ``genes``.

        Parameters
        ----------
        values : ndarray, shape (n_samples, n_genes)
        genes : Index of str, length n_genes, unique

        Returns
        -------
        ndarray of float64, shape (n_samples, n_genes_in)
        """
        self._check_fitted()
        if len(genes) > _POSITION_CACHE_MAX_COLUMNS:
            positions = np.asarray(genes.get_indexer(list(self.genes_in_)), dtype=np.intp)
        else:
            positions = self._column_positions(genes)
        out = np.take(np.asarray(values, dtype=np.float64), positions, axis=1)
        absent = positions < 0
        if absent.any():
            out[:, absent] = np.nan
        return out

    def coverage_of(self, gene_values: np.ndarray) -> np.ndarray:
        """Fraction of the model's catalogue genes measured in each sample of
        :meth:`gene_values` output, shape (n_samples,)."""
        self._check_fitted()
        return _measured_share(np.isnan(gene_values[:, : self._n_model]))

    @property
    def coverage_column(self) -> int:
        """Position of ``coverage:catalog`` among the output features."""
        self._check_fitted()
        return int(self._coverage_cols[0])

    def missing_genes(self, X: pd.DataFrame) -> list[str]:
        """Model genes that are absent from ``X`` or NaN in every sample of it."""
        return self.missing_of(self.gene_values(X))

    def missing_of(self, gene_values: np.ndarray) -> list[str]:
        """:meth:`missing_genes` of :meth:`gene_values` output."""
        absent = np.isnan(gene_values)
        if not absent.any():  # the usual case, in one whole-array pass
            return []
        unseen = absent.all(axis=0)
        if not unseen.any():
            return []
        return [gene for gene, absent in zip(self.genes_in_, unseen, strict=True) if absent]

    def transform_values(self, values: np.ndarray) -> np.ndarray:
        """Compute features from :meth:`gene_values` output.

        Parameters
        ----------
        values : ndarray, shape (n_samples, n_genes_in)

        Returns
        -------
        ndarray, shape (n_samples, n_features)
        """
        self._check_fitted()
        missing = np.isnan(values)
        incomplete = bool(missing.any())  # usually not: no filling, full coverage
        filled = np.where(missing, self.median_, values) if incomplete else values
        out = np.empty((values.shape[0], len(self.specs_)))
        direct_out, direct_in, score_cols, coverage_cols = self._selectors
        out[:, direct_out] = filled[:, direct_in]
        z = (filled - self.mean_) / self.scale_
        out[:, score_cols] = z @ self._score_weights
        if self._n_model:
            shares = _measured_share(missing[:, : self._n_model])[:, None] if incomplete else 1.0
            out[:, coverage_cols] = shares
        return out

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Features for each sample, shape (n_samples, n_features), named as in the module doc."""
        features = self.transform_values(self.gene_values(X))
        return pd.DataFrame(features, index=X.index, columns=self.get_feature_names_out())

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Feature names, shape (n_features,)."""
        self._check_fitted()
        return np.array([s.name for s in self.specs_], dtype=object)

    # ------------------------------------------------------------------ attribution
    def allocation(self, level: AggregateLevel) -> pd.DataFrame:
        """Share of each feature's attribution that belongs to each unit at ``level``.

        Returns
        -------
        DataFrame, shape (n_features, n_units)
            Rows sum to one, so ``feature_shap @ allocation(level)`` preserves the total.
        """
        self._check_fitted()
        check_choice(level, AGGREGATE_LEVELS, "level")
        rows = [spec.units[level] for spec in self.specs_]
        frame = pd.DataFrame(rows, index=self.get_feature_names_out()).fillna(0.0)
        return frame

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """Fitted state as plain JSON-serialisable data (no code, no pickles)."""
        self._check_fitted()
        return {
            "params": {
                "n_genome_genes": self.n_genome_genes,
                "min_set_genes": self.min_set_genes,
                "genome_alpha": self.genome_alpha,
                "gene_sets": [
                    {
                        "name": s.name,
                        "genes": list(s.genes),
                        "category": s.category,
                        "description": s.description,
                        "reference": s.reference,
                        "axis": s.axis,
                    }
                    for s in (self.gene_sets or ())
                ],
            },
            "catalog_version": self.catalog_version_,
            "model_genes": list(self.model_genes_),
            "genome_genes": list(self.genome_genes_),
            "absent_genes": list(self.absent_genes_),
            "median": self.median_.tolist(),
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "specs": [s.to_dict() for s in self.specs_],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NKFeatureBuilder:
        """Rebuild a fitted builder from :meth:`to_dict` output."""
        params = data["params"]
        builder = cls(
            gene_sets=tuple(GeneSet(**s) for s in params["gene_sets"]) or None,
            n_genome_genes=params["n_genome_genes"],
            min_set_genes=params["min_set_genes"],
            genome_alpha=params.get("genome_alpha"),
        )
        builder.catalog_version_ = data["catalog_version"]
        builder.model_genes_ = tuple(data["model_genes"])
        builder.genome_genes_ = tuple(data["genome_genes"])
        builder.absent_genes_ = tuple(data["absent_genes"])
        builder.genes_in_ = builder.model_genes_ + builder.genome_genes_
        builder.median_ = np.asarray(data["median"], dtype=np.float64)
        builder.mean_ = np.asarray(data["mean"], dtype=np.float64)
        builder.scale_ = np.asarray(data["scale"], dtype=np.float64)
        builder.specs_ = tuple(FeatureSpec.from_dict(s) for s in data["specs"])
        builder._compile()
        return builder


_position_memo: PerObject[NKFeatureBuilder, _PositionMemo] = PerObject(
    lambda builder: _PositionMemo(), state=lambda builder: builder.genes_in_
)
"""The remembered column positions of a fitted builder, per fitted state."""
