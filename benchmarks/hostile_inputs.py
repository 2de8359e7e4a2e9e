"""Hostile inputs (issue 15): memory and time of sparse bodies, probes during uploads, a long fuzz.

Three measurements, each printed as one JSON object per line (copied into ``BENCHMARKS.md``
and, for the fuzz run, ``SECURITY.md``)::

    python benchmarks/hostile_inputs.py --workdir /tmp/nkp-hostile            # all three
    python benchmarks/hostile_inputs.py --workdir /tmp/nkp-hostile --only bodies
    python benchmarks/hostile_inputs.py --only bodies --chunk-samples 10000 1000  # whole, chunked

- ``bodies``: request bodies whose samples name different genes (the adversarial pass's
  10,000 samples x one new gene each, 348 kB, and an accepted 10,000-sample body of ~8 MB
  that adds decoy genes to the model's). Each is answered in-process
  (:func:`service.answers.predict_json`, what ``/v1/predict`` runs; a streamed answer is
  consumed piece by piece, as the server sends it) under ``tracemalloc`` (numpy's arrays are
  traced too): the peak of memory allocated beyond the body, its ratio to the body size, and
  the wall time.
- ``probes``: a real ``nkpredict serve`` process (one worker) receives uploads (a 15 MB CSV,
  three at once, and three Parquet files with huge repeated string cells) while ``/health``
  and ``/ready`` are polled every 20 ms; the largest and the 99th-percentile probe latency.
- ``fuzz``: the property-based tests of ``tests/service/test_properties.py`` with
  ``--examples`` examples per property (random seeds), counting failures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPO, free_port, python_command, start_server, stop_server

from nkpredict.exceptions import NKPredictError
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.registry import ModelReference
from nkpredict.simulate.cohort import simulate_cohort
from nkpredict.simulate.config import SimulationConfig
from service.answers import predict_json
from service.config import ServiceSettings
from service.errors import ServiceError, library_error_status
from service.state import make_loaded


def _model(workdir: Path) -> Path:
    """The test suite's service model: 200 simulated samples x 400 genes, 50 trees."""
    directory = workdir / "model"
    if not (directory / "model.json").exists():
        cohort = simulate_cohort(SimulationConfig(n_samples=200, n_genes=400, seed=1))
        model = NKResistanceModel(booster={"n_estimators": 50, "n_jobs": 1})
        model.fit(cohort.counts, cohort.labels["resistant"]).save(directory)
    return directory


def _one_new_gene_each(n: int, **options: Any) -> bytes:
    samples = {f"S{i}": {f"G{i}": 1 + i % 97} for i in range(n)}
    return json.dumps({"samples": samples, **options}).encode()


def _one_model_gene_each(model: NKResistanceModel, n: int) -> bytes:
    genes = list(model.feature_builder.genes_in_)
    samples = {f"S{i}": {genes[i % len(genes)]: 1 + i % 97} for i in range(n)}
    return json.dumps({"samples": samples, "min_coverage": 0}).encode()


def _decoys_and_model_genes(model: NKResistanceModel, n: int) -> bytes:
    rng = np.random.default_rng(0)
    genes = list(model.feature_builder.genes_in_)
    samples = {}
    for i in range(n):
        row = {g: int(v) for g, v in zip(genes, rng.poisson(50, len(genes)), strict=True)}
        row.update({f"DECOY{i}_{k}": int(rng.poisson(50)) for k in range(3)})
        samples[f"S{i}"] = row
    return json.dumps({"samples": samples, "min_coverage": 0}).encode()


def _answer(loaded: Any, raw: bytes, settings: ServiceSettings) -> tuple[str, float]:
    """What /v1/predict answers ``raw`` (status and code, or the samples and the answer's
    size) and how fast."""
    started = time.perf_counter()
    try:
        answer, n_samples = predict_json(loaded, raw, settings)
        if isinstance(answer, bytes):
            size, how = len(answer), "whole"
        else:  # streamed: each piece is sent (here: dropped) before the next is computed
            size, how = sum(len(piece) for piece in answer), "streamed"
        outcome = f"200 ({n_samples} samples, answer {size / 1e6:.1f} MB, {how})"
    except ServiceError as exc:
        outcome = f"{exc.status_code} {exc.code}"
    except NKPredictError as exc:
        status, code = library_error_status(exc)
        outcome = f"{status} {code}"
    return outcome, time.perf_counter() - started


def bodies(workdir: Path, chunk_samples: list[int]) -> list[dict[str, Any]]:
    """Peak extra memory and wall time of sparse bodies, answered in-process, with each
    ``NKP_ANSWER_CHUNK_SAMPLES`` of ``chunk_samples`` (10,000 or more: answered whole)."""
    directory = _model(workdir)
    model = NKResistanceModel.load(directory)
    loaded = make_loaded(model, ModelReference(str(directory)))
    results = []
    cases = {
        "10,000 samples x 1 new gene each": _one_new_gene_each(10_000),
        "10,000 samples x 1 new gene each, min_coverage 0": _one_new_gene_each(
            10_000, min_coverage=0
        ),
        "10,000 samples x 1 model gene each, min_coverage 0": _one_model_gene_each(model, 10_000),
        "6,500 samples x (model genes + 3 decoys each)": _decoys_and_model_genes(model, 6_500),
    }
    for name, raw in cases.items():
        for chunk in chunk_samples:
            settings = ServiceSettings(model_uri=str(directory), answer_chunk_samples=chunk)
            outcome, seconds = _answer(loaded, raw, settings)  # timed without tracing
            tracemalloc.start()
            tracemalloc.reset_peak()
            _answer(loaded, raw, settings)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            results.append(
                {
                    "case": name,
                    "chunk_samples": chunk,
                    "body_bytes": len(raw),
                    "answer": outcome,
                    "seconds": round(seconds, 2),
                    "peak_extra_mib": round(peak / 2**20, 1),
                    "peak_over_body": round(peak / len(raw), 1),
                }
            )
    return results


def _poll(url: str, stop: threading.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        for path in ("/health", "/ready"):
            started = time.perf_counter()
            with urllib.request.urlopen(url + path, timeout=30) as answer:
                answer.read()
            latencies.append(time.perf_counter() - started)
        time.sleep(0.02)


def _post_file(url: str, name: str, content: bytes, statuses: list[int]) -> None:
    boundary = "nkpbenchboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        url + "/v1/predict/file",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as answer:
            statuses.append(answer.status)
    except urllib.error.HTTPError as exc:
        statuses.append(exc.code)


def probes(workdir: Path) -> list[dict[str, Any]]:
    """/health and /ready latency while uploads are processed by a real server."""
    directory = _model(workdir)
    model = NKResistanceModel.load(directory)
    genes = list(model.feature_builder.genes_in_)
    rng = np.random.default_rng(1)
    n_samples, extra = 2_000, 2_000
    header = ["sample_id", *genes, *(f"X{j}" for j in range(extra))]
    rows = [",".join(header)]
    for i in range(n_samples):
        values = rng.poisson(30, len(genes) + extra)
        rows.append(f"S{i}," + ",".join(map(str, values)))
    csv = ("\n".join(rows) + "\n").encode()
    sink = io.BytesIO()
    table = pa.table({"sample_id": pa.array(["x" * 100_000] * 5_000).dictionary_encode()})
    pq.write_table(table.append_column("CD58", pa.array([1.0] * 5_000)), sink, compression="zstd")
    parquet = sink.getvalue()
    port = free_port()
    code = (
        "import sys; from service.server import serve; "
        "serve(sys.argv[1], '127.0.0.1', int(sys.argv[2]), 1, log_level='warning')"
    )
    server = start_server(
        "hostile-serve",
        python_command("-c", code, str(directory), str(port)),
        port,
        workdir,
        env={"NKP_MODEL_THREADS": "1", "NKP_MAX_BODY_BYTES": "50000000"},
    )
    results = []
    try:
        cases = {
            f"1 CSV upload ({len(csv) / 1e6:.0f} MB, {n_samples} x {len(header) - 1})": [csv],
            "3 CSV uploads at once": [csv, csv, csv],
            f"3 Parquet uploads with 100 kB string cells ({len(parquet) / 1e3:.0f} kB each)": [
                parquet
            ]
            * 3,
        }
        for name, files in cases.items():
            stop, latencies, statuses = threading.Event(), [], []
            poller = threading.Thread(target=_poll, args=(server.url, stop, latencies))
            poller.start()
            suffix = "csv" if files[0] is csv else "parquet"
            senders = [
                threading.Thread(target=_post_file, args=(server.url, f"f.{suffix}", f, statuses))
                for f in files
            ]
            started = time.perf_counter()
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join()
            seconds = time.perf_counter() - started
            stop.set()
            poller.join()
            ordered = sorted(latencies)
            results.append(
                {
                    "case": name,
                    "answers": statuses,
                    "upload_seconds": round(seconds, 2),
                    "probes": len(ordered),
                    "probe_max_ms": round(1000 * ordered[-1], 1),
                    "probe_p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 1),
                    "probe_median_ms": round(1000 * statistics.median(ordered), 1),
                }
            )
    finally:
        stop_server(server)
    return results


def fuzz(examples: int) -> list[dict[str, Any]]:
    """The property-based tests with ``examples`` examples per property."""
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "tests/service/test_properties.py", "--hypothesis-seed", str(int(time.time())),
        ],
        cwd=REPO,
        env={**os.environ, "NKP_FUZZ_EXAMPLES": str(examples)},
        capture_output=True,
        text=True,
    )  # fmt: skip
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    return [
        {
            "examples_per_property": examples,
            "properties": 5,
            "exit_status": done.returncode,
            "summary": tail,
            "seconds": round(time.perf_counter() - started, 1),
        }
    ]


def main() -> None:
    """Run the measurements named by ``--only`` (default all) and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/nkp-hostile"))
    parser.add_argument("--only", choices=["bodies", "probes", "fuzz"], action="append")
    parser.add_argument("--examples", type=int, default=2_000)
    parser.add_argument(
        "--chunk-samples",
        type=int,
        nargs="+",
        default=[10_000, 1_000, 250],
        help="NKP_ANSWER_CHUNK_SAMPLES values to answer the bodies with (10,000: whole)",
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    chosen = args.only or ["bodies", "probes", "fuzz"]
    for part in chosen:
        found = (
            bodies(args.workdir, args.chunk_samples)
            if part == "bodies"
            else probes(args.workdir)
            if part == "probes"
            else fuzz(args.examples)
        )
        for line in found:
            print(json.dumps({"measurement": part, **line}), flush=True)


if __name__ == "__main__":
    main()
