"""Simulated cohorts with known ground truth, so that every claim of the project is checkable."""
