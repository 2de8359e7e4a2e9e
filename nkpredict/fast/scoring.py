"""The array-level scoring of a fitted model: what serving and streaming run per request.

:class:`~nkpredict.model.fitted.NKResistanceModel` is the estimator users hold (DataFrames in,
tables out). Its per-request path on plain arrays lives here, once: :class:`ArrayScorer`
prepares an array with its sample IDs and gene identifiers, picks the model's genes, computes
features, margins (compiled trees for small inputs, XGBoost otherwise), coverage, missing
genes and calls. The estimator's own prediction methods, the service and the explanations all
go through it, so there is one implementation of each step.

A scorer is built once per fitted state of a model (:data:`scorer_for`, held in the one
derived-state cache of :mod:`nkpredict.fast.cache`) and reads the thresholds and label
definition from the model on every call, so ``set_params`` after fitting is honoured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nkpredict.data.expression import PreparedExpression, prepare_values
from nkpredict.exceptions import CoverageError
from nkpredict.fast.cache import PerObject
from nkpredict.fast.trees import compiled_trees_for
from nkpredict.settings import LOW_COVERAGE_WARNING
from nkpredict.vocabulary import ScaleChoice

if TYPE_CHECKING:
    from nkpredict.model.fitted import NKResistanceModel

__all__ = ["COMPILED_MAX_ROWS", "ArrayScorer", "Predictions", "scorer_for"]

COMPILED_MAX_ROWS = 32
"""Inputs of at most this many samples are scored with :mod:`nkpredict.fast.trees`
(bitwise the same margins, without XGBoost's fixed per-call cost); larger ones with XGBoost."""


@dataclass(frozen=True)
class Predictions:
    """Per-sample predictions as arrays (what :meth:`NKResistanceModel.predict_table` holds).

    Attributes
    ----------
    sample_id : list of str, length n_samples
    value : ndarray of float32, shape (n_samples,)
        P(resistant) for classification, the predicted readout for regression.
    call : ndarray of str, shape (n_samples,)
        ``resistant``, ``sensitive`` or ``n/a``.
    coverage : ndarray of float64, shape (n_samples,)
        Fraction of the model's catalogue genes measured.
    value_name : str
        ``probability`` or ``score``.
    imputed_genes : list of list of str, length n_samples
        The model genes not measured in each sample (imputed with training medians).
    warnings : list of list of str, length n_samples
        ``low_coverage`` (coverage below :data:`~nkpredict.settings.LOW_COVERAGE_WARNING`)
        and ``imputed_genes`` (some model genes were imputed); empty for a clean call.
    calibrated : ndarray of float64 or None
        Calibrated P(resistant) (classification models with uncertainty; else None).
    prediction_set : list of list of str or None
        The conformal set of each sample (``["resistant"]``, ``["resistant", "sensitive"]``
        ...) at the model's level; a set of both labels makes the call ``uncertain``.
    interval : tuple of two ndarrays or None
        Lower and upper ends of the conformal interval of each readout (regression).
    out_of_domain : ndarray of bool or None
        Whether the sample fails a domain check (models with domain checks; else None).
    domain_reasons : list of list of str or None
        The checks it failed (:data:`~nkpredict.vocabulary.DomainReason`).
    lineage : list of str or None
        The lineage recognised from its lineage programs.
    """

    sample_id: list[str]
    value: np.ndarray
    call: np.ndarray
    coverage: np.ndarray
    value_name: str
    imputed_genes: list[list[str]]
    warnings: list[list[str]]
    calibrated: np.ndarray | None = None
    prediction_set: list[list[str]] | None = None
    interval: tuple[np.ndarray, np.ndarray] | None = None
    out_of_domain: np.ndarray | None = None
    domain_reasons: list[list[str]] | None = None
    lineage: list[str] | None = None

    def _columns(self, present_only: bool) -> dict[str, list[Any]]:
        """The uncertainty and domain columns; a part the model lacks is left out
        (``present_only``) or given as None for every sample."""
        n = len(self.sample_id)
        parts: dict[str, list[Any] | None] = {}
        if self.value_name == "probability":
            parts["calibrated_probability"] = (
                None if self.calibrated is None else self.calibrated.tolist()
            )
            parts["prediction_set"] = self.prediction_set
        else:
            parts["interval_low"] = None if self.interval is None else self.interval[0].tolist()
            parts["interval_high"] = None if self.interval is None else self.interval[1].tolist()
        parts["out_of_domain"] = None if self.out_of_domain is None else self.out_of_domain.tolist()
        parts["domain_reasons"] = self.domain_reasons
        parts["lineage"] = self.lineage
        if present_only:
            return {k: v for k, v in parts.items() if v is not None}
        return {k: [None] * n if v is None else v for k, v in parts.items()}

    def to_frame(self) -> pd.DataFrame:
        """``sample_id``, ``probability`` or ``score``, ``call``, ``coverage``, ``warnings``
        and ``imputed_genes``, then the uncertainty and domain columns the model has
        (``calibrated_probability`` and ``prediction_set``, or ``interval_low`` and
        ``interval_high``; ``out_of_domain``, ``domain_reasons``, ``lineage``); lists are
        joined by ``;``."""
        frame = pd.DataFrame(
            {
                "sample_id": pd.Index(self.sample_id, dtype=object),
                self.value_name: self.value,
                "call": self.call,
                "coverage": self.coverage,
                "warnings": [";".join(w) for w in self.warnings],
                "imputed_genes": [";".join(g) for g in self.imputed_genes],
            }
        )
        for name, values in self._columns(present_only=True).items():
            frame[name] = [";".join(v) if isinstance(v, list) else v for v in values]
        return frame

    def to_records(self) -> list[dict[str, Any]]:
        """One plain dict per sample (Python floats, strings and lists of strings)."""
        name = self.value_name
        records = [
            {
                "sample_id": sid,
                name: value,
                "call": call,
                "coverage": coverage,
                "warnings": warnings,
                "imputed_genes": imputed,
            }
            for sid, value, call, coverage, warnings, imputed in zip(
                self.sample_id,
                self.value.tolist(),
                self.call.tolist(),
                self.coverage.tolist(),
                self.warnings,
                self.imputed_genes,
                strict=True,
            )
        ]
        for key, values in self._columns(present_only=False).items():
            for record, value in zip(records, values, strict=True):
                record[key] = value
        return records


class ArrayScorer:
    """The per-request path of one fitted model on plain arrays.

    Parameters
    ----------
    model : NKResistanceModel
        A fitted model; use :data:`scorer_for` rather than building one per call.
    """

    def __init__(self, model: NKResistanceModel) -> None:
        self.model = model
        self.builder = model.feature_builder
        self.trees = model.boosted_trees
        self.coverage_column = self.builder.coverage_column

    def prepare(
        self,
        values: np.ndarray,
        samples: Sequence[str] | pd.Index,
        genes: Sequence[str],
        scale: ScaleChoice | None = None,
        str_labels: bool = False,
        model_genes_only: bool = False,
    ) -> PreparedExpression:
        """Validate, rescale and harmonize a plain array (n_samples, n_genes) with its sample
        IDs and gene identifiers; the same result as ``model.prepare`` of the frame.

        ``str_labels``: the labels are lists of ``str`` already; ``model_genes_only``: only
        the model's input genes are prepared (all that :meth:`gene_values` and the coverage
        read; ``keep`` of :func:`~nkpredict.data.expression.prepare_values`)."""
        return prepare_values(
            values,
            samples,
            genes,
            scale=scale or self.model.scale,
            str_labels=str_labels,
            keep=self.builder.genes_in_ if model_genes_only else None,
        )

    def gene_values(self, prepared: PreparedExpression) -> np.ndarray:
        """The model's input genes of a prepared input, shape (n_samples, n_genes_in).

        In the feature builder's gene order; NaN where a gene was not measured.
        """
        return self.builder.gene_values_of(prepared.values, prepared.genes)

    def features(self, gene_values: np.ndarray) -> np.ndarray:
        """Features of :meth:`gene_values` output, shape (n_samples, n_features)."""
        return self.builder.transform_values(gene_values)

    def coverage(self, features: np.ndarray) -> np.ndarray:
        """Fraction of the model's catalogue genes measured per sample, shape (n_samples,)."""
        return np.ascontiguousarray(features[:, self.coverage_column])

    def prepared_coverage(self, prepared: PreparedExpression) -> np.ndarray:
        """:meth:`coverage` read straight from a prepared input, shape (n_samples,).

        The same values, bit for bit, without building the samples x model-genes arrays: only
        the prepared columns that are catalogue genes of the model are read, so the cost
        follows the input, not ``n_samples x n_genes_in`` (a batch of nearly empty samples is
        refused without allocating per-sample model arrays).
        """
        model_genes = self.builder.model_genes_
        positions = prepared.genes.get_indexer(model_genes)
        present = positions[positions >= 0]
        measured = np.count_nonzero(~np.isnan(prepared.values[:, present]), axis=1)
        return measured / len(model_genes)

    def check_coverage(self, prepared: PreparedExpression, minimum: float) -> np.ndarray:
        """:meth:`prepared_coverage`, refusing samples that cover less than ``minimum``.

        Returns
        -------
        ndarray of float64, shape (n_samples,)

        Raises
        ------
        CoverageError
            Carrying the coverage of the samples below ``minimum`` and the model genes
            (``genes_in_``) that none of them measured.
        """
        coverage = self.prepared_coverage(prepared)
        below = np.flatnonzero(coverage < minimum)
        if not below.size:
            return coverage
        low = {prepared.sample_ids[i]: float(coverage[i]) for i in below.tolist()}
        genes_in = list(self.builder.genes_in_)
        positions = prepared.genes.get_indexer(genes_in)
        rows = prepared.values[below]
        measured = np.zeros(len(genes_in), dtype=bool)
        present = positions >= 0
        measured[present] = ~np.isnan(rows[:, positions[present]]).all(axis=0)
        missing = [gene for gene, seen in zip(genes_in, measured.tolist(), strict=True) if not seen]
        lowest = min(low, key=low.__getitem__)
        shown = ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise CoverageError(
            f"{len(low)} sample(s) cover less than {minimum:.0%} of the model's genes "
            f"(lowest: {lowest} at {low[lowest]:.0%}); missing: {shown}",
            coverage=low,
            missing_genes=missing,
            minimum=minimum,
        )

    def imputed(self, gene_values: np.ndarray) -> list[list[str]]:
        """The model genes not measured in each sample of :meth:`gene_values` output."""
        absent = np.isnan(gene_values)
        if not absent.any():
            return [[] for _ in range(gene_values.shape[0])]
        genes = self.builder.genes_in_
        return [[genes[j] for j in np.flatnonzero(row)] for row in absent]

    def missing(self, gene_values: np.ndarray) -> list[str]:
        """The model's genes measured in none of the samples of :meth:`gene_values` output."""
        return self.builder.missing_of(gene_values)

    def margins(self, features: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Raw model output of a feature matrix (n_samples, n_features), shape (n_samples,).

        The prior's margin plus the trees': up to :data:`COMPILED_MAX_ROWS` samples the trees
        are scored with the compiled trees (the same float32 margins as XGBoost, bit for bit),
        larger inputs by XGBoost.
        """
        values = np.asarray(features, dtype=np.float32)
        trees_margin: np.ndarray | None = None
        if self.trees.has_no_trees:
            trees_margin = self.trees.trees_margin(values)
        elif values.shape[0] <= COMPILED_MAX_ROWS:
            compiled = compiled_trees_for(self.trees.booster_)
            if compiled is not None:
                trees_margin = compiled.predict_margin(values)
        if trees_margin is None:
            trees_margin = self.trees.trees_margin(values)
        return self.trees.with_prior(trees_margin, values)

    def predictions(
        self,
        sample_id: list[str],
        features: np.ndarray,
        margin: np.ndarray,
        gene_values: np.ndarray,
    ) -> Predictions:
        """Per-sample values, calls and warnings from computed genes, features and margins.

        Classification calls are ``resistant``/``sensitive`` at the model's
        ``decision_threshold``; regression calls use the label definition's threshold when it
        has one (``n/a`` otherwise).
        """
        model = self.model
        if model.task == "classification":
            value = 1.0 / (1.0 + np.exp(-margin))
            resistant: np.ndarray | None = value >= model.decision_threshold
            name = "probability"
        else:
            value = margin
            resistant = self._regression_calls(margin)
            name = "score"
        coverage = self.coverage(features)
        domain = (
            None if model.domain is None else model.domain.assess(features, gene_values, coverage)
        )
        bins = None if domain is None else domain.lineage
        uncertainty = model.uncertainty
        calibrated, sets, interval = None, None, None
        if uncertainty is not None and model.task == "classification":
            calibrated = uncertainty.calibrate(margin)
            sets = uncertainty.conformal.sets(value, bins, model.decision_threshold)
        elif uncertainty is not None:
            interval = uncertainty.conformal.intervals(value, bins)
        if resistant is None:
            call = np.full(len(sample_id), "n/a", dtype=object)
        elif sets is not None:
            call = np.array([s[0] if len(s) == 1 else "uncertain" for s in sets], dtype=object)
        else:
            call = np.array(
                ["resistant" if r else "sensitive" for r in resistant.tolist()], dtype=object
            )
        imputed = self.imputed(gene_values)
        warnings = [
            [
                code
                for code, raised in (
                    ("low_coverage", c < LOW_COVERAGE_WARNING),
                    ("imputed_genes", g),
                )
                if raised
            ]
            for c, g in zip(coverage.tolist(), imputed, strict=True)
        ]
        return Predictions(
            sample_id,
            value,
            call,
            coverage,
            name,
            imputed,
            warnings,
            calibrated,
            sets,
            interval,
            None if domain is None else domain.out_of_domain,
            None if domain is None else domain.reasons,
            None if domain is None else domain.lineage,
        )

    def predict(self, prepared: PreparedExpression) -> Predictions:
        """:meth:`predictions` of a prepared input, every step on arrays."""
        genes = self.gene_values(prepared)
        features = self.features(genes)
        return self.predictions(prepared.sample_ids, features, self.margins(features), genes)

    def _regression_calls(self, score: np.ndarray) -> np.ndarray | None:
        definition = self.model.label_definition_
        if definition.threshold is None or definition.resistant_when is None:
            return None
        if definition.resistant_when == "above":
            return score > definition.threshold
        return score < definition.threshold


def _fitted_state(model: NKResistanceModel) -> Any:
    return model.pipeline_


scorer_for: PerObject[NKResistanceModel, ArrayScorer] = PerObject(ArrayScorer, state=_fitted_state)
"""The :class:`ArrayScorer` of a fitted model, built once per fitted state."""
