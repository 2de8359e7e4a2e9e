"""Every option type of the project, defined once, with one validator.

The command line offers these values as Typer choices, the service declares them in its pydantic
models, and the library checks them with :func:`check_choice` where a caller passes a plain string
(one helper, one exception type: :class:`~nkpredict.exceptions.InputError`). No other module spells
these values out.
"""

from __future__ import annotations

from typing import Any, Final, Literal, TypeVar, get_args

from nkpredict.exceptions import InputError

__all__ = [
    "AGGREGATE_LEVELS",
    "AUC_METHODS",
    "CALIBRATION_METHODS",
    "DIRECTIONS",
    "DOMAIN_REASONS",
    "ENGINES",
    "EXPLAIN_METHODS",
    "INTERVENTIONS",
    "LABEL_FORMATS",
    "LEVELS",
    "ORIENTATIONS",
    "REFERENCE_POINTS",
    "SCALES",
    "SCALE_CHOICES",
    "SCENARIOS",
    "TASKS",
    "AggregateLevel",
    "AucMethod",
    "CalibrationMethod",
    "Direction",
    "DomainReason",
    "Engine",
    "ExplainMethod",
    "InterventionName",
    "LabelFormat",
    "Level",
    "LevelChoice",
    "Orientation",
    "ReferencePoint",
    "Scale",
    "ScaleChoice",
    "Scenario",
    "Task",
    "check_choice",
    "choices",
]

Scale = Literal["counts", "tpm", "log"]
"""A detected or declared expression scale: raw counts, TPM/CPM, or log2(x + 1) values."""
ScaleChoice = Literal["auto", "counts", "tpm", "log"]
"""A scale a user may ask for; ``auto`` detects it from the values."""
Orientation = Literal["auto", "samples", "genes"]
"""What the rows of an expression file are; ``auto`` decides from how gene-like the labels are."""
Task = Literal["classification", "regression"]
"""Resistant/sensitive calls, or a continuous readout."""
Direction = Literal["above", "below"]
"""Which side of a readout's cut is called resistant."""
AggregateLevel = Literal["gene", "axis", "pathway"]
"""The biological levels that features and attributions are summed to."""
Level = Literal["feature", "gene", "axis", "pathway"]
"""An explanation level: the model's own features, or one of the aggregate levels."""
LevelChoice = Literal["all", "feature", "gene", "axis", "pathway"]
"""An explanation level a user may ask for; ``all`` means every aggregate level."""
ExplainMethod = Literal["auto", "compiled", "native", "shap"]
"""How TreeSHAP values are computed: compiled tables, XGBoost itself, or the shap package."""
Engine = Literal["local", "dask"]
"""Where training and scoring run: this process, or a Dask cluster."""
Scenario = Literal[
    "additive",
    "lineage-restricted",
    "saturating",
    "interactions",
    "cnv",
    "off-catalogue",
    "confounded",
    "platform-shift",
]
"""A simulated truth (``nkpredict simulate --scenario``): :mod:`nkpredict.simulate.scenarios`."""
AucMethod = Literal["dufva2023", "log2-killing"]
"""How an NK-killing curve becomes one number: Dufva et al. 2023's ``auc_norm`` (area under
% viability over linear E:T with the control at E:T 0, divided by max E:T x 100; high =
resistant), or the project's ``killing_auc`` (area under the killed fraction over log2 E:T;
high = killed)."""
LabelFormat = Literal[
    "auto",
    "table",
    "nk-prism",
    "nk-prism-auc",
    "nk-prism-replicates",
    "dufva-s5a",
    "dufva-s5b",
]
"""The layout of a labels file: ``auto`` detects it from the columns; ``table`` is one row per
sample with an id column; the others are the published files of Dufva et al. 2023
(``NK_PRISM_heme_pctviability.txt``, ``..._auc_norm.txt``, ``..._biologicalreplicates.txt``,
supplementary tables S5A and S5B)."""

CalibrationMethod = Literal["auto", "platt", "isotonic", "none"]
"""How out-of-fold log-odds become calibrated probabilities (:mod:`nkpredict.uncertainty`):
``auto`` keeps whichever of Platt scaling and isotonic regression has the lower
cross-validated log loss."""
DomainReason = Literal[
    "unseen_lineage",
    "ambiguous_lineage",
    "feature_range",
    "distance",
    "low_coverage",
    "platform",
]
"""Why a sample is out of the training domain (:mod:`nkpredict.domain`)."""

InterventionName = Literal[
    "nkg2a_blockade",
    "b7h6_restoration",
    "ifng_pathway_loss",
    "tigit_blockade",
    "shedding_block",
]
"""A built-in what-if intervention on the expression profile
(:mod:`nkpredict.whatif.interventions`): an expression counterfactual, not pharmacology."""
ReferencePoint = Literal["sensitive", "median"]
"""A training reference a what-if target may name: the gene's median among the training samples
labelled sensitive, or its median over the whole training cohort."""

SCALES: Final[tuple[Scale, ...]] = get_args(Scale)
SCALE_CHOICES: Final[tuple[ScaleChoice, ...]] = get_args(ScaleChoice)
ORIENTATIONS: Final[tuple[Orientation, ...]] = get_args(Orientation)
TASKS: Final[tuple[Task, ...]] = get_args(Task)
DIRECTIONS: Final[tuple[Direction, ...]] = get_args(Direction)
AGGREGATE_LEVELS: Final[tuple[AggregateLevel, ...]] = get_args(AggregateLevel)
LEVELS: Final[tuple[Level, ...]] = get_args(Level)
EXPLAIN_METHODS: Final[tuple[ExplainMethod, ...]] = get_args(ExplainMethod)
ENGINES: Final[tuple[Engine, ...]] = get_args(Engine)
SCENARIOS: Final[tuple[Scenario, ...]] = get_args(Scenario)
AUC_METHODS: Final[tuple[AucMethod, ...]] = get_args(AucMethod)
LABEL_FORMATS: Final[tuple[LabelFormat, ...]] = get_args(LabelFormat)
INTERVENTIONS: Final[tuple[InterventionName, ...]] = get_args(InterventionName)
REFERENCE_POINTS: Final[tuple[ReferencePoint, ...]] = get_args(ReferencePoint)
CALIBRATION_METHODS: Final[tuple[CalibrationMethod, ...]] = get_args(CalibrationMethod)
DOMAIN_REASONS: Final[tuple[DomainReason, ...]] = get_args(DomainReason)

OptionT = TypeVar("OptionT", bound=str)


def choices(option: Any) -> tuple[str, ...]:
    """The values of one option type (a ``Literal`` defined in this module)."""
    return tuple(get_args(option))


def check_choice(value: object, allowed: tuple[OptionT, ...], name: str) -> OptionT:
    """Return ``value`` when it is one of ``allowed``; raise :class:`InputError` otherwise.

    Parameters
    ----------
    value
        What the caller passed.
    allowed
        The option's values, e.g. :data:`SCALE_CHOICES`.
    name
        The option's name as the user knows it, used in the message.
    """
    if isinstance(value, str) and value in allowed:
        return value
    raise InputError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
