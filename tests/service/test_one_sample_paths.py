"""The one-sample paths of the answers give what the array paths give, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from service.answers import _compact


@pytest.mark.parametrize("seed", range(4))
def test_one_row_compact_equals_the_rows_of_a_batch(seed: int) -> None:
    """Largest |values| first (ties in unit order), the rest summed the same way."""
    rng = np.random.default_rng(seed)
    for _ in range(300):
        n_units = int(rng.integers(2, 400))
        values = rng.normal(size=(3, n_units)) * 10.0 ** float(rng.integers(-8, 3))
        values[:, rng.integers(0, n_units, 4)] = 0.0  # ties
        if rng.random() < 0.3:
            values = np.round(values, 2)
        units = [f"u{k}" for k in range(n_units)]
        top_n = int(rng.integers(1, 12))
        batch = _compact(values, units, top_n)
        for i in range(3):
            one = _compact(values[i : i + 1], units, top_n)
            assert len(one) == 1
            assert list(one[0].items()) == list(batch[i].items())


def test_remembered_options_tell_apart_what_validation_tells_apart() -> None:
    """Repeated options are validated once; -0.0 and 0.0, 1 and True, NaN stay apart, and
    refused options are refused every time."""
    from pydantic import ValidationError

    from service.bodies import _validated_options
    from service.schemas import ExplainOptions, PredictOptions

    first = _validated_options(PredictOptions, {"scale": "log", "min_coverage": 0.5})
    assert _validated_options(PredictOptions, {"scale": "log", "min_coverage": 0.5}) is first
    assert _validated_options(ExplainOptions, {"scale": "log", "min_coverage": 0.5}) is not first
    zero = _validated_options(PredictOptions, {"min_coverage": 0.0})
    negative_zero = _validated_options(PredictOptions, {"min_coverage": -0.0})
    assert repr(zero.min_coverage) == "0.0" and repr(negative_zero.min_coverage) == "-0.0"
    assert _validated_options(ExplainOptions, {"top_n": 1}).top_n == 1
    for refused in ({"top_n": 0}, {"scale": "nope"}, {"extra": 1}, {"level": ["axis"]}):
        for _ in range(2):
            with pytest.raises(ValidationError):
                _validated_options(ExplainOptions, refused)
