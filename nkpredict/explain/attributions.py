"""TreeSHAP explanations of a fitted model, summed exactly to genes, NK axes and pathways.

For every sample, TreeSHAP splits the model's raw output (log-odds for classification, the
predicted readout for regression) into one contribution per feature plus a base value::

    model_output[i] = base_value + sum_f shap[i, f]

Features are then aggregated to explanation units with the feature builder's allocation
matrices (:meth:`nkpredict.features.builder.NKFeatureBuilder.allocation`), whose rows sum to one, so
the identity holds at every level::

    level(L)[i, u] = sum_f shap[i, f] * allocation_L[f, u]
    model_output[i] = base_value + sum_u level(L)[i, u]

Three TreeSHAP implementations give the same values: the compiled tables of
:mod:`nkpredict.fast.shap` (the default: XGBoost's values without XGBoost's per-call
cost, checked against it when compiled), XGBoost's own (``pred_contribs``, used when a model
cannot be compiled) and :class:`shap.TreeExplainer`; see ``benchmarks/explain_speed.py``.

:func:`attributions` gives the values as arrays (what the HTTP service uses);
:func:`explain` labels them as an :class:`Explanation`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from nkpredict.catalog import load_catalog
from nkpredict.data.expression import PreparedExpression
from nkpredict.exceptions import InputError
from nkpredict.fast.cache import PerObject
from nkpredict.fast.shap import CompiledShap, compile_shap
from nkpredict.features.builder import (
    COVERAGE_UNIT,
    GENOME_UNIT,
    LIGAND_UNIT,
    NKFeatureBuilder,
)
from nkpredict.io import write_json, write_table
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.vocabulary import (
    AGGREGATE_LEVELS,
    EXPLAIN_METHODS,
    LEVELS,
    ExplainMethod,
    Level,
    check_choice,
)

__all__ = [
    "ADDITIVITY_TOLERANCE",
    "AUTO_METHOD",
    "FILE_STEMS",
    "GLOBAL_FILE",
    "HIGHER_MORE_RESISTANT",
    "HIGHER_MORE_SENSITIVE",
    "MIXED",
    "PARALLEL_DMATRIX_ROWS",
    "TOTAL_COLUMNS",
    "TOWARD_RESISTANT",
    "TOWARD_SENSITIVE",
    "Attributions",
    "Driver",
    "Explanation",
    "LevelAllocation",
    "attributions",
    "compiled_shap",
    "drivers_of",
    "explain",
    "global_summary",
    "interaction_values",
    "level_allocations",
    "output_units",
    "resistant_sign",
    "tree_shap",
    "unit_label",
    "write_explanations",
]

logger = logging.getLogger(__name__)

FILE_STEMS: dict[Level, str] = {
    "feature": "features",
    "gene": "genes",
    "axis": "axes",
    "pathway": "pathways",
}
"""File name (without ``.csv``) of each level written by :func:`write_explanations`."""
GLOBAL_FILE = "global.json"
PARALLEL_DMATRIX_ROWS = 100_000
"""Inputs with fewer rows are converted to a DMatrix on one thread (thread start-up dominates)."""
TOTAL_COLUMNS = ("base_value", "model_output", "prior_part", "trees_part", "imputed_genes")
"""The columns of :meth:`Explanation.table` after the units (not attributions themselves);
``imputed_genes`` names, per sample, the genes whose attributions come from training medians."""
ADDITIVITY_TOLERANCE = 1e-3
"""Largest tolerated |base_value + sum(shap) - model_output| before a warning is logged."""

TOWARD_RESISTANT = "toward resistant"
TOWARD_SENSITIVE = "toward sensitive"
HIGHER_MORE_RESISTANT = "higher -> more resistant"
HIGHER_MORE_SENSITIVE = "higher -> more sensitive"
MIXED = "mixed"

_SPECIAL_UNIT_LABELS = {
    COVERAGE_UNIT: "Catalogue gene coverage",
    GENOME_UNIT: "Genome-wide genes",
    LIGAND_UNIT: "NK ligands (no pathway)",
    "LINEAGE": "Lineage programs",
    "COVARIATE": "Covariates (proliferation)",
    "OTHER": "Other genes",
}
_FEATURE_LABELS = {
    "load:activating": "Activating-receptor load",
    "load:inhibitory": "Inhibitory-receptor load",
    "load:balance": "Activating minus inhibitory load",
    "coverage:catalog": "Catalogue gene coverage",
}


# --------------------------------------------------------------------------- labels and words


@lru_cache(maxsize=1)
def _axis_labels() -> dict[str, str]:
    return {axis.name: axis.label for axis in load_catalog().axes}


@lru_cache(maxsize=1)
def _pathway_labels() -> dict[str, str]:
    return {s.name: s.display_name for s in load_catalog().gene_sets}


def unit_label(level: Level, unit: str) -> str:
    """Human-readable name of an explanation unit (e.g. ``NKp30`` -> ``NKp30 / B7-H6``,
    ``IFNG_SIGNALING`` -> ``IFN-gamma signalling``, ``NCR3LG1`` -> ``B7-H6 (NCR3LG1)``)."""
    if level == "feature":
        return _feature_label(unit)
    if level == "axis" and unit in _axis_labels():
        return _axis_labels()[unit]
    if level == "pathway" and unit in _pathway_labels():
        return _pathway_labels()[unit]
    if level == "gene" and unit not in _SPECIAL_UNIT_LABELS:
        return load_catalog().gene_name(unit)
    return _SPECIAL_UNIT_LABELS.get(unit, unit)


def _feature_label(name: str) -> str:
    kind, _, unit = name.partition(":")
    if name in _FEATURE_LABELS:
        return _FEATURE_LABELS[name]
    if kind == "gene":
        return f"{load_catalog().gene_name(unit)} expression"
    if kind == "genome":
        return f"{unit} expression (genome-wide)"
    if kind == "axis":
        return f"{unit_label('axis', unit)} score"
    if kind == "pathway":
        return f"{unit_label('pathway', unit)} score"
    return name


def _unit_noun(level: Level, unit: str) -> str:
    """The word a sentence puts after a unit's label ("axis", "pathway", "expression")."""
    if level == "axis" and unit in _axis_labels():
        return "axis"
    if level == "pathway" and unit not in _SPECIAL_UNIT_LABELS:
        return "pathway"
    if level == "gene":
        return "expression"
    return ""


def _toward(sign: float, resistant_sign: int, units: str) -> str:
    """Words for a push of ``sign`` on the model output, given which side is resistant."""
    if sign == 0 or sign != sign:  # zero or NaN
        return "no effect"
    if resistant_sign == 0:
        return f"toward higher {units}" if sign > 0 else f"toward lower {units}"
    return TOWARD_RESISTANT if sign * resistant_sign > 0 else TOWARD_SENSITIVE


def _trend(rho: float, resistant_sign: int, units: str) -> str:
    """Words for the sign of the correlation between a unit's value and its SHAP."""
    if np.isnan(rho) or rho == 0:
        return MIXED
    if resistant_sign == 0:
        return f"higher -> {'higher' if rho > 0 else 'lower'} {units}"
    return HIGHER_MORE_RESISTANT if rho * resistant_sign > 0 else HIGHER_MORE_SENSITIVE


def drivers_of(
    values: np.ndarray,
    units: Sequence[str],
    level: Level,
    n: int,
    resistant_sign: int = 1,
    output_units: str = "log-odds",
    imputed: Collection[str] = (),
) -> list[Driver]:
    """The ``n`` units with the largest |contribution| in one sample's ``values``.

    Attributions of genes the sample did not measure (``imputed``: they were filled with the
    training medians) are left out at gene and feature level: a driver in words is always a
    measured value.

    Parameters
    ----------
    values : ndarray, shape (n_units,)
        One sample's attributions at ``level``.
    units : sequence of str, length n_units
    level : {"feature", "gene", "axis", "pathway"}
    n : int
    resistant_sign, output_units
        See :class:`Explanation`.
    imputed : collection of str
        The sample's unmeasured model genes.

    Returns
    -------
    list of Driver
        Largest |contribution| first; ties keep the order of ``units``.
    """
    order = np.argsort(-np.abs(values), kind="stable")
    if imputed and level in ("gene", "feature"):
        skipped = set(imputed) if level == "gene" else {f"gene:{g}" for g in imputed}
        order = np.array([k for k in order if units[k] not in skipped], dtype=np.intp)
    order = order[:n]
    drivers = []
    for k, value in zip(order.tolist(), values[order].tolist(), strict=True):
        label, kind = _unit_words(level, units[k])
        direction = _toward(value, resistant_sign, output_units)
        drivers.append(Driver(units[k], label, value, direction, kind, output_units))
    return drivers


@lru_cache(maxsize=4096)
def _unit_words(level: Level, unit: str) -> tuple[str, str]:
    """:func:`unit_label` and :func:`_unit_noun` of a unit (read from the catalogue, which
    does not change while the process runs: remembered)."""
    return unit_label(level, unit), _unit_noun(level, unit)


def _rank_correlation(x: pd.DataFrame, y: pd.DataFrame) -> pd.Series:
    """Spearman correlation of same-named columns of ``x`` and ``y`` (NaN rows of x skipped).

    Parameters
    ----------
    x, y : DataFrame, shape (n_samples, n_columns)

    Returns
    -------
    Series, shape (n_columns,)
        NaN where a column is constant.
    """
    y = y[x.columns].where(x.notna())
    rx, ry = x.rank(), y.rank()
    rx, ry = rx - rx.mean(), ry - ry.mean()
    numerator = (rx * ry).sum()
    denominator = np.sqrt((rx**2).sum() * (ry**2).sum())
    return numerator / denominator.where(denominator > 1e-12)


# --------------------------------------------------------------------------- result objects


@dataclass
class Driver:
    """One unit's contribution to one sample's prediction.

    Attributes
    ----------
    unit : str
        Unit name at its level (``NKp30``, ``NCR3LG1``, ``IFNG_SIGNALING``).
    label : str
        Human-readable name (``NKp30 / B7-H6``).
    contribution : float
        SHAP value summed over the unit, in model-output units.
    direction : str
        ``"toward resistant"`` or ``"toward sensitive"`` (regression without a resistant
        side: ``"toward higher <readout>"`` / ``"toward lower <readout>"``).
    kind : str
        Noun placed after the label in :meth:`sentence` (``"axis"``, ``"pathway"``, ...).
    units : str
        ``"log-odds"`` or the readout name.
    """

    unit: str
    label: str
    contribution: float
    direction: str
    kind: str = ""
    units: str = "log-odds"

    def sentence(self) -> str:
        """E.g. ``"NKG2A / HLA-E axis +0.80 log-odds toward resistant"``."""
        name = f"{self.label} {self.kind}" if self.kind else self.label
        return f"{name} {self.contribution:+.2f} {self.units} {self.direction}"


@dataclass
class Explanation:
    """TreeSHAP attributions of a set of samples, with their exact aggregation to units.

    Attributes
    ----------
    shap : DataFrame, shape (n_samples, n_features)
        TreeSHAP values in model-output units; index ``sample_id``.
    values : DataFrame, shape (n_samples, n_features)
        The feature values that were explained.
    base_value : float
        Model output with no feature known (the expected output over the training data).
    model_output : Series, shape (n_samples,)
        Raw model output (log-odds or readout); ``base_value + shap.sum(axis=1)``.
    allocations : dict of str to DataFrame
        ``feature`` (the identity), ``gene``, ``axis``, ``pathway`` -> (n_features, n_units)
        shares whose rows sum to one.
    units : str
        ``"log-odds"`` or the readout name.
    expression : DataFrame, shape (n_samples, n_model_genes), optional
        Harmonized log2(TPM+1) of the model's genes (NaN where unmeasured); gives the
        direction of gene-level effects.
    resistant_sign : int
        +1 when a higher model output means more resistant, -1 when it means more sensitive,
        0 when unknown (regression without a resistant side).
    prior_part : Series, shape (n_samples,), optional
        The biological prior's part of ``model_output - base_value``; the trees' part is the
        rest (:meth:`parts`).
    """

    shap: pd.DataFrame
    values: pd.DataFrame
    base_value: float
    model_output: pd.Series
    allocations: dict[str, pd.DataFrame]
    units: str
    expression: pd.DataFrame | None = None
    resistant_sign: int = 1
    prior_part: pd.Series | None = None
    _levels: dict[str, pd.DataFrame] = field(default_factory=dict, init=False, repr=False)

    def rows(self, which: slice | Sequence[int] | np.ndarray) -> Explanation:
        """The samples at positions ``which``, with the same base value, allocations and units."""
        expression = self.expression
        return Explanation(
            shap=self.shap.iloc[which],
            values=self.values.iloc[which],
            base_value=self.base_value,
            model_output=self.model_output.iloc[which],
            allocations=self.allocations,
            units=self.units,
            expression=None if expression is None else expression.iloc[which],
            resistant_sign=self.resistant_sign,
            prior_part=None if self.prior_part is None else self.prior_part.iloc[which],
        )

    def parts(self) -> pd.DataFrame:
        """Per sample, how much of the output beyond the base value comes from the prior and
        how much from the trees: columns ``prior_part`` and ``trees_part``; index
        ``sample_id``."""
        beyond = self.model_output.to_numpy() - self.base_value
        prior = np.zeros(len(beyond)) if self.prior_part is None else self.prior_part.to_numpy()
        return pd.DataFrame(
            {"prior_part": prior, "trees_part": beyond - prior}, index=self.shap.index
        )

    # ------------------------------------------------------------------ per-sample tables
    def _allocation(self, level: Level) -> pd.DataFrame:
        check_choice(level, LEVELS, "level")
        return self.allocations[level].loc[self.shap.columns]

    def level(self, level: Level) -> pd.DataFrame:
        """Attributions summed to the units of ``level``.

        Returns
        -------
        DataFrame, shape (n_samples, n_units)
            ``shap @ allocation``; each row sums to the row sum of :attr:`shap`.
        """
        if level not in self._levels:
            allocation = self._allocation(level)
            summed = self.shap.to_numpy() @ allocation.to_numpy()
            self._levels[level] = pd.DataFrame(
                summed, index=self.shap.index, columns=allocation.columns
            )
        return self._levels[level].copy()

    def table(self, level: Level) -> pd.DataFrame:
        """:meth:`level` plus ``base_value``, ``model_output``, the :meth:`parts` columns and
        ``imputed_genes`` (``;``-joined: their attributions come from the training medians the
        model filled in); index ``sample_id``.

        Returns
        -------
        DataFrame, shape (n_samples, n_units + 5)
        """
        table = self.level(level)
        table["base_value"] = self.base_value
        table["model_output"] = self.model_output.to_numpy()
        parts = self.parts()
        table["prior_part"] = parts["prior_part"].to_numpy()
        table["trees_part"] = parts["trees_part"].to_numpy()
        if self.expression is None:
            table["imputed_genes"] = ""
        else:
            missing = self.expression.isna().to_numpy()
            genes = self.expression.columns.to_numpy(dtype=object)
            table["imputed_genes"] = [";".join(genes[row]) for row in missing]
        return table

    def _check_sample(self, sample_id: str) -> None:
        if sample_id not in self.shap.index:
            raise InputError(f"no sample {sample_id!r} in this explanation")

    def top_drivers(self, sample_id: str, level: Level = "axis", n: int = 5) -> list[Driver]:
        """The ``n`` units with the largest |contribution| to one sample's output."""
        self._check_sample(sample_id)
        row = self.level(level).loc[sample_id]
        units = [str(u) for u in row.index]
        return drivers_of(
            row.to_numpy(),
            units,
            level,
            n,
            self.resistant_sign,
            self.units,
            self.imputed_genes(sample_id),
        )

    def imputed_genes(self, sample_id: str) -> list[str]:
        """The model genes this sample did not measure (their attributions come from the
        training medians the model filled in); empty when the expression is not known."""
        self._check_sample(sample_id)
        if self.expression is None:
            return []
        row = self.expression.loc[sample_id]
        return [str(g) for g in row.index[row.isna().to_numpy()]]

    def direction(self, contribution: float) -> str:
        """Words for a contribution of this sign (``"toward resistant"`` ...)."""
        return _toward(contribution, self.resistant_sign, self.units)

    # ------------------------------------------------------------------ cohort summaries
    def _unit_values(self, level: Level) -> pd.DataFrame:
        """Values whose rank correlation with a unit's SHAP gives its direction of effect.

        Feature level: the features; gene level: the genes' expression; axis and pathway
        level: the matching score feature (``axis:<A>``, ``pathway:<P>``) where there is one.
        """
        if level == "feature":
            return self.values
        if level == "gene":
            return self.expression if self.expression is not None else pd.DataFrame()
        prefix = f"{level}:"
        scores = [c for c in self.values.columns if c.startswith(prefix)]
        return self.values[scores].rename(columns=lambda c: c.removeprefix(prefix))

    def global_importance(self, level: Level) -> pd.DataFrame:
        """Units ranked by mean |SHAP| over the samples.

        Returns
        -------
        DataFrame, shape (n_units, 6)
            ``unit``, ``label``, ``mean_abs_shap``, ``mean_shap``, ``direction`` (``"higher ->
            more resistant"``, ``"higher -> more sensitive"`` or ``"mixed"`` when the unit has
            no single value to correlate with), ``rank`` (1 = most important).
        """
        attributions = self.level(level)
        values = self._unit_values(level)
        shared = [u for u in attributions.columns if u in values.columns]
        rho = _rank_correlation(values[shared], attributions[shared]).reindex(attributions.columns)
        table = pd.DataFrame(
            {
                "unit": attributions.columns.astype(str),
                "label": [unit_label(level, str(u)) for u in attributions.columns],
                "mean_abs_shap": attributions.abs().mean().to_numpy(),
                "mean_shap": attributions.mean().to_numpy(),
                "direction": [_trend(r, self.resistant_sign, self.units) for r in rho],
            }
        )
        table = table.sort_values("mean_abs_shap", ascending=False, kind="stable")
        table["rank"] = np.arange(1, len(table) + 1)
        return table.reset_index(drop=True)


# --------------------------------------------------------------------------- computing


def _float32(features: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Features as the contiguous float32 array the booster was trained and predicts on."""
    return np.ascontiguousarray(np.asarray(features, dtype=np.float32))


def _dmatrix(values: np.ndarray) -> xgb.DMatrix:
    """DMatrix of float32 features; one thread below :data:`PARALLEL_DMATRIX_ROWS` rows."""
    threads = 1 if len(values) < PARALLEL_DMATRIX_ROWS else -1
    return xgb.DMatrix(values, nthread=threads)


def _native_contributions(booster: xgb.Booster, values: np.ndarray) -> tuple[np.ndarray, float]:
    contributions = booster.predict(_dmatrix(values), pred_contribs=True)
    base = float(contributions[0, -1]) if len(contributions) else _empty_base(booster)
    return contributions[:, :-1], base


def _empty_base(booster: xgb.Booster) -> float:
    one = np.zeros((1, booster.num_features()), dtype=np.float32)
    return float(booster.predict(_dmatrix(one), pred_contribs=True)[0, -1])


def _shap_contributions(booster: xgb.Booster, values: np.ndarray) -> tuple[np.ndarray, float]:
    import shap  # slow to import and only needed on request

    explainer = shap.TreeExplainer(booster)
    contributions = np.asarray(explainer.shap_values(values), dtype=np.float64)
    return contributions.reshape(values.shape), float(np.ravel(explainer.expected_value)[0])


compiled_shap: PerObject[xgb.Booster, CompiledShap | None] = PerObject(compile_shap)
"""A booster's compiled TreeSHAP, built on first use and kept while the booster lives;
``None`` when the model cannot be compiled exactly (see :func:`compile_shap`)."""


def _compiled_contributions(booster: xgb.Booster, values: np.ndarray) -> tuple[np.ndarray, float]:
    compiled = compiled_shap(booster)
    if compiled is None:
        return _native_contributions(booster, values)
    return compiled.contributions(values), compiled.base_value


_METHODS = {
    "compiled": _compiled_contributions,
    "native": _native_contributions,
    "shap": _shap_contributions,
}
AUTO_METHOD = "compiled"
"""What ``method="auto"`` uses: the compiled tables are the fastest (``benchmarks/``); a
model that cannot be compiled falls back to XGBoost's TreeSHAP."""


def tree_shap(
    booster: xgb.Booster, features: pd.DataFrame | np.ndarray, method: ExplainMethod = "auto"
) -> tuple[np.ndarray, float]:
    """TreeSHAP values of ``features`` under ``booster``.

    Parameters
    ----------
    booster : xgboost.Booster
    features : DataFrame or ndarray, shape (n_samples, n_features)
        In the booster's feature order; converted to float32 like at prediction time.
    method : {"auto", "compiled", "native", "shap"}

    Returns
    -------
    contributions : ndarray, shape (n_samples, n_features)
    base_value : float
    """
    check_choice(method, EXPLAIN_METHODS, "method")
    name = AUTO_METHOD if method == "auto" else method
    contributions, base = _METHODS[name](booster, _float32(features))
    return np.asarray(contributions, dtype=np.float64), base


@dataclass(frozen=True, eq=False)
class LevelAllocation:
    """How feature attributions add up to the units of one level (read-only, shared).

    Attributes
    ----------
    frame : DataFrame, shape (n_features, n_units)
        Shares; rows sum to one (the identity at ``feature`` level).
    units : list of str, length n_units
    matrix : ndarray of float64, shape (n_features, n_units)
        ``frame`` as an array.
    """

    frame: pd.DataFrame
    units: list[str]
    matrix: np.ndarray

    @classmethod
    def of(cls, frame: pd.DataFrame) -> LevelAllocation:
        """Wrap an allocation frame."""
        matrix = frame.to_numpy(dtype=np.float64)
        matrix.flags.writeable = False
        return cls(frame=frame, units=[str(u) for u in frame.columns], matrix=matrix)


def _level_allocations(builder: NKFeatureBuilder) -> dict[Level, LevelAllocation]:
    names = builder.get_feature_names_out()
    levels: dict[Level, LevelAllocation] = {
        "feature": LevelAllocation.of(pd.DataFrame(np.eye(len(names)), index=names, columns=names))
    }
    levels.update(
        {level: LevelAllocation.of(builder.allocation(level)) for level in AGGREGATE_LEVELS}
    )
    return levels


level_allocations: PerObject[NKFeatureBuilder, dict[Level, LevelAllocation]] = PerObject(
    _level_allocations, state=lambda builder: builder.specs_
)
"""Every level's allocation of a feature builder, built once per fitted state."""


def resistant_sign(model: NKResistanceModel) -> int:
    """+1 when a higher model output means more resistant, -1 when less, 0 when unknown."""
    if model.task == "classification":
        return 1
    return {"above": 1, "below": -1}.get(str(model.label_definition_.resistant_when), 0)


def output_units(model: NKResistanceModel) -> str:
    """What the model output is in: ``log-odds`` or the regression readout's name."""
    return "log-odds" if model.task == "classification" else model.label_definition_.column


@dataclass(frozen=True, eq=False)
class Attributions:
    """TreeSHAP values of a batch as plain arrays (what :class:`Explanation` labels).

    Attributes
    ----------
    features : ndarray, shape (n_samples, n_features)
        The feature values explained.
    contributions : ndarray of float64, shape (n_samples, n_features)
    base_value : float
    model_output : ndarray of float64, shape (n_samples,)
        ``base_value + contributions.sum(axis=1)`` (within float rounding).
    prior_part : ndarray of float64, shape (n_samples,)
        How much of ``model_output - base_value`` the biological prior contributes (the sum
        of its exact attributions); the trees contribute the rest. Zero for models without a
        prior.

    ``contributions`` are the prior's attributions (coefficient x standardized value) plus
    the trees' TreeSHAP values, and ``base_value`` the prior's intercept plus the trees' base
    value, so both parts add up to the model output together.
    """

    features: np.ndarray
    contributions: np.ndarray
    base_value: float
    model_output: np.ndarray
    prior_part: np.ndarray


def attributions(
    model: NKResistanceModel, features: np.ndarray, method: ExplainMethod = "auto"
) -> Attributions:
    """TreeSHAP values of a feature matrix, checked to add up to the model's output.

    Parameters
    ----------
    model : NKResistanceModel
        A fitted model.
    features : ndarray, shape (n_samples, n_features)
        The model's features of the samples (``model.scorer.features(...)``).
    method : {"auto", "compiled", "native", "shap"}
        TreeSHAP implementation; all give the same values, ``auto`` the fastest.
    """
    trees = model.boosted_trees
    contributions: np.ndarray
    if trees.has_no_trees:
        check_choice(method, EXPLAIN_METHODS, "method")
        contributions, base = np.zeros(np.shape(features), dtype=np.float64), 0.0
    else:
        contributions, base = tree_shap(trees.booster_, features, method)
    prior_part = np.zeros(len(contributions))
    if trees.prior_ is not None:
        prior_contributions = trees.prior_.contributions(features)
        contributions = contributions + prior_contributions
        base += trees.prior_.intercept_
        prior_part = prior_contributions.sum(axis=1)
    output = model.scorer.margins(features).astype(np.float64)
    _check_additivity(contributions, base, output)
    logger.debug("explained %d samples (%s TreeSHAP)", len(output), method)
    return Attributions(features, contributions, base, output, prior_part)


def explain(
    model: NKResistanceModel, prepared: PreparedExpression, method: ExplainMethod = "auto"
) -> Explanation:
    """Explain the model's output for every sample of a prepared matrix.

    Parameters
    ----------
    model, prepared, method
        See :func:`attributions`.

    Returns
    -------
    Explanation
    """
    scorer = model.scorer
    genes = scorer.gene_values(prepared)
    result = attributions(model, scorer.features(genes), method)
    builder = model.feature_builder
    index = pd.Index(prepared.sample_ids, dtype=object, name="sample_id")
    names = builder.get_feature_names_out()
    expression = pd.DataFrame(genes, index=index, columns=list(builder.genes_in_))
    return Explanation(
        shap=pd.DataFrame(result.contributions, index=index, columns=names),
        values=pd.DataFrame(result.features, index=index, columns=names),
        base_value=result.base_value,
        model_output=pd.Series(result.model_output, index=index, name="model_output"),
        allocations={
            level: allocation.frame for level, allocation in level_allocations(builder).items()
        },
        units=output_units(model),
        expression=expression,
        resistant_sign=resistant_sign(model),
        prior_part=pd.Series(result.prior_part, index=index, name="prior_part"),
    )


def _check_additivity(contributions: np.ndarray, base: float, output: np.ndarray) -> None:
    if not len(output):
        return
    if len(output) == 1:  # one sample: the same check on Python floats
        gap = abs(base + float(contributions.sum()) - float(output[0]))
    else:
        gap = float(np.abs(base + contributions.sum(axis=1) - output).max())
    if gap > ADDITIVITY_TOLERANCE:
        logger.warning("TreeSHAP values miss the model output by up to %.2g", gap)


def interaction_values(model: NKResistanceModel, prepared: PreparedExpression) -> np.ndarray:
    """SHAP interaction values from XGBoost (expensive: quadratic in the number of features).

    Returns
    -------
    ndarray, shape (n_samples, n_features + 1, n_features + 1)
        Last row/column is the bias; each sample's matrix sums to its model output. The
        prior's exact attributions are main effects (on the diagonal, its intercept in the
        bias cell).
    """
    features = model.features(prepared)
    values = np.ascontiguousarray(features.to_numpy(dtype=np.float32))
    trees = model.boosted_trees
    interactions = np.asarray(trees.booster_.predict(_dmatrix(values), pred_interactions=True))
    if trees.prior_ is not None:  # a linear prior has main effects only: the diagonal
        n = values.shape[1]
        diagonal = np.arange(n)
        interactions = interactions.astype(np.float64)
        interactions[:, diagonal, diagonal] += trees.prior_.contributions(values)
        interactions[:, n, n] += trees.prior_.intercept_
    return interactions


# --------------------------------------------------------------------------- writing


def global_summary(explanation: Explanation, top: int | None = None) -> dict[str, Any]:
    """Units of every level ranked by mean |SHAP| (the content of ``global.json``)."""
    levels = {}
    for level in LEVELS:
        table = explanation.global_importance(level)
        levels[level] = (table if top is None else table.head(top)).to_dict(orient="records")
    parts = explanation.parts().abs().mean()
    total = float(parts.sum())
    return {
        "units": explanation.units,
        "base_value": explanation.base_value,
        "n_samples": int(explanation.shap.shape[0]),
        "parts": {
            "prior_mean_abs": float(parts["prior_part"]),
            "trees_mean_abs": float(parts["trees_part"]),
            "prior_share": float(parts["prior_part"]) / total if total > 0 else None,
        },
        "levels": levels,
    }


def write_explanations(explanation: Explanation, out_dir: Path) -> dict[str, Path]:
    """Write per-sample tables at every level and the global ranking.

    Files: ``features.csv``, ``genes.csv``, ``axes.csv``, ``pathways.csv`` (one row per
    sample: ``sample_id``, one column per unit, ``base_value``, ``model_output``) and
    ``global.json``.

    Returns
    -------
    dict of str to Path
        File stem (``features``, ``genes``, ``axes``, ``pathways``, ``global``) -> path.
    """
    out = Path(out_dir)
    written = {
        stem: write_table(explanation.table(level).reset_index(), out / f"{stem}.csv")
        for level, stem in FILE_STEMS.items()
    }
    written["global"] = write_json(out / GLOBAL_FILE, global_summary(explanation))
    return written
