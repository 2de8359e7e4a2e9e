"""The parameters of a simulated cohort, checked when they are set."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from nkpredict.exceptions import InputError
from nkpredict.simulate.biology import DEFAULT_MECHANISMS, DISEASES, MechanismSpec

__all__ = ["SimulationConfig", "make_config", "require"]


@dataclass(frozen=True)
class SimulationConfig:
    """Parameters of a simulated cohort.

    Parameters
    ----------
    n_samples : int
        Number of samples.
    n_genes : int
        Total genes: catalogue ligands, catalogue gene-set members (pathways, lineage programs)
        and real background symbols (protein-coding first). Must cover the catalogue genes.
    seed : int
        Seed of everything sample-specific (lineages, mechanisms, noise, counts, readouts).
    gene_seed : int
        Seed of gene-level parameters (baselines, loadings, modules); keep it fixed to make
        cohorts with different ``seed`` share genes and truth.
    et_ratios : tuple of float
        Increasing effector:target ratios of the killing readout.
    disease_mix : tuple of (str, float)
        Diseases (keys of :data:`DISEASES`) and their relative frequencies.
    mechanisms : tuple of MechanismSpec
        Planted resistance mechanisms.
    mechanism_count_probs : tuple of float
        Probability that a sample carries 0, 1, 2... mechanisms (sums to 1).
    mechanism_strength : (float, float)
        Range of the uniform per-sample strength of a carried mechanism.
    intercept : float
        Intercept of the true log-odds of resistance (sets the prevalence, about 40 %).
    lineage_effect_scale : float
        Multiplier of the diseases' ``logit_effect`` (0 removes lineage effects on the
        log-odds; lineage still acts through its ligand levels).
    program_log2_effect : float
        log2 up-regulation of a lineage program's genes at strength 1.
    baseline_log2_mean, baseline_log2_sd : float
        Normal distribution of background genes' baseline log2 TPM.
    n_modules : int
        Number of co-expressed background modules.
    module_fraction : float
        Fraction of background genes in a module.
    module_loading_sd : float
        Standard deviation of module loadings (log2 per module standard deviation).
    lineage_background_fraction : float
        Fraction of background genes shifted in each disease.
    lineage_background_sd : float
        Standard deviation of those disease shifts (log2).
    biological_noise_sd : float
        Gene-level biological variation (log2); part of the latent truth.
    technical_noise_sd : float
        Gene-level technical variation (log2); not part of the truth.
    library_size_range : (float, float)
        Range of the log-uniform sequencing depth (reads of the full transcriptome).
    dispersion : float
        Negative-binomial dispersion (0 gives Poisson counts).
    killing_rate_mid : float
        NK killing rate (per unit E:T) of a sample with logit 0.
    killing_rate_slope : float
        Decrease of the log killing rate per unit of logit.
    killing_rate_noise_sd : float
        Sample-level noise of the log killing rate.
    assay_noise_sd : float
        Noise of each % viability measurement (percentage points).
    """

    n_samples: int = 600
    n_genes: int = 3000
    seed: int = 0
    gene_seed: int = 2023
    et_ratios: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    disease_mix: tuple[tuple[str, float], ...] = (
        ("AML", 0.22),
        ("CML", 0.08),
        ("B-ALL", 0.14),
        ("T-ALL", 0.12),
        ("CLL", 0.08),
        ("DLBCL", 0.14),
        ("MCL", 0.08),
        ("MM", 0.14),
    )
    mechanisms: tuple[MechanismSpec, ...] = DEFAULT_MECHANISMS
    mechanism_count_probs: tuple[float, ...] = (0.35, 0.45, 0.20)
    mechanism_strength: tuple[float, float] = (0.6, 1.4)
    intercept: float = -2.1
    lineage_effect_scale: float = 1.0
    program_log2_effect: float = 6.0
    baseline_log2_mean: float = 1.5
    baseline_log2_sd: float = 3.0
    n_modules: int = 25
    module_fraction: float = 0.6
    module_loading_sd: float = 0.7
    lineage_background_fraction: float = 0.08
    lineage_background_sd: float = 2.0
    biological_noise_sd: float = 0.3
    technical_noise_sd: float = 0.2
    library_size_range: tuple[float, float] = (5e6, 4e7)
    dispersion: float = 0.05
    killing_rate_mid: float = 0.5
    killing_rate_slope: float = 0.45
    killing_rate_noise_sd: float = 0.35
    assay_noise_sd: float = 4.0

    def __post_init__(self) -> None:
        require(self.n_samples >= 1 and self.n_genes >= 1, "n_samples and n_genes must be >= 1")
        ratios = np.asarray(self.et_ratios, dtype=float)
        require(
            len(ratios) >= 2 and bool(np.all(ratios > 0)) and bool(np.all(np.diff(ratios) > 0)),
            f"et_ratios must be at least two increasing positive ratios, got {self.et_ratios}",
        )
        unknown = [name for name, _ in self.disease_mix if name not in DISEASES]
        require(not unknown, f"unknown diseases {unknown}; known: {list(DISEASES)}")
        weights = [weight for _, weight in self.disease_mix]
        require(min(weights, default=-1) >= 0 and sum(weights) > 0, "bad disease_mix weights")
        self._check_mechanisms()
        _ordered_pair(self.library_size_range, "library_size_range")
        _ordered_pair(self.mechanism_strength, "mechanism_strength")
        require(self.n_modules >= 1, "n_modules must be >= 1")
        for name in ("module_fraction", "lineage_background_fraction"):
            require(0 <= getattr(self, name) <= 1, f"{name} must lie in [0, 1]")
        for name in (
            "dispersion",
            "biological_noise_sd",
            "technical_noise_sd",
            "module_loading_sd",
            "lineage_background_sd",
            "baseline_log2_sd",
            "killing_rate_noise_sd",
            "assay_noise_sd",
        ):
            require(getattr(self, name) >= 0, f"{name} must be >= 0")
        require(self.killing_rate_mid > 0, "killing_rate_mid must be > 0")

    def _check_mechanisms(self) -> None:
        names = [m.name for m in self.mechanisms]
        require(len(set(names)) == len(names), f"mechanism names must be unique: {names}")
        for mechanism in self.mechanisms:
            require(
                mechanism.log2_shift != 0 and mechanism.frequency > 0 and bool(mechanism.drivers),
                f"mechanism {mechanism.name} needs a non-zero shift, drivers and frequency > 0",
            )
        probs = np.asarray(self.mechanism_count_probs, dtype=float)
        require(
            len(probs) >= 1
            and bool(np.all(probs >= 0))
            and math.isclose(probs.sum(), 1.0, abs_tol=1e-6)
            and len(probs) <= len(self.mechanisms) + 1,
            "mechanism_count_probs must be probabilities of 0..len(mechanisms) mechanisms "
            f"summing to 1, got {self.mechanism_count_probs}",
        )


def require(condition: bool, message: str) -> None:
    """Raise :class:`InputError` ("simulation: <message>") unless ``condition`` holds."""
    if not condition:
        raise InputError(f"simulation: {message}")


def _ordered_pair(pair: tuple[float, float], name: str) -> None:
    require(len(pair) == 2 and 0 < pair[0] <= pair[1], f"{name} must be (low, high), 0 < low")


def make_config(config: SimulationConfig | None, overrides: dict[str, Any]) -> SimulationConfig:
    """``config`` (default: :class:`SimulationConfig`) with single parameters replaced.

    Raises
    ------
    InputError
        An override that is not a parameter, or a value that fails the checks.
    """
    base = config or SimulationConfig()
    valid = {f.name for f in fields(SimulationConfig)}
    unknown = sorted(set(overrides) - valid)
    require(not unknown, f"unknown parameters {unknown}; valid: {sorted(valid)}")
    return replace(base, **overrides) if overrides else base
