"""The accuracy panel reads its cells against the targets of the learner's issue correctly."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

PANEL = Path(__file__).resolve().parents[2] / "benchmarks" / "accuracy_panel.py"


@pytest.fixture(scope="module")
def panel() -> ModuleType:
    spec = importlib.util.spec_from_file_location("accuracy_panel", PANEL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["accuracy_panel"] = module
    spec.loader.exec_module(module)
    return module


def _row(
    scenario: str, n: int, seed: int, model: float, linear: float, best: float
) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "n": n,
        "seed": seed,
        "cv_roc_auc": model,
        "baseline_linear_cv_roc_auc": linear,
        "cv_roc_auc_minus_best_baseline": model - best,
        "ratio_to_oracle": model / 0.95,
    }


def test_targets_are_read_from_the_means_over_seeds(panel: ModuleType) -> None:
    rows = [
        # saturating at n = 300: one seed below the best baseline, the mean is not
        _row("saturating", 300, 0, 0.900, 0.870, 0.908),
        _row("saturating", 300, 1, 0.920, 0.900, 0.910),
        # cnv at n = 300: above its baselines, but only +0.01 over linear
        _row("cnv", 300, 0, 0.890, 0.880, 0.885),
        # additive at n = 120: below the best baseline beyond noise
        _row("additive", 120, 0, 0.800, 0.810, 0.810),
    ]
    table = panel.target_summary(rows)
    lines = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()}
    every_cell = next(line for key, line in lines.items() if key.startswith("mean paired"))
    assert "2 of 3 cells" in every_cell
    assert "`additive` n = 120 (-0.0100)" in every_cell
    assert every_cell.endswith("| no |")
    over_linear = next(line for key, line in lines.items() if key.startswith("+0.02"))
    assert "`saturating` n = 300 +0.0250" in over_linear
    assert "`cnv` n = 300 +0.0100" in over_linear
    assert over_linear.endswith("| no |")
    ratio_120 = next(line for key, line in lines.items() if "n = 120" in key)
    assert f"{0.800 / 0.95:.4f} over 1 scenarios" in ratio_120
    assert ratio_120.endswith("| no |")
    ratio_300 = next(line for key, line in lines.items() if "n = 300" in key)
    expected = ((0.900 + 0.920) / 2 / 0.95 + 0.890 / 0.95) / 2
    assert f"{expected:.4f}" in ratio_300
    assert ratio_300.endswith("| yes |")


def test_cells_are_selected_by_scenario_size_and_seed(panel: ModuleType) -> None:
    rows = [
        _row(scenario, n, seed, 0.9, 0.9, 0.9)
        for scenario in ("additive", "cnv")
        for n in (120, 300)
        for seed in (0, 3)
    ]
    chosen = panel._selected(rows, None, [300], [3])
    assert {(r["scenario"], r["n"], r["seed"]) for r in chosen} == {
        ("additive", 300, 3),
        ("cnv", 300, 3),
    }
    assert panel._selected(rows, None, None, None) == rows
    assert panel.target_summary([]) == "(no cells run yet)"
