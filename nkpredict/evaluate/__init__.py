"""Honest evaluation: metrics with intervals, grouped folds, baselines and cross-validation."""
