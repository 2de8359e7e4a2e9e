"""The report's domain section: which samples are unlike the training cohort, and why.

From :meth:`~nkpredict.domain.check.DomainModel.describe` (each check's threshold, the quantile
of held-out training scores it was set at, the share of held-out training samples flagged)
and the prediction table of the report's samples (``out_of_domain``, ``domain_reasons``,
``lineage``): the share of samples out of domain, each reason counted, and the flagged samples.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd

from nkpredict.model.fitted import NKResistanceModel
from nkpredict.report.names import DOMAIN_CHECK_LABELS
from nkpredict.report.performance import format_number
from nkpredict.vocabulary import DOMAIN_REASONS

__all__ = ["FLAGGED_SHOWN", "domain_section"]

FLAGGED_SHOWN = 20
"""Most flagged samples listed by name."""


def _reasons(predictions: pd.DataFrame) -> list[list[str]]:
    if "domain_reasons" not in predictions.columns:
        return [[] for _ in range(len(predictions))]
    return [
        [r for r in str(value).split(";") if r] if isinstance(value, str) else []
        for value in predictions["domain_reasons"].tolist()
    ]


def domain_section(model: NKResistanceModel, predictions: pd.DataFrame) -> dict[str, Any]:
    """Template context of the domain section.

    Parameters
    ----------
    model : NKResistanceModel
    predictions : DataFrame
        Prediction table of the report's samples, indexed by sample id.

    Returns
    -------
    dict
        ``available``, ``note``, ``n``, ``n_out``, ``share``, ``reasons`` (rows ``reason`` in
        words, ``code``, ``n``, ``share``, ``threshold``), ``quantile``, ``held_out_rate``,
        ``low_coverage_below``, ``lineages`` (known to the model), ``recognised`` (lineage
        counts in this cohort) and ``flagged`` (the first :data:`FLAGGED_SHOWN` flagged samples
        and their reasons).
    """
    domain = model.domain
    if domain is None or "out_of_domain" not in predictions.columns:
        return {
            "available": False,
            "note": "This model was saved without domain checks: nothing says whether a sample "
            "is like its training cohort.",
        }
    described = domain.describe()
    n = len(predictions)
    flagged = predictions["out_of_domain"].astype(bool).to_numpy()
    reasons = _reasons(predictions)
    counted = Counter(r for sample in reasons for r in sample)
    thresholds = described["thresholds"]
    rows = []
    for code in DOMAIN_REASONS:
        if code not in thresholds and code != "low_coverage" and not counted.get(code):
            continue  # a check this model does not run (lineage checks without lineages)
        threshold = (
            f"coverage below {described['low_coverage_below']:.0%} (a fixed rule)"
            if code == "low_coverage"
            else format_number(thresholds.get(code))
        )
        rows.append(
            {
                "code": code,
                "reason": DOMAIN_CHECK_LABELS.get(code, code),
                "n": counted.get(code, 0),
                "share": f"{counted.get(code, 0) / n:.1%}" if n else "n/a",
                "threshold": threshold,
            }
        )
    recognised: list[dict[str, Any]] = []
    if "lineage" in predictions.columns and predictions["lineage"].notna().any():
        counts = predictions["lineage"].astype(str).value_counts()
        recognised = [{"lineage": k, "n": int(v)} for k, v in counts.items()]
    shown = [
        {"sample_id": str(s), "reasons": ", ".join(DOMAIN_CHECK_LABELS.get(r, r) for r in rs)}
        for s, is_out, rs in zip(predictions.index, flagged, reasons, strict=True)
        if is_out
    ][:FLAGGED_SHOWN]
    return {
        "available": True,
        "note": "",
        "n": n,
        "n_out": int(flagged.sum()),
        "share": f"{flagged.mean() if n else 0.0:.1%}",
        "reasons": rows,
        "quantile": described["quantile"],
        "held_out_rate": format_number(float(described["held_out_rate"])),
        "held_out_share": _share(float(described["held_out_rate"])),
        "lineages": described["lineages"] or [],
        "recognised": recognised,
        "flagged": shown,
        "flagged_shown": FLAGGED_SHOWN,
    }


def _share(rate: float) -> str:
    return "n/a" if rate != rate else f"{rate:.1%}"
