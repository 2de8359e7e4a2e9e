"""Profiles that are *not* blood cancers, for checking the out-of-domain warnings.

nkpredict is trained on leukaemia, lymphoma and myeloma; a carcinoma profile sent to it by
mistake must be flagged, not scored as if it were a blood line. :func:`solid_tumour_profiles`
turns simulated blood profiles into carcinoma-like ones the way such profiles differ in the
catalogue's genes: every haematopoietic lineage program is silent, the haematopoietic-restricted
SLAM-family receptors (CD48, SLAMF7) are silent, and the epithelial mucin MUC1 is high.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nkpredict.catalog import load_catalog

__all__ = ["EPITHELIAL_UP", "HAEMATOPOIETIC_ONLY", "solid_tumour_profiles"]

HAEMATOPOIETIC_ONLY = ("CD48", "SLAMF7")
"""Catalogue genes expressed by haematopoietic cells only."""
EPITHELIAL_UP = {"MUC1": 4.0}
"""Catalogue genes carcinomas express far above blood cells (log2 fold change)."""
_SILENT_LOG2 = (0.3, 0.5)  # mean and sd of a silent gene's log2(TPM + 1)


def solid_tumour_profiles(tpm: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Carcinoma-like versions of simulated blood profiles (TPM, samples x genes).

    Parameters
    ----------
    tpm : DataFrame
        TPM of a simulated cohort (:attr:`~nkpredict.simulate.cohort.Cohort.tpm`).
    seed : int
        Seed of the silent genes' noise.

    Returns
    -------
    DataFrame
        The same shape and labels; each sample rescaled to sum to one million.
    """
    catalog = load_catalog()
    silent = {g for s in catalog.gene_sets if s.category == "lineage" for g in s.genes}
    silent |= set(HAEMATOPOIETIC_ONLY)
    log = np.log2(tpm.astype(np.float64) + 1.0)
    rng = np.random.default_rng([seed, 7])
    columns = [g for g in tpm.columns if g in silent]
    noise = rng.normal(*_SILENT_LOG2, size=(len(tpm), len(columns)))
    log.loc[:, columns] = np.clip(noise, 0.0, None)
    for gene, shift in EPITHELIAL_UP.items():
        if gene in log.columns:
            log[gene] += shift
    values = np.exp2(log) - 1.0
    values = values.div(values.sum(axis=1), axis=0) * 1e6
    return values.astype(np.float32)
