"""Exceptions raised by the nkpredict library.

Entry points map them: the CLI prints a one-line message and exits non-zero, the service
returns a 4xx response with a machine-readable body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

__all__ = [
    "CatalogError",
    "CoverageError",
    "ExpressionFormatError",
    "GeneMappingError",
    "InputError",
    "LabelError",
    "ModelLoadError",
    "NKPredictError",
    "NotFittedError",
    "ScaleError",
]


class NKPredictError(Exception):
    """Base class of every error the library raises on purpose."""


class InputError(NKPredictError, ValueError):
    """User-supplied data cannot be interpreted (bad file, bad values, bad shape)."""


class ExpressionFormatError(InputError):
    """An expression matrix is malformed: empty, non-numeric, duplicated or all-NaN entries."""


class ScaleError(InputError):
    """Expression values are inconsistent with their (declared or detected) scale."""


class GeneMappingError(InputError):
    """Gene identifiers cannot be harmonized to HGNC symbols."""


class CoverageError(InputError):
    """Too few of the genes a model needs are present in the input.

    Parameters
    ----------
    message : str
        The one-line reason.
    coverage : mapping of str to float, optional
        The samples below the minimum and their coverage (fraction of the model's genes
        measured), in input order; empty when no sample could be scored at all.
    missing_genes : sequence of str, optional
        The model's genes missing in those samples.
    minimum : float, optional
        The minimum coverage that was asked for.

    The attributes carry the same data, so callers never recompute them.
    """

    def __init__(
        self,
        message: str,
        coverage: Mapping[str, float] | None = None,
        missing_genes: Sequence[str] = (),
        minimum: float | None = None,
    ) -> None:
        super().__init__(message)
        self.coverage: dict[str, float] = dict(coverage or {})
        self.missing_genes: list[str] = list(missing_genes)
        self.minimum = minimum


class LabelError(InputError):
    """Labels are missing, malformed or cannot be joined to the expression samples."""


class CatalogError(NKPredictError):
    """The NK knowledge catalogue or a user gene-set file is invalid."""


class NotFittedError(NKPredictError, _SklearnNotFittedError, RuntimeError):
    """An estimator was used before ``fit``.

    It is also scikit-learn's :class:`sklearn.exceptions.NotFittedError` (itself a
    ``ValueError`` and an ``AttributeError``), so scikit-learn tools and
    ``sklearn.utils.estimator_checks`` recognise it, and still a ``RuntimeError`` as before.
    """


class ModelLoadError(NKPredictError):
    """A saved model cannot be found or read."""
