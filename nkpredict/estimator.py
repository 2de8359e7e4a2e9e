"""What every nkpredict estimator shares: the scikit-learn contract, kept in one place.

scikit-learn's own suite (:func:`sklearn.utils.estimator_checks.check_estimator`) is what the
estimators of the library are held to. What they share for it lives here:

- :class:`TaskRoleMixin`: the ``task`` parameter declares the role through
  ``__sklearn_tags__`` (``"classification"``: a binary classifier; ``"regression"``: a
  regressor), and ``score`` is accuracy or R² accordingly, like scikit-learn's mixins;
- :data:`classification_only`: a method (``predict_proba``, ``decision_function``) that exists
  for the classifier role only (``hasattr`` is false for a regressor);
- :func:`check_input`: :func:`sklearn.utils.validation.validate_data` with its ``ValueError``
  raised as :class:`~nkpredict.exceptions.InputError` naming the input's shape and dtype;
- :func:`binary_target`: ``classes_`` and the 0/1 target of a binary classifier, with one
  plain error for a third class, a continuous target or a single class;
- :func:`check_fitted`: the library's :class:`~nkpredict.exceptions.NotFittedError` (also
  scikit-learn's).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils import ClassifierTags, RegressorTags, Tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import validate_data

from nkpredict.exceptions import InputError, LabelError, NKPredictError, NotFittedError

__all__ = [
    "NO_TARGET",
    "TaskRoleMixin",
    "binary_target",
    "check_fitted",
    "check_input",
    "classification_only",
    "describe_input",
]

_SHOWN_CLASSES = 5
NO_TARGET = "no_validation"
"""``y`` of :func:`check_input` when there is no target (scikit-learn's own marker)."""


def _is_classification(estimator: Any) -> bool:
    return bool(getattr(estimator, "task", None) == "classification")


classification_only = available_if(_is_classification)
"""Decorator: the method exists only while the estimator's ``task`` is classification."""


class TaskRoleMixin:
    """Classifier or regressor by the ``task`` parameter (put it before ``BaseEstimator``).

    Tags: ``estimator_type`` ``"classifier"`` (binary only: ``multi_class=False``) or
    ``"regressor"``, a required target, and ``allow_nan`` from :attr:`_accepts_nan` (missing
    values are handled by the model). ``score`` is accuracy (classifier) or R² (regressor).
    """

    _accepts_nan: bool = True

    def __sklearn_tags__(self) -> Tags:
        tags: Tags = super().__sklearn_tags__()  # type: ignore[misc]
        if _is_classification(self):
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags(multi_class=False)
            tags.regressor_tags = None
        else:
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
            tags.classifier_tags = None
        tags.target_tags.required = True
        tags.input_tags.allow_nan = self._accepts_nan
        return tags

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy (classifier) or R² (regressor) of ``predict(X)`` against ``y``."""
        predicted = self.predict(X)  # type: ignore[attr-defined]
        if _is_classification(self):
            return float(accuracy_score(y, predicted, sample_weight=sample_weight))
        return float(r2_score(y, predicted, sample_weight=sample_weight))


def describe_input(name: str, value: Any) -> str:
    """``"X: shape (n, m), dtype float64"`` (or the type, for inputs without a shape)."""
    if isinstance(value, pd.DataFrame):
        dtypes = ", ".join(sorted({str(d) for d in value.dtypes})) or "none"
        return f"{name}: DataFrame of shape {value.shape}, dtypes {dtypes}"
    shape = getattr(value, "shape", None)
    if shape is None:
        length = len(value) if hasattr(value, "__len__") else "?"
        return f"{name}: {type(value).__name__} of length {length}"
    return f"{name}: {type(value).__name__} of shape {tuple(shape)}, dtype {value.dtype}"


def check_input(
    estimator: Any,
    X: Any,
    y: Any = NO_TARGET,
    *,
    reset: bool,
    dtype: Any = np.float64,
    allow_nan: bool = True,
    **kwargs: Any,
) -> Any:
    """Validate ``X`` (and ``y``) with :func:`~sklearn.utils.validation.validate_data`.

    Sets ``n_features_in_`` and ``feature_names_in_`` when ``reset`` (in ``fit``) and checks
    them otherwise. NaN passes when ``allow_nan`` (infinity never does); sparse input is
    refused (a ``TypeError`` that says so).

    Parameters
    ----------
    estimator : estimator
    X : array-like, shape (n_samples, n_features)
    y : array-like, shape (n_samples,), optional
        Validated with ``X`` when given (same number of rows, no NaN, 1-D); ``None`` in
        ``fit`` is refused ("requires y to be passed").
    reset : bool
        ``True`` in ``fit``; ``False`` in methods of the fitted estimator.
    dtype : dtype
        The array's dtype after validation.
    allow_nan : bool
    **kwargs
        Passed on (``ensure_min_samples``, ``y_numeric`` ...).

    Returns
    -------
    ndarray, or (ndarray, ndarray) with ``y``

    Raises
    ------
    InputError
        A malformed input (wrong number of features, 1-D, empty, complex, NaN in ``y``,
        infinity ...): scikit-learn's message plus the shapes and dtypes of the inputs.
    """
    finite: bool | str = "allow-nan" if allow_nan else True
    options = {"reset": reset, "dtype": dtype, "ensure_all_finite": finite, **kwargs}
    try:
        return validate_data(estimator, X, y, **options)
    except NKPredictError:
        raise
    except ValueError as exc:
        with_y = not (isinstance(y, str) and y == NO_TARGET) and y is not None
        inputs = [describe_input("X", X)] + ([describe_input("y", y)] if with_y else [])
        raise InputError(f"{exc} ({'; '.join(inputs)})") from exc


def binary_target(estimator: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """``classes_`` and the 0/1 target of a binary classifier.

    Parameters
    ----------
    estimator : estimator
        Named in the messages.
    y : array-like, shape (n_samples,)
        Two distinct labels (any type); the second of the sorted labels is class 1
        ("resistant" when the labels are 0/1).

    Returns
    -------
    classes : ndarray, shape (2,)
    target : ndarray of float64, shape (n_samples,)
        1.0 where ``y == classes[1]``.

    Raises
    ------
    LabelError
        No target, a continuous target, a third class (multiclass or multilabel targets),
        labels of no known type, or a single class.
    """
    name = type(estimator).__name__
    if y is None:
        raise LabelError(f"{name} requires y to be passed, but the target y is None")
    y = np.asarray(y)
    if y.shape[0] == 0:
        raise LabelError(f"{name} needs two classes to fit; y is empty")
    if y.dtype.kind in "fc" and not np.isfinite(y).all():
        raise LabelError(
            f"Input y contains NaN or infinity: {name} got {int((~np.isfinite(y)).sum())} "
            f"labels that are not finite among {y.shape[0]}"
        )
    try:
        kind = type_of_target(y, input_name="y", raise_unknown=True)
    except ValueError as exc:
        raise LabelError(f"{name}: {exc}") from exc
    if kind.startswith("continuous"):
        raise LabelError(
            f"{name} is a classifier but y is continuous (e.g. {y[:3].tolist()}): pass two "
            "labels such as 0/1 (1 = resistant), or use task='regression'"
        )
    if kind != "binary":
        classes = np.unique(y)
        shown = ", ".join(map(str, classes[:_SHOWN_CLASSES]))
        more = " ..." if classes.size > _SHOWN_CLASSES else ""
        raise LabelError(
            f"Only binary classification is supported. The type of the target is {kind}: "
            f"{name} got {classes.size} classes ({shown}{more}); nkpredict calls samples "
            "resistant (1) or sensitive (0)"
        )
    classes = np.unique(y)
    if classes.size < 2:
        raise LabelError(
            f"{name} needs two classes to fit; y holds one class ({classes.tolist()[0]!r}) "
            f"in all {y.shape[0]} samples"
        )
    return classes, (y == classes[1]).astype(np.float64)


def check_fitted(estimator: Any, attribute: str) -> None:
    """Raise :class:`~nkpredict.exceptions.NotFittedError` unless ``attribute`` is set."""
    if not hasattr(estimator, attribute):
        raise NotFittedError(f"{type(estimator).__name__} is not fitted: call fit first")
