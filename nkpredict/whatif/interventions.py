"""What-if interventions: expression changes written on a sample's profile.

An :class:`Intervention` sets some genes of a sample to new values and asks the fitted model
what it would then predict. Each :class:`GeneTarget` says what one gene becomes, on the
model's harmonized scale (log2(TPM+1)):

- ``value``: a given expression value;
- ``percentile``: the training cohort's percentile of the gene (``75`` = upper quartile);
- ``reference``: ``sensitive`` (the gene's median among the training samples labelled
  sensitive) or ``median`` (its median over the whole training cohort).

The built-ins (:data:`~nkpredict.vocabulary.INTERVENTIONS`) take their genes from the
catalogue's axes (:mod:`nkpredict.catalog`):

======================  ===========================================  =======================
``nkg2a_blockade``      the NKG2A / HLA-E axis (HLA-E)               sensitive reference
``b7h6_restoration``    B7-H6 (NCR3LG1)                              training 75th percentile
``ifng_pathway_loss``   IFNGR1, IFNGR2, JAK1, JAK2, STAT1            training 5th percentile
``tigit_blockade``      the DNAM-1 / TIGIT axis (PVR, NECTIN2)       sensitive reference
``shedding_block``      the NKG2D-ligand shedding axis (ADAM10/17)   training 5th percentile
======================  ===========================================  =======================

These are expression counterfactuals of the fitted model, not pharmacology: an antibody that
blocks NKG2A does not lower HLA-E, and a drug acts on more than a few transcripts. A what-if
says which part of the expression profile the model's call rests on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from nkpredict.catalog import load_catalog
from nkpredict.data.identifiers import map_identifiers
from nkpredict.exceptions import CatalogError, InputError
from nkpredict.vocabulary import (
    INTERVENTIONS,
    REFERENCE_POINTS,
    InterventionName,
    ReferencePoint,
    check_choice,
)

if TYPE_CHECKING:
    from nkpredict.model.fitted import NKResistanceModel

__all__ = [
    "IFNG_PATHWAY_GENES",
    "LOW_PERCENTILE",
    "UPPER_QUARTILE",
    "GeneTarget",
    "Intervention",
    "ResolvedIntervention",
    "builtin_intervention",
    "builtin_interventions",
    "intervention_from_dict",
    "ordinal",
    "parse_intervention",
    "resolve",
]

UPPER_QUARTILE = 75.0
"""The training percentile ``b7h6_restoration`` sets NCR3LG1 to."""
LOW_PERCENTILE = 5.0
"""The training percentile that stands for "low" (``ifng_pathway_loss``, ``shedding_block``)."""
IFNG_PATHWAY_GENES = ("IFNGR1", "IFNGR2", "JAK1", "JAK2", "STAT1")
"""The IFN-gamma receptor and its JAK/STAT signal transducers (catalogue axis IFNG_RESPONSE)."""
_SPEC = re.compile(r"^\s*(?P<name>[^:=,\s][^:=,]*?)\s*:(?P<targets>.+)$")


@dataclass(frozen=True)
class GeneTarget:
    """What one gene is set to: exactly one of ``value``, ``percentile`` or ``reference``.

    Attributes
    ----------
    gene : str
        HGNC symbol.
    value : float, optional
        Expression on the model's harmonized scale, log2(TPM+1).
    percentile : float, optional
        A training percentile, 0-100.
    reference : {"sensitive", "median"}, optional
        The gene's median among training samples labelled sensitive, or over all of them.
    """

    gene: str
    value: float | None = None
    percentile: float | None = None
    reference: ReferencePoint | None = None

    def __post_init__(self) -> None:
        given = [x is not None for x in (self.value, self.percentile, self.reference)]
        if sum(given) != 1:
            raise InputError(
                f"gene {self.gene}: give exactly one of a value, a percentile or a reference"
            )
        if self.value is not None and not math.isfinite(self.value):
            raise InputError(f"gene {self.gene}: the value must be a finite number")
        if self.percentile is not None and not 0.0 <= self.percentile <= 100.0:
            raise InputError(
                f"gene {self.gene}: a percentile must be between 0 and 100; got {self.percentile}"
            )
        if self.reference is not None:
            check_choice(self.reference, REFERENCE_POINTS, f"gene {self.gene}: reference")

    def describe(self) -> str:
        """``"NCR3LG1 to the training 75th percentile"``."""
        if self.value is not None:
            return f"{self.gene} to {self.value:g} log2(TPM+1)"
        if self.percentile is not None:
            return f"{self.gene} to the training {ordinal(self.percentile)} percentile"
        if self.reference == "sensitive":
            return f"{self.gene} to its median among sensitive training samples"
        return f"{self.gene} to its training median"

    def resolve(self, model: NKResistanceModel) -> float:
        """The log2(TPM+1) value this target means for ``model``.

        Raises
        ------
        InputError
            A percentile or reference asked of a model saved without its gene reference.
        """
        if self.value is not None:
            return float(self.value)
        reference = model.gene_reference_
        if reference is None:
            raise InputError(
                f"gene {self.gene}: this model was saved without training percentiles (an "
                "older nkpredict); give a value, or retrain the model"
            )
        if self.percentile is not None:
            return reference.value_at(self.gene, self.percentile)
        if self.reference == "sensitive":
            return reference.sensitive_value(self.gene)
        return reference.median(self.gene)


@dataclass(frozen=True)
class Intervention:
    """A named set of gene targets applied together to each sample.

    Attributes
    ----------
    name : str
    targets : tuple of GeneTarget
    description : str
    builtin : bool
        One of :data:`~nkpredict.vocabulary.INTERVENTIONS`: genes the model does not read
        are skipped (a user-defined intervention naming such a gene is refused).
    """

    name: str
    targets: tuple[GeneTarget, ...]
    description: str = ""
    builtin: bool = False

    def describe(self) -> str:
        """The description, else the targets in words."""
        return self.description or "; ".join(t.describe() for t in self.targets)


@dataclass(frozen=True)
class ResolvedIntervention:
    """An intervention as values for one model's genes.

    Attributes
    ----------
    name, description : str
    genes : tuple of str
        The model genes it sets (a built-in's genes the model does not read are left out).
    values : tuple of float
        What each is set to, log2(TPM+1).
    """

    name: str
    description: str
    genes: tuple[str, ...]
    values: tuple[float, ...]

    def summary(self) -> str:
        """``"NCR3LG1=6.12;HLA-E=4.01"``: the genes set and their values."""
        return ";".join(f"{g}={v:.3g}" for g, v in zip(self.genes, self.values, strict=True))


def ordinal(value: float) -> str:
    """``1`` -> ``"1st"``, ``5`` -> ``"5th"``, ``22`` -> ``"22nd"``; a fraction keeps its
    decimals (``"2.5th"``)."""
    number = round(value)
    if abs(value - number) > 1e-9:
        return f"{value:g}th"
    teens = 10 <= number % 100 <= 20
    suffix = "th" if teens else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _axis_genes(axis: str) -> tuple[str, ...]:
    genes = load_catalog().axis_genes(axis)
    if not genes:
        raise CatalogError(f"the catalogue has no genes on axis {axis!r}")
    return genes


@lru_cache(maxsize=1)
def builtin_interventions() -> dict[InterventionName, Intervention]:
    """Every built-in intervention by name, its genes read from the catalogue."""
    catalog = load_catalog()
    ifng_axis = set(catalog.axis_genes("IFNG_RESPONSE"))
    if not set(IFNG_PATHWAY_GENES) <= ifng_axis:
        raise CatalogError("the IFN-gamma pathway genes are not all on the IFNG_RESPONSE axis")

    def to(genes: tuple[str, ...], **target: Any) -> tuple[GeneTarget, ...]:
        return tuple(GeneTarget(g, **target) for g in genes)

    nkg2a = _axis_genes("NKG2A_HLA_E")
    tigit = _axis_genes("DNAM1_TIGIT")
    shedding = _axis_genes("NKG2D_SHEDDING")
    items: dict[InterventionName, Intervention] = {
        "nkg2a_blockade": Intervention(
            "nkg2a_blockade",
            to(nkg2a, reference="sensitive"),
            f"the NKG2A / HLA-E axis ({', '.join(nkg2a)}) at its median among sensitive "
            "training samples",
            True,
        ),
        "b7h6_restoration": Intervention(
            "b7h6_restoration",
            to(("NCR3LG1",), percentile=UPPER_QUARTILE),
            "B7-H6 (NCR3LG1) at the training upper quartile",
            True,
        ),
        "ifng_pathway_loss": Intervention(
            "ifng_pathway_loss",
            to(IFNG_PATHWAY_GENES, percentile=LOW_PERCENTILE),
            f"IFN-gamma signalling ({', '.join(IFNG_PATHWAY_GENES)}) at the training "
            f"{ordinal(LOW_PERCENTILE)} percentile",
            True,
        ),
        "tigit_blockade": Intervention(
            "tigit_blockade",
            to(tigit, reference="sensitive"),
            f"the DNAM-1 / TIGIT ligands ({', '.join(tigit)}) at their median among sensitive "
            "training samples",
            True,
        ),
        "shedding_block": Intervention(
            "shedding_block",
            to(shedding, percentile=LOW_PERCENTILE),
            f"the NKG2D-ligand sheddases ({', '.join(shedding)}) at the training "
            f"{ordinal(LOW_PERCENTILE)} percentile",
            True,
        ),
    }
    return items


def builtin_intervention(name: str) -> Intervention:
    """The built-in intervention called ``name`` (:class:`InputError` for another name)."""
    return builtin_interventions()[check_choice(name, INTERVENTIONS, "intervention")]


def _symbol(gene: str) -> str:
    """``gene`` as an HGNC symbol when it is an alias or another identifier form."""
    mapping, _ = map_identifiers([gene])
    return mapping.get(gene, gene)


def _target(gene: str, spec: Any) -> GeneTarget:
    """A target from ``3.2`` / ``{"value": 3.2}`` / ``{"percentile": 75}`` /
    ``{"reference": "sensitive"}``."""
    symbol = _symbol(gene)
    if isinstance(spec, bool):
        raise InputError(f"gene {gene}: expected a number or an object, got {spec!r}")
    if isinstance(spec, int | float):
        return GeneTarget(symbol, value=float(spec))
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise InputError(
            f"gene {gene}: expected one of {{'value': x}}, {{'percentile': p}} or "
            f"{{'reference': 'sensitive' | 'median'}}; got {spec!r}"
        )
    ((kind, amount),) = spec.items()
    if kind == "reference":
        return GeneTarget(symbol, reference=check_choice(amount, REFERENCE_POINTS, "reference"))
    if kind not in ("value", "percentile") or isinstance(amount, bool):
        raise InputError(f"gene {gene}: unknown target {kind!r}={amount!r}")
    if not isinstance(amount, int | float):
        raise InputError(f"gene {gene}: {kind} must be a number; got {amount!r}")
    if kind == "value":
        return GeneTarget(symbol, value=float(amount))
    return GeneTarget(symbol, percentile=float(amount))


def _check_user_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InputError("a user-defined intervention needs a non-empty name")
    if name in INTERVENTIONS:
        raise InputError(
            f"{name!r} is a built-in intervention; give your own intervention another name"
        )
    return name.strip()


def intervention_from_dict(data: Mapping[str, Any]) -> Intervention:
    """A user-defined intervention from ``{"name": ..., "genes": {gene: target}}``.

    Each target is a number (a log2(TPM+1) value) or one of ``{"value": x}``,
    ``{"percentile": p}`` (0-100, of the training cohort) and ``{"reference": "sensitive" |
    "median"}``. Gene aliases (B7-H6) are mapped to HGNC symbols. An optional
    ``description`` is kept.
    """
    unknown = set(data) - {"name", "genes", "description"}
    if unknown:
        raise InputError(f"unknown intervention field(s): {', '.join(sorted(unknown))}")
    name = _check_user_name(data.get("name", ""))
    genes = data.get("genes")
    if not isinstance(genes, Mapping) or not genes:
        raise InputError(f"intervention {name!r}: 'genes' must map at least one gene to a target")
    targets = tuple(_target(str(g), spec) for g, spec in genes.items())
    symbols = [t.gene for t in targets]
    if len(set(symbols)) != len(symbols):
        raise InputError(f"intervention {name!r} names a gene twice: {', '.join(symbols)}")
    return Intervention(name, targets, str(data.get("description", "")))


def _spec_target(text: str) -> Any:
    """``p75`` -> percentile, ``sensitive``/``median`` -> reference, a number -> value."""
    lowered = text.strip().lower()
    if lowered in REFERENCE_POINTS:
        return {"reference": lowered}
    amount = lowered[1:] if lowered.startswith("p") else lowered
    try:
        number = float(amount)
    except ValueError:
        raise InputError(
            f"{text!r} is not a target: use a log2(TPM+1) value (3.5), a training "
            "percentile (p75), 'sensitive' or 'median'"
        ) from None
    return {"percentile": number} if lowered.startswith("p") else {"value": number}


def parse_intervention(text: str) -> Intervention:
    """An intervention from the command line: a built-in name, or ``NAME:GENE=TARGET,...``.

    A target is a log2(TPM+1) value (``3.5``), a training percentile (``p75``),
    ``sensitive`` (the sensitive reference) or ``median`` (the training median); e.g.
    ``b7h6_up:NCR3LG1=p90,HLA-E=sensitive``.
    """
    if text in INTERVENTIONS:
        return builtin_intervention(text)
    match = _SPEC.match(text)
    if match is None:
        raise InputError(
            f"{text!r} is neither a built-in intervention ({', '.join(INTERVENTIONS)}) nor "
            "NAME:GENE=TARGET[,GENE=TARGET...]"
        )
    genes: dict[str, Any] = {}
    for part in match.group("targets").split(","):
        gene, sep, target = part.partition("=")
        if not sep or not gene.strip():
            raise InputError(f"{part.strip()!r} in {text!r} is not GENE=TARGET")
        if gene.strip() in genes:
            raise InputError(f"intervention {match.group('name')!r} names {gene.strip()} twice")
        genes[gene.strip()] = _spec_target(target)
    return intervention_from_dict({"name": match.group("name"), "genes": genes})


def resolve(intervention: Intervention, model: NKResistanceModel) -> ResolvedIntervention:
    """The values ``intervention`` sets for the genes ``model`` reads.

    Raises
    ------
    InputError
        A user-defined intervention names a gene the model does not read, or a built-in
        none of whose genes it reads.
    """
    read = set(model.feature_builder.genes_in_)
    kept = [t for t in intervention.targets if t.gene in read]
    if not intervention.builtin:
        unknown = [t.gene for t in intervention.targets if t.gene not in read]
        if unknown:
            raise InputError(
                f"intervention {intervention.name!r}: the model does not read "
                f"{', '.join(unknown)} (it reads the catalogue genes measured in training)"
            )
    if not kept:
        genes = ", ".join(t.gene for t in intervention.targets)
        raise InputError(f"intervention {intervention.name!r}: the model reads none of {genes}")
    return ResolvedIntervention(
        name=intervention.name,
        description=intervention.describe(),
        genes=tuple(t.gene for t in kept),
        values=tuple(t.resolve(model) for t in kept),
    )
