"""Column positions as cheap selectors: a slice (a view) when they form one ascending run."""

from __future__ import annotations

import numpy as np

__all__ = ["as_selector"]


def as_selector(positions: np.ndarray) -> np.ndarray | slice:
    """``positions`` as a slice when they form one ascending run (indexing with it returns a
    view, not a copy); the positions themselves otherwise."""
    if positions.size and np.array_equal(positions, positions[0] + np.arange(positions.size)):
        return slice(int(positions[0]), int(positions[0]) + positions.size)
    return positions
