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
        PRISM long table, tab-separated) and ``truth`` (``truth.json``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prism = cohort.nk_prism_table()
    paths = {
        "expression": write_with(out / "expression.csv", cohort.counts.to_csv),
        "labels": write_with(out / "labels.csv", cohort.labels.to_csv),
        "nk_prism": write_with(
            out / "nk_prism.txt", lambda handle: prism.to_csv(handle, sep="\t", index=False)
        ),
        "truth": write_json(out / "truth.json", cohort.truth),
    }
    logger.info("wrote cohort files to %s", out)
    return paths
