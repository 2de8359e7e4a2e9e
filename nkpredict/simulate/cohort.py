"""Simulated blood-cancer cohorts with a known ground truth of NK resistance.

The generator plants the biology of the NK ligand catalogue into RNA-seq counts, so that every
part of nkpredict (harmonization, features, models, explanations) can be checked against a
truth that real data never reveal.

Model
-----
Latent expression is on a log2 TPM scale of a full transcriptome. For sample ``i`` and gene
``g``::

    latent[i, g] = baseline[g]                                  # log-normal spread of means
                 + disease_shift[disease(i), g]                 # lineage programs and ligands
                 + sum_f loading[g, f] * factor[i, f]           # IFN-gamma, proliferation,
                                                                #   stress, background modules
                 + sum_k strength[i, k] * mechanism_shift[k, g] # planted resistance mechanisms
                 + biological_noise[i, g]

Measured counts add technical noise (log-normal) and negative-binomial (gamma-Poisson)
sampling at each sample's sequencing depth::

    mean[i, g] = library_size[i] * 2 ** (latent[i, g] + technical_noise[i, g]) / 1e6
    counts[i, g] ~ Poisson(mean[i, g] * Gamma(shape=1 / dispersion, scale=dispersion))

The counts matrix holds the simulated genes only, a subset of the transcriptome, so its row
sums are a fraction of the library size. The TPM-like matrix is counts per million of each
row.

Ground truth
------------
Each mechanism ``k`` has driver genes whose latent expression (before technical noise and
count sampling) defines a standardized driver score, in units of the mechanism's planted
shift: ``score[i, k] = sign(shift_k) * mean_{g in drivers_k}(latent[i, g] - baseline[g]) /
|shift_k|`` (about 0 without the mechanism, about its strength, 0.6-1.4, with it). Then::

    logit[i] = intercept + sum_k weight_k * score[i, k] + lineage_effect[disease(i)]
    true_probability[i] = sigmoid(logit[i]);  resistant[i] ~ Bernoulli(true_probability[i])

The NK-killing readout follows the same logit: the killing rate is
``k[i] = rate_mid * exp(-rate_slope * logit[i] + rate_noise)``, the % viability at E:T ``r``
is ``100 * exp(-k[i] * r)`` plus assay noise, clipped to [0, 120], and the killing AUC is
:func:`nkpredict.data.public.killing_auc`.

Gene-level parameters (baselines, program loadings, module memberships) come from
``gene_seed`` and do not depend on ``seed``, ``n_samples`` or ``n_genes``: cohorts simulated
with different seeds share their genes and their truth and are independent test sets for each
other. With fixed seeds, the labels do not depend on ``n_genes`` either.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from nkpredict.catalog import Catalog, load_catalog
from nkpredict.data.annotation import load_annotation
from nkpredict.data.public import (
    CONTROL_CONDITION,
    NK_PRISM_COLUMNS,
    killing_auc,
    nk_condition,
    viability_column,
    viability_columns,
)
from nkpredict.simulate.biology import (
    BASELINE_LOG2_TPM,
    DISEASES,
    FACTORS,
    GENOME_CATALOG_VERSION,
    PROGRAM_GENE_JITTER,
    PROGRAM_OFF_MEAN_SD,
    STRESS_PROLIFERATION_CORRELATION,
    STRUCTURED_MEAN_SD,
    MechanismSpec,
)
from nkpredict.simulate.config import SimulationConfig, make_config, require
from nkpredict.simulate.scenarios import (
    DEFAULT_SCENARIO,
    PLATFORM_SEED_OFFSET,
    Driver,
    ScenarioEffects,
    World,
    external_platform,
    scenario_spec,
)

logger = logging.getLogger(__name__)

__all__ = ["Cohort", "simulate_cohort"]

_CHUNK_SAMPLES = 256
_PER_MILLION = 1e6
_SAMPLE_PREFIX = "SIM-"
_PROTEIN_CODING = "protein_coding"


@dataclass
class Cohort:
    """A simulated cohort and its ground truth.

    Attributes
    ----------
    counts : DataFrame of shape (n_samples, n_genes)
        Raw counts (int64); index ``sample_id``; catalogue genes first, then gene-set members,
        then background genes.
    tpm : DataFrame of shape (n_samples, n_genes)
        Counts per million of each sample (float32).
    labels : DataFrame of shape (n_samples, 4 + n_ratios)
        ``lineage``, ``viability_et_<r>`` (% viability at each E:T ratio), ``killing_auc``,
        ``resistant`` (0/1) and ``true_probability``.
    metadata : DataFrame of shape (n_samples, 5 + n_mechanisms)
        ``lineage``, ``disease``, ``mechanisms`` (``;``-joined names or ``none``),
        ``n_mechanisms``, ``true_logit`` and ``driver_score_<MECHANISM>``.
    truth : dict
        JSON-serialisable ground truth: config, mechanisms, diseases, intercept, driver
        baselines, program loadings, oracle and readout definitions, the scenario and its
        drivers.
    contributions : DataFrame of shape (n_samples, n_drivers + 3)
        Every driver's true contribution to each sample's log-odds (one column per driver,
        then ``lineage``, ``intercept`` and ``true_logit``, their sum).
    expression : DataFrame or None
        What a user would get as the expression file when it is not the counts (the
        ``platform-shift`` external cohort's log2 intensities); None means ``counts``.
    external : Cohort or None
        A second, external cohort (``platform-shift``).
    """

    counts: pd.DataFrame
    tpm: pd.DataFrame
    labels: pd.DataFrame
    metadata: pd.DataFrame
    truth: dict[str, Any]
    contributions: pd.DataFrame = field(default_factory=pd.DataFrame)
    expression: pd.DataFrame | None = None
    external: Cohort | None = None

    def nk_prism_table(self) -> pd.DataFrame:
        """The readouts as an NK PRISM long table (the layout :func:`read_nk_prism` reads).

        Returns
        -------
        DataFrame of shape (n_samples * (1 + n_ratios), 4)
            ``cell_line`` and ``DepMap_ID`` (both the sample id), ``Condition`` (``CTRL`` or
            ``D1_NK_<r>``) and ``pctviability`` (100 for ``CTRL``).
        """
        columns = viability_columns(self.labels)
        conditions = [CONTROL_CONDITION, *(nk_condition(r) for r in columns)]
        ids = self.labels.index.to_numpy(dtype=object)
        control = np.full((len(ids), 1), 100.0)
        values = np.hstack([control, self.labels[list(columns.values())].to_numpy(dtype=float)])
        repeated = np.repeat(ids, len(conditions))
        table = {
            "cell_line": repeated,
            "DepMap_ID": repeated,
            "Condition": np.tile(np.array(conditions, dtype=object), len(ids)),
            "pctviability": values.ravel(),
        }
        return pd.DataFrame(table, columns=list(NK_PRISM_COLUMNS))


# ---------------------------------------------------------------------------------------------
# Genes
# ---------------------------------------------------------------------------------------------


def _stable_order(symbols: list[str]) -> list[str]:
    """A fixed pseudo-random order of ``symbols`` that depends on no library version."""
    return sorted(symbols, key=lambda s: hashlib.blake2b(s.encode(), digest_size=8).digest())


@lru_cache(maxsize=1)
def _background_universe() -> tuple[str, ...]:
    """Approved human symbols usable as background genes.

    Protein-coding symbols first, then other approved symbols (for very wide matrices), each
    group in a fixed pseudo-random order; catalogue genes and their aliases are excluded.
    The symbols are the HGNC-approved ones of :func:`nkpredict.data.annotation.load_annotation`.
    """
    approved = load_annotation().approved
    catalog = load_catalog(GENOME_CATALOG_VERSION)
    excluded = set(catalog.all_genes()) | set(catalog.alias_map())
    coding = {symbol for symbol, biotype in approved.items() if biotype == _PROTEIN_CODING}
    first = _stable_order(sorted(coding - excluded))
    rest = set(approved) - excluded - set(first)
    return tuple(first + _stable_order(sorted(rest)))


@dataclass(frozen=True)
class _GeneModel:
    """Gene-level parameters; structured = catalogue genes, background = the rest."""

    structured: tuple[str, ...]
    background: tuple[str, ...]
    baseline: np.ndarray  # (n_structured,)
    disease_shift: np.ndarray  # (n_diseases, n_structured)
    loadings: np.ndarray  # (n_structured, n_factors)
    mechanism_shift: np.ndarray  # (n_mechanisms, n_structured)
    drivers: np.ndarray  # (n_mechanisms, n_structured), driver-score weights
    background_baseline: np.ndarray  # (n_background,)
    background_module: np.ndarray  # (n_background,) int
    background_loading: np.ndarray  # (n_background,)
    background_disease_shift: np.ndarray  # (n_diseases, n_background), float32


def _gene_indicator(genes: tuple[str, ...], members: set[str]) -> np.ndarray:
    return np.array([gene in members for gene in genes])


def _check_genes(wanted: list[str], available: tuple[str, ...], what: str) -> None:
    missing = sorted(set(wanted) - set(available))
    require(not missing, f"{what} names genes outside the catalogue: {missing}")


def _structured_baseline(
    catalog: Catalog, genes: tuple[str, ...], rng: np.random.Generator
) -> np.ndarray:
    program = _gene_indicator(
        genes, {g for s in catalog.gene_sets if s.category == "lineage" for g in s.genes}
    )
    normal = rng.standard_normal(len(genes))
    baseline = np.where(
        program,
        PROGRAM_OFF_MEAN_SD[0] + PROGRAM_OFF_MEAN_SD[1] * normal,
        STRUCTURED_MEAN_SD[0] + STRUCTURED_MEAN_SD[1] * normal,
    )
    for gene, value in BASELINE_LOG2_TPM.items():
        baseline[genes.index(gene)] = value
    return baseline


def _disease_shifts(
    catalog: Catalog, genes: tuple[str, ...], config: SimulationConfig, rng: np.random.Generator
) -> np.ndarray:
    """Lineage program and ligand shifts, shape (n_diseases, n_structured)."""
    jitter = rng.uniform(*PROGRAM_GENE_JITTER, size=len(genes))
    shifts = np.zeros((len(DISEASES), len(genes)))
    for row, profile in enumerate(DISEASES.values()):
        for name, strength in profile.programs:
            members = _gene_indicator(genes, set(catalog.gene_set(name).genes))
            shifts[row] += members * strength * config.program_log2_effect * jitter
        _check_genes([g for g, _ in profile.ligand_shifts], genes, f"disease {profile.name}")
        for gene, shift in profile.ligand_shifts:
            shifts[row, genes.index(gene)] += shift
    return shifts


def _factor_loadings(
    catalog: Catalog, genes: tuple[str, ...], rng: np.random.Generator
) -> np.ndarray:
    """Loadings of the co-regulated programs, shape (n_structured, n_factors)."""
    loadings = np.zeros((len(genes), len(FACTORS)))
    for column, (_, set_names, (low, high)) in enumerate(FACTORS):
        members = {g for name in set_names for g in catalog.gene_set(name).genes}
        loadings[:, column] = _gene_indicator(genes, members) * rng.uniform(low, high, len(genes))
    return loadings


def _mechanism_matrices(
    mechanisms: tuple[MechanismSpec, ...], genes: tuple[str, ...], catalog: Catalog
) -> tuple[np.ndarray, np.ndarray]:
    """Expression shifts and driver-score weights, each of shape (n_mechanisms, n_structured)."""
    axes = {axis.name for axis in catalog.axes}
    shift = np.zeros((len(mechanisms), len(genes)))
    drivers = np.zeros_like(shift)
    for row, mechanism in enumerate(mechanisms):
        _check_genes([*mechanism.genes, *mechanism.drivers], genes, mechanism.name)
        unknown = sorted(set(mechanism.axes) - axes)
        require(not unknown, f"mechanism {mechanism.name} names unknown axes {unknown}")
        shift[row] = _gene_indicator(genes, set(mechanism.genes)) * mechanism.log2_shift
        is_driver = _gene_indicator(genes, set(mechanism.drivers))
        drivers[row] = is_driver * np.sign(mechanism.log2_shift) / abs(mechanism.log2_shift)
        drivers[row] /= is_driver.sum()
    return shift, drivers


def _background_parameters(
    config: SimulationConfig, n_background: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Drawn for the whole background universe and cut, so independent of ``n_genes``."""
    size = len(_background_universe())
    baseline = rng.standard_normal(size)
    module = rng.integers(0, config.n_modules, size)
    in_module = rng.random(size) < config.module_fraction
    loading = rng.standard_normal(size)
    shifted = rng.random((len(DISEASES), size)) < config.lineage_background_fraction
    shift = rng.standard_normal((len(DISEASES), size))
    cut = slice(0, n_background)
    return {
        "background_baseline": (
            config.baseline_log2_mean + config.baseline_log2_sd * baseline[cut]
        ),
        "background_module": module[cut],
        "background_loading": (in_module * loading * config.module_loading_sd)[cut],
        "background_disease_shift": (shifted * shift * config.lineage_background_sd)[:, cut].astype(
            np.float32
        ),
    }


def _gene_model(config: SimulationConfig, catalog: Catalog) -> _GeneModel:
    structured = catalog.all_genes()
    universe = _background_universe()
    n_background = config.n_genes - len(structured)
    require(
        n_background >= 0,
        f"n_genes={config.n_genes} is smaller than the {len(structured)} catalogue, pathway "
        "and lineage-program genes it must contain",
    )
    require(
        n_background <= len(universe),
        f"n_genes={config.n_genes} exceeds the {len(structured) + len(universe)} available",
    )
    rng = np.random.default_rng(config.gene_seed)
    baseline = _structured_baseline(catalog, structured, rng)
    disease_shift = _disease_shifts(catalog, structured, config, rng)
    loadings = _factor_loadings(catalog, structured, rng)
    shift, drivers = _mechanism_matrices(config.mechanisms, structured, catalog)
    return _GeneModel(
        structured=structured,
        background=universe[:n_background],
        baseline=baseline,
        disease_shift=disease_shift,
        loadings=loadings,
        mechanism_shift=shift,
        drivers=drivers,
        **_background_parameters(config, n_background, rng),
    )


# ---------------------------------------------------------------------------------------------
# Samples, truth and readouts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Samples:
    disease: np.ndarray  # (n_samples,) index into DISEASES
    library_size: np.ndarray  # (n_samples,)
    factors: np.ndarray  # (n_samples, n_factors)
    modules: np.ndarray  # (n_samples, n_modules)
    strength: np.ndarray  # (n_samples, n_mechanisms), 0 where absent


def _carried_mechanisms(config: SimulationConfig, rng: np.random.Generator) -> np.ndarray:
    """Per-sample strengths of the carried mechanisms, shape (n_samples, n_mechanisms)."""
    n, m = config.n_samples, len(config.mechanisms)
    n_carried = rng.choice(len(config.mechanism_count_probs), n, p=config.mechanism_count_probs)
    frequency = np.log([mechanism.frequency for mechanism in config.mechanisms])
    keys = frequency + rng.gumbel(size=(n, m))  # Gumbel top-k: weighted, without replacement
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    strength = rng.uniform(*config.mechanism_strength, size=(n, m))
    return np.where(rank < n_carried[:, None], strength, 0.0)


def _draw_samples(config: SimulationConfig, rng: np.random.Generator) -> _Samples:
    codes = list(DISEASES)
    names, weights = zip(*config.disease_mix, strict=True)
    probs = np.asarray(weights, dtype=float) / sum(weights)
    drawn = rng.choice(len(names), config.n_samples, p=probs)
    disease = np.array([codes.index(name) for name in names])[drawn]
    low, high = np.log(config.library_size_range)
    library_size = np.exp(rng.uniform(low, high, config.n_samples))
    factors = rng.standard_normal((config.n_samples, len(FACTORS)))
    rho = STRESS_PROLIFERATION_CORRELATION
    factors[:, 2] = rho * factors[:, 1] + math.sqrt(1 - rho**2) * factors[:, 2]
    modules = rng.standard_normal((config.n_samples, config.n_modules))
    return _Samples(disease, library_size, factors, modules, _carried_mechanisms(config, rng))


def _structured_latent(
    model: _GeneModel, samples: _Samples, config: SimulationConfig, rng: np.random.Generator
) -> np.ndarray:
    """Latent log2 TPM of catalogue genes, shape (n_samples, n_structured)."""
    noise = rng.standard_normal((len(samples.disease), len(model.structured)))
    return (
        model.baseline
        + model.disease_shift[samples.disease]
        + samples.factors @ model.loadings.T
        + samples.strength @ model.mechanism_shift
        + config.biological_noise_sd * noise
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _lineage_effects(config: SimulationConfig) -> np.ndarray:
    return config.lineage_effect_scale * np.array([p.logit_effect for p in DISEASES.values()])


def _true_logit(
    model: _GeneModel, samples: _Samples, latent: np.ndarray, config: SimulationConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Driver scores, shape (n_samples, n_mechanisms), and true log-odds, shape (n_samples,)."""
    scores = (latent - model.baseline) @ model.drivers.T
    weights = np.array([m.weight for m in config.mechanisms])
    logit = config.intercept + scores @ weights + _lineage_effects(config)[samples.disease]
    return scores, logit


def _viability(
    logit: np.ndarray,
    config: SimulationConfig,
    rng: np.random.Generator,
    curve: Any = None,
) -> np.ndarray:
    """% viability at each E:T ratio, shape (n_samples, n_ratios).

    ``curve(rate, ratios, noise)`` replaces the exponential killing curve (a scenario's).
    """
    noise = rng.standard_normal(len(logit))
    rate = config.killing_rate_mid * np.exp(
        -config.killing_rate_slope * logit + config.killing_rate_noise_sd * noise
    )
    ratios = np.asarray(config.et_ratios, dtype=float)
    if curve is not None:
        assay = config.assay_noise_sd * rng.standard_normal((len(logit), len(ratios)))
        return np.asarray(curve(rate, ratios, assay))
    viability = 100.0 * np.exp(-rate[:, None] * ratios[None, :])
    viability += config.assay_noise_sd * rng.standard_normal(viability.shape)
    return np.clip(viability, 0.0, 120.0)


# ---------------------------------------------------------------------------------------------
# Counts
# ---------------------------------------------------------------------------------------------


def _background_latent(
    model: _GeneModel,
    samples: _Samples,
    rows: slice,
    noise_sd: float,
    rng: np.random.Generator,
    shifts: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Measured-scale latent log2 TPM of background genes for ``rows``, float32.

    ``shifts``: background gene -> per-sample log2 shift planted by a scenario.
    """
    n_rows = len(samples.disease[rows])
    latent = rng.standard_normal((n_rows, len(model.background)), dtype=np.float32)
    latent *= noise_sd
    latent += model.background_baseline.astype(np.float32)
    latent += model.background_disease_shift[samples.disease[rows]]
    module_values = samples.modules[rows][:, model.background_module].astype(np.float32)
    latent += module_values * model.background_loading.astype(np.float32)
    for gene, shift in (shifts or {}).items():
        latent[:, model.background.index(gene)] += shift[rows].astype(np.float32)
    return latent


def _sample_counts(
    latent: np.ndarray,
    library_size: np.ndarray,
    dispersion: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Negative-binomial counts from log2 TPM, shape like ``latent``."""
    mean = np.exp2(latent, dtype=np.float64) * (library_size[:, None] / _PER_MILLION)
    if dispersion > 0:
        shape = 1.0 / dispersion
        mean *= rng.standard_gamma(shape, size=mean.shape) / shape
    return rng.poisson(mean)


def _per_million(counts: np.ndarray) -> np.ndarray:
    """Counts per million of each row, float32, shape like ``counts``."""
    totals = counts.sum(axis=1, keepdims=True).astype(np.float64)
    scale = np.divide(_PER_MILLION, totals, out=np.zeros_like(totals), where=totals > 0)
    return np.multiply(counts, scale.astype(np.float32), dtype=np.float32)


def _measure(
    model: _GeneModel,
    samples: _Samples,
    measured_structured: np.ndarray,
    config: SimulationConfig,
    rng: np.random.Generator,
    shifts: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw counts (int64) and counts per million (float32) of all genes, in sample chunks.

    Returns
    -------
    tuple of ndarray, each of shape (n_samples, n_genes)
    """
    n_samples = len(samples.disease)
    shape = (n_samples, len(model.structured) + len(model.background))
    counts = np.empty(shape, dtype=np.int64)
    tpm = np.empty(shape, dtype=np.float32)
    background_sd = math.hypot(config.biological_noise_sd, config.technical_noise_sd)
    for start in range(0, n_samples, _CHUNK_SAMPLES):
        rows = slice(start, min(start + _CHUNK_SAMPLES, n_samples))
        latent = np.hstack(
            [
                measured_structured[rows].astype(np.float32),
                _background_latent(model, samples, rows, background_sd, rng, shifts),
            ]
        )
        counts[rows] = _sample_counts(latent, samples.library_size[rows], config.dispersion, rng)
        tpm[rows] = _per_million(counts[rows])
    return counts, tpm


# ---------------------------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------------------------


def _mechanism_names(strength: np.ndarray, mechanisms: tuple[MechanismSpec, ...]) -> list[str]:
    names = np.array([m.name for m in mechanisms], dtype=object)
    return [";".join(names[row > 0]) or "none" for row in strength]


def _labels(
    index: pd.Index,
    lineage: np.ndarray,
    viability: np.ndarray,
    resistant: np.ndarray,
    probability: np.ndarray,
    config: SimulationConfig,
) -> pd.DataFrame:
    labels = pd.DataFrame({"lineage": lineage}, index=index)
    for column, ratio in enumerate(config.et_ratios):
        labels[viability_column(ratio)] = viability[:, column]
    labels["killing_auc"] = killing_auc(labels)
    labels["resistant"] = resistant.astype(np.int64)
    labels["true_probability"] = probability
    return labels


def _metadata(
    index: pd.Index,
    samples: _Samples,
    logit: np.ndarray,
    scores: np.ndarray,
    config: SimulationConfig,
) -> pd.DataFrame:
    profiles = list(DISEASES.values())
    metadata = pd.DataFrame(
        {
            "lineage": [profiles[d].lineage for d in samples.disease],
            "disease": np.array(list(DISEASES), dtype=object)[samples.disease],
            "mechanisms": _mechanism_names(samples.strength, config.mechanisms),
            "n_mechanisms": (samples.strength > 0).sum(axis=1).astype(np.int64),
            "true_logit": logit,
        },
        index=index,
    )
    for column, mechanism in enumerate(config.mechanisms):
        metadata[f"driver_score_{mechanism.name}"] = scores[:, column]
    return metadata


def _truth(
    config: SimulationConfig,
    catalog: Catalog,
    model: _GeneModel,
    resistant: np.ndarray,
    probability: np.ndarray,
) -> dict[str, Any]:
    effects = _lineage_effects(config)
    drivers = sorted({g for m in config.mechanisms for g in m.drivers}, key=model.structured.index)
    both_classes = 0 < resistant.sum() < len(resistant)
    return {
        "generator": "nkpredict.simulate.cohort",
        "catalog_version": catalog.version,
        "config": asdict(config),
        "intercept": config.intercept,
        "mechanisms": [
            {
                "name": m.name,
                "axes": list(m.axes),
                "genes": list(m.genes),
                "drivers": list(m.drivers),
                "direction": m.direction,
                "log2_shift": m.log2_shift,
                "log_odds_weight": m.weight,
                "frequency": m.frequency,
            }
            for m in config.mechanisms
        ],
        "diseases": {
            code: {
                "name": profile.name,
                "lineage": profile.lineage,
                "programs": dict(profile.programs),
                "ligand_log2_shifts": dict(profile.ligand_shifts),
                "logit_effect": float(effect),
            }
            for (code, profile), effect in zip(DISEASES.items(), effects, strict=True)
        },
        "driver_baselines": {g: float(model.baseline[model.structured.index(g)]) for g in drivers},
        "programs": {
            name: {
                gene: float(model.loadings[row, column])
                for row, gene in enumerate(model.structured)
                if model.loadings[row, column] > 0
            }
            for column, (name, _, _) in enumerate(FACTORS)
        },
        "oracle": {
            "driver_score": "score_k = sign(log2_shift_k) * mean over drivers_k of "
            "(latent log2 TPM - driver_baselines) / |log2_shift_k|; latent = before technical "
            "noise and count sampling",
            "logit": "intercept + sum_k log_odds_weight_k * score_k + diseases[d].logit_effect",
            "true_probability": "sigmoid(logit)",
            "resistant": "Bernoulli(true_probability)",
        },
        "readout": {
            "killing_rate": "killing_rate_mid * exp(-killing_rate_slope * logit + "
            "N(0, killing_rate_noise_sd))",
            "viability": "clip(100 * exp(-killing_rate * E:T) + N(0, assay_noise_sd), 0, 120)",
            "killing_auc": "nkpredict.data.public.killing_auc",
        },
        "summary": {
            "prevalence": float(resistant.mean()),
            "oracle_auc": float(roc_auc_score(resistant, probability)) if both_classes else None,
        },
    }


def _contributions(
    index: pd.Index,
    config: SimulationConfig,
    mechanism: np.ndarray,
    drivers: list[Driver],
    lineage: np.ndarray,
    logit: np.ndarray,
) -> pd.DataFrame:
    table = pd.DataFrame(
        mechanism, index=index, columns=[m.name for m in config.mechanisms], dtype=np.float64
    )
    for driver in drivers:
        table[driver.name] = driver.contribution
    table["lineage"] = lineage
    table["intercept"] = config.intercept
    table["true_logit"] = logit
    return table


def _scenario_truth(
    config: SimulationConfig, scenario: str, effects: ScenarioEffects, extra: list[Driver]
) -> dict[str, Any]:
    mechanisms = [
        {
            "name": m.name,
            "axes": list(m.axes),
            "genes": list(m.drivers),
            "description": f"{m.direction} of {', '.join(m.drivers)}",
        }
        for m in config.mechanisms
    ]
    return {
        "name": scenario,
        "drivers": [*mechanisms, *(d.to_dict() for d in extra)],
        "decoys": list(effects.decoys),
        "contributions": "contributions.csv: one column per driver, then lineage, intercept "
        "and true_logit (their sum)",
    }


def simulate_cohort(
    config: SimulationConfig | None = None, scenario: str = DEFAULT_SCENARIO, **overrides: Any
) -> Cohort:
    """Simulate a blood-cancer cohort with planted NK-resistance mechanisms.

    Parameters
    ----------
    config : SimulationConfig, optional
        Parameters (defaults if omitted).
    scenario : str
        The planted truth (:data:`~nkpredict.vocabulary.SCENARIOS`, see
        :mod:`nkpredict.simulate.scenarios`); ``additive`` is the default cohort.
    **overrides
        Replace single parameters of ``config`` (``simulate_cohort(n_samples=200, seed=3)``).

    Returns
    -------
    Cohort
        Counts, TPM, labels, metadata, the ground truth and every driver's contribution.

    Raises
    ------
    InputError
        Invalid parameters or scenario, or ``n_genes`` smaller than the catalogue genes or
        larger than the available symbols.
    """
    spec = scenario_spec(scenario)
    config = spec.configure(make_config(config, overrides))
    catalog = load_catalog(GENOME_CATALOG_VERSION)
    model = _gene_model(config, catalog)
    sample_rng, noise_rng, count_rng, outcome_rng, scenario_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(5)
    )
    samples = _draw_samples(config, sample_rng)
    latent = _structured_latent(model, samples, config, noise_rng)
    technical = config.technical_noise_sd * noise_rng.standard_normal(latent.shape)

    scores, logit = _true_logit(model, samples, latent, config)
    effects = ScenarioEffects(latent=latent)
    if spec.effects is not None:
        world = World(
            model.structured,
            model.background,
            model.baseline,
            samples.disease,
            _lineage_effects(config),
            config,
        )
        effects = spec.effects(world, latent, scores, scenario_rng)
        if effects.latent is not latent:
            latent = effects.latent
            scores, logit = _true_logit(model, samples, latent, config)
    weights = np.array([m.weight for m in config.mechanisms])
    lineage_effect = _lineage_effects(config)[samples.disease]
    mechanism = scores * weights
    if effects.mechanism_contribution is not None:
        mechanism = effects.mechanism_contribution
        logit = config.intercept + mechanism.sum(axis=1) + lineage_effect
    counts, tpm = _measure(
        model, samples, latent + technical, config, count_rng, effects.background_shift
    )
    for driver in effects.drivers:
        logit = logit + driver.contribution
    if effects.calibrate is not None:
        genes_at = {g: i for i, g in enumerate([*model.structured, *model.background])}

        def measured(gene: str) -> np.ndarray:
            return np.log2(tpm[:, genes_at[gene]].astype(np.float64) + 1.0)

        calibration = effects.calibrate(measured, logit)
        effects.drivers = [*effects.drivers, *calibration]
        for driver in calibration:
            logit = logit + driver.contribution
    probability = _sigmoid(logit)
    resistant = outcome_rng.random(config.n_samples) < probability
    viability = _viability(logit, config, outcome_rng, spec.viability)
    index = pd.Index(
        [f"{_SAMPLE_PREFIX}{i:05d}" for i in range(1, config.n_samples + 1)], name="sample_id"
    )
    genes = pd.Index([*model.structured, *model.background])
    metadata = _metadata(index, samples, logit, scores, config)
    for name, values in effects.state.items():
        metadata[name] = values
    truth = _truth(config, catalog, model, resistant, probability)
    truth["scenario"] = _scenario_truth(config, scenario, effects, effects.drivers)
    cohort = Cohort(
        counts=pd.DataFrame(counts, index=index, columns=genes),
        tpm=pd.DataFrame(tpm, index=index, columns=genes),
        labels=_labels(
            index, metadata["lineage"].to_numpy(), viability, resistant, probability, config
        ),
        metadata=metadata,
        truth=truth,
        contributions=_contributions(
            index, config, mechanism, effects.drivers, lineage_effect, logit
        ),
    )
    if spec.external:
        other = simulate_cohort(config, seed=config.seed + PLATFORM_SEED_OFFSET)
        other.expression = external_platform(
            other.tpm, other.truth["config"]["seed"], config.gene_seed
        )
        other.truth["platform"] = (
            "microarray-like log2 intensities, see nkpredict.simulate.scenarios"
        )
        cohort.external = other
        truth["scenario"]["external"] = {
            "seed": config.seed + PLATFORM_SEED_OFFSET,
            "files": "external/",
        }
    logger.info(
        "simulated %d samples x %d genes (%s); %.0f%% resistant; oracle AUC %s",
        config.n_samples,
        config.n_genes,
        scenario,
        100 * resistant.mean(),
        cohort.truth["summary"]["oracle_auc"],
    )
    return cohort
