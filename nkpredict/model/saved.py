"""The schema of a saved model's ``model.json``: what :meth:`NKResistanceModel.load` accepts.

``model.json`` is read from directories and artifact stores that may hold anything, so it is
validated against a strict schema before any of it is used: every field of the format that
:meth:`~nkpredict.model.fitted.NKResistanceModel.to_dict` writes, with its type, no unknown
fields in the parts nkpredict interprets, option values from :mod:`nkpredict.vocabulary`, and
no coercion (``"n_rounds": "abc"`` or ``"task": "rce"`` is refused, not loaded silently).
Free-form parts (booster parameters, the training report, metadata) are checked to be JSON
objects. pydantic's JSON parser reads the text itself, with a nesting limit, so a document
nested thousands of levels deep is refused like any other invalid one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nkpredict.exceptions import ModelLoadError
from nkpredict.vocabulary import Scale, ScaleChoice, Task

__all__ = ["SavedModel", "validate_saved_model"]

_MAX_REASONS = 3


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SavedParams(_Strict):
    """The model's constructor arguments."""

    task: Task
    scale: ScaleChoice
    n_genome_genes: int = Field(ge=0)
    genome_alpha: float | None = Field(default=None, gt=0.0, le=1.0)
    booster: dict[str, Any]
    decision_threshold: float = Field(ge=0.0, le=1.0)


class SavedGeneSet(_Strict):
    """A user gene set scored as a pathway feature."""

    name: str
    genes: list[str]
    category: str = "user"
    description: str = ""
    reference: str = ""
    axis: str | None = None


class SavedBuilderParams(_Strict):
    """The feature builder's constructor arguments."""

    n_genome_genes: int = Field(ge=0)
    min_set_genes: int = Field(ge=0)
    genome_alpha: float | None = Field(default=None, gt=0.0, le=1.0)
    gene_sets: list[SavedGeneSet]


class SavedSpec(_Strict):
    """One feature: its genes, their weights and the units its attribution belongs to."""

    name: str
    kind: str
    genes: list[str]
    weights: list[float]
    units: dict[str, dict[str, float]]


class SavedFeatures(_Strict):
    """The fitted feature builder's state."""

    params: SavedBuilderParams
    catalog_version: str
    model_genes: list[str]
    genome_genes: list[str]
    absent_genes: list[str]
    median: list[float | None]
    mean: list[float | None]
    scale: list[float | None]
    specs: list[SavedSpec]


class SavedLabelDefinition(_Strict):
    """How training labels were defined."""

    column: str
    task: Task = "classification"
    threshold: float | None = None
    quantile: float | None = None
    resistant_when: Literal["above", "below"] | None = None
    direction_given: bool = False


class SavedPrior(_Strict):
    """The biological prior (format 2): standardization and linear coefficients."""

    task: Task
    penalty: float = Field(gt=0)
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float


class SavedGeneReference(_Strict):
    """Per-gene training percentiles and the sensitive reference (absent in older models)."""

    genes: list[str]
    percentiles: list[float]
    quantiles: list[list[float | None]]
    sensitive_median: list[float | None]
    n_samples: int = Field(ge=0)
    n_sensitive: int = Field(ge=0)
    sensitive_definition: str


class SavedModel(_Strict):
    """The whole ``model.json`` (format 2; format 1 has no ``prior``; models saved before
    the gene reference have no ``gene_reference``)."""

    format_version: Literal[1, 2]
    nkpredict_version: str
    params: SavedParams
    n_rounds: int = Field(ge=0)
    prior: SavedPrior | None = None
    tuned_params: dict[str, Any] | None = None
    features: SavedFeatures
    feature_names: list[str]
    training_scale: Scale
    training_report: dict[str, Any]
    label_definition: SavedLabelDefinition
    gene_reference: SavedGeneReference | None = None
    domain: dict[str, Any] | None = None
    uncertainty: dict[str, Any] | None = None
    metadata: dict[str, Any]


def _reasons(exc: ValidationError) -> str:
    errors = exc.errors()
    shown = [
        f"{'.'.join(str(p) for p in e['loc']) or '<document>'}: {e['msg']}"
        for e in errors[:_MAX_REASONS]
    ]
    more = f" (and {len(errors) - _MAX_REASONS} more)" if len(errors) > _MAX_REASONS else ""
    return "; ".join(shown) + more


def validate_saved_model(text: str | bytes, where: str) -> SavedModel:
    """Parse and validate the text of a ``model.json``.

    Parameters
    ----------
    text : str or bytes
        The file's content.
    where : str
        The file, for the message.

    Returns
    -------
    SavedModel

    Raises
    ------
    ModelLoadError
        Invalid JSON, nesting beyond pydantic's limit, a missing or unknown field, a value
        of the wrong type; one line naming up to three offending fields.
    """
    try:
        return SavedModel.model_validate_json(text)
    except ValidationError as exc:
        raise ModelLoadError(f"{where} is not a valid nkpredict model: {_reasons(exc)}") from None
