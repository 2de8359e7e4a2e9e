"""What the fitted model predicts when some genes of a sample take other values.

:func:`counterfactual_margins` is the one place where changed gene values are scored: copies
of samples' gene values (the model's array path, :attr:`NKResistanceModel.scorer`) with some
entries replaced, turned into features and margins. The coverage feature keeps each sample's
own value, so setting an unmeasured gene does not also change how complete the sample looks.
:func:`whatif` applies :mod:`interventions <nkpredict.whatif.interventions>` to every sample
of a prepared input and compares each with the sample as measured.

The spread of a change over the cross-validation models: when the fitted model carries them
(:attr:`NKResistanceModel.members`, the fold models of the training job's first CV repeat) or
the caller passes ``members``, every change is also computed by
each of them and ``*_spread`` is its standard deviation across them; otherwise the spread is
NaN and ``n_models`` is 0.

Every result is an expression counterfactual of the fitted model, not a prediction of what a
drug would do (:data:`COUNTERFACTUAL_NOTE`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nkpredict.data.expression import PreparedExpression
from nkpredict.explain.attributions import resistant_sign
from nkpredict.fast.cache import PerObject
from nkpredict.features.builder import NKFeatureBuilder
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.whatif.interventions import Intervention, ResolvedIntervention, resolve

__all__ = [
    "COUNTERFACTUAL_NOTE",
    "NO_SPREAD_NOTE",
    "WHATIF_CHUNK",
    "Changes",
    "WhatIfResult",
    "counterfactual_margins",
    "lowering_interventions",
    "members_of",
    "probability",
    "whatif",
]

COUNTERFACTUAL_NOTE = (
    "Expression counterfactuals of the fitted model, not pharmacology: each row is what the "
    "model would predict if the named genes had the stated expression values and everything "
    "else stayed as measured. A drug or a knockout changes more than these transcripts (and "
    "an antibody that blocks a receptor does not change its ligand's expression)."
)
"""The caveat every what-if output carries."""
NO_SPREAD_NOTE = (
    "This model keeps no cross-validation or bagged models, so the spread of each change is "
    "not available (NaN)."
)
WHATIF_CHUNK = 2048
"""Samples whose counterfactual copies are scored at once (bounds memory)."""


def members_of(model: NKResistanceModel) -> tuple[NKResistanceModel, ...]:
    """The cross-validation or bagged models stored with ``model`` (empty when none)."""
    return model.members


@dataclass(frozen=True)
class Changes:
    """Counterfactual copies of samples and the gene values changed in each.

    Attributes
    ----------
    sample : ndarray of intp, shape (n_copies,)
        Row of the gene-value matrix each copy starts from.
    copy : ndarray of intp, shape (n_changes,)
        Copy each change belongs to.
    gene : list of str, length n_changes
        Gene each change sets.
    value : ndarray of float64, shape (n_changes,)
        What it is set to (log2(TPM+1)).
    """

    sample: np.ndarray
    copy: np.ndarray
    gene: list[str]
    value: np.ndarray


def __positions(builder: NKFeatureBuilder) -> dict[str, int]:
    return {g: j for j, g in enumerate(builder.genes_in_)}


_positions: PerObject[NKFeatureBuilder, dict[str, int]] = PerObject(
    __positions, state=lambda builder: builder.genes_in_
)
"""Each input gene's column in a fitted builder's gene values, built once per fitted state."""


def counterfactual_margins(
    model: NKResistanceModel,
    gene_values: np.ndarray,
    changes: Changes,
    features: np.ndarray | None = None,
) -> np.ndarray:
    """Model output of each counterfactual copy, shape (n_copies,).

    Parameters
    ----------
    model : NKResistanceModel
        A fitted model; genes of ``changes`` it does not read are ignored.
    gene_values : ndarray, shape (n_samples, n_genes_in)
        ``model.scorer.gene_values(prepared)``: the samples as measured (NaN = unmeasured).
    changes : Changes
    features : ndarray, shape (n_samples, n_features), optional
        ``model.scorer.features(gene_values)`` when the caller has them (only their coverage
        is read; computed from ``gene_values`` otherwise).

    Returns
    -------
    ndarray of float32
        Log-odds (classification) or the predicted readout, as the model scores them; the
        coverage feature is each copy's sample's own.
    """
    scorer = model.scorer
    position = _positions(scorer.builder)
    copies = gene_values[changes.sample]
    found = [position.get(g, -1) for g in changes.gene]
    if -1 not in found:  # every changed gene is read (the usual case): no mask
        copies[changes.copy, found] = changes.value
    else:
        columns = np.array(found, dtype=np.intp)
        read = columns >= 0
        if read.any():
            copies[changes.copy[read], columns[read]] = changes.value[read]
    copied = scorer.features(copies)
    column = scorer.coverage_column
    coverage = scorer.builder.coverage_of(gene_values) if features is None else features[:, column]
    copied[:, column] = coverage[changes.sample]
    margins: np.ndarray = scorer.margins(copied)
    return margins


def _changes(n_samples: int, resolved: Sequence[ResolvedIntervention]) -> Changes:
    """One copy of every sample per intervention (intervention-major)."""
    k = len(resolved)
    sample = np.tile(np.arange(n_samples, dtype=np.intp), k)
    copy_parts, genes, values = [], [], []
    for r, item in enumerate(resolved):
        copies = np.arange(r * n_samples, (r + 1) * n_samples, dtype=np.intp)
        for gene, value in zip(item.genes, item.values, strict=True):
            copy_parts.append(copies)
            genes += [gene] * n_samples
            values.append(np.full(n_samples, value))
    return Changes(
        sample=sample,
        copy=np.concatenate(copy_parts) if copy_parts else np.zeros(0, dtype=np.intp),
        gene=genes,
        value=np.concatenate(values) if values else np.zeros(0),
    )


def _after(
    model: NKResistanceModel, gene_values: np.ndarray, resolved: Sequence[ResolvedIntervention]
) -> np.ndarray:
    """Model output after each intervention, shape (n_samples, n_interventions), in chunks."""
    n = gene_values.shape[0]
    out = np.empty((n, len(resolved)), dtype=np.float64)
    for start in range(0, n, WHATIF_CHUNK):
        block = gene_values[start : start + WHATIF_CHUNK]
        margins = counterfactual_margins(model, block, _changes(block.shape[0], resolved))
        out[start : start + block.shape[0]] = margins.reshape(len(resolved), -1).T
    return out


def _margins(model: NKResistanceModel, gene_values: np.ndarray) -> np.ndarray:
    scorer = model.scorer
    return np.asarray(scorer.margins(scorer.features(gene_values)), dtype=np.float64)


def probability(margin: np.ndarray) -> np.ndarray:
    """P(resistant) of margins (log-odds), in float64 from the float32 margins the model
    predicts with (as :meth:`~nkpredict.fast.scoring.ArrayScorer.predictions` does)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(margin).astype(np.float32).astype(np.float64)))


@dataclass(frozen=True, eq=False)
class WhatIfResult:
    """Each sample under each intervention, next to the sample as measured.

    Attributes
    ----------
    sample_id : list of str, length n_samples
    interventions : list of ResolvedIntervention, length n_interventions
    task : {"classification", "regression"}
    units : str
        ``log-odds`` or the readout's name.
    resistant_sign : int
        +1 when a higher output means more resistant, -1 when less, 0 unknown.
    baseline : ndarray of float64, shape (n_samples,)
        Model output as measured.
    after : ndarray of float64, shape (n_samples, n_interventions)
        Model output after each intervention.
    baseline_call, after_call : ndarray of str, shapes (n_samples,), (n_samples, n_interventions)
    member_delta : ndarray of float64, shape (n_models, n_samples, n_interventions)
        The change of the output under each cross-validation or bagged model (``n_models``
        may be 0).
    imputed_targets : list of list of list of str
        Per sample and intervention, the genes it sets that the sample did not measure (the
        model had filled them with training medians).
    """

    sample_id: list[str]
    interventions: list[ResolvedIntervention]
    task: str
    units: str
    resistant_sign: int
    baseline: np.ndarray
    after: np.ndarray
    baseline_call: np.ndarray
    after_call: np.ndarray
    member_delta: np.ndarray
    imputed_targets: list[list[list[str]]]

    @property
    def n_models(self) -> int:
        """Cross-validation or bagged models the spread comes from (0: no spread)."""
        return int(self.member_delta.shape[0])

    @property
    def delta(self) -> np.ndarray:
        """``after - baseline``, shape (n_samples, n_interventions)."""
        return self.after - self.baseline[:, None]

    def _spread(self, values: np.ndarray) -> np.ndarray:
        if values.shape[0] < 2:
            return np.full(values.shape[1:], np.nan)
        spread: np.ndarray = values.std(axis=0, ddof=1)
        return spread

    def notes(self) -> list[str]:
        """The caveats of this result: :data:`COUNTERFACTUAL_NOTE`, and
        :data:`NO_SPREAD_NOTE` when there is no spread."""
        notes = [COUNTERFACTUAL_NOTE]
        if self.n_models < 2:
            notes.append(NO_SPREAD_NOTE)
        return notes

    def described_interventions(self) -> list[dict[str, Any]]:
        """Each intervention as applied: ``name``, ``description`` and ``genes`` (gene ->
        the log2(TPM+1) value it was set to)."""
        return [
            {
                "name": r.name,
                "description": r.description,
                "genes": dict(zip(r.genes, r.values, strict=True)),
            }
            for r in self.interventions
        ]

    def columns(self) -> dict[str, np.ndarray]:
        """The long table's numeric columns, each shape (n_samples, n_interventions)."""
        base = np.broadcast_to(self.baseline[:, None], self.after.shape)
        if self.task != "classification":
            return {
                "baseline_score": base,
                "after_score": self.after,
                "delta_score": self.delta,
                "delta_score_spread": self._spread(self.member_delta),
            }
        p_base, p_after = probability(base), probability(self.after)
        members_p = (
            probability(base[None] + self.member_delta) - p_base[None]
            if self.n_models
            else self.member_delta
        )
        return {
            "baseline_probability": p_base,
            "after_probability": p_after,
            "delta_probability": p_after - p_base,
            "baseline_log_odds": base,
            "after_log_odds": self.after,
            "delta_log_odds": self.delta,
            "delta_log_odds_spread": self._spread(self.member_delta),
            "delta_probability_spread": self._spread(members_p),
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per sample and intervention (sample-major).

        Columns: ``sample_id``, ``intervention``, ``genes`` (``GENE=value;...``: what was set),
        then for classification ``baseline_probability``, ``after_probability``,
        ``delta_probability``, ``baseline_log_odds``, ``after_log_odds``, ``delta_log_odds``,
        ``delta_log_odds_spread``, ``delta_probability_spread`` (regression:
        ``baseline_score``, ``after_score``, ``delta_score``, ``delta_score_spread``), then
        ``n_models``, ``baseline_call``, ``after_call`` and ``imputed_targets``
        (``;``-joined).
        """
        n, k = self.after.shape
        frame = pd.DataFrame(
            {
                "sample_id": np.repeat(np.asarray(self.sample_id, dtype=object), k),
                "intervention": np.tile([r.name for r in self.interventions], n),
                "genes": np.tile([r.summary() for r in self.interventions], n),
            }
        )
        for name, values in self.columns().items():
            frame[name] = np.asarray(values, dtype=np.float64).reshape(-1)
        frame["n_models"] = self.n_models
        frame["baseline_call"] = np.repeat(self.baseline_call, k)
        frame["after_call"] = np.asarray(self.after_call).reshape(-1)
        frame["imputed_targets"] = [";".join(g) for row in self.imputed_targets for g in row]
        return frame

    def to_records(self) -> list[dict[str, Any]]:
        """Per sample: its ``sample_id``, the baseline and one entry per intervention."""
        columns = self.columns()
        base_names = [c for c in columns if c.startswith("baseline_")]
        records = []
        for i, sample_id in enumerate(self.sample_id):
            items = []
            for r, item in enumerate(self.interventions):
                entry: dict[str, Any] = {
                    "intervention": item.name,
                    "description": item.description,
                    "genes": dict(zip(item.genes, item.values, strict=True)),
                }
                entry.update(
                    {
                        name: _plain(values[i, r])
                        for name, values in columns.items()
                        if name not in base_names
                    }
                )
                entry["call"] = str(self.after_call[i, r])
                entry["imputed_targets"] = self.imputed_targets[i][r]
                items.append(entry)
            record: dict[str, Any] = {"sample_id": sample_id}
            record.update({name: _plain(columns[name][i, 0]) for name in base_names})
            record["baseline_call"] = str(self.baseline_call[i])
            record["interventions"] = items
            records.append(record)
        return records


def _plain(value: float) -> float | None:
    """A JSON number; ``None`` for NaN."""
    number = float(value)
    return None if np.isnan(number) else number


def _calls(model: NKResistanceModel, sample_id: list[str], margin: np.ndarray) -> np.ndarray:
    """The model's calls of outputs ``margin``, shape (n,) (features only for coverage)."""
    scorer = model.scorer
    n = margin.shape[0]
    empty = np.zeros((n, len(model.feature_builder.genes_in_)))
    features = np.zeros((n, len(model.feature_builder.get_feature_names_out())))
    return scorer.predictions(sample_id, features, margin.astype(np.float32), empty).call


def whatif(
    model: NKResistanceModel,
    prepared: PreparedExpression,
    interventions: Sequence[Intervention],
    members: Sequence[NKResistanceModel] | None = None,
) -> WhatIfResult:
    """Apply each intervention to every sample of ``prepared`` and score it.

    Parameters
    ----------
    model : NKResistanceModel
        A fitted model.
    prepared : PreparedExpression
        The samples, shape (n_samples, n_genes), from ``model.prepare(raw)``.
    interventions : sequence of Intervention
        Built-in (:func:`~nkpredict.whatif.interventions.builtin_intervention`) or
        user-defined; percentiles and references are resolved with the model's training
        reference.
    members : sequence of NKResistanceModel, optional
        Cross-validation or bagged models giving the spread of each change; default
        :func:`members_of` ``(model)``.

    Returns
    -------
    WhatIfResult
    """
    resolved = [resolve(i, model) for i in interventions]
    scorer = model.scorer
    genes = scorer.gene_values(prepared)
    baseline = _margins(model, genes)
    after = _after(model, genes, resolved)
    chosen = members_of(model) if members is None else tuple(members)
    member_delta = np.zeros((len(chosen), *after.shape))
    for m, member in enumerate(chosen):
        member_genes = member.scorer.gene_values(prepared)
        member_delta[m] = (
            _after(member, member_genes, resolved) - _margins(member, member_genes)[:, None]
        )
    imputed = scorer.imputed(genes)
    imputed_targets = [
        [[g for g in item.genes if g in set(missing)] for item in resolved] for missing in imputed
    ]
    sample_id = list(prepared.sample_ids)
    k = len(resolved)
    after_call = _calls(model, sample_id * k, after.T.reshape(-1)).reshape(k, -1).T
    return WhatIfResult(
        sample_id=sample_id,
        interventions=resolved,
        task=model.task,
        units="log-odds" if model.task == "classification" else model.label_definition_.column,
        resistant_sign=resistant_sign(model),
        baseline=baseline,
        after=after,
        baseline_call=_calls(model, sample_id, baseline),
        after_call=after_call,
        member_delta=member_delta,
        imputed_targets=imputed_targets,
    )


def lowering_interventions(
    result: WhatIfResult, sample_id: str, n: int = 3
) -> list[dict[str, Any]]:
    """The ``n`` interventions that most lower one sample's predicted resistance.

    Only interventions that lower it are listed (a change toward sensitive), largest
    decrease first; empty when none does or the model has no resistant side.

    Returns
    -------
    list of dict
        ``intervention``, ``description``, ``genes`` (``GENE=value;...``), ``baseline``,
        ``after`` (probability or score), ``delta`` (its change), ``delta_margin`` (change in
        log-odds or score), ``spread`` (of ``delta_margin``; NaN without models) and
        ``call`` (after).
    """
    if result.resistant_sign == 0:
        return []
    i = result.sample_id.index(sample_id)
    columns = result.columns()
    value = "probability" if result.task == "classification" else "score"
    margin = "log_odds" if result.task == "classification" else "score"
    toward_resistant = result.delta[i] * result.resistant_sign
    order = [int(r) for r in np.argsort(toward_resistant, kind="stable") if toward_resistant[r] < 0]
    return [
        {
            "intervention": result.interventions[r].name,
            "description": result.interventions[r].description,
            "genes": result.interventions[r].summary(),
            "baseline": float(columns[f"baseline_{value}"][i, r]),
            "after": float(columns[f"after_{value}"][i, r]),
            "delta": float(columns[f"delta_{value}"][i, r]),
            "delta_margin": float(columns[f"delta_{margin}"][i, r]),
            "spread": float(columns[f"delta_{margin}_spread"][i, r]),
            "call": str(result.after_call[i, r]),
        }
        for r in order[:n]
    ]
