"""Explanations in words: which measured genes drive a call, their value and where it sits.

For each sample, the genes with the largest attribution (TreeSHAP of the trees plus the
prior's exact part, summed to genes: :func:`nkpredict.explain.attributions.attributions`)
become one sentence each, e.g.::

    B7-H6 (NCR3LG1) is low here (5th percentile of the training cohort): +0.94 log-odds
    toward resistance; probability 0.31 at the training median -> 0.58 at this value

- the value is placed among the training samples with the model's gene reference
  (:class:`~nkpredict.model.reference.GeneReference`; models saved before it say the value
  and the training median instead);
- the two probabilities are the model's output with the gene at its training median (an
  expression counterfactual, :func:`nkpredict.whatif.counterfactual.counterfactual_margins`)
  and as measured, everything else unchanged;
- genes the sample did not measure (imputed with training medians) are never a sentence:
  they are named once, as imputed;
- units that are not NK biology (lineage programs, the proliferation covariate, catalogue gene
  coverage, genome-wide genes) get a sentence saying what they are when they are among the
  sample's top drivers (:data:`UNIT_NOTES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nkpredict.catalog import load_catalog
from nkpredict.exceptions import InputError
from nkpredict.explain.attributions import (
    Attributions,
    Driver,
    Explanation,
    level_allocations,
    output_units,
    resistant_sign,
)
from nkpredict.fast.cache import PerObject
from nkpredict.features.builder import (
    COVERAGE_UNIT,
    GENOME_UNIT,
    LIGAND_UNIT,
    NKFeatureBuilder,
)
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.whatif.counterfactual import Changes, counterfactual_margins, probability
from nkpredict.whatif.interventions import ordinal

__all__ = [
    "SENTENCES_FILE",
    "UNIT_NOTES",
    "GeneWords",
    "SampleWords",
    "explanation_words",
    "level_word",
    "position_words",
    "sample_words",
    "words_table",
]

SENTENCES_FILE = "sentences.csv"
"""File of ``nkpredict explain`` with every sample's drivers in words (:func:`words_table`)."""

UNIT_NOTES: dict[str, str] = {
    "LINEAGE": "Lineage programs are scores of blood-lineage gene programs (myeloid, B-cell, "
    "T-cell, plasma-cell, erythroid): they carry what differs between lineages, not an NK "
    "mechanism.",
    "COVARIATE": "The proliferation covariate scores cell-cycle genes: how fast the sample "
    "divides, not an NK mechanism.",
    COVERAGE_UNIT: "Catalogue gene coverage is the share of the model's catalogue genes this "
    "sample measured; the others were filled with training medians.",
    GENOME_UNIT: "Genome-wide genes are genes outside the NK catalogue that the model chose by "
    "their correlation with the label in training.",
    LIGAND_UNIT: "NK ligands (no pathway) are catalogue ligands that belong to no pathway gene "
    "set.",
    "OTHER": "Other genes are genes of gene sets outside the NK catalogue's axes.",
}
"""What each non-biological explanation unit means, said where it appears."""


def level_word(percentile: float) -> str:
    """``very low`` (< 5), ``low`` (< 25), ``typical`` (25-75), ``high`` (> 75), ``very
    high`` (> 95): a training percentile in one word."""
    if percentile < 5:
        return "very low"
    if percentile < 25:
        return "low"
    if percentile <= 75:
        return "typical"
    if percentile <= 95:
        return "high"
    return "very high"


def position_words(percentile: float) -> str:
    """``"5th percentile of the training cohort"``; below or above every training sample at
    the ends."""
    if percentile <= 0:
        return "below every training sample"
    if percentile >= 100:
        return "above every training sample"
    return f"{ordinal(max(1.0, min(99.0, round(percentile))))} percentile of the training cohort"


@dataclass(frozen=True)
class GeneWords:
    """One measured gene's part in one sample's call, in numbers and in words.

    Attributes
    ----------
    gene : str
        HGNC symbol.
    name : str
        Readable name (``B7-H6 (NCR3LG1)``).
    value : float
        The sample's harmonized expression, log2(TPM+1).
    percentile : float
        Where it sits among the training samples (0-100); NaN for a model saved without its
        gene reference.
    contribution : float
        The gene's attribution, in model-output units.
    output, output_at_median : float
        Probability (classification) or predicted readout as measured, and with the gene at
        its training median.
    sentence : str
    """

    gene: str
    name: str
    value: float
    percentile: float
    contribution: float
    output: float
    output_at_median: float
    sentence: str


@dataclass(frozen=True)
class SampleWords:
    """A sample's explanation in words.

    Attributes
    ----------
    genes : list of GeneWords
        The top measured genes, largest |contribution| first.
    notes : list of str
        What the non-biological units among the sample's top drivers are (:data:`UNIT_NOTES`).
    imputed : list of str
        The model genes this sample did not measure (never in a sentence).
    """

    genes: list[GeneWords]
    notes: list[str]
    imputed: list[str]

    def sentences(self) -> list[str]:
        """The gene sentences, then the unit notes, then the imputed genes named once."""
        out = [g.sentence for g in self.genes] + list(self.notes)
        if self.imputed:
            shown = ", ".join(self.imputed[:10]) + (" ..." if len(self.imputed) > 10 else "")
            out.append(
                f"Not measured here, filled with training medians and left out of these "
                f"sentences: {shown}."
            )
        return out


def _toward(contribution: float, sign: int, units: str) -> str:
    if sign == 0:
        return f"toward higher {units}" if contribution > 0 else f"toward lower {units}"
    return "toward resistance" if contribution * sign > 0 else "toward sensitivity"


def _sentence(
    name: str,
    value: float,
    percentile: float,
    contribution: float,
    outputs: tuple[float, float],
    said: tuple[bool, int, str, bool],
) -> str:
    """The sentence of one gene; ``outputs`` = (at the training median, as measured) and
    ``said`` = (classification, resistant sign, output units, has a gene reference)."""
    classification, sign, units, has_reference = said
    if has_reference:
        where = f"is {level_word(percentile)} here ({position_words(percentile)})"
    else:
        where = f"is {value:.2f} log2(TPM+1) here"
    push = f"{contribution:+.2f} {units} {_toward(contribution, sign, units)}"
    quantity = "probability" if classification else f"predicted {units}"
    shown = _probability_text if classification else "{:.2f}".format
    return (
        f"{name} {where}: {push}; {quantity} {shown(outputs[0])} at the "
        f"training median -> {shown(outputs[1])} at this value"
    )


def _probability_text(probability: float) -> str:
    """Two decimals; ``<0.01`` and ``>0.99`` where two decimals would say 0.00 or 1.00."""
    if probability < 0.005:
        return "<0.01"
    if probability >= 0.995:
        return ">0.99"
    return f"{probability:.2f}"


@dataclass(frozen=True, eq=False)
class _GeneBasis:
    """What the words of any sample read from a fitted feature builder (built once).

    Attributes
    ----------
    genes : list of str
        ``genes_in_``.
    names : list of str
        Each gene's readable name (:meth:`~nkpredict.catalog.Catalog.gene_name`).
    columns : ndarray of intp, shape (n_genes_in,)
        Each gene's column at gene level (0 for a gene without one).
    without_column : ndarray of bool, shape (n_genes_in,) or None
        The genes without a column at gene level (their attribution is 0); None when every
        gene has one.
    """

    genes: list[str]
    names: list[str]
    columns: np.ndarray
    without_column: np.ndarray | None


def _gene_basis(builder: NKFeatureBuilder) -> _GeneBasis:
    genes = [str(g) for g in builder.genes_in_]
    column_of = {u: k for k, u in enumerate(level_allocations(builder)["gene"].units)}
    columns = np.array([column_of.get(g, -1) for g in genes], dtype=np.intp)
    catalog = load_catalog()
    return _GeneBasis(
        genes=genes,
        names=[catalog.gene_name(g) for g in genes],
        columns=np.maximum(columns, 0),
        without_column=columns < 0 if (columns < 0).any() else None,
    )


_gene_bases: PerObject[NKFeatureBuilder, _GeneBasis] = PerObject(
    _gene_basis, state=lambda builder: builder.specs_
)
"""The words' per-gene constants of a feature builder, built once per fitted state."""


def _medians(model: NKResistanceModel) -> np.ndarray:
    reference = model.gene_reference_
    if reference is None:
        return np.asarray(model.feature_builder.median_, dtype=np.float64)
    return np.asarray(reference.quantiles[:, 50], dtype=np.float64)


def _top_genes(ranked: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The sample and column of each sample's top ``n`` genes by ``ranked`` (n_samples,
    n_genes_in: |attribution|, -1 where unmeasured), largest first (ties in gene order),
    leaving out those at or below 1e-12; sample by sample."""
    if ranked.shape[0] == 1:  # one sample: the same stable order, read off in Python
        row = ranked[0]
        order = np.argsort(-row, kind="stable")[: max(n, 0)].tolist()
        kept = [j for j, value in zip(order, row[order].tolist(), strict=True) if value > 1e-12]
        return np.zeros(len(kept), dtype=np.intp), np.array(kept, dtype=np.intp)
    top = np.argsort(-ranked, axis=1, kind="stable")[:, : max(n, 0)]
    kept_mask = ranked[np.arange(top.shape[0])[:, None], top] > 1e-12
    sample, place = np.nonzero(kept_mask)
    return sample, top[sample, place]


def sample_words(
    model: NKResistanceModel,
    gene_values: np.ndarray,
    result: Attributions,
    n: int = 3,
    drivers: Sequence[Sequence[Driver]] | None = None,
    gene_attributions: np.ndarray | None = None,
    imputed: Sequence[list[str]] | None = None,
) -> list[SampleWords]:
    """Each sample's top measured genes in sentences, with notes on non-biological units.

    Parameters
    ----------
    model : NKResistanceModel
        A fitted model.
    gene_values : ndarray, shape (n_samples, n_genes_in)
        ``model.scorer.gene_values(prepared)`` of the explained samples (NaN = unmeasured).
    result : Attributions
        :func:`~nkpredict.explain.attributions.attributions` of those samples.
    n : int
        Genes put into words per sample.
    drivers : sequence of sequence of Driver, optional
        Each sample's top drivers at the level shown next to the sentences (axis, pathway
        ...): a non-biological unit among them gets its note. Default: the top ``n`` axis
        units.
    gene_attributions : ndarray, shape (n_samples, n_gene_units), optional
        ``result.contributions @ level_allocations(builder)["gene"].matrix`` when the caller
        has it already (computed here otherwise).
    imputed : sequence of list of str, optional
        ``model.scorer.imputed(gene_values)`` when the caller has it already.

    Returns
    -------
    list of SampleWords, length n_samples
    """
    builder = model.feature_builder
    basis = _gene_bases(builder)
    genes = basis.genes
    allocations = level_allocations(builder)
    summed = (
        result.contributions @ allocations["gene"].matrix
        if gene_attributions is None
        else gene_attributions
    )
    per_gene = summed[:, basis.columns]
    if basis.without_column is not None:
        per_gene[:, basis.without_column] = 0.0
    ranked = np.where(np.isnan(gene_values), -1.0, np.abs(per_gene))
    sample, column = _top_genes(ranked, n)
    columns = column.tolist()
    medians = _medians(model)
    changes = Changes(
        sample=sample,
        copy=np.arange(sample.size, dtype=np.intp),
        gene=[genes[j] for j in columns],
        value=medians[column],
    )
    at_median = (
        counterfactual_margins(model, gene_values, changes, result.features).astype(np.float64)
        if sample.size
        else np.zeros(0)
    )
    classification = model.task == "classification"
    n_samples = result.model_output.shape[0]
    both = np.concatenate([result.model_output, at_median])  # one element-wise pass
    said_outputs = (probability(both) if classification else both).tolist()
    outputs, at_outputs = said_outputs[:n_samples], said_outputs[n_samples:]
    reference = model.gene_reference_
    said = (classification, resistant_sign(model), output_units(model), reference is not None)
    values = gene_values[sample, column].tolist()
    percentiles = (
        [float("nan")] * sample.size
        if reference is None
        else [reference.percentile_of(genes[j], v) for j, v in zip(columns, values, strict=True)]
    )
    if drivers is None:
        axis = allocations["axis"]
        axis_values = result.contributions @ axis.matrix
        order = np.argsort(-np.abs(axis_values), axis=1, kind="stable")[:, :n]
        shown = [[axis.units[k] for k in row] for row in order.tolist()]
    else:
        shown = [[d.unit for d in row] for row in drivers]

    rows: list[list[GeneWords]] = [[] for _ in range(gene_values.shape[0])]
    for i, j, value, percentile, contribution, at in zip(
        sample.tolist(),
        columns,
        values,
        percentiles,
        per_gene[sample, column].tolist(),
        at_outputs,
        strict=True,
    ):
        output = outputs[i]
        sentence = _sentence(basis.names[j], value, percentile, contribution, (at, output), said)
        rows[i].append(
            GeneWords(
                genes[j], basis.names[j], value, percentile, contribution, output, at, sentence
            )
        )
    if imputed is None:
        imputed = model.scorer.imputed(gene_values)
    return [
        SampleWords(
            genes=words,
            notes=[UNIT_NOTES[u] for u in dict.fromkeys(units) if u in UNIT_NOTES],
            imputed=missing,
        )
        for words, units, missing in zip(rows, shown, imputed, strict=True)
    ]


def explanation_words(
    model: NKResistanceModel, explanation: Explanation, n: int = 3
) -> list[SampleWords]:
    """:func:`sample_words` of every sample of an :class:`Explanation` of ``model`` (notes for
    the non-biological units among each sample's top ``n`` axis drivers)."""
    if explanation.expression is None:
        raise InputError("the explanation carries no expression: explain() it from a model")
    prior = explanation.prior_part
    result = Attributions(
        features=explanation.values.to_numpy(),
        contributions=explanation.shap.to_numpy(),
        base_value=explanation.base_value,
        model_output=explanation.model_output.to_numpy(dtype=np.float64),
        prior_part=np.zeros(len(explanation.shap)) if prior is None else prior.to_numpy(),
    )
    drivers = [explanation.top_drivers(str(s), "axis", n) for s in explanation.shap.index]
    gene_values = explanation.expression.to_numpy(dtype=np.float64)
    return sample_words(model, gene_values, result, n, drivers)


def words_table(sample_ids: Sequence[str], words: Sequence[SampleWords]) -> pd.DataFrame:
    """One row per sentence: ``sample_id``, ``rank`` (1 = first sentence of the sample),
    ``gene`` (empty for notes), ``value`` (log2(TPM+1)), ``percentile``, ``contribution``,
    ``output`` and ``output_at_median`` (probability or readout; NaN for notes) and
    ``sentence``."""
    rows = []
    for sample_id, said in zip(sample_ids, words, strict=True):
        sentences = said.sentences()
        for rank, sentence in enumerate(sentences, start=1):
            gene = said.genes[rank - 1] if rank <= len(said.genes) else None
            rows.append(
                {
                    "sample_id": sample_id,
                    "rank": rank,
                    "gene": "" if gene is None else gene.gene,
                    "value": np.nan if gene is None else gene.value,
                    "percentile": np.nan if gene is None else gene.percentile,
                    "contribution": np.nan if gene is None else gene.contribution,
                    "output": np.nan if gene is None else gene.output,
                    "output_at_median": np.nan if gene is None else gene.output_at_median,
                    "sentence": sentence,
                }
            )
    columns = [
        "sample_id",
        "rank",
        "gene",
        "value",
        "percentile",
        "contribution",
        "output",
        "output_at_median",
        "sentence",
    ]
    return pd.DataFrame(rows, columns=columns)
