"""Tests for label definitions."""

from __future__ import annotations

import pandas as pd
import pytest

from nkpredict.data.labels import LabelDefinition
from nkpredict.exceptions import LabelError


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "killing_auc": [0.1, 0.2, 0.6, 0.8],
            "viability_et_1": [90.0, 80.0, 30.0, 10.0],
            "resistant": [1, 1, 0, 0],
            "call": ["Resistant", "resistant", "sensitive", "Sensitive"],
        },
        index=["a", "b", "c", "d"],
    )


def test_binary_column_used_as_is() -> None:
    y, definition = LabelDefinition("resistant").resolve(frame())
    assert y.tolist() == [1, 1, 0, 0]
    assert definition.threshold is None
    y, _ = LabelDefinition("call").resolve(frame())
    assert y.tolist() == [1, 1, 0, 0]


def test_threshold_direction_inferred_from_name() -> None:
    y, definition = LabelDefinition("killing_auc", threshold=0.5).resolve(frame())
    assert y.tolist() == [1, 1, 0, 0]
    assert definition.resistant_when == "below"
    y, definition = LabelDefinition("viability_et_1", threshold=50).resolve(frame())
    assert y.tolist() == [1, 1, 0, 0]
    assert definition.resistant_when == "above"


def test_quantile_resolved_to_threshold_and_recorded() -> None:
    _, definition = LabelDefinition("killing_auc", quantile=0.5).resolve(frame())
    assert definition.threshold == pytest.approx(0.4)
    assert "quantile 0.5" in definition.describe()
    assert LabelDefinition.from_dict(definition.to_dict()) == definition


def test_regression_keeps_values() -> None:
    y, _ = LabelDefinition("killing_auc", task="regression").resolve(frame())
    assert y.tolist() == [0.1, 0.2, 0.6, 0.8]


def test_errors_are_specific() -> None:
    with pytest.raises(LabelError, match="available"):
        LabelDefinition("nope").resolve(frame())
    with pytest.raises(LabelError, match="resistant-when"):
        LabelDefinition("score_x", threshold=1).resolve(
            frame().rename(columns={"killing_auc": "score_x"})
        )
    with pytest.raises(LabelError, match="already binary"):
        LabelDefinition("resistant", threshold=0.5).resolve(frame())
    bad = frame().assign(killing_auc=["0.1", "x", "0.3", "0.4"])
    with pytest.raises(LabelError, match="sample 'b'"):
        LabelDefinition("killing_auc", threshold=0.5).resolve(bad)
    with pytest.raises(LabelError):
        LabelDefinition("x", quantile=1.5)
