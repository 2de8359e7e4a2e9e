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
from collections.abc import Sequence
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
from nkpredict.domain import DomainModel
from nkpredict.estimator import (
    TaskRoleMixin,
    binary_target,
    check_fitted,
    classification_only,
    describe_input,
)
from nkpredict.exceptions import InputError, LabelError, ModelLoadError
from nkpredict.fast.scoring import ArrayScorer, Predictions, scorer_for
from nkpredict.features.builder import COVERAGE_FEATURE, NKFeatureBuilder
from nkpredict.features.genome import DEFAULT_GENOME_ALPHA, DEFAULT_GENOME_GENES
from nkpredict.io import follow_umask
from nkpredict.model.boosting import BoostedTrees
from nkpredict.model.prior import KnowledgePrior
from nkpredict.model.reference import GeneReference, sensitive_mask
from nkpredict.model.saved import validate_saved_model
from nkpredict.uncertainty.conformal import DEFAULT_LEVEL
from nkpredict.uncertainty.model import UncertaintyModel
from nkpredict.vocabulary import CalibrationMethod, ScaleChoice, Task

__all__ = [
    "BOOSTER_FILE",
    "FORMAT_VERSION",
    "MEMBERS_DIR",
    "MODEL_FILE",
    "READABLE_FORMATS",
    "NKResistanceModel",
]

logger = logging.getLogger(__name__)

MODEL_FILE = "model.json"
BOOSTER_FILE = "booster.ubj"
MEMBERS_DIR = "members"
"""Sub-directory of a saved model holding its cross-validation members (``members/0`` ...)."""
FORMAT_VERSION = 2
"""The format :meth:`NKResistanceModel.save` writes (2: with the biological prior)."""
READABLE_FORMATS = (1, 2)
"""Formats :meth:`NKResistanceModel.load` reads (1: boosted trees without a prior)."""


class NKResistanceModel(TaskRoleMixin, BaseEstimator):
    """Predict NK resistance (probability or readout) from raw expression.

    A binary classifier or a regressor by ``task`` (declared through ``__sklearn_tags__``)
    that takes a samples x genes DataFrame; classification labels are 0/1 (1 = resistant).

    Parameters
    ----------
    task : {"classification", "regression"}
    scale : {"auto", "counts", "tpm", "log"}
        Scale of the input expression; ``auto`` detects it per call.
    gene_sets : sequence of GeneSet, optional
        Extra user gene sets scored as pathway features.
    n_genome_genes : int
        Most genome-wide genes selected inside ``fit`` (0 = only catalogue features); see
        :mod:`nkpredict.features.genome`.
    genome_alpha : float or None
        Family-wise level of the residual screen that genome-wide genes must pass (a gene
        joins only when it is associated with what the catalogue features leave unexplained);
        ``None``: exactly the ``n_genome_genes`` genes most correlated with the label.
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
        n_genome_genes: int = DEFAULT_GENOME_GENES,
        genome_alpha: float | None = DEFAULT_GENOME_ALPHA,
        booster: dict[str, Any] | None = None,
        decision_threshold: float = 0.5,
    ) -> None:
        self.task = task
        self.scale = scale
        self.gene_sets = gene_sets
        self.n_genome_genes = n_genome_genes
        self.genome_alpha = genome_alpha
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
                    NKFeatureBuilder(
                        gene_sets=self.gene_sets,
                        n_genome_genes=self.n_genome_genes,
                        genome_alpha=self.genome_alpha,
                    ),
                ),
                ("booster", BoostedTrees(task=self.task, **(self.booster or {}))),
            ]
        )

    def prepare(self, X: pd.DataFrame, scale: ScaleChoice | None = None) -> PreparedExpression:
        """Validate, rescale to log2(TPM+1) and harmonize gene identifiers of ``X``.

        ``scale`` overrides the model's :attr:`scale` setting for this call.
        """
        if not isinstance(X, pd.DataFrame):
            raise InputError(
                "NKResistanceModel takes a samples x genes DataFrame with gene identifiers as "
                f"columns; got {describe_input('X', X)}"
            )
        return prepare_expression(X, scale=scale or self.scale)

    # ------------------------------------------------------------------ fit / predict
    def fit(
        self,
        X: pd.DataFrame,
        y: Any,
        label_definition: LabelDefinition | None = None,
        lineages: Any = None,
    ) -> NKResistanceModel:
        """Fit on raw expression ``X`` (n_samples, n_genes) and target ``y`` (n_samples,).

        ``lineages`` (n_samples,), optional: each sample's lineage, which the domain checks
        learn to recognise (:mod:`nkpredict.domain`).
        """
        self._target(y)  # a bad target is named before the expression is read
        prepared = self.prepare(X)
        return self.fit_prepared(prepared, y, label_definition, lineages=lineages)

    def fit_prepared(
        self,
        prepared: PreparedExpression,
        y: Any,
        label_definition: LabelDefinition | None = None,
        groups: Any = None,
        lineages: Any = None,
    ) -> NKResistanceModel:
        """Fit on an already prepared matrix (avoids preparing the same data twice).

        ``groups`` (n_samples,), optional: group of each sample (cell line, patient); the
        inner split of early stopping and tuning then never splits a group. ``lineages``
        (n_samples,), optional: each sample's lineage, for the domain checks. The domain
        checks (:attr:`domain_`) are fitted here; the uncertainty (:attr:`uncertainty_`)
        needs out-of-fold predictions and is fitted by :meth:`fit_uncertainty`.
        """
        fit_params = {} if groups is None else {"booster__groups": np.asarray(groups, dtype=object)}
        self.pipeline_ = self.core().fit(prepared.matrix, self._target(y), **fit_params)
        self.training_scale_ = prepared.scale
        self.training_report_ = prepared.report.to_dict()
        self.label_definition_ = label_definition or LabelDefinition(
            column="target", task=self.task
        )
        builder = self.feature_builder
        self.gene_reference_: GeneReference | None = GeneReference.fit(
            builder.genes_in_,
            builder.gene_values(prepared.matrix),
            sensitive_mask(y, self.label_definition_),
        )
        self.metadata_: dict[str, Any] = {}
        scorer = self.scorer
        genes = scorer.gene_values(prepared)
        self.domain_: DomainModel | None = DomainModel.fit(
            scorer.features(genes),
            [str(n) for n in builder.get_feature_names_out()],
            genes,
            None if lineages is None else [str(v) for v in np.asarray(lineages, dtype=object)],
            None if groups is None else list(np.asarray(groups, dtype=object)),
        )
        self.uncertainty_: UncertaintyModel | None = None
        return self

    def fit_uncertainty(
        self,
        predicted: Any,
        y: Any,
        lineages: Any = None,
        level: float = DEFAULT_LEVEL,
        method: CalibrationMethod = "auto",
        samples: Any = None,
    ) -> NKResistanceModel:
        """Calibrate probabilities and conformal sets on out-of-fold predictions.

        Parameters
        ----------
        predicted : array-like, shape (n_predictions,)
            Out-of-fold P(resistant) or readouts of the training samples from the
            cross-validation of this model's configuration: one per sample and CV repeat
            (single fold models, like the final model, not their average).
        y : array-like, shape (n_predictions,)
            Their labels.
        lineages : array-like, optional
            Their lineages: the Mondrian bins of the conformal sets.
        level : float
            Level of the prediction sets (0.9: the true label is in 90% of sets).
        method : {"auto", "platt", "isotonic", "none"}
            Calibration method.
        samples : array-like, optional
            The sample of each prediction (kept together when the method is chosen).
        """
        self._pipeline()
        self.uncertainty_ = UncertaintyModel.fit(
            self.task,
            np.asarray(predicted, dtype=np.float64),
            np.asarray(y, dtype=np.float64),
            None if lineages is None else [str(v) for v in np.asarray(lineages, dtype=object)],
            level,
            method,
            groups=None if samples is None else list(np.asarray(samples, dtype=object)),
        )
        return self

    def _target(self, y: Any) -> np.ndarray:
        """``y`` as an array: 0/1 labels (classification; saved models assume them) or a
        readout."""
        if y is None:
            raise LabelError("NKResistanceModel requires y to be passed, but the target y is None")
        target = np.asarray(y)
        if self.task == "classification":
            classes, _ = binary_target(self, target)
            if not set(classes.tolist()) <= {0, 1}:
                raise LabelError(
                    f"NKResistanceModel takes 0/1 labels (1 = resistant); got classes "
                    f"{classes.tolist()} (nkpredict.data.labels turns readouts into labels)"
                )
        return target

    def _pipeline(self) -> Pipeline:
        check_fitted(self, "pipeline_")
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
        values = self.scorer.check_coverage(prepared, minimum)
        return pd.Series(values, index=prepared.matrix.index, name=COVERAGE_FEATURE)

    def predict_margin(self, X: pd.DataFrame) -> np.ndarray:
        """Raw model output (log-odds or score), shape (n_samples,)."""
        scorer = self.scorer
        return scorer.margins(scorer.features(scorer.gene_values(self.prepare(X))))

    @classification_only
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probabilities (n_samples, 2); column 1 is "resistant"."""
        return self.boosted_trees.predict_proba(self.features(self.prepare(X)))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Calls (0/1) for classification, predicted readouts for regression."""
        self._pipeline()
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
                "genome_alpha": self.genome_alpha,
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
            "gene_reference": (
                None if self.gene_reference_ is None else self.gene_reference_.to_dict()
            ),
            "domain": None if self.domain is None else self.domain.to_dict(),
            "uncertainty": None if self.uncertainty is None else self.uncertainty.to_dict(),
            "metadata": self.metadata_,
        }

    @property
    def domain(self) -> DomainModel | None:
        """The fitted domain checks (None for models saved before they existed)."""
        self._pipeline()
        return getattr(self, "domain_", None)

    @property
    def members(self) -> tuple[NKResistanceModel, ...]:
        """The cross-validation fold models kept with this model (empty when none): the
        spread of a what-if change over them says how much it depends on the training
        samples."""
        return tuple(getattr(self, "fold_models_", ()))

    def keep_members(self, pipelines: Sequence[Pipeline]) -> NKResistanceModel:
        """Keep fitted fold pipelines (:meth:`core` fitted on CV training folds, e.g.
        ``CVResult.models``) as :attr:`members`: models that score like this one."""
        self._pipeline()
        self.fold_models_ = tuple(self._member(pipeline) for pipeline in pipelines)
        return self

    def _member(self, pipeline: Pipeline) -> NKResistanceModel:
        member = NKResistanceModel(**self.get_params())
        member.pipeline_ = pipeline
        member.training_scale_ = self.training_scale_
        member.training_report_ = {}
        member.label_definition_ = self.label_definition_
        member.gene_reference_ = None
        member.domain_, member.uncertainty_ = None, None
        member.metadata_ = {"member": True}
        return member

    @property
    def uncertainty(self) -> UncertaintyModel | None:
        """Calibration and conformal sets (None until :meth:`fit_uncertainty`)."""
        self._pipeline()
        return getattr(self, "uncertainty_", None)

    def _write(self, directory: Path) -> None:
        """The booster and ``model.json`` into ``directory`` (created)."""
        directory.mkdir(parents=True, exist_ok=True)
        self.boosted_trees.save(str(directory / BOOSTER_FILE))
        (directory / MODEL_FILE).write_text(json.dumps(self.to_dict(), indent=1))

    def save(self, path: str | Path) -> Path:
        """Write the model directory atomically (a temporary directory renamed into place).

        An existing directory at ``path`` is replaced only once the new one is complete. The
        cross-validation members (:attr:`members`) go to ``members/<i>/``, each a model
        directory of its own.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        follow_umask(staging)  # mkdtemp makes it 0700: colleagues could not read the model
        try:
            self._write(staging)
            for i, member in enumerate(self.members):
                member._write(staging / MEMBERS_DIR / str(i))
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
            feature_names=saved.feature_names,
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
        model.gene_reference_ = _gene_reference(data["gene_reference"], features)
        model.domain_, model.uncertainty_ = _fitted_parts(data)
        members = directory / MEMBERS_DIR
        if members.is_dir():
            found = sorted(
                (p for p in members.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
            )
            model.fold_models_ = tuple(cls.load(p) for p in found)
        model.metadata_ = data["metadata"]
        return model


def _fitted_parts(data: dict[str, Any]) -> tuple[DomainModel | None, UncertaintyModel | None]:
    """The saved domain checks and uncertainty (None in models saved before them).

    Raises
    ------
    ModelLoadError
        One of them is incomplete or malformed.
    """
    try:
        domain = None if data["domain"] is None else DomainModel.from_dict(data["domain"])
        uncertainty = (
            None if data["uncertainty"] is None else UncertaintyModel.from_dict(data["uncertainty"])
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{MODEL_FILE}: malformed domain or uncertainty ({exc!r})") from None
    return domain, uncertainty


def _gene_reference(
    data: dict[str, Any] | None, features: NKFeatureBuilder
) -> GeneReference | None:
    """The saved gene reference (``None`` in models saved before it existed).

    Raises
    ------
    ModelLoadError
        It does not describe the genes the feature builder reads.
    """
    if data is None:
        return None
    try:
        reference = GeneReference.from_dict(data)
    except InputError as exc:
        raise ModelLoadError(f"{MODEL_FILE}: {exc}") from None
    if reference.genes != tuple(features.genes_in_):
        raise ModelLoadError(
            f"{MODEL_FILE}: the gene reference describes {len(reference.genes)} genes, not the "
            f"{len(features.genes_in_)} the features read"
        )
    return reference
