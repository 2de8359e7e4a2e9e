"""Where the work runs: in this process (``local``) or on a Dask cluster (``dask``).

Both engines offer the same three operations, so the pipeline and the command line do not
care which one they hold:

``map_ordered(fn, job, items)``
    Yield ``fn(job, item)`` for every item, in item order. Streaming scoring
    (:mod:`nkpredict.stream.run`) passes it the function that scores one span of the input.
``cross_validate(estimators, X, y, folds, task, progress)``
    Same arguments and result as :func:`nkpredict.evaluate.cv.cross_validate`. The local
    engine runs the independent (estimator, fold) fits in a pool of worker processes (one
    per core by default, ``cores // workers`` threads per fit, the matrix memory-mapped
    once); the Dask engine makes each of them a task on the cluster. The pipeline also runs
    leave-one-lineage-out through it.
``boosting()``
    A context inside which every :class:`~nkpredict.model.boosting.BoostedTrees` fit boosts on
    the engine (used for the final fit).

The Dask engine
---------------
*Scoring.* Each span of the input is a task; the task reads its own rows from the file
(Parquet row group, h5ad row slice), so data never flows through the client. The fitted
model, the plan and the reader are sent to the workers once (``client.scatter(...,
broadcast=True)``; they are our own objects, pickled between our own processes). At most
two tasks per worker thread are in flight; results are collected with ``as_completed`` and
handed back in input order, so the client holds a bounded number of results and writes
them incrementally. Every span is scored by the same function as in the local engine:
results are identical.

Why futures over row spans rather than ``dask.dataframe.read_parquet`` or a Dask array of
``X``: a partition has to be reduced to the model's ~100 columns right after the library
size has been taken over all of its columns (tens of thousands), which is one function of
the rows, not a column-wise graph; a Dask dataframe with 20,000 columns is costly to build
and to infer metadata for; Dask would split Parquet by row group anyway; and futures with a
bounded window give results in input order for incremental writing without holding them
all.

*Training.* Every (estimator, fold) pair of the cross-validation is a task on the cluster
(:func:`nkpredict.evaluate.cv.cross_validate` on that single fold, so fold logic is not
duplicated); results are merged in the order the local engine produces. Inside a fold task
the model's boosting runs through XGBoost's Dask interface (``xgboost.dask.train`` on a
``DaskDMatrix`` of the fold's features) with all its data on the task's own worker: several
folds train at the same time, and multi-worker collective training of concurrent folds can
deadlock when each holds one worker thread waiting for a partner the other holds. A fold's
feature matrix (samples x ~100 features) fits one worker easily. Single-worker
``xgboost.dask`` training is the same computation as :func:`xgboost.train`, so
cross-validation metrics equal those of the local engine.

Leave-one-lineage-out goes through the same fold tasks (one per held-out lineage). The
final fit runs on the client through ``xgboost.dask.train`` on data split over
``ceil(n_samples / partition_rows)`` workers (at most all of them). Cohorts below
``partition_rows`` samples (50,000 by default) therefore give the local engine's model
exactly; larger ones are boosted data-parallel, where XGBoost's distributed histogram sketch
and per-worker row sampling change the trees slightly (the tests require Spearman > 0.95
between the predictions of the two models and cross-validated ROC AUC within 0.03). The
fitted object is always a plain :class:`~nkpredict.model.boosting.BoostedTrees` holding a
plain :class:`xgboost.Booster`: saving, serving and explaining do not depend on Dask.

``--scheduler ADDRESS`` connects to an existing cluster (``tcp://host:8786``); without it a
``LocalCluster`` with one single-threaded worker process per available core is started and
closed at the end. Input paths must be readable under the same name by the client and by
every worker (a shared filesystem) when the cluster spans several machines.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import TracebackType
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd
import xgboost as xgb

from nkpredict.evaluate.cv import CVResult, EstimatorFactory, cross_validate
from nkpredict.evaluate.folds import Fold
from nkpredict.exceptions import InputError
from nkpredict.model.boosting import BoostingData, use_trainer
from nkpredict.vocabulary import ENGINES, Task, check_choice

logger = logging.getLogger(__name__)

__all__ = [
    "PARTITION_ROWS",
    "TASKS_PER_THREAD",
    "DaskEngine",
    "DaskTrainer",
    "Engine",
    "LocalEngine",
    "local_workers",
    "open_engine",
]

PARTITION_ROWS = 50_000
"""Samples per worker in the Dask engine's final fit: smaller cohorts boost on one worker."""
TASKS_PER_THREAD = 2
"""Scoring tasks in flight per worker thread: enough to keep workers busy while the client
writes, few enough to bound the results waiting to be written."""

J = TypeVar("J")
T = TypeVar("T")
R = TypeVar("R")
CVProgress = Callable[[str], None]


class Engine(Protocol):
    """What the pipeline and the command line need from an execution engine."""

    name: str

    def map_ordered(self, fn: Callable[[J, T], R], job: J, items: Sequence[T]) -> Iterator[R]:
        """Yield ``fn(job, item)`` for every item, in item order."""
        ...

    def cross_validate(
        self,
        estimators: Mapping[str, EstimatorFactory],
        X: pd.DataFrame,
        y: pd.Series,
        folds: list[Fold],
        task: Task,
        progress: CVProgress | None = None,
        groups: pd.Series | None = None,
        keep: str | None = None,
    ) -> CVResult:
        """:func:`nkpredict.evaluate.cv.cross_validate` on this engine."""
        ...

    def boosting(self) -> AbstractContextManager[None]:
        """A context in which boosting runs on this engine."""
        ...


class LocalEngine:
    """This machine (the default): the cross-validation's fits in a pool of worker processes.

    Parameters
    ----------
    n_jobs : int
        Worker processes of the cross-validation (:func:`nkpredict.evaluate.cv.fit_plan`):
        ``-1`` (default) one per core, ``1`` every fit in this process, one after the other.
        Each fit gets ``cores // workers`` threads; results do not depend on ``n_jobs``.
    """

    name = "local"

    def __init__(self, n_jobs: int = -1) -> None:
        self.n_jobs = n_jobs

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def map_ordered(self, fn: Callable[[J, T], R], job: J, items: Sequence[T]) -> Iterator[R]:
        """One item after the other."""
        for item in items:
            yield fn(job, item)

    def cross_validate(
        self,
        estimators: Mapping[str, EstimatorFactory],
        X: pd.DataFrame,
        y: pd.Series,
        folds: list[Fold],
        task: Task,
        progress: CVProgress | None = None,
        groups: pd.Series | None = None,
        keep: str | None = None,
    ) -> CVResult:
        """:func:`nkpredict.evaluate.cv.cross_validate` with this engine's ``n_jobs``."""
        return cross_validate(
            estimators, X, y, folds, task, progress, groups, self.n_jobs, keep=keep
        )

    def boosting(self) -> AbstractContextManager[None]:
        """In-process :func:`xgboost.train` (nothing to switch)."""
        return nullcontext()


# --------------------------------------------------------------------------- xgboost.dask


def _dask_array(client: Any, values: np.ndarray, workers: list[str]) -> Any:
    """``values`` split by rows over ``workers`` (one block each), as a Dask array."""
    import dask.array as da

    blocks = np.array_split(values, len(workers))
    futures = [
        client.scatter(block, workers=[worker], hash=False)
        for block, worker in zip(blocks, workers, strict=True)
    ]
    arrays = [
        da.from_delayed(future, shape=block.shape, dtype=block.dtype)
        for future, block in zip(futures, blocks, strict=True)
    ]
    return da.concatenate(arrays)


def _dask_boost(
    client: Any,
    workers: list[str],
    params: dict[str, Any],
    train: BoostingData,
    num_boost_round: int,
    validation: BoostingData | None,
    early_stopping_rounds: int | None,
) -> xgb.Booster:
    """``xgboost.dask.train`` on the training rows (and the validation set) placed on
    ``workers``, with their base margins.

    Training and validation rows are split over the same workers, so each worker that
    trains also evaluates and no worker joins the collective without data.
    """
    import xgboost.dask as dxgb

    def matrix(data: BoostingData) -> Any:
        margin = data.base_margin
        return dxgb.DaskDMatrix(
            client,
            _dask_array(client, data.x, workers),
            _dask_array(client, data.y, workers),
            base_margin=None if margin is None else _dask_array(client, margin, workers),
        )

    evals = [] if validation is None else [(matrix(validation), "validation")]
    result = dxgb.train(
        client,
        params,
        matrix(train),
        num_boost_round=num_boost_round,
        evals=evals,
        early_stopping_rounds=early_stopping_rounds,
        verbose_eval=False,
    )
    booster: xgb.Booster = result["booster"]
    return booster


class DaskTrainer:
    """A :data:`nkpredict.model.boosting.Trainer` boosting through ``xgboost.dask``.

    Parameters
    ----------
    client : distributed.Client or None
        ``None`` inside a task: boost on the task's own worker through
        :func:`distributed.worker_client` (the task secedes while it waits).
    partition_rows : int
        With a client, the data are split over ``ceil(n_rows / partition_rows)`` workers
        (at least one, at most all).
    """

    def __init__(self, client: Any | None = None, partition_rows: int = PARTITION_ROWS) -> None:
        self.client = client
        self.partition_rows = partition_rows

    def __call__(
        self,
        params: dict[str, Any],
        train: BoostingData,
        num_boost_round: int,
        validation: BoostingData | None = None,
        early_stopping_rounds: int | None = None,
    ) -> xgb.Booster:
        args = (params, train, num_boost_round, validation, early_stopping_rounds)
        if self.client is None:
            from distributed import get_worker, worker_client

            with worker_client() as client:
                return _dask_boost(client, [get_worker().address], *args)
        workers = sorted(self.client.nthreads())
        wanted = max(1, math.ceil(len(train.x) / max(self.partition_rows, 1)))
        return _dask_boost(self.client, workers[:wanted], *args)


def _fold_task(
    name: str,
    factory: EstimatorFactory,
    X: pd.DataFrame,
    y: pd.Series,
    fold: Fold,
    task: Task,
    groups: pd.Series | None = None,
    keep: str | None = None,
) -> CVResult:
    """One estimator on one fold, on a worker; its boosting stays on that worker."""
    with use_trainer(DaskTrainer(None)):
        return cross_validate({name: factory}, X, y, [fold], task, groups=groups, keep=keep)


def _merge(parts: list[CVResult], y: pd.Series, task: Task) -> CVResult:
    """Fold results of :func:`_fold_task`, in estimator then fold order, into one CVResult.

    Rows are ordered as :func:`~nkpredict.evaluate.cv.cross_validate` orders them: per
    estimator by repeat, then by the sample's position in ``y``.
    """
    predictions = []
    for name in dict.fromkeys(p.predictions["estimator"].iloc[0] for p in parts):
        rows = pd.concat(
            [p.predictions for p in parts if p.predictions["estimator"].iloc[0] == name],
            ignore_index=True,
        )
        position = y.index.get_indexer(rows["sample_id"])
        order = np.lexsort((position, rows["repeat"].to_numpy()))
        predictions.append(rows.iloc[order])
    return CVResult(
        task=task,
        predictions=pd.concat(predictions, ignore_index=True),
        fold_metrics=pd.concat([p.fold_metrics for p in parts], ignore_index=True),
        models=[m for p in parts for m in p.models],
    )


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise InputError(
            "the dask engine needs the optional dependencies: pip install 'nkpredict[dask]'"
        ) from exc
    return distributed


def local_workers() -> int:
    """Worker processes of the default ``LocalCluster``: the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class DaskEngine:
    """Run on a Dask cluster (see the module docstring).

    Use as a context manager: entering connects to ``scheduler`` or starts a
    ``LocalCluster``; leaving closes the client (and the cluster it started).

    Parameters
    ----------
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``).
    n_workers : int, optional
        Workers of the ``LocalCluster`` started without ``scheduler`` (default: one per
        available core, each with one thread).
    processes : bool
        ``LocalCluster`` workers as processes (default) or threads of this process.
    partition_rows : int
        See :class:`DaskTrainer`.
    """

    name = "dask"

    def __init__(
        self,
        scheduler: str | None = None,
        *,
        n_workers: int | None = None,
        processes: bool = True,
        partition_rows: int = PARTITION_ROWS,
    ) -> None:
        self.scheduler = scheduler
        self.n_workers = n_workers
        self.processes = processes
        self.partition_rows = partition_rows
        self._client: Any = None
        self._cluster: Any = None

    def __enter__(self) -> DaskEngine:
        distributed = _distributed()
        if self.scheduler:
            try:
                self._client = distributed.Client(self.scheduler)
            except (OSError, TimeoutError, ValueError) as exc:
                raise InputError(
                    f"cannot connect to the Dask scheduler at {self.scheduler}: {exc}"
                ) from exc
        else:
            workers = self.n_workers or local_workers()
            self._cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=self.processes,
                dashboard_address=":0",
            )
            self._client = distributed.Client(self._cluster)
        logger.info(
            "dask engine: scheduler %s, %d worker threads",
            self._client.scheduler.address,
            self.n_threads,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` (only inside the ``with`` block)."""
        if self._client is None:
            raise InputError("the dask engine is used outside its 'with' block")
        return self._client

    @property
    def n_threads(self) -> int:
        """Worker threads of the cluster, over all workers."""
        return max(1, sum(self.client.nthreads().values()))

    def map_ordered(self, fn: Callable[[J, T], R], job: J, items: Sequence[T]) -> Iterator[R]:
        """Run ``fn(job, item)`` as tasks; yield results in item order (bounded window)."""
        from distributed import as_completed

        client = self.client
        shared = client.scatter(job, broadcast=True, hash=False)
        window = TASKS_PER_THREAD * self.n_threads
        position: dict[str, int] = {}
        finished: dict[int, R] = {}
        queue = as_completed()
        submitted = emitted = 0

        def submit() -> None:
            nonlocal submitted
            future = client.submit(fn, shared, items[submitted], pure=False)
            position[future.key] = submitted
            queue.add(future)
            submitted += 1

        try:
            while submitted < min(window, len(items)):
                submit()
            for future in queue:
                finished[position.pop(future.key)] = future.result()
                future.release()
                if submitted < len(items):
                    submit()
                while emitted in finished:
                    yield finished.pop(emitted)
                    emitted += 1
        finally:
            queue.clear()
            shared.release()

    def cross_validate(
        self,
        estimators: Mapping[str, EstimatorFactory],
        X: pd.DataFrame,
        y: pd.Series,
        folds: list[Fold],
        task: Task,
        progress: CVProgress | None = None,
        groups: pd.Series | None = None,
        keep: str | None = None,
    ) -> CVResult:
        """Every (estimator, fold) fit as a task; same result as the local engine."""
        from distributed import as_completed

        if not estimators or not folds:
            return cross_validate(estimators, X, y, folds, task, progress, groups, keep=keep)
        client = self.client
        shared_x = client.scatter(X, broadcast=True, hash=False)
        shared_y = client.scatter(y, broadcast=True, hash=False)
        n_repeats = len({f.repeat for f in folds})
        units = [(name, factory, fold) for name, factory in estimators.items() for fold in folds]
        futures = [
            client.submit(
                _fold_task,
                name,
                factory,
                shared_x,
                shared_y,
                fold,
                task,
                groups,
                keep,
                pure=False,
            )
            for name, factory, fold in units
        ]
        unit_of = {future.key: i for i, future in enumerate(futures)}
        results: dict[int, CVResult] = {}
        try:
            for future in as_completed(futures):
                i = unit_of[future.key]
                results[i] = future.result()
                name, _, fold = units[i]
                if progress is not None:
                    progress(f"{name}: repeat {fold.repeat + 1}/{n_repeats}, fold {fold.fold + 1}")
        finally:
            client.cancel(futures)
        return _merge([results[i] for i in range(len(units))], y, task)

    @contextmanager
    def boosting(self) -> Iterator[None]:
        """Boosting in the block runs through ``xgboost.dask`` (see :class:`DaskTrainer`)."""
        with use_trainer(DaskTrainer(self.client, self.partition_rows)):
            yield


@contextmanager
def open_engine(
    name: str = "local", scheduler: str | None = None, n_jobs: int = -1, **options: Any
) -> Iterator[LocalEngine | DaskEngine]:
    """The engine called ``name``, started for the duration of the ``with`` block.

    Parameters
    ----------
    name : {"local", "dask"}
    scheduler : str, optional
        Dask scheduler address (``dask`` only; default: a ``LocalCluster``).
    n_jobs : int
        Parallel fits: the local engine's worker processes (:class:`LocalEngine`); with
        ``dask`` and no ``scheduler`` a positive value is the ``LocalCluster``'s number of
        workers (negative: one per core); a running cluster keeps its own workers.
    **options
        Passed to :class:`DaskEngine`.

    Raises
    ------
    InputError
        Unknown engine, ``scheduler`` with the local engine, Dask not installed or the
        scheduler unreachable.
    """
    if check_choice(name, ENGINES, "engine") == "local":
        if scheduler:
            raise InputError("--scheduler needs --engine dask")
        with LocalEngine(n_jobs) as local:
            yield local
        return
    if n_jobs > 0 and not scheduler:
        options.setdefault("n_workers", n_jobs)
    with DaskEngine(scheduler, **options) as engine:
        yield engine
