"""What-if: expression counterfactuals of the fitted model (not pharmacology).

:mod:`.interventions` defines what an intervention sets (built-ins from the catalogue's axes,
and user-defined ones); :mod:`.counterfactual` scores the changed profiles with the fitted
model and compares them with the samples as measured.
"""
