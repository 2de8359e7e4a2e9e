"""Request and response models, and the one-pass parser of prediction request bodies.

``/v1/predict`` and ``/v1/explain`` parse their JSON body themselves (:func:`parse_samples_body`)
instead of letting FastAPI validate it into pydantic models:

- duplicated keys must be detected (``json.loads`` keeps the last one silently), which needs
  ``object_pairs_hook``;
- the samples go straight from the parsed JSON into one float64 array and one DataFrame,
  without building a pydantic object per sample (the slow part for batches).

The pydantic request models below describe the same bodies for the OpenAPI document and
validate the options (everything but ``samples``).

Sample values
-------------
Numbers (JSON integers or floats) on any scale the model accepts; ``null`` means "not
measured" (the same as leaving the gene out). Strings, booleans, lists, objects, ``NaN``,
``Infinity`` and numbers beyond the float range are refused (422).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import chain
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
import orjson
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nkpredict.catalog import load_catalog
from service.errors import ServiceError

logger = logging.getLogger(__name__)

ScaleName = Literal["auto", "counts", "tpm", "log"]
LevelOption = Literal["all", "feature", "gene", "axis", "pathway"]
OTHER_UNIT = "<other>"
"""Key under which /v1/explain sums the attributions of the units it does not list."""
DEFAULT_LEVELS: tuple[Literal["gene", "axis", "pathway"], ...] = ("gene", "axis", "pathway")
_ALLOWED_VALUE_TYPES = frozenset({int, float, type(None)})


# --------------------------------------------------------------------------- examples


@lru_cache(maxsize=1)
def example_samples() -> dict[str, dict[str, float]]:
    """Two samples over every NK catalogue gene, log2(TPM+1) values (OpenAPI examples).

    The genes are the catalogue's, so the example covers a model trained on simulated or real
    data fully; one sample has low NCR3LG1 (B7-H6) and high HLA-E (resistant-looking), the
    other the opposite.
    """
    genes = list(load_catalog().all_genes())
    rng = np.random.default_rng(7)
    base = np.round(rng.uniform(3.0, 9.0, size=len(genes)), 2)
    first = dict(zip(genes, base.tolist(), strict=True))
    second = dict(zip(genes, np.round(base[::-1] * 0.9 + 0.5, 2).tolist(), strict=True))
    first.update({"NCR3LG1": 0.8, "HLA-E": 10.4, "MICA": 2.1, "NLRC5": 8.9})
    second.update({"NCR3LG1": 7.6, "HLA-E": 4.2, "MICA": 7.3, "NLRC5": 3.0})
    return {"AML-0001": first, "MM-0002": second}


def _short_example() -> dict[str, Any]:
    return {
        "samples": {"CL-01": {"NCR3LG1": 2.5, "HLA-E": 9.8, "MICA": 4.1, "B7-H6": None}},
        "scale": "log",
        "min_coverage": 0.0,
    }


def predict_examples() -> dict[str, Any]:
    """Named OpenAPI examples of a /v1/predict body."""
    return {
        "catalogue_panel": {
            "summary": "Two samples, every NK catalogue gene, log2(TPM+1)",
            "value": {"samples": example_samples(), "scale": "log"},
        },
        "few_genes": {
            "summary": "A few genes; coverage check switched off for this request",
            "value": _short_example(),
        },
    }


def explain_examples() -> dict[str, Any]:
    """Named OpenAPI examples of a /v1/explain body."""
    return {
        "catalogue_panel": {
            "summary": "Attributions at gene, axis and pathway level, top 5 units each",
            "value": {"samples": example_samples(), "scale": "log", "top_n": 5},
        },
        "axis_only": {
            "summary": "Only the NK-axis level, all units",
            "value": {"samples": example_samples(), "level": "axis", "top_n": 50},
        },
    }


# --------------------------------------------------------------------------- requests


class PredictOptions(BaseModel):
    """Options of a prediction request (every body field but ``samples``)."""

    model_config = ConfigDict(extra="forbid")

    scale: ScaleName | None = Field(
        default=None,
        description="Scale of the values: raw counts, TPM-like, log2(x+1), or auto-detected. "
        "Default: the model's setting (normally auto).",
    )
    min_coverage: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Least fraction of the model's catalogue genes each sample must have "
        "(default: the service's NKP_MIN_COVERAGE).",
    )


class ExplainOptions(PredictOptions):
    """Options of an explanation request."""

    level: LevelOption = Field(
        default="all",
        description="Attribution level(s) returned: 'all' = gene, axis and pathway.",
    )
    top_n: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description=f"Units listed per level, largest |attribution| first; the others are "
        f"summed under '{OTHER_UNIT}'. Default: the service's NKP_EXPLAIN_TOP_N.",
    )
    n_drivers: int = Field(
        default=5, ge=0, le=100, description="Top drivers described in words per sample."
    )


SamplesField = Field(
    description="Sample ID -> {gene identifier -> expression value}. Genes may be HGNC "
    "symbols, aliases (B7-H6), Ensembl or Entrez IDs; null = not measured.",
    min_length=1,
)


SampleValues = Annotated[
    dict[str, float | None],
    Field(min_length=1, description="Gene identifier -> expression value (at least one gene)."),
]


class PredictRequest(PredictOptions):
    """Body of ``POST /v1/predict`` (documentation; the route parses the body itself)."""

    samples: dict[str, SampleValues] = SamplesField


class ExplainRequest(ExplainOptions):
    """Body of ``POST /v1/explain`` (documentation; the route parses the body itself)."""

    samples: dict[str, SampleValues] = SamplesField


class ReloadRequest(BaseModel):
    """Optional body of ``POST /v1/admin/reload``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"model_uri": "models:/nk-resistance@champion"}]},
    )

    model_uri: str | None = Field(
        default=None,
        min_length=1,
        description="Model to load instead of NKP_MODEL_URI (an MLflow URI or a directory).",
    )


# --------------------------------------------------------------------------- responses


class ModelRef(BaseModel):
    """Which model answered."""

    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    uri: str


class Prediction(BaseModel):
    """One sample's prediction."""

    sample_id: str
    probability: float | None = Field(
        default=None, description="P(resistant) (classification models)."
    )
    score: float | None = Field(default=None, description="Predicted readout (regression).")
    call: str = Field(description="'resistant', 'sensitive', or 'n/a' (regression, no cut-off).")
    coverage: float = Field(description="Fraction of the model's catalogue genes measured.")


class Harmonization(BaseModel):
    """What happened to the request's gene identifiers (lists capped at NKP_REPORT_MAX_ITEMS)."""

    n_input: int
    n_mapped: int
    n_renamed: int
    renamed: dict[str, str] = Field(description="Input identifier -> HGNC symbol.")
    n_unmapped: int
    unmapped: list[str]
    n_ambiguous: int
    ambiguous: dict[str, list[str]]
    n_collided: int
    collided: dict[str, list[str]] = Field(description="Symbol -> input IDs merged into it.")
    n_missing_model_genes: int
    missing_model_genes: list[str] = Field(
        description="Genes the model uses that no sample measured (imputed at training medians)."
    )
    truncated: bool = Field(description="True when a list or dict above was cut.")


class PredictResponse(BaseModel):
    """Answer of ``/v1/predict`` and ``/v1/predict/file``."""

    model: ModelRef
    task: str
    scale: str = Field(description="Scale the input was taken to be.")
    n_samples: int
    predictions: list[Prediction]
    harmonization: Harmonization


class DriverOut(BaseModel):
    """One unit's contribution, in words and numbers."""

    unit: str
    label: str
    contribution: float
    direction: str
    sentence: str


class SampleExplanation(BaseModel):
    """One sample's attributions: ``base_value + sum(attributions[level].values())`` equals
    ``model_output`` at every level (the '<other>' entry included)."""

    sample_id: str
    probability: float | None = None
    score: float | None = None
    call: str
    base_value: float
    model_output: float = Field(description="Raw model output (log-odds or readout).")
    units: str = Field(description="Units of the attributions: 'log-odds' or the readout name.")
    attributions: dict[str, dict[str, float]] = Field(
        description=f"Level -> unit -> attribution (top_n units, the rest as '{OTHER_UNIT}')."
    )
    top_drivers: list[DriverOut]


class ExplainResponse(BaseModel):
    """Answer of ``/v1/explain``."""

    model: ModelRef
    task: str
    scale: str
    n_samples: int
    levels: list[str]
    top_n: int
    drivers_level: str
    explanations: list[SampleExplanation]
    harmonization: Harmonization


class ModelInfo(BaseModel):
    """Answer of ``/v1/model``."""

    model: ModelRef
    loaded_at: datetime
    task: str
    decision_threshold: float
    label_definition: dict[str, Any]
    training_data: dict[str, Any] | None = Field(
        default=None, description="Fingerprint of the training data (metadata 'data')."
    )
    metrics: dict[str, Any] | None = Field(default=None, description="Evaluation metrics.")
    n_features: int
    n_model_genes: int
    catalog_version: str
    training_scale: str | None = None
    nkpredict_version: str | None = None


class HealthResponse(BaseModel):
    """Answer of ``/health``."""

    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    """Answer of ``/ready`` when a model is loaded."""

    status: Literal["ready"] = "ready"
    model: ModelRef


class ReloadResponse(BaseModel):
    """Answer of a successful ``/v1/admin/reload``."""

    status: Literal["reloaded"] = "reloaded"
    model: ModelRef
    previous: ModelRef | None
    seconds: float


class ErrorDetail(BaseModel):
    """The content of every error answer."""

    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """Every error answer: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorDetail


# --------------------------------------------------------------------------- body parsing


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


def _load_json(raw: bytes) -> Any:
    """Parse a request body; duplicated keys come back as :class:`_DuplicateKeys`.

    orjson parses first (a third of the time of :mod:`json`), but it keeps the last of
    duplicated keys without a word. Its result is used only when it provably had none: every
    key of every object is followed by a colon outside strings, so when the keys counted in
    the result equal the number of colons in the whole text, no key was dropped (and no
    colon hides in a string or a deeper object). Anything else (duplicates, colons in
    names, NaN, invalid text...) is parsed again by :func:`_load_json_strictly`, which
    finds the duplicates and gives the exact error.
    """
    if not raw.strip():
        raise ServiceError(400, "invalid_json", "the request body is empty (expected JSON)")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _load_json_strictly(raw)
    if _counted_keys(document) == raw.count(b":"):
        return document
    return _load_json_strictly(raw)


def _load_json_strictly(raw: bytes) -> Any:
    """The standard library's parser, marking duplicated keys, with precise errors."""
    try:
        return json.loads(raw, object_pairs_hook=_object_pairs, parse_constant=_reject_constant)
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


def _validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [str(p) for p in e["loc"]], "type": e["type"], "msg": e["msg"]}
        for e in exc.errors()
    ]


OptionsT = TypeVar("OptionsT", bound=PredictOptions)


@dataclass(frozen=True)
class SampleMatrix:
    """The samples of a request body as one array (no DataFrame: the model takes arrays).

    Attributes
    ----------
    values : ndarray of float64, shape (n_samples, n_genes)
        NaN = not measured.
    sample_ids : list of str, length n_samples
        In request order.
    genes : list of str, length n_genes
        Gene identifiers as sent.
    """

    values: np.ndarray
    sample_ids: list[str]
    genes: list[str]

    def to_frame(self) -> pd.DataFrame:
        """The same as a DataFrame (index ``sample_id``)."""
        index = pd.Index(self.sample_ids, name="sample_id")
        return pd.DataFrame(self.values, index=index, columns=self.genes)


def parse_samples_body(
    raw: bytes, max_samples: int, options_type: type[OptionsT]
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
    document = _load_json(raw)
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
    try:
        options = options_type.model_validate(document)
    except ValidationError as exc:
        details = _validation_details(exc)
        first = details[0]
        raise ServiceError(
            422, "validation_error", f"{'.'.join(first['loc'])}: {first['msg']}", details
        ) from None
    return samples_matrix(samples, max_samples), options


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
            f"sample {sample_id!r} lists genes more than once: {', '.join(genes.duplicates[:10])}",
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


def samples_matrix(samples: Any, max_samples: int) -> SampleMatrix:
    """Turn ``{sample: {gene: value}}`` into a float64 array (samples x genes) and labels.

    When every sample lists the same genes in the same order (the usual case) the values go
    into one array directly; otherwise the columns are the union of the genes in order of
    first appearance and unlisted genes are NaN.
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
    cells = rows[0].values() if n_samples == 1 else chain.from_iterable(r.values() for r in rows)
    types = set(map(type, cells))
    if not types <= _ALLOWED_VALUE_TYPES:
        sample_id, gene, value = _first_bad_value(samples)
        raise ServiceError(
            422,
            "non_numeric_value",
            f"sample {sample_id!r}, gene {gene!r}: {json.dumps(value)[:50]} is not a number",
            {"sample_id": sample_id, "gene": gene},
        )
    genes = list(rows[0])
    same_layout = all(list(r) == genes for r in rows[1:])
    try:
        if same_layout:
            values = np.array([list(r.values()) for r in rows], dtype=np.float64)
        else:
            genes = list(dict.fromkeys(chain.from_iterable(rows)))
            position = {g: j for j, g in enumerate(genes)}
            values = np.full((n_samples, len(genes)), np.nan)
            for i, row in enumerate(rows):
                columns = [position[g] for g in row]
                values[i, columns] = np.array(list(row.values()), dtype=np.float64)
    except OverflowError:
        raise ServiceError(
            422, "non_finite_value", "an expression value is too large for a float"
        ) from None
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
    return SampleMatrix(values, list(samples), genes)
