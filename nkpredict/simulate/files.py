"""A simulated cohort written as the files a user of real data would have."""

from __future__ import annotations

import logging
from pathlib import Path

from nkpredict.io import write_json, write_with
from nkpredict.simulate.cohort import Cohort

__all__ = ["write_cohort"]

logger = logging.getLogger(__name__)


def write_cohort(cohort: Cohort, out_dir: str | Path) -> dict[str, Path]:
    """Write a cohort as the files a user of real data would have.

    Parameters
    ----------
    cohort : Cohort
        A simulated cohort.
    out_dir : str or Path
        Directory, created if needed.

    Returns
    -------
    dict of str to Path
        ``expression`` (``expression.csv``: counts, samples x genes, first column
        ``sample_id``), ``labels`` (``labels.csv``), ``nk_prism`` (``nk_prism.txt``, the NK
        PRISM long table, tab-separated), ``truth`` (``truth.json``) and ``contributions``
        (``contributions.csv``: every driver's true contribution to each sample's log-odds).
        A cohort with an external cohort (``platform-shift``) also writes it to
        ``external/`` (``external_expression``, ``external_labels``, ...).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prism = cohort.nk_prism_table()
    expression = cohort.counts if cohort.expression is None else cohort.expression
    paths = {
        "expression": write_with(out / "expression.csv", expression.to_csv),
        "labels": write_with(out / "labels.csv", cohort.labels.to_csv),
        "nk_prism": write_with(
            out / "nk_prism.txt", lambda handle: prism.to_csv(handle, sep="\t", index=False)
        ),
        "truth": write_json(out / "truth.json", cohort.truth),
        "contributions": write_with(out / "contributions.csv", cohort.contributions.to_csv),
    }
    if cohort.external is not None:
        external = write_cohort(cohort.external, out / "external")
        paths |= {f"external_{name}": path for name, path in external.items()}
    logger.info("wrote cohort files to %s", out)
    return paths
