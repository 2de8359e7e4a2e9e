"""Single-cell cohorts made from simulated bulk lines, with subclones of their own biology.

A bulk :class:`~nkpredict.simulate.cohort.Cohort` gives every line (sample) an expression
profile. :func:`simulate_single_cell` turns chosen lines into cells the way droplet
sequencing sees a tumour:

- each cell of line ``s`` draws its gene fractions from the line's profile ``p[s]`` (the
  line's TPM over the simulated genes, divided by 1e6) times cell-to-cell biological
  variation ``2 ** N(0, cell_noise_sd)``, renormalised;
- its library size (UMIs over the simulated genes) is log-normal around
  ``library_size_median`` with log-sd ``library_size_sd``;
- UMI counts are Poisson at those means, then every detected count is lost with probability
  ``dropout`` (zero inflation beyond sampling), so a zero in a cell is weak evidence of
  absence;
- a :class:`Subclone` of a line carries a planted mechanism the bulk line does not: the
  mechanism's genes (:data:`~nkpredict.simulate.biology.DEFAULT_MECHANISMS`) are shifted by
  ``log2_shift * strength`` in a ``fraction`` of the line's cells, before sampling. A
  B7-H6 (NCR3LG1) loss in 30 % of an otherwise sensitive line is the textbook case of
  Dufva et al. 2023: the bulk profile dilutes it, the cells show it.

The result holds sparse CSR counts, ``obs`` (``sample``, ``cluster``, ``subclone``,
``mechanism``, ``library_size``) and ``var``, and writes an ``.h5ad`` file that
:mod:`nkpredict.stream` reads by rows. Its ``truth`` records the planted subclones and, per
cell, whether it carries one (``obs["subclone"]``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from nkpredict.exceptions import InputError
from nkpredict.simulate.biology import DEFAULT_MECHANISMS, MechanismSpec
from nkpredict.simulate.cohort import Cohort
from nkpredict.simulate.config import require

__all__ = ["PARENTAL", "SingleCellCohort", "Subclone", "simulate_single_cell"]

logger = logging.getLogger(__name__)

PARENTAL = "parental"
"""``obs["cluster"]`` and ``obs["mechanism"]`` value of cells without a planted subclone."""
_PER_MILLION = 1e6


@dataclass(frozen=True)
class Subclone:
    """A subclone of one line that carries a mechanism the line's bulk profile does not.

    Parameters
    ----------
    sample : str
        The line (a ``sample_id`` of the bulk cohort).
    mechanism : str
        Name of a planted mechanism (``B7H6_LOSS``, ``HLA_GAIN`` ...).
    fraction : float
        Share of the line's cells in the subclone, in (0, 1].
    strength : float
        Multiplier of the mechanism's ``log2_shift`` (1 is the bulk simulator's typical
        carrier; 2 a complete loss of B7-H6).
    """

    sample: str
    mechanism: str = "B7H6_LOSS"
    fraction: float = 0.3
    strength: float = 2.0

    @property
    def cluster(self) -> str:
        """The ``obs["cluster"]`` label of its cells (``subclone-B7H6_LOSS``)."""
        return f"subclone-{self.mechanism}"


@dataclass
class SingleCellCohort:
    """Simulated single cells of bulk lines.

    Attributes
    ----------
    counts : scipy.sparse.csr_matrix of shape (n_cells, n_genes)
        UMI counts (float32).
    obs : DataFrame of shape (n_cells, 5)
        Index ``cell_id``; ``sample`` (the line), ``cluster`` (``parental`` or the subclone's
        cluster), ``subclone`` (bool), ``mechanism`` (planted in the cell, ``parental`` when
        none) and ``library_size`` (UMIs).
    var : DataFrame of shape (n_genes, 0)
        Index: gene symbols, as in the bulk cohort.
    truth : dict
        Parameters, the subclones and each line's bulk mechanisms.
    """

    counts: sparse.csr_matrix
    obs: pd.DataFrame
    var: pd.DataFrame
    truth: dict[str, Any] = field(default_factory=dict)

    def to_anndata(self) -> Any:
        """An :class:`anndata.AnnData` (``X`` CSR counts, categorical ``obs`` labels,
        ``uns["simulation"]`` the truth as JSON text)."""
        import json

        import anndata

        return anndata.AnnData(
            X=self.counts,
            obs=self.obs.copy(),
            var=self.var.copy(),
            uns={"simulation": json.dumps(self.truth)},
        )

    def write_h5ad(self, path: str | Path) -> Path:
        """Write :meth:`to_anndata` to ``path`` (CSR ``X``, readable by rows)."""
        out = Path(path)
        self.to_anndata().write_h5ad(out)
        return out


def _mechanism(name: str, mechanisms: tuple[MechanismSpec, ...]) -> MechanismSpec:
    for spec in mechanisms:
        if spec.name == name:
            return spec
    known = ", ".join(m.name for m in mechanisms)
    raise InputError(f"unknown mechanism {name!r} (known: {known})")


def simulate_single_cell(
    cohort: Cohort,
    samples: list[str] | None = None,
    cells_per_sample: int = 200,
    subclones: tuple[Subclone, ...] = (),
    library_size_median: float = 5_000.0,
    library_size_sd: float = 0.4,
    dropout: float = 0.1,
    cell_noise_sd: float = 0.3,
    seed: int = 0,
) -> SingleCellCohort:
    """Cells of bulk lines (see the module docstring).

    Parameters
    ----------
    cohort : Cohort
        The bulk cohort whose lines are sequenced.
    samples : list of str, optional
        Lines to take (default: every line of the cohort).
    cells_per_sample : int
        Cells per line.
    subclones : tuple of Subclone
        Planted subclones (at most one per line).
    library_size_median, library_size_sd : float
        Log-normal UMIs per cell over the simulated genes: median and log-sd.
    dropout : float
        Probability that a detected count is lost, in [0, 1).
    cell_noise_sd : float
        Cell-to-cell biological variation of each gene (log2).
    seed : int
        Seed of the cells.

    Returns
    -------
    SingleCellCohort

    Raises
    ------
    InputError
        Unknown lines or mechanisms, two subclones in one line, or parameters out of range.
    """
    lines = list(cohort.tpm.index) if samples is None else [str(s) for s in samples]
    require(cells_per_sample >= 1, "cells_per_sample must be at least 1")
    require(library_size_median > 0 and library_size_sd >= 0, "library sizes must be positive")
    require(0.0 <= dropout < 1.0, "dropout must be in [0, 1)")
    require(cell_noise_sd >= 0, "cell_noise_sd must be >= 0")
    unknown = sorted(set(lines) - set(cohort.tpm.index))
    if unknown:
        raise InputError(f"lines not in the cohort: {', '.join(unknown[:5])}")
    by_line: dict[str, Subclone] = {}
    for planted in subclones:
        require(0.0 < planted.fraction <= 1.0, "a subclone's fraction must be in (0, 1]")
        if planted.sample not in lines:
            raise InputError(f"subclone of {planted.sample!r}, which is not simulated")
        if planted.sample in by_line:
            raise InputError(f"two subclones of {planted.sample!r}")
        by_line[planted.sample] = planted
    genes = cohort.tpm.columns
    position = {g: i for i, g in enumerate(genes)}
    rng = np.random.default_rng(seed)
    profiles = cohort.tpm.loc[lines].to_numpy(dtype=np.float64) / _PER_MILLION
    parts: list[sparse.csr_matrix] = []
    columns: dict[str, list[Any]] = {k: [] for k in ("sample", "cluster", "subclone", "mechanism")}
    libraries: list[np.ndarray] = []
    for line, profile in zip(lines, profiles, strict=True):
        n = cells_per_sample
        log_shift = np.zeros((n, len(genes)))
        carrier = np.zeros(n, dtype=bool)
        clone = by_line.get(line)
        if clone is not None:
            spec = _mechanism(clone.mechanism, DEFAULT_MECHANISMS)
            carrier[: max(1, round(clone.fraction * n))] = True
            rng.shuffle(carrier)
            shifted = np.array([position[g] for g in spec.genes if g in position], dtype=np.intp)
            log_shift[np.ix_(carrier, shifted)] = spec.log2_shift * clone.strength
        noise = cell_noise_sd * rng.standard_normal((n, len(genes)))
        fractions = profile[None, :] * np.exp2(noise + log_shift)
        fractions /= fractions.sum(axis=1, keepdims=True)
        library = rng.lognormal(np.log(library_size_median), library_size_sd, n)
        counts = rng.poisson(fractions * library[:, None]).astype(np.float32)
        if dropout > 0:
            counts[rng.random(counts.shape) < dropout] = 0.0
        empty = counts.sum(axis=1) == 0
        counts[empty, int(np.argmax(profile))] = 1.0  # no empty droplets
        parts.append(sparse.csr_matrix(counts))
        libraries.append(counts.sum(axis=1))
        label = PARENTAL if clone is None else clone.cluster
        mechanism = PARENTAL if clone is None else clone.mechanism
        columns["sample"].extend([line] * n)
        columns["cluster"].extend(np.where(carrier, label, PARENTAL).tolist())
        columns["subclone"].extend(carrier.tolist())
        columns["mechanism"].extend(np.where(carrier, mechanism, PARENTAL).tolist())
    index = pd.Index(
        [f"{line}-cell{i:05d}" for line in lines for i in range(cells_per_sample)],
        name="cell_id",
    )
    obs = pd.DataFrame(
        {
            "sample": pd.Categorical(columns["sample"], categories=lines),
            "cluster": pd.Categorical(columns["cluster"]),
            "subclone": np.asarray(columns["subclone"], dtype=bool),
            "mechanism": pd.Categorical(columns["mechanism"]),
            "library_size": np.concatenate(libraries).astype(np.float64),
        },
        index=index,
    )
    truth = {
        "cells_per_sample": cells_per_sample,
        "library_size_median": library_size_median,
        "library_size_sd": library_size_sd,
        "dropout": dropout,
        "cell_noise_sd": cell_noise_sd,
        "seed": seed,
        "subclones": [asdict(c) for c in subclones],
        "bulk_mechanisms": {s: str(cohort.metadata.loc[s, "mechanisms"]) for s in lines},
        "bulk_seed": cohort.truth.get("config", {}).get("seed"),
    }
    logger.info(
        "simulated %d cells of %d lines (%d subclones)", len(obs), len(lines), len(subclones)
    )
    return SingleCellCohort(
        sparse.csr_matrix(sparse.vstack(parts, format="csr")),
        obs,
        pd.DataFrame(index=pd.Index(genes, name="gene")),
        truth,
    )
