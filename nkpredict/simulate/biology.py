"""The biology planted into simulated cohorts: blood cancers, resistance mechanisms, programs.

Everything here is a constant of the generator (:mod:`nkpredict.simulate.cohort`), written as
code so that a cohort's truth can name it: the simulated diseases and their lineage programs
and ligand shifts (:data:`DISEASES`), the planted NK-resistance mechanisms
(:data:`DEFAULT_MECHANISMS`), baseline expression of catalogue genes, and the co-regulated
sample-level programs (:data:`FACTORS`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BASELINE_LOG2_TPM",
    "DEFAULT_MECHANISMS",
    "DISEASES",
    "FACTORS",
    "GENOME_CATALOG_VERSION",
    "PROGRAM_GENE_JITTER",
    "PROGRAM_OFF_MEAN_SD",
    "STRESS_PROLIFERATION_CORRELATION",
    "STRUCTURED_MEAN_SD",
    "DiseaseProfile",
    "MechanismSpec",
]

GENOME_CATALOG_VERSION = "2026.11.0"
"""The catalogue version whose genes make the simulated genome's structured genes (and whose
genes and aliases are kept out of its background): pinned, so a cohort of a given seed stays the
same when the catalogue grows."""

#: Baseline log2 TPM of catalogue genes known to be highly or lowly expressed in blood cancers;
#: other catalogue genes draw from N(4, 1.5), lineage-program genes from N(0.5, 1).
BASELINE_LOG2_TPM: dict[str, float] = {
    "B2M": 11.0,
    "HLA-A": 9.5,
    "HLA-B": 9.5,
    "HLA-C": 9.0,
    "HLA-E": 8.0,
    "NCR3LG1": 3.5,
    "MICA": 4.0,
    "MICB": 4.5,
    "ULBP1": 2.5,
    "ULBP2": 3.0,
    "ULBP3": 3.0,
    "CD48": 5.0,
    "SLAMF7": 2.0,
}
STRUCTURED_MEAN_SD = (4.0, 1.5)
PROGRAM_OFF_MEAN_SD = (0.5, 1.0)
PROGRAM_GENE_JITTER = (0.7, 1.3)

#: Co-regulated sample-level programs: name, catalogue gene sets, range of gene loadings
#: (log2 change per standard deviation of the program).
FACTORS: tuple[tuple[str, tuple[str, ...], tuple[float, float]], ...] = (
    ("IFNG", ("IFNG_SIGNALING", "ANTIGEN_PRESENTATION"), (0.6, 1.2)),
    ("PROLIFERATION", ("PROLIFERATION",), (0.5, 1.0)),
    ("STRESS", ("NKG2D_LIGAND_REGULATION",), (0.3, 0.8)),
)
STRESS_PROLIFERATION_CORRELATION = 0.4


@dataclass(frozen=True)
class DiseaseProfile:
    """How one blood cancer looks in the simulation.

    Parameters
    ----------
    name : str
        Full disease name.
    lineage : str
        Broad lineage (``myeloid``, ``B-cell``, ``T-cell``, ``plasma cell``).
    programs : tuple of (str, float)
        Catalogue lineage gene sets switched on, with their strength (1 = the full
        ``program_log2_effect``).
    ligand_shifts : tuple of (str, float)
        Lineage-typical log2 shifts of catalogue genes (e.g. SLAMF7 high in myeloma).
    logit_effect : float
        Lineage effect on the log-odds of resistance beyond the driver genes.
    """

    name: str
    lineage: str
    programs: tuple[tuple[str, float], ...]
    ligand_shifts: tuple[tuple[str, float], ...] = ()
    logit_effect: float = 0.0


def _same(genes: tuple[str, ...], shift: float) -> tuple[tuple[str, float], ...]:
    return tuple((gene, shift) for gene in genes)


_HLA_I = ("HLA-A", "HLA-B", "HLA-C")

#: The simulated blood cancers, keyed by their usual abbreviation.
DISEASES: dict[str, DiseaseProfile] = {
    "AML": DiseaseProfile(
        "acute myeloid leukemia",
        "myeloid",
        (("MYELOID_PROGRAM", 1.0),),
        (("CD48", -1.0), ("ULBP1", 0.5), ("NCR3LG1", 0.5)),
        0.0,
    ),
    "CML": DiseaseProfile(
        "chronic myeloid leukemia, blast crisis",
        "myeloid",
        (("MYELOID_PROGRAM", 0.6), ("ERYTHROID_PROGRAM", 1.0)),
        (*_same(_HLA_I, -3.0), ("B2M", -1.0), ("HLA-E", -1.5), ("NCR3LG1", 1.0)),
        -0.5,
    ),
    "B-ALL": DiseaseProfile(
        "B-cell acute lymphoblastic leukemia",
        "B-cell",
        (("B_CELL_PROGRAM", 1.0),),
        (("CD48", 1.5), ("CD58", 0.5)),
        -0.3,
    ),
    "T-ALL": DiseaseProfile(
        "T-cell acute lymphoblastic leukemia",
        "T-cell",
        (("T_CELL_PROGRAM", 1.0),),
        (("CD48", 1.5), ("ICAM3", 1.0), *_same(_HLA_I, -0.5)),
        0.2,
    ),
    "CLL": DiseaseProfile(
        "chronic lymphocytic leukemia",
        "B-cell",
        (("B_CELL_PROGRAM", 0.8),),
        (("CD48", 2.0), ("BCL2", 2.0), ("HLA-E", 0.5)),
        0.4,
    ),
    "DLBCL": DiseaseProfile(
        "diffuse large B-cell lymphoma",
        "B-cell",
        (("B_CELL_PROGRAM", 1.0),),
        (("CD48", 1.0), ("B2M", -1.5), *_same(_HLA_I, -1.0), ("CD58", -1.0)),
        0.3,
    ),
    "MCL": DiseaseProfile(
        "mantle cell lymphoma",
        "B-cell",
        (("B_CELL_PROGRAM", 1.0),),
        (("CD48", 1.5), ("BCL2", 1.0)),
        0.3,
    ),
    "MM": DiseaseProfile(
        "multiple myeloma",
        "plasma cell",
        (("PLASMA_CELL_PROGRAM", 1.0),),
        (("SLAMF7", 4.0), *_same(_HLA_I, 1.0), ("MCL1", 1.0), ("CD48", -0.5)),
        0.5,
    ),
}


@dataclass(frozen=True)
class MechanismSpec:
    """A planted NK-resistance mechanism.

    Parameters
    ----------
    name : str
        Mechanism name (``B7H6_LOSS``).
    axes : tuple of str
        Catalogue NK axes it acts on.
    genes : tuple of str
        Genes whose latent expression it shifts by ``log2_shift`` (times the sample's strength).
    drivers : tuple of str
        Genes whose latent expression defines its driver score (see the module docstring).
    log2_shift : float
        Expression shift; negative for a loss, positive for a gain.
    weight : float
        Effect of one unit of driver score on the log-odds of resistance.
    frequency : float
        Relative frequency with which samples that carry mechanisms get this one.
    """

    name: str
    axes: tuple[str, ...]
    genes: tuple[str, ...]
    drivers: tuple[str, ...]
    log2_shift: float
    weight: float
    frequency: float = 1.0

    @property
    def direction(self) -> str:
        """``"loss"`` or ``"gain"`` of expression."""
        return "loss" if self.log2_shift < 0 else "gain"


_NKG2D_LIGANDS = ("MICA", "MICB", "ULBP1", "ULBP2", "ULBP3")
_ADHESION = ("CD48", "CD58", "ICAM1")
_ANTI_APOPTOTIC = ("BCL2", "MCL1", "CFLAR", "SERPINB9")
_IFNG_HLA = (*_HLA_I, "HLA-E", "B2M", "TAP1", "TAP2", "NLRC5", "PSMB8", "PSMB9", "STAT1", "IRF1")

DEFAULT_MECHANISMS: tuple[MechanismSpec, ...] = (
    MechanismSpec("B7H6_LOSS", ("NKp30",), ("NCR3LG1",), ("NCR3LG1",), -4.0, 2.5, 1.0),
    MechanismSpec("NKG2DL_LOSS", ("NKG2D",), _NKG2D_LIGANDS, _NKG2D_LIGANDS, -2.5, 2.0, 1.0),
    MechanismSpec(
        "HLA_GAIN", ("KIR_HLA_I", "NKG2A_HLA_E"), _IFNG_HLA, (*_HLA_I, "HLA-E"), 1.5, 2.2, 1.0
    ),
    MechanismSpec("ADHESION_LOSS", ("2B4", "CD2", "LFA1"), _ADHESION, _ADHESION, -2.5, 1.8, 0.8),
    MechanismSpec(
        "APOPTOSIS_RESISTANCE",
        ("APOPTOSIS_RESISTANCE",),
        _ANTI_APOPTOTIC,
        _ANTI_APOPTOTIC,
        2.0,
        1.8,
        0.8,
    ),
)
