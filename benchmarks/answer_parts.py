"""What each part of a one-sample answer costs, in the service's own functions, in one process.

The HTTP benchmark (``service_load.py``) measures whole requests; this one measures the work
of the answers themselves (``service.answers.predict_json`` and ``explain_json`` on the bytes
of a request body, as the direct routes call them) for the benchmark model of
``bench_model.py`` and for variants that leave one part of the answer out:

- **as served**: the benchmark model, every part of the answer;
- **without domain checks**: the same model with ``domain_ = None`` (what models saved before
  the domain checks serve: no ``out_of_domain``, ``domain_reasons``, ``lineage``);
- **without domain checks or conformal sets**: also ``uncertainty_ = None`` (no calibrated
  probability, no prediction set);
- **explain without driver sentences**: the request asks for ``"n_drivers": 0`` (no top
  drivers, no sentences and so no counterfactual outputs behind them);
- **earlier learner**: a model of :data:`bench_model.EARLIER_LEARNER`'s shape (303 trees, no
  prior) on the same cohort, every part of the answer.

Each variant is timed in rounds interleaved with the others (thread CPU time per call, the
best of a few repeats of a few hundred calls); the median over the rounds is printed with its
ratio to "as served". The machine's speed drifts from minute to minute, so only the ratios
within one run mean much.

Usage::

    python benchmarks/answer_parts.py             # 7 rounds
    python benchmarks/answer_parts.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_model
from cpu_timing import best_thread_us, round_ratios

from nkpredict.model.fitted import NKResistanceModel
from nkpredict.registry import ModelReference
from service.answers import explain_json, predict_json
from service.config import ServiceSettings
from service.state import LoadedModel, make_loaded

CALLS = 300
REPEATS = 3


def _loaded(directory: Path, domain: bool = True, uncertainty: bool = True) -> LoadedModel:
    """The model saved in ``directory``, ready to serve, with parts of it left out."""
    model = NKResistanceModel.load(directory)
    if not domain:
        model.domain_ = None
    if not uncertainty:
        model.uncertainty_ = None
    return make_loaded(model, ModelReference(uri=str(directory)))


def main() -> None:
    """Prepare the models, time every variant in interleaved rounds, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    args = parser.parse_args()
    settings = ServiceSettings()
    with tempfile.TemporaryDirectory(prefix="nkp-answer-parts-") as tmp:
        workdir = Path(tmp)
        bench = bench_model.prepare(workdir)
        earlier_dir = bench_model.prepare_learner(workdir, bench_model.EARLIER_LEARNER)
        body = bench.bodies["predict_1"].read_bytes()
        quiet = json.loads(body)
        quiet["n_drivers"] = 0
        no_drivers = json.dumps(quiet).encode()
        served = _loaded(bench.model_dir)
        no_domain = _loaded(bench.model_dir, domain=False)
        bare = _loaded(bench.model_dir, domain=False, uncertainty=False)
        earlier = _loaded(earlier_dir)
        variants: dict[str, Callable[[], object]] = {
            "predict, as served": lambda: predict_json(served, body, settings),
            "predict, without domain checks": lambda: predict_json(no_domain, body, settings),
            "predict, without domain checks or conformal sets": lambda: predict_json(
                bare, body, settings
            ),
            "predict, earlier learner": lambda: predict_json(earlier, body, settings),
            "explain, as served": lambda: explain_json(served, body, settings),
            "explain, without driver sentences": lambda: explain_json(served, no_drivers, settings),
            "explain, without domain checks": lambda: explain_json(no_domain, body, settings),
            "explain, earlier learner": lambda: explain_json(earlier, body, settings),
        }
        for call in variants.values():
            call()  # warm: the per-model tables are built on the first call
        times: dict[str, list[float]] = {name: [] for name in variants}
        for round_number in range(args.rounds):
            for name, call in variants.items():
                times[name].append(best_thread_us(call, CALLS, REPEATS))
            print(f"round {round_number + 1} of {args.rounds} done", file=sys.stderr)
    print(
        f"\n{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"benchmark model: {bench.n_trees} trees, {bench.n_genes} genes, "
        f"{bench.n_features} features; one-sample body of the model's genes; "
        f"{args.rounds} rounds, median of the rounds\n"
    )
    lines = [
        "| answer | CPU us per call | x as served (rounds) |",
        "|---|---:|---|",
    ]
    for name, values in times.items():
        reference = times[f"{name.split(',')[0]}, as served"]
        ratios = round_ratios(values, reference)
        shown = " / ".join(f"{r:.2f}" for r in ratios)
        lines.append(
            f"| {name} | {statistics.median(values):.0f} | "
            f"{statistics.median(ratios):.2f} ({shown}) |"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
