"""The fitted nkpredict model: harmonization policy + feature builder + boosted trees.

One :class:`NKResistanceModel` object is what is cross-validated, saved, registered, served
and explained, so training and serving cannot drift apart. It takes *raw* expression
(any supported gene identifiers and scale), prepares it with
:func:`nkpredict.data.expression.prepare_expression`, builds features with
:class:`nkpredict.features.builder.NKFeatureBuilder` and scores them with
:class:`nkpredict.model.boosting.BoostedTrees`.

Saved models are a directory holding ``booster.ubj`` (XGBoost's binary JSON) and
``model.json`` (parameters, fitted feature state, label definition, metadata): nothing in it
can execute code when loaded.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from nkpredict import __version__
from nkpredict.catalog import GeneSet
from nkpredict.data.expression import PreparedExpression, prepare_expression
from nkpredict.data.labels import LabelDefinition
from nkpredict.exceptions import CoverageError, ModelLoadError, NotFittedError
from nkpredict.fast.scoring import ArrayScorer, Predictions, scorer_for
from nkpredict.features.builder import COVERAGE_FEATURE, NKFeatureBuilder
from nkpredict.io import follow_umask
from nkpredict.model.boosting import BoostedTrees
from nkpredict.model.prior import KnowledgePrior
from nkpredict.model.saved import validate_saved_model
from nkpredict.vocabulary import ScaleChoice, Task

__all__ = [
    "BOOSTER_FILE",
    "FORMAT_VERSION",
    "MODEL_FILE",
    "READABLE_FORMATS",
    "NKResistanceModel",
]

logger = logging.getLogger(__name__)

MODEL_FILE = "model.json"
BOOSTER_FILE = "booster.ubj"
FORMAT_VERSION = 2
"""The format :meth:`NKResistanceModel.save` writes (2: with the biological prior)."""
READABLE_FORMATS = (1, 2)
"""Formats :meth:`NKResistanceModel.load` reads (1: boosted trees without a prior)."""


class NKResistanceModel(BaseEstimator):
    """Predict NK resistance (probability or readout) from raw expression.

    Parameters
    ----------
    task : {"classification", "regression"}
    scale : {"auto", "counts", "tpm", "log"}
        Scale of the input expression; ``auto`` detects it per call.
    gene_sets : sequence of GeneSet, optional
        Extra user gene sets scored as pathway features.
    n_genome_genes : int
        Genome-wide genes selected inside ``fit`` (0 = only catalogue features).
    booster : dict, optional
        Parameters for :class:`~nkpredict.model.boosting.BoostedTrees` (``task`` is set here).
    decision_threshold : float
        Probability at or above which a sample is called resistant.
    """

    def __init__(
        self,
        task: Task = "classification",
        scale: ScaleChoice = "auto",
        gene_sets: tuple[GeneSet, ...] | None = None,
        n_genome_genes: int = 0,
        booster: dict[str, Any] | None = None,
        decision_threshold: float = 0.5,
    ) -> None:
        self.task = task
        self.scale = scale
        self.gene_sets = gene_sets
        self.n_genome_genes = n_genome_genes
        self.booster = booster
        self.decision_threshold = decision_threshold

    # ------------------------------------------------------------------ building blocks
    def core(self) -> Pipeline:
        """Unfitted feature builder + boosted trees, fitted on prepared (harmonized) matrices.

        Cross-validation fits exactly this per fold; :meth:`fit` fits it on all samples.
        """
        return Pipeline(
            [
                (
                    "features",
                    NKFeatureBuilder(gene_sets=self.gene_sets, n_genome_genes=self.n_genome_genes),
                ),
                ("booster", BoostedTrees(task=self.task, **(self.booster or {}))),
            ]
        )

    def prepare(self, X: pd.DataFrame, scale: ScaleChoice | None = None) -> PreparedExpression:
        """Validate, rescale to log2(TPM+1) and harmonize gene identifiers of ``X``.

        ``scale`` overrides the model's :attr:`scale` setting for this call.
        """
        return prepare_expression(X, scale=scale or self.scale)

    # ------------------------------------------------------------------ fit / predict
    def fit(
        self, X: pd.DataFrame, y: Any, label_definition: LabelDefinition | None = None
    ) -> NKResistanceModel:
        """Fit on raw expression ``X`` (n_samples, n_genes) and target ``y`` (n_samples,)."""
        prepared = self.prepare(X)
        return self.fit_prepared(prepared, y, label_definition)

    def fit_prepared(
        self,
        prepared: PreparedExpression,
        y: Any,
        label_definition: LabelDefinition | None = None,
        groups: Any = None,
    ) -> NKResistanceModel:
        """Fit on an already prepared matrix (avoids preparing the same data twice).

        ``groups`` (n_samples,), optional: group of each sample (cell line, patient); the
        inner split of early stopping and tuning then never splits a group.
        """
        fit_params = {} if groups is None else {"booster__groups": np.asarray(groups, dtype=object)}
        self.pipeline_ = self.core().fit(prepared.matrix, np.asarray(y), **fit_params)
        self.training_scale_ = prepared.scale
        self.training_report_ = prepared.report.to_dict()
        self.label_definition_ = label_definition or LabelDefinition(
            column="target", task=self.task
        )
        self.metadata_: dict[str, Any] = {}
        return self

    def _pipeline(self) -> Pipeline:
        if not hasattr(self, "pipeline_"):
            raise NotFittedError("NKResistanceModel is not fitted")
        return self.pipeline_

    @property
    def feature_builder(self) -> NKFeatureBuilder:
        """The fitted feature builder."""
        # steps[0], not named_steps["features"]: named_steps builds a new Bunch on every call
        builder: NKFeatureBuilder = self._pipeline().steps[0][1]
        return builder

    @property
    def boosted_trees(self) -> BoostedTrees:
        """The fitted boosted trees."""
        trees: BoostedTrees = self._pipeline().steps[-1][1]
        return trees

    @property
    def scorer(self) -> ArrayScorer:
        """The array-level scoring of this fitted model (what serving and streaming call)."""
        self._pipeline()
        return scorer_for(self)

    def features(self, prepared: PreparedExpression) -> pd.DataFrame:
        """Feature matrix of a prepared input, shape (n_samples, n_features)."""
        return self.feature_builder.transform(prepared.matrix)

    def check_coverage(self, prepared: PreparedExpression, minimum: float) -> pd.Series:
        """Per-sample coverage of the model's genes, shape (n_samples,).

        Raises
        ------
        CoverageError
            Some samples cover less than ``minimum``; it carries their coverage and the
            genes they miss.
        """
        genes = self.scorer.gene_values(prepared)
        values = self.feature_builder.coverage_of(genes)
        coverage = pd.Series(values, index=prepared.matrix.index, name=COVERAGE_FEATURE)
        below = values < minimum
        if below.any():
            low = coverage[below]
            missing = self.feature_builder.missing_of(genes[below])
            shown = ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
            raise CoverageError(
                f"{len(low)} sample(s) cover less than {minimum:.0%} of the model's genes "
                f"(lowest: {low.idxmin()} at {low.min():.0%}); missing: {shown}",
                coverage={str(k): float(v) for k, v in low.items()},
                missing_genes=missing,
                minimum=minimum,
            )
        return coverage

    def predict_margin(self, X: pd.DataFrame) -> np.ndarray:
        """Raw model output (log-odds or score), shape (n_samples,)."""
        scorer = self.scorer
        return scorer.margins(scorer.features(scorer.gene_values(self.prepare(X))))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probabilities (n_samples, 2); column 1 is "resistant"."""
        return self.boosted_trees.predict_proba(self.features(self.prepare(X)))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Calls (0/1) for classification, predicted readouts for regression."""
        table = self.predict_table(self.prepare(X))
        if self.task == "classification":
            return (table["call"] == "resistant").to_numpy(dtype=int)
        return table["score"].to_numpy()

    def predict_table(self, prepared: PreparedExpression) -> pd.DataFrame:
        """One row per sample: ``sample_id``, ``probability`` or ``score``, ``call``, coverage.

        Classification calls are ``resistant``/``sensitive`` at :attr:`decision_threshold`;
        regression calls use the label definition's threshold when it has one.
        """
        return self.predictions(prepared).to_frame()

    def predictions(self, prepared: PreparedExpression) -> Predictions:
        """What :meth:`predict_table` holds, as arrays (no DataFrame built)."""
        return self.scorer.predict(prepared)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """Everything but the booster, as plain JSON-serialisable data."""
        trees = self.boosted_trees
        return {
            "format_version": FORMAT_VERSION,
            "nkpredict_version": __version__,
            "params": {
                "task": self.task,
                "scale": self.scale,
                "n_genome_genes": self.n_genome_genes,
                "booster": self.booster or {},
                "decision_threshold": self.decision_threshold,
            },
            "n_rounds": trees.n_rounds_,
            "prior": None if trees.prior_ is None else trees.prior_.to_dict(),
            "tuned_params": getattr(trees, "tuned_params_", None),
            "features": self.feature_builder.to_dict(),
            "feature_names": [str(n) for n in self.feature_builder.get_feature_names_out()],
            "training_scale": self.training_scale_,
            "training_report": self.training_report_,
            "label_definition": self.label_definition_.to_dict(),
            "metadata": self.metadata_,
        }

    def save(self, path: str | Path) -> Path:
        """Write the model directory atomically (a temporary directory renamed into place).

        An existing directory at ``path`` is replaced only once the new one is complete.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        follow_umask(staging)  # mkdtemp makes it 0700: colleagues could not read the model
        try:
            self.boosted_trees.save(str(staging / BOOSTER_FILE))
            (staging / MODEL_FILE).write_text(json.dumps(self.to_dict(), indent=1))
            if target.exists():
                backup = target.with_name(f".{target.name}.old")
                os.replace(target, backup)
                os.replace(staging, target)
                shutil.rmtree(backup, ignore_errors=True)
            else:
                os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    @classmethod
    def load(cls, path: str | Path) -> NKResistanceModel:
        """Load a directory written by :meth:`save`.

        ``model.json`` is checked against its schema (:mod:`nkpredict.model.saved`) before
        anything is built from it, and the booster must read the features the model makes.

        Raises
        ------
        ModelLoadError
            A missing or unreadable file, a ``model.json`` that fails its schema (wrong
            types, unknown options, nesting too deep), an unreadable booster, or a booster
            expecting another number of features; always one line.
        """
        directory = Path(path)
        model_file = directory / MODEL_FILE
        try:
            text = model_file.read_bytes()
        except FileNotFoundError:
            raise ModelLoadError(
                f"no nkpredict model at {directory} ({MODEL_FILE} missing)"
            ) from None
        except OSError as exc:
            raise ModelLoadError(f"cannot read {model_file}: {exc}") from exc
        if b'"format_version"' in text:
            try:
                version = json.loads(text).get("format_version")
            except (ValueError, RecursionError, AttributeError):
                version = FORMAT_VERSION  # let the schema say what is wrong
            if version not in READABLE_FORMATS:
                raise ModelLoadError(
                    f"{directory} has model format {version!r}; this nkpredict reads "
                    f"formats {', '.join(map(str, READABLE_FORMATS))}"
                )
        saved = validate_saved_model(text, str(model_file))
        booster_path = directory / BOOSTER_FILE
        if not booster_path.is_file():
            raise ModelLoadError(f"no booster at {booster_path}")
        data = saved.model_dump()
        params = data["params"]
        model = cls(**params)
        features = NKFeatureBuilder.from_dict(data["features"])
        model.gene_sets = tuple(features.gene_sets) if features.gene_sets else None
        prior = None if data["prior"] is None else KnowledgePrior.from_dict(data["prior"])
        trees = BoostedTrees.load(
            str(booster_path),
            {"task": params["task"], **params["booster"]},
            data["n_rounds"],
            prior,
        )
        if prior is not None and prior.coef_.shape[0] != len(saved.feature_names):
            raise ModelLoadError(
                f"the prior in {MODEL_FILE} has {prior.coef_.shape[0]} coefficients for "
                f"{len(saved.feature_names)} features"
            )
        expected = len(saved.feature_names)
        if trees.booster_.num_features() != expected:
            raise ModelLoadError(
                f"{booster_path} expects {trees.booster_.num_features()} features but "
                f"{MODEL_FILE} describes {expected}"
            )
        model.pipeline_ = Pipeline([("features", features), ("booster", trees)])
        model.training_scale_ = data["training_scale"]
        model.training_report_ = data["training_report"]
        model.label_definition_ = LabelDefinition.from_dict(data["label_definition"])
        model.metadata_ = data["metadata"]
        return model
