"""The report's what-if section: what would most lower each resistant call.

For the samples the report shows (those predicted resistant), every built-in intervention
(:func:`nkpredict.whatif.interventions.builtin_interventions`) is scored with the fitted model
and the ones that lower the predicted resistance most are listed per sample, largest decrease
first. Expression counterfactuals of the fitted model, not pharmacology
(:data:`~nkpredict.whatif.counterfactual.COUNTERFACTUAL_NOTE`).
"""

from __future__ import annotations

from typing import Any

from nkpredict.data.expression import PreparedExpression
from nkpredict.exceptions import InputError
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.whatif.counterfactual import (
    COUNTERFACTUAL_NOTE,
    NO_SPREAD_NOTE,
    lowering_interventions,
    whatif,
)
from nkpredict.whatif.interventions import builtin_interventions, resolve

__all__ = ["WHATIF_PER_SAMPLE", "whatif_section"]

WHATIF_PER_SAMPLE = 3
"""Interventions listed per sample (those that lower its predicted resistance most)."""


def whatif_section(
    model: NKResistanceModel,
    prepared: PreparedExpression,
    sample_ids: list[str],
    n: int = WHATIF_PER_SAMPLE,
) -> dict[str, Any]:
    """Template context of the what-if section for the samples ``sample_ids``.

    Parameters
    ----------
    model : NKResistanceModel
    prepared : PreparedExpression
        The cohort; ``sample_ids`` are among its samples.
    sample_ids : list of str
        The samples shown (predicted resistant, most resistant first).
    n : int
        Interventions listed per sample.

    Returns
    -------
    dict
        ``available``; ``note`` (the counterfactual caveat, or why the section is empty);
        ``spread_note`` (empty when the model has spread models); ``interventions`` (name and
        what it sets, for the model's genes); ``value`` (``probability`` or ``score``);
        ``margin_units`` (``log-odds`` or the readout);
        ``samples``: per sample ``sample_id`` and ``items`` from
        :func:`~nkpredict.whatif.counterfactual.lowering_interventions`.
    """
    candidates = list(builtin_interventions().values())
    usable = []
    for intervention in candidates:
        try:
            resolve(intervention, model)
        except InputError:
            continue  # a model that reads none of its genes, or has no training percentiles
        usable.append(intervention)
    value = "probability" if model.task == "classification" else "score"
    units = "log-odds" if model.task == "classification" else model.label_definition_.column
    empty = {
        "available": False,
        "spread_note": "",
        "interventions": [],
        "value": value,
        "margin_units": units,
    }
    if not sample_ids:
        return {**empty, "note": "No sample is predicted resistant.", "samples": []}
    if not usable:
        note = (
            "No built-in intervention applies to this model (it reads none of their genes, or "
            "was saved without training percentiles)."
        )
        return {**empty, "note": note, "samples": []}
    position = {s: i for i, s in enumerate(prepared.sample_ids)}
    rows = prepared.rows([position[s] for s in sample_ids])
    result = whatif(model, rows, usable)
    return {
        "available": True,
        "note": COUNTERFACTUAL_NOTE,
        "spread_note": "" if result.n_models >= 2 else NO_SPREAD_NOTE,
        "interventions": [
            {"name": r.name, "description": r.description, "genes": r.summary()}
            for r in result.interventions
        ],
        "value": value,
        "margin_units": units,
        "samples": [
            {"sample_id": s, "items": lowering_interventions(result, s, n)} for s in sample_ids
        ],
    }
