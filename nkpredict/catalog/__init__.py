"""The NK knowledge catalogue: ligands, receptor axes and gene sets, read from data files.

The catalogue is the single source of truth for NK biology in nkpredict. It lives in
tab-separated files next to this module:

``genes.tsv``
    One row per NK ligand or effector-pathway gene: HGNC ``symbol``, ``aliases``
    (``;``-separated previous symbols and aliases), NK ``receptor``, ``axis``, ``role``
    (``activating``, ``inhibitory`` or ``intracellular``), ``effect`` of higher expression on
    resistance (``+`` more resistant, ``-`` more sensitive, ``?`` unclear or contested), a
    ``reference``, and its evidence: ``evidence`` (``functional screen hit``, ``expression
    correlate`` or ``mechanism study``), ``lineage_context`` (where it was shown),
    ``contested`` (``yes`` where published work disagrees on the direction or it could not be
    verified; such genes get effect ``?`` or keep a flagged sign), a ``note`` and a readable
    ``label`` (the protein's usual name, e.g. ``B7-H6`` for NCR3LG1; empty where the symbol is
    the usual name).
``axes.tsv``
    One row per NK receptor axis or intracellular program the genes belong to.
``pathways.tsv``
    Gene sets (mechanism pathways, lineage programs, covariates) with their genes and the
    ``axis`` they act through (``-`` for none) and a readable ``label`` (``IFN-gamma
    signalling`` for ``IFNG_SIGNALING``).
``VERSION``
    The catalogue version, recorded with every fitted model.
``archive/<VERSION>/``
    Earlier versions, kept so that what was built on them (the simulator's genome, pinned to
    the version it was written for) stays the same: ``load_catalog(version)``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

from nkpredict.exceptions import CatalogError

Role = Literal["activating", "inhibitory", "intracellular"]
_ROLES: frozenset[str] = frozenset({"activating", "inhibitory", "intracellular"})
_EFFECTS: dict[str, int] = {"+": 1, "-": -1, "?": 0}
EVIDENCE_LEVELS: tuple[str, ...] = (
    "functional screen hit",
    "expression correlate",
    "mechanism study",
)
"""How a catalogue gene's direction is known, strongest first."""

__all__ = [
    "EVIDENCE_LEVELS",
    "Axis",
    "Catalog",
    "CatalogGene",
    "GeneSet",
    "load_catalog",
    "read_gmt",
]


@dataclass(frozen=True)
class CatalogGene:
    """One NK ligand or effector-pathway gene.

    ``effect`` is the expected sign of the effect of *higher* expression on resistance:
    ``+1`` (protects the tumor, e.g. HLA-E), ``-1`` (sensitises, e.g. NCR3LG1) or ``0``
    (unclear or contested). ``evidence`` is one of :data:`EVIDENCE_LEVELS` (empty in
    catalogues before 2026.12.0), ``lineage_context`` where it was shown, ``contested`` whether
    the direction is disputed, ``note`` why, ``label`` the protein's usual name where it differs
    from the symbol (empty otherwise; see :attr:`display_name`).
    """

    symbol: str
    aliases: tuple[str, ...]
    receptor: str
    axis: str
    role: Role
    effect: int
    reference: str
    evidence: str = ""
    lineage_context: str = ""
    contested: bool = False
    note: str = ""
    label: str = ""

    @property
    def display_name(self) -> str:
        """``"B7-H6 (NCR3LG1)"``, or the symbol alone when it is the usual name."""
        return f"{self.label} ({self.symbol})" if self.label else self.symbol


@dataclass(frozen=True)
class Axis:
    """An NK receptor axis (e.g. NKp30 / B7-H6) or an intracellular program."""

    name: str
    receptor: str
    kind: Role
    label: str
    description: str


@dataclass(frozen=True)
class GeneSet:
    """A named gene set: a mechanism pathway, a lineage program, a covariate or a user set.

    ``label`` is its readable name (``IFN-gamma signalling``); empty for user sets, which are
    shown by ``name`` (see :attr:`display_name`).
    """

    name: str
    genes: tuple[str, ...]
    category: str = "user"
    description: str = ""
    reference: str = ""
    axis: str | None = None
    label: str = ""

    @property
    def display_name(self) -> str:
        """The readable label, else the name."""
        return self.label or self.name

    @property
    def unit(self) -> str:
        """The axis-level unit this set's score is attributed to (its axis, else its category)."""
        return self.axis if self.axis else self.category.upper()


@dataclass(frozen=True)
class Catalog:
    """The loaded catalogue. Build it with :func:`load_catalog`."""

    version: str
    genes: tuple[CatalogGene, ...]
    axes: tuple[Axis, ...]
    gene_sets: tuple[GeneSet, ...]
    _by_symbol: dict[str, CatalogGene] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_symbol", {g.symbol: g for g in self.genes})
        axis_names = {a.name for a in self.axes}
        for gene in self.genes:
            if gene.axis not in axis_names:
                raise CatalogError(f"gene {gene.symbol} names unknown axis {gene.axis!r}")
        for gene_set in self.gene_sets:
            if gene_set.axis is not None and gene_set.axis not in axis_names:
                raise CatalogError(f"gene set {gene_set.name} names unknown axis {gene_set.axis!r}")
        set_names = [s.name for s in self.gene_sets]
        if len(set(set_names)) != len(set_names):
            raise CatalogError("gene-set names must be unique")

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols of the ligand/effector genes, in catalogue order."""
        return tuple(g.symbol for g in self.genes)

    def gene(self, symbol: str) -> CatalogGene:
        """Return the catalogue entry of ``symbol`` (an HGNC symbol)."""
        try:
            return self._by_symbol[symbol]
        except KeyError:
            raise CatalogError(f"{symbol!r} is not a catalogue gene") from None

    def gene_name(self, symbol: str) -> str:
        """Readable name of any gene: ``"B7-H6 (NCR3LG1)"`` for a catalogue gene with a usual
        protein name, the symbol itself otherwise (non-catalogue genes included)."""
        gene = self._by_symbol.get(symbol)
        return symbol if gene is None else gene.display_name

    def axis(self, name: str) -> Axis:
        """Return the axis called ``name``."""
        for axis in self.axes:
            if axis.name == name:
                return axis
        raise CatalogError(f"unknown axis {name!r}")

    def axis_genes(self, axis: str, role: Role | None = None) -> tuple[str, ...]:
        """Symbols on ``axis``, optionally only those with ``role``."""
        return tuple(
            g.symbol for g in self.genes if g.axis == axis and (role is None or g.role == role)
        )

    def gene_set(self, name: str) -> GeneSet:
        """Return the gene set called ``name``."""
        for gene_set in self.gene_sets:
            if gene_set.name == name:
                return gene_set
        raise CatalogError(f"unknown gene set {name!r}")

    def all_genes(self) -> tuple[str, ...]:
        """Every gene the catalogue mentions (ligands first, then gene-set members), unique."""
        seen: dict[str, None] = dict.fromkeys(self.symbols)
        for gene_set in self.gene_sets:
            seen.update(dict.fromkeys(gene_set.genes))
        return tuple(seen)

    def signed_weights(self, genes: Iterable[str]) -> tuple[float, ...]:
        """Weights of a signed set score over ``genes``: ``+-1 / n`` each.

        The set is oriented by the majority direction of its genes' ``effect`` (``+`` when
        they cancel or none is known); a gene whose effect opposes that orientation (a decoy
        receptor, a negative regulator) gets ``-1 / n``, every other gene (same direction,
        unknown or not a catalogue gene) ``+1 / n``. So a set's score rises with the activity
        of what the set stands for instead of averaging opposite effects together.
        """
        members = list(genes)
        effects = [self._by_symbol[g].effect if g in self._by_symbol else 0 for g in members]
        orientation = -1 if sum(effects) < 0 else 1
        n = len(members)
        return tuple((-1.0 if effect == -orientation else 1.0) / n for effect in effects)

    def alias_map(self) -> dict[str, str]:
        """Upper-cased alias or previous symbol -> current symbol, for catalogue ligands.

        An alias that is itself a current symbol of another catalogue gene is left out, so a
        current symbol always maps to itself.
        """
        own = {g.symbol.upper() for g in self.genes}
        mapping: dict[str, str] = {}
        for gene in self.genes:
            for alias in gene.aliases:
                key = alias.upper()
                if key not in own:
                    mapping[key] = gene.symbol
        return mapping

    def with_gene_sets(self, extra: Iterable[GeneSet]) -> Catalog:
        """Return a copy with user gene sets appended (names must not clash)."""
        return Catalog(
            version=self.version,
            genes=self.genes,
            axes=self.axes,
            gene_sets=self.gene_sets + tuple(extra),
        )


def _catalog_files(version: str | None) -> Traversable:
    root = resources.files(__package__)
    if version is None or version == root.joinpath("VERSION").read_text().strip():
        return root
    archived = root.joinpath("archive", version)
    if not archived.joinpath("VERSION").is_file():
        raise CatalogError(f"no catalogue version {version!r}")
    return archived


def _read_tsv(root: Traversable, name: str) -> list[dict[str, str]]:
    text = root.joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines(), delimiter="\t"))


def _split(value: str, sep: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(sep) if part.strip())


@lru_cache(maxsize=4)
def load_catalog(version: str | None = None) -> Catalog:
    """Load the bundled NK knowledge catalogue (cached; the result is immutable).

    ``version`` picks an archived earlier version (default: the current one).
    """
    root = _catalog_files(version)
    genes = []
    for row in _read_tsv(root, "genes.tsv"):
        if row["role"] not in _ROLES or row["effect"] not in _EFFECTS:
            raise CatalogError(f"genes.tsv: bad role/effect for {row['symbol']}")
        evidence = row.get("evidence") or ""
        if evidence and evidence not in EVIDENCE_LEVELS:
            raise CatalogError(f"genes.tsv: bad evidence {evidence!r} for {row['symbol']}")
        if (row.get("contested") or "no") not in ("yes", "no"):
            raise CatalogError(f"genes.tsv: contested must be yes or no for {row['symbol']}")
        genes.append(
            CatalogGene(
                symbol=row["symbol"],
                aliases=_split(row["aliases"], ";"),
                receptor=row["receptor"],
                axis=row["axis"],
                role=row["role"],  # type: ignore[arg-type]
                effect=_EFFECTS[row["effect"]],
                reference=row["reference"],
                evidence=evidence,
                lineage_context=row.get("lineage_context") or "",
                contested=row.get("contested") == "yes",
                note=row.get("note") or "",
                label=row.get("label") or "",
            )
        )
    axes = tuple(
        Axis(
            name=row["axis"],
            receptor=row["receptor"],
            kind=row["kind"],  # type: ignore[arg-type]
            label=row["label"],
            description=row["description"],
        )
        for row in _read_tsv(root, "axes.tsv")
    )
    gene_sets = tuple(
        GeneSet(
            name=row["pathway"],
            genes=_split(row["genes"], ","),
            category=row["category"],
            description=row["description"],
            reference=row["reference"],
            axis=None if row["axis"] == "-" else row["axis"],
            label=row.get("label") or "",
        )
        for row in _read_tsv(root, "pathways.tsv")
    )
    found = root.joinpath("VERSION").read_text().strip()
    return Catalog(version=found, genes=tuple(genes), axes=axes, gene_sets=gene_sets)


def read_gmt(path: str | Path, category: str = "user") -> list[GeneSet]:
    """Read gene sets from a GMT file (``name<TAB>description<TAB>gene<TAB>gene...``).

    Gene identifiers are kept as written; harmonize them with
    :mod:`nkpredict.data.identifiers` before
    use if they are not current HGNC symbols.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CatalogError(f"cannot read gene-set file {path}: {exc.strerror}") from exc
    sets: list[GeneSet] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.rstrip("\n").split("\t")
        genes = tuple(dict.fromkeys(g.strip() for g in parts[2:] if g.strip()))
        if len(parts) < 3 or not parts[0].strip() or not genes:
            raise CatalogError(f"{path}:{number}: a GMT line needs a name, a description and genes")
        sets.append(GeneSet(parts[0].strip(), genes, category, parts[1].strip(), str(path)))
    if not sets:
        raise CatalogError(f"{path}: no gene sets found")
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise CatalogError(f"{path}: duplicated gene-set names")
    return sets
