"""The fast path: compiled trees and compiled TreeSHAP, each checked against XGBoost when built.

Everything here is an optimisation of something XGBoost computes; each compiled object checks
itself against XGBoost on probe rows when it is built and the callers fall back to XGBoost when
that check fails.
"""
