"""Simulator scenarios: truths that the catalogue-additive model does not hold by construction.

The default cohort (``additive``) plants catalogue genes with additive, independent effects on
the log-odds, so a penalized linear model on the catalogue features is the true model. Each other
scenario changes one thing, so that the accuracy panel can show where a learner wins and where
it loses:

``additive``
    Today's cohort, unchanged (the same cohort for the same seed).
``lineage-restricted``
    CD48 (2B4 axis) loss drives resistance in B-cell lineages only; a lineage offset makes its
    marginal association with the true log-odds exactly zero over the whole cohort (the
    adhesion-loss mechanism, which also uses CD48, is left out).
``saturating``
    Hill-type dose-response of every mechanism (``2 w s^4 / (s^4 + 0.5^4)`` of the driver score
    ``s``), HLA gain acting only above a threshold, and a non-monotone viability curve that rises
    above 100% at low effector:target ratios for resistant lines.
``interactions``
    HLA-E protects only when the donor NK cells are NKG2A-high (a per-sample donor state), and
    NKG2D-ligand loss matters only when the sheddases ADAM10/ADAM17 are high.
``cnv``
    Focal NCR3LG1 deletions (log2 -3 in 15% of samples), one-copy 6p21 losses dragging HLA-A/B/C,
    HLA-E and the neighbouring TAP1/TAP2/TAPBP/PSMB8/PSMB9 down (log2 -1, 10%), and B2M or JAK1
    loss-of-function (8% each) that sensitizes without changing mRNA.
``off-catalogue``
    A strong driver outside the catalogue (a background gene, log2 state shift sd 1.5, weight 2):
    only genome-wide features can find it.
``confounded``
    Decoy catalogue genes (CLEC2D, HLA-G, CD274) shifted with the lineages' effects on the
    log-odds (lineage effects doubled), with no effect of their own.
``platform-shift``
    The additive cohort plus a second, external cohort (other seed) measured on another platform:
    microarray-like log2 intensities with a compressed scale, a floor, per-gene batch offsets and
    noise, to test transfer.

Every scenario is seeded from the cohort's seed (its own random stream, so the shared draws are
unchanged) and reports every driver's true contribution to the log-odds, sample by sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from nkpredict.catalog import load_catalog
from nkpredict.simulate.biology import DISEASES
from nkpredict.simulate.config import SimulationConfig, require
from nkpredict.vocabulary import SCENARIOS, Scenario, check_choice

__all__ = [
    "DEFAULT_SCENARIO",
    "Driver",
    "ScenarioEffects",
    "ScenarioSpec",
    "World",
    "external_platform",
    "scenario_spec",
]

DEFAULT_SCENARIO: Scenario = "additive"


@dataclass(frozen=True)
class World:
    """What a scenario sees of the cohort being generated.

    Attributes
    ----------
    genes : tuple of str
        Structured (catalogue) genes, the columns of ``latent``.
    background : tuple of str
        Background genes of the matrix.
    baseline : ndarray, shape (n_structured,)
        Baseline log2 TPM of the structured genes.
    disease : ndarray, shape (n_samples,)
        Index into :data:`~nkpredict.simulate.biology.DISEASES`.
    lineage_effect : ndarray, shape (n_diseases,)
        The diseases' effects on the log-odds.
    config : SimulationConfig
    """

    genes: tuple[str, ...]
    background: tuple[str, ...]
    baseline: np.ndarray
    disease: np.ndarray
    lineage_effect: np.ndarray
    config: SimulationConfig

    @property
    def lineage(self) -> np.ndarray:
        """Broad lineage of each sample, shape (n_samples,)."""
        names = np.array([p.lineage for p in DISEASES.values()], dtype=object)
        return names[self.disease]

    def column(self, gene: str) -> int:
        """Position of a structured gene."""
        return self.genes.index(gene)


@dataclass(frozen=True)
class Driver:
    """One cause of resistance and its true contribution to each sample's log-odds."""

    name: str
    axes: tuple[str, ...]
    genes: tuple[str, ...]
    contribution: np.ndarray
    description: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form (without the per-sample contributions)."""
        return {
            "name": self.name,
            "axes": list(self.axes),
            "genes": list(self.genes),
            "description": self.description,
        }


@dataclass
class ScenarioEffects:
    """What a scenario changes in a cohort.

    Attributes
    ----------
    latent : ndarray, shape (n_samples, n_structured)
        True latent log2 TPM of structured genes (after copy-number changes etc.).
    background_shift : dict of str to ndarray
        Background gene -> per-sample log2 shift added to its latent expression.
    mechanism_contribution : ndarray or None, shape (n_samples, n_mechanisms)
        Replaces ``weight * driver score`` of the mechanisms (None: additive).
    drivers : list of Driver
        Extra contributions to the log-odds.
    state : dict of str to ndarray
        Per-sample hidden states (copy-number calls, donor NKG2A) written with the metadata.
    decoys : tuple of str
        Genes that correlate with resistance without an effect of their own.
    calibrate : callable or None
        ``calibrate(measured, logit)`` -> more drivers, called once the counts exist:
        ``measured(gene)`` gives a gene's measured log2(TPM + 1), shape (n_samples,), and
        ``logit`` the log-odds of every other contribution.
    """

    latent: np.ndarray
    background_shift: dict[str, np.ndarray] = field(default_factory=dict)
    mechanism_contribution: np.ndarray | None = None
    drivers: list[Driver] = field(default_factory=list)
    state: dict[str, np.ndarray] = field(default_factory=dict)
    decoys: tuple[str, ...] = ()
    calibrate: Callable[[Callable[[str], np.ndarray], np.ndarray], list[Driver]] | None = None


Effects = Callable[[World, np.ndarray, np.ndarray, np.random.Generator], ScenarioEffects]
"""``effects(world, latent, driver_scores, rng)``; ``driver_scores`` (n_samples, n_mechanisms)
are those of the unchanged latent."""
Viability = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``viability(rate, ratios, noise)`` -> % viability (n_samples, n_ratios)."""


@dataclass(frozen=True)
class ScenarioSpec:
    """A scenario: how it changes the configuration, the biology and the readout."""

    name: Scenario
    configure: Callable[[SimulationConfig], SimulationConfig] = lambda config: config
    effects: Effects | None = None
    viability: Viability | None = None
    external: bool = False


def _z(values: np.ndarray) -> np.ndarray:
    sd = values.std()
    return (values - values.mean()) / (sd if sd > 0 else 1.0)


def _without_mechanism(name: str) -> Callable[[SimulationConfig], SimulationConfig]:
    def configure(config: SimulationConfig) -> SimulationConfig:
        kept = tuple(m for m in config.mechanisms if m.name != name)
        probs = config.mechanism_count_probs[: len(kept) + 1]
        return replace(config, mechanisms=kept, mechanism_count_probs=probs)

    return configure


# ---------------------------------------------------------------------------- lineage-restricted

RESTRICTED_GENE = "CD48"
RESTRICTED_LINEAGE = "B-cell"
RESTRICTED_WEIGHT = 1.5


def _lineage_restricted(
    world: World, latent: np.ndarray, scores: np.ndarray, rng: np.random.Generator
) -> ScenarioEffects:
    gene = latent[:, world.column(RESTRICTED_GENE)]
    inside = world.lineage == RESTRICTED_LINEAGE
    effect = np.zeros_like(gene)
    if inside.sum() > 1:
        effect[inside] = -RESTRICTED_WEIGHT * _z(gene[inside])  # loss -> resistant
    indicator = inside.astype(float)

    def offset(measured: Callable[[str], np.ndarray], logit: np.ndarray) -> list[Driver]:
        """The lineage offset that makes the measured gene's association with the log-odds
        exactly zero over the whole cohort (``logit`` holds every other contribution)."""
        values = measured(RESTRICTED_GENE)
        covariance = np.cov(values, indicator)[0, 1]
        shift = 0.0 if abs(covariance) < 1e-12 else -np.cov(values, logit)[0, 1] / covariance
        return [
            Driver(
                "LINEAGE_OFFSET",
                (),
                (),
                shift * indicator,
                f"log-odds offset {shift:.3f} of {RESTRICTED_LINEAGE} lineages that makes "
                f"{RESTRICTED_GENE}'s marginal association with the log-odds zero",
            )
        ]

    return ScenarioEffects(
        latent=latent,
        drivers=[
            Driver(
                f"{RESTRICTED_GENE}_LOSS_{RESTRICTED_LINEAGE.upper()}",
                ("2B4",),
                (RESTRICTED_GENE,),
                effect,
                f"{RESTRICTED_GENE} loss raises resistance in {RESTRICTED_LINEAGE} lineages only "
                f"(weight {RESTRICTED_WEIGHT} per within-lineage sd)",
            )
        ],
        calibrate=offset,
    )


# ---------------------------------------------------------------------------- saturating

HILL_HALF, HILL_N = 0.5, 4.0
HLA_THRESHOLD = 0.8


def _saturating(
    world: World, latent: np.ndarray, scores: np.ndarray, rng: np.random.Generator
) -> ScenarioEffects:
    positive = np.clip(scores, 0.0, None)
    hill = 2.0 * positive**HILL_N / (positive**HILL_N + HILL_HALF**HILL_N)
    weights = np.array([m.weight for m in world.config.mechanisms])
    contribution = hill * weights
    for k, mechanism in enumerate(world.config.mechanisms):
        if mechanism.name == "HLA_GAIN":  # a threshold: nothing below, full effect above
            contribution[:, k] = np.where(scores[:, k] > HLA_THRESHOLD, 1.5 * weights[k], 0.0)
    return ScenarioEffects(latent=latent, mechanism_contribution=contribution)


def _saturating_viability(rate: np.ndarray, ratios: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Killing plus NK-stimulated growth at low E:T: above 100% for resistant lines."""
    kill = np.exp(-rate[:, None] * ratios[None, :])
    growth = 1.0 + 0.35 * ratios[None, :] * np.exp(-ratios[None, :]) * kill
    return np.clip(100.0 * kill * growth + noise, 0.0, 150.0)


# ---------------------------------------------------------------------------- interactions

NKG2A_HIGH_FRACTION = 0.5
HLA_E_WEIGHT = 1.8


def _interactions(
    world: World, latent: np.ndarray, scores: np.ndarray, rng: np.random.Generator
) -> ScenarioEffects:
    nkg2a_high = np.asarray(rng.random(latent.shape[0]) < NKG2A_HIGH_FRACTION)
    hla_e = _z(latent[:, world.column("HLA-E")])
    shedding = _z(latent[:, [world.column("ADAM10"), world.column("ADAM17")]].mean(axis=1))
    shedding_high = shedding > 0
    weights = np.array([m.weight for m in world.config.mechanisms])
    contribution = scores * weights
    names = [m.name for m in world.config.mechanisms]
    contribution[:, names.index("NKG2DL_LOSS")] *= shedding_high
    return ScenarioEffects(
        latent=latent,
        mechanism_contribution=contribution,
        drivers=[
            Driver(
                "HLA_E_X_NKG2A",
                ("NKG2A_HLA_E",),
                ("HLA-E",),
                HLA_E_WEIGHT * hla_e * nkg2a_high,
                "HLA-E protects only against NKG2A-high donor NK cells",
            )
        ],
        state={"donor_nkg2a_high": nkg2a_high.astype(np.int64), "shedding_high": shedding_high},
    )


# ---------------------------------------------------------------------------- cnv

HLA_6P21 = ("HLA-A", "HLA-B", "HLA-C", "HLA-E", "TAP1", "TAP2", "TAPBP", "PSMB8", "PSMB9")
CNV_RATES = {"NCR3LG1_DEL": 0.15, "HLA_6P21_LOSS": 0.10, "B2M_LOF": 0.08, "JAK1_LOF": 0.08}
LOF_WEIGHTS = {"B2M_LOF": -2.5, "JAK1_LOF": -1.5}


def _cnv(
    world: World, latent: np.ndarray, scores: np.ndarray, rng: np.random.Generator
) -> ScenarioEffects:
    n = latent.shape[0]
    calls = {name: np.asarray(rng.random(n) < rate) for name, rate in CNV_RATES.items()}
    changed = latent.copy()
    changed[:, world.column("NCR3LG1")] -= 3.0 * calls["NCR3LG1_DEL"]
    region = [world.column(g) for g in HLA_6P21]
    changed[:, region] -= 1.0 * calls["HLA_6P21_LOSS"][:, None]
    drivers = [
        Driver(
            "B2M_LOF",
            ("ANTIGEN_PRESENTATION",),
            ("B2M",),
            LOF_WEIGHTS["B2M_LOF"] * calls["B2M_LOF"].astype(np.float64),
            "B2M loss-of-function (no surface HLA class I), invisible in mRNA",
        ),
        Driver(
            "JAK1_LOF",
            ("IFNG_RESPONSE",),
            ("JAK1",),
            LOF_WEIGHTS["JAK1_LOF"] * calls["JAK1_LOF"].astype(np.float64),
            "JAK1 loss-of-function (no IFN-gamma-induced protection), invisible in mRNA",
        ),
    ]
    state = {f"cnv_{name.lower()}": call.astype(np.int64) for name, call in calls.items()}
    return ScenarioEffects(latent=changed, drivers=drivers, state=state)


# ---------------------------------------------------------------------------- off-catalogue

OFF_CATALOGUE_SD = 1.5
OFF_CATALOGUE_WEIGHT = 2.0


def off_catalogue_gene(background: tuple[str, ...]) -> str:
    """The first background gene that no version of the catalogue names."""
    catalog = load_catalog()
    known = set(catalog.all_genes()) | set(catalog.alias_map())
    for gene in background:
        if gene not in known and gene.upper() not in known:
            return gene
    require(False, "off-catalogue needs at least one background gene (raise n_genes)")
    raise AssertionError  # unreachable: require raised


def _off_catalogue(
    world: World, latent: np.ndarray, scores: np.ndarray, rng: np.random.Generator
) -> ScenarioEffects:
    gene = off_catalogue_gene(world.background)
    state = np.asarray(rng.standard_normal(latent.shape[0]))
    return ScenarioEffects(
        latent=latent,
        background_shift={gene: OFF_CATALOGUE_SD * state},
        drivers=[
            Driver(
                f"OFF_CATALOGUE_{gene}",
                ("GENOME_WIDE",),
                (gene,),
                OFF_CATALOGUE_WEIGHT * state,
                f"{gene} (outside the catalogue) high -> resistant, weight "
                f"{OFF_CATALOGUE_WEIGHT} per sd of its planted log2 shift",
            )
        ],
    )


# ---------------------------------------------------------------------------- confounded

DECOYS = ("CLEC2D", "HLA-G", "CD274")
DECOY_LOG2_PER_SD = 1.5


def _confounded(
    world: World, latent: np.ndarray, scores: np.ndarray, rng: np.random.Generator
) -> ScenarioEffects:
    effect = world.lineage_effect
    spread = effect.std()
    shift = (effect - effect.mean()) / (spread if spread > 0 else 1.0) * DECOY_LOG2_PER_SD
    changed = latent.copy()
    for gene in DECOYS:
        changed[:, world.column(gene)] += shift[world.disease]
    return ScenarioEffects(latent=changed, decoys=DECOYS)


def _confounded_config(config: SimulationConfig) -> SimulationConfig:
    return replace(config, lineage_effect_scale=2.0 * config.lineage_effect_scale)


# ---------------------------------------------------------------------------- platform shift

PLATFORM_SEED_OFFSET = 100_003
PLATFORM = {"slope": 0.7, "floor": 3.0, "batch_sd": 0.5, "noise_sd": 0.3}


def external_platform(tpm: pd.DataFrame, seed: int, gene_seed: int) -> pd.DataFrame:
    """Microarray-like log2 intensities of a TPM matrix (samples x genes).

    ``floor + slope * log2(TPM + 1) + batch[gene] + noise``: a compressed scale, a background
    floor, per-gene batch offsets (seeded by ``gene_seed``, shared by all samples) and
    per-measurement noise (seeded by ``seed``).
    """
    batch = np.random.default_rng([gene_seed, 1]).normal(0.0, PLATFORM["batch_sd"], tpm.shape[1])
    noise = np.random.default_rng([seed, 2]).normal(0.0, PLATFORM["noise_sd"], tpm.shape)
    values = np.log2(tpm.to_numpy(dtype=np.float64) + 1.0)
    intensity = PLATFORM["floor"] + PLATFORM["slope"] * values + batch + noise
    return pd.DataFrame(
        np.clip(intensity, 0.0, None).astype(np.float32), index=tpm.index, columns=tpm.columns
    )


# ---------------------------------------------------------------------------- registry

_SPECS: dict[str, ScenarioSpec] = {
    "additive": ScenarioSpec("additive"),
    "lineage-restricted": ScenarioSpec(
        "lineage-restricted", _without_mechanism("ADHESION_LOSS"), _lineage_restricted
    ),
    "saturating": ScenarioSpec("saturating", effects=_saturating, viability=_saturating_viability),
    "interactions": ScenarioSpec("interactions", effects=_interactions),
    "cnv": ScenarioSpec("cnv", effects=_cnv),
    "off-catalogue": ScenarioSpec("off-catalogue", effects=_off_catalogue),
    "confounded": ScenarioSpec("confounded", _confounded_config, _confounded),
    "platform-shift": ScenarioSpec("platform-shift", external=True),
}


def scenario_spec(name: str) -> ScenarioSpec:
    """The scenario called ``name`` (one of :data:`~nkpredict.vocabulary.SCENARIOS`)."""
    return _SPECS[check_choice(name, SCENARIOS, "scenario")]
