"""The report's colours: one meaning per colour, the same in the page and in every figure.

Red always means *resistant* (a push toward resistance, a resistant call, a direction in which
higher values mean more resistant) and blue always means *sensitive*; grey is neutral (mixed
direction, reference lines). The estimators of the performance plots get colours that mean
nothing else in the report (the model is drawn in ink), and every figure has a legend. Values
on a scale (beeswarm) use a sequential map (``viridis``), not red and blue.
"""

from __future__ import annotations

__all__ = [
    "ESTIMATOR_COLOURS",
    "INK",
    "NEUTRAL",
    "OUT_OF_DOMAIN",
    "REFERENCE",
    "RESISTANT",
    "SENSITIVE",
    "UNCERTAIN",
    "VALUE_CMAP",
    "css_variables",
    "estimator_colour",
]

RESISTANT = "#c0392b"
SENSITIVE = "#2471a3"
NEUTRAL = "#95a5a6"
INK = "#1f2d3d"
REFERENCE = "#7f8c8d"
UNCERTAIN = "#b7950b"
"""An uncertain call (a prediction set with both labels): amber, neither red nor blue."""
OUT_OF_DOMAIN = "#6c3483"
"""An out-of-domain flag: purple."""
VALUE_CMAP = "viridis"
"""Feature values from low to high (beeswarm)."""
ESTIMATOR_COLOURS: tuple[str, ...] = ("#117a65", "#c71585", "#935116", "#566573", "#17a589")
"""Baselines and the oracle in performance plots, in order of appearance (the model is INK)."""


def estimator_colour(position: int) -> str:
    """Colour of the ``position``-th curve of a performance plot (0 is the model: ink)."""
    if position == 0:
        return INK
    return ESTIMATOR_COLOURS[(position - 1) % len(ESTIMATOR_COLOURS)]


def css_variables() -> dict[str, str]:
    """The colours as CSS custom properties (``--resistant`` ...), for the style sheet."""
    return {
        "resistant": RESISTANT,
        "sensitive": SENSITIVE,
        "neutral": NEUTRAL,
        "ink": INK,
        "uncertain": UNCERTAIN,
        "out-of-domain": OUT_OF_DOMAIN,
    }
