"""Figures of the report as embedded PNGs (``data:`` URIs, so the page loads nothing)."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["DPI", "figure_data_uri"]

DPI = 96


def figure_data_uri(fig: Figure) -> str:
    """Render ``fig`` as a base64 PNG ``data:`` URI and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
