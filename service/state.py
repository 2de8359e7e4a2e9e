"""The model holder: which fitted model the service answers with, and how it is swapped.

Requests take the current :class:`LoadedModel` once (:func:`service.deps.current_model`, or the
``get_loaded_model`` dependency) and use that object until they finish, so an admin reload that
swaps the holder's reference never changes the model under a running request: in-flight
requests finish on the old model, new ones get the new one. Swapping is a single attribute
assignment (atomic in CPython); reloads themselves are serialised by a lock.

A model is only swapped in after it has been loaded, configured (XGBoost threads) and has
answered a warm-up prediction; if any of that fails the old model keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from nkpredict.exceptions import ModelLoadError, NKPredictError
from nkpredict.explain.attributions import explain, level_allocations
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.registry import ModelReference, load_model, redact_uri
from nkpredict.settings import Settings
from service.errors import ServiceError, json_safe

__all__ = [
    "LoadedModel",
    "ModelHolder",
    "ModelLoader",
    "default_loader",
    "limit_native_threads",
    "make_loaded",
    "redact_uri",
]

logger = logging.getLogger(__name__)

ModelLoader = Callable[[str], tuple[NKResistanceModel, ModelReference]]
"""Loads a model from a URI or directory; raises ModelLoadError when it cannot."""


def default_loader(settings: Settings) -> ModelLoader:
    """A loader using :func:`nkpredict.registry.load_model` with ``settings``.

    Local directories are read directly. For MLflow URIs MLflow is first pointed at the
    tracking store of ``settings`` with MLflow's HTTP timeout and retries from ``settings``
    (:func:`nkpredict.integrations.mlflow.setup_tracking` as a reader: explicit
    ``MLFLOW_HTTP_*`` variables win); a local SQLite store that does not exist is reported as
    such instead of being created empty.
    """

    def load(uri: str) -> tuple[NKResistanceModel, ModelReference]:
        return load_model(uri, settings=settings)

    return load


@dataclass(frozen=True)
class LoadedModel:
    """A fitted model ready to serve, with where it came from and its static description.

    Attributes
    ----------
    model : NKResistanceModel
    reference : ModelReference
    loaded_at : datetime
        UTC time the model was swapped in.
    info : dict
        The ``/v1/model`` description, computed once at load time.
    """

    model: NKResistanceModel
    reference: ModelReference
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    info: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def model_genes(self) -> frozenset[str]:
        """The HGNC symbols the model reads (what a sparse request body is reduced to)."""
        return frozenset(self.model.feature_builder.genes_in_)

    @property
    def task(self) -> str:
        """``classification`` or ``regression``."""
        return str(self.model.task)

    def model_ref(self) -> dict[str, Any]:
        """Name, version, alias, run id and (redacted) URI of the model."""
        ref = self.reference
        return {
            "name": ref.name,
            "version": ref.version,
            "alias": ref.alias,
            "run_id": ref.run_id,
            "uri": redact_uri(ref.uri),
        }


def _describe(model: NKResistanceModel, reference: ModelReference) -> dict[str, Any]:
    """The static part of ``/v1/model``: read once, never per request."""
    saved = model.to_dict()
    metadata = saved.get("metadata") or {}
    builder = model.feature_builder
    return {
        "task": str(model.task),
        "decision_threshold": float(model.decision_threshold),
        "label_definition": model.label_definition_.to_dict(),
        "training_data": metadata.get("data"),
        "metrics": metadata.get("metrics"),
        "n_features": len(saved["feature_names"]),
        "n_model_genes": len(builder.genes_in_),
        "catalog_version": str(builder.catalog_version_),
        "training_scale": saved.get("training_scale"),
        "nkpredict_version": saved.get("nkpredict_version"),
        "uncertainty": None if model.uncertainty is None else model.uncertainty.describe(),
        "domain": None if model.domain is None else model.domain.describe(),
        "per_lineage": {
            "cross_validated": metadata.get("within_lineage"),
            "leave_one_lineage_out": metadata.get("leave_one_lineage_out"),
        },
    }


def _warm_up(model: NKResistanceModel) -> None:
    """One prediction and one explanation at the training medians: fills lazy caches
    (compiled trees and TreeSHAP tables, allocations) and proves the model works."""
    builder = model.feature_builder
    genes = list(builder.genes_in_)
    values = np.nan_to_num(np.asarray(builder.median_, dtype=np.float64), nan=0.0)
    frame = pd.DataFrame([np.clip(values, 0.0, None)], index=["warm-up"], columns=genes)
    prepared = model.prepare(frame, scale="log")
    model.predict_table(prepared)
    explain(model, prepared)
    level_allocations(builder)


def limit_native_threads(threads: int) -> None:
    """Cap this process's BLAS thread pools at ``threads`` (XGBoost gets ``nthread``).

    Serving runs many small computations, several at once; a BLAS pool sized for the whole
    machine spins up threads that fight XGBoost's and each other over the cores (the
    features of a 100-sample batch took 0.5 ms instead of 0.08 ms, and a whole batch up to
    30 ms instead of 0.4 ms, with both pools at full size on 2 cores). Each worker process
    uses ``settings.model_threads`` threads, so ``workers x NKP_MODEL_THREADS`` should not
    exceed the cores. The limit is process-wide, so it also applies to an app run in-process.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")


def make_loaded(
    model: NKResistanceModel, reference: ModelReference, threads: int = 1
) -> LoadedModel:
    """Configure ``model`` for serving (XGBoost threads), warm it up and describe it.

    Raises
    ------
    ModelLoadError
        The model cannot predict (its warm-up prediction failed).
    """
    try:
        model.boosted_trees.booster_.set_param({"nthread": threads})
        limit_native_threads(threads)
        _warm_up(model)
        info = json_safe(_describe(model, reference))
    except (NKPredictError, ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        raise ModelLoadError(f"model {redact_uri(reference.uri)} cannot serve: {exc}") from exc
    return LoadedModel(model=model, reference=reference, info=info)


class ModelHolder:
    """Holds the model being served; loads and swaps models atomically.

    Parameters
    ----------
    loader : callable
        ``loader(uri) -> (model, reference)``.
    threads : int
        XGBoost threads set on each loaded booster.
    on_swap : callable, optional
        Called with each newly served :class:`LoadedModel` (metrics).
    """

    def __init__(
        self,
        loader: ModelLoader,
        threads: int = 1,
        on_swap: Callable[[LoadedModel], None] | None = None,
    ) -> None:
        self._loader = loader
        self._threads = threads
        self._on_swap = on_swap
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> LoadedModel | None:
        """The model being served, or ``None`` before the first load."""
        return self._current

    def get(self) -> LoadedModel:
        """The model being served.

        Raises
        ------
        ServiceError
            503 ``model_not_loaded`` before the first successful load.
        """
        loaded = self._current
        if loaded is None:
            raise ServiceError(503, "model_not_loaded", "the model is not loaded yet")
        return loaded

    def swap(self, loaded: LoadedModel) -> LoadedModel | None:
        """Serve ``loaded`` from now on; return the previous model."""
        previous, self._current = self._current, loaded
        if self._on_swap is not None:
            self._on_swap(loaded)
        return previous

    def load(self, uri: str) -> tuple[LoadedModel, LoadedModel | None]:
        """Load ``uri``, prepare it, and swap it in; the old model serves until then.

        Returns
        -------
        (new, previous)

        Raises
        ------
        ModelLoadError
            The model cannot be loaded or cannot predict; nothing is swapped.
        """
        with self._lock:
            start = time.perf_counter()
            model, reference = self._loader(uri)
            loaded = make_loaded(model, reference, self._threads)
            previous = self.swap(loaded)
        logger.info(
            "serving model %s (name %s, version %s) after %.2f s",
            redact_uri(reference.uri),
            reference.name,
            reference.version,
            time.perf_counter() - start,
        )
        return loaded, previous
