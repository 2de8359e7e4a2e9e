"""Exceptions raised by the nkpredict library.

Entry points map them: the CLI prints a one-line message and exits non-zero, the service
returns a 4xx response with a machine-readable body.
"""

from __future__ import annotations


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
    """Too few of the genes a model needs are present in the input."""


class LabelError(InputError):
    """Labels are missing, malformed or cannot be joined to the expression samples."""


class CatalogError(NKPredictError):
    """The NK knowledge catalogue or a user gene-set file is invalid."""


class NotFittedError(NKPredictError, RuntimeError):
    """An estimator was used before ``fit``."""


class ModelLoadError(NKPredictError):
    """A saved model cannot be found or read."""
