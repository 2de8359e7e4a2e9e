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
