"""HTTP throughput and latency of the service, side by side with the alternatives, in one run.

Three servers answer the same requests on the loopback interface, one after the other, driven
by ``wrk`` (8 connections by default) for a fixed time each:

- **nkpredict**: ``nkpredict serve --model models:/nk-bench@champion`` (one uvicorn worker,
  ``NKP_MODEL_THREADS=1``): single-sample ``/v1/predict`` and ``/v1/explain``, and
  100-sample ``/v1/predict`` batches;
- **mlflow**: ``mlflow models serve`` of the *same registered model version*
  (``--env-manager local``, its default single worker): the same samples as
  ``dataframe_split``;
- **bare**: a FastAPI endpoint that reads the body and returns a constant
  (``benchmarks/bare_app.py``) under the same uvicorn: the ceiling of the HTTP stack. With
  ``--workers N`` both nkpredict and the bare endpoint are also measured with N workers, and
  each is compared with the bare endpoint of the same worker count;
- **parse**: the same app's endpoint that reads the body and parses it with orjson (the
  ceiling of any JSON endpoint).

Whole profiles (issue 17, ``--profiles``, on by default): DepMap-style rows (``SYMBOL
(ENTREZ)`` names, log2(TPM+1) values, no ``scale``) of held-out simulated samples with 3,000
and 19,000 genes, one sample and 100 samples per request (100 x 19,000 is a 47 MB body, over
the service's default 20 MB limit: left out), to ``/v1/predict`` and ``/v1/explain``, each
next to the read-only and the parse-only endpoint with the same body.

The model is the demo model (``NKResistanceModel()`` on the 600 x 3,000 demo cohort: with
today's default learner the knowledge prior alone, no trees, on the model's ~150 genes),
trained, logged with ``training.tracking`` and registered in a temporary SQLite MLflow store
(``benchmarks/bench_model.py``). Requests carry the model's genes as log2(TPM+1) of held-out
simulated samples.

The learner's own cost (``--learners``): a second ``nkpredict serve`` of a model of the
earlier learner's shape (:data:`bench_model.EARLIER_LEARNER`: 303 depth-2 trees from
``base_score``, no prior, as the first service rows were measured with) on the same cohort,
one-sample predict and explain in the same rounds, and the ratio of the two models' req/s.

Measurements are interleaved round by round (``--rounds``) and the median of the rounds is
reported, so that a busy moment on a shared machine does not favour one server. wrk and the
servers share the machine's cores.

Usage::

    python benchmarks/service_load.py                 # 10 s per measurement, 3 rounds
    python benchmarks/service_load.py --seconds 5 --rounds 1 --skip-mlflow
    python benchmarks/service_load.py --skip-mlflow --workers 1 --no-profiles --learners

Prints markdown tables for BENCHMARKS.md, the issue's targets, met or not, and what each target
leaves for the service's own work beside the work measured (:func:`budget_table`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_model
from harness import (
    Server,
    WrkResult,
    cpu_seconds,
    free_port,
    post_json,
    python_command,
    require_wrk,
    run_wrk,
    start_server,
    stop_server,
)


@dataclass(frozen=True)
class Case:
    """One measured combination: a server, a path and a body."""

    label: str
    server: str
    path: str
    body: str
    request: str
    baseline: str
    """Label of the bare-endpoint case this one is compared with."""


PROFILES = ((3_000, 1), (19_000, 1), (3_000, 100))
"""(genes, samples) of the whole-profile bodies."""


def profile_bodies(model_dir: Path, workdir: Path) -> dict[str, Path]:
    """Whole-profile request bodies ``profile_<genes>_<samples>``: DepMap-style names."""
    from nkpredict.data.annotation import load_annotation
    from nkpredict.model.fitted import NKResistanceModel
    from nkpredict.simulate.cohort import simulate_cohort
    from nkpredict.simulate.config import SimulationConfig

    model = NKResistanceModel.load(model_dir)
    entrez = {symbol: number for number, symbol in load_annotation().entrez.items()}
    bodies = {}
    for n_genes in sorted({g for g, _ in PROFILES}):
        cohort = simulate_cohort(SimulationConfig(n_samples=100, n_genes=n_genes, seed=2025))
        values = model.prepare(cohort.counts).matrix.round(4)
        names = [f"{g} ({entrez[g]})" if g in entrez else g for g in values.columns]
        rows = values.to_numpy().tolist()
        for genes, n in PROFILES:
            if genes != n_genes:
                continue
            samples = {f"S{i:03d}": dict(zip(names, rows[i], strict=True)) for i in range(n)}
            name = f"profile_{n_genes}_{n}"
            bodies[name] = workdir / f"{name}.json"
            bodies[name].write_text(json.dumps({"samples": samples}))
    return bodies


def profile_cases() -> list[Case]:
    """Read-only, parse-only, predict and (one sample) explain of each whole profile."""
    out = []
    for genes, n in PROFILES:
        body = f"profile_{genes}_{n}"
        shape = f"{genes:,} genes, {n} sample{'s' if n > 1 else ''}"
        read, parse = f"bare, {shape}", f"parse, {shape}"
        out += [
            Case(read, "bare", "/predict", body, "read only", read),
            Case(parse, "bare", "/parse", body, "read + orjson parse", read),
            Case(f"nkpredict predict, {shape}", "nkpredict", "/v1/predict", body, "predict", parse),
        ]
        if n == 1:
            out.append(
                Case(
                    f"nkpredict explain, {shape}", "nkpredict", "/v1/explain", body, "explain",
                    parse,
                )
            )  # fmt: skip
    return out


def start_nkpredict(
    model: bench_model.BenchModel,
    logs: Path,
    workers: int,
    model_uri: str | None = None,
    name: str | None = None,
) -> Server:
    """``nkpredict serve`` of the registered model, or of ``model_uri`` (one XGBoost/BLAS
    thread per worker)."""
    port = free_port()
    return start_server(
        name or ("nkpredict" if workers == 1 else f"nkpredict-{workers}-workers"),
        python_command(
            "-m", "training.cli", "serve", "--model", model_uri or model.model_uri,
            "--tracking-uri", model.tracking_uri, "--port", str(port),
            "--log-level", "warning", "--workers", str(workers),
        ),
        port,
        logs,
        env={"NKP_MODEL_THREADS": "1"},
        ready_path="/ready",
    )  # fmt: skip


def start_all(
    model: bench_model.BenchModel, logs: Path, with_mlflow: bool, workers: int
) -> dict[str, Server]:
    """Start the servers (ours, bare, mlflow; ours with ``workers`` too) on free ports."""
    servers: dict[str, Server] = {"nkpredict": start_nkpredict(model, logs, 1)}
    if workers > 1:
        servers["nkpredict-workers"] = start_nkpredict(model, logs, workers)
        port = free_port()
        servers["bare-workers"] = start_server(
            f"bare-{workers}-workers",
            python_command(
                "-m", "benchmarks.bare_app", "--port", str(port), "--workers", str(workers)
            ),
            port,
            logs,
        )  # fmt: skip
    port = free_port()
    servers["bare"] = start_server(
        "bare",
        python_command(
            "-m", "uvicorn", "benchmarks.bare_app:app", "--port", str(port),
            "--no-access-log", "--log-level", "warning",
        ),
        port,
        logs,
    )  # fmt: skip
    if with_mlflow:
        port = free_port()
        bin_dir = str(Path(sys.executable).parent)
        servers["mlflow"] = start_server(
            "mlflow",
            python_command(
                "-m", "mlflow", "models", "serve", "-m", model.model_uri,
                "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port),
            ),
            port,
            logs,
            env={
                "MLFLOW_TRACKING_URI": model.tracking_uri,
                "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            },
        )  # fmt: skip
    return servers


LEARNER_CASES = (
    ("predict", "/v1/predict", "nkpredict predict, 1 sample"),
    ("explain", "/v1/explain", "nkpredict explain, 1 sample"),
)
"""(request, path, label of the default model's case) compared with the earlier learner."""


def learner_cases() -> list[Case]:
    """One-sample predict and explain of the earlier learner's model (``--learners``)."""
    return [
        Case(f"earlier learner {request}, 1 sample", "earlier-learner", path, "predict_1",
             request, "bare, 1 sample")
        for request, path, _ in LEARNER_CASES
    ]  # fmt: skip


def learner_table(results: dict[str, Measured]) -> str:
    """Today's default model against the earlier learner's, same code, same rounds."""
    lines = [
        "| request | default model req/s | earlier learner req/s | default / earlier (rounds) |",
        "|---|---:|---:|---|",
    ]
    for request, _, label in LEARNER_CASES:
        ours, earlier = results[label], results[f"earlier learner {request}, 1 sample"]
        rounds = [a.rps / b.rps for a, b in zip(ours.runs, earlier.runs, strict=True)]
        shown = " / ".join(f"{r:.2f}" for r in rounds)
        lines.append(
            f"| {request}, 1 sample | {ours.rps:,.0f} | {earlier.rps:,.0f} | "
            f"{statistics.median(rounds):.2f}x ({shown}) |"
        )
    return "\n".join(lines)


def check_same_answers(servers: dict[str, Server], model: bench_model.BenchModel) -> None:
    """nkpredict and mlflow serve the same model: same probabilities for the 100 samples."""
    status, ours = post_json(
        servers["nkpredict"].url + "/v1/predict", model.bodies["predict_100"].read_bytes()
    )
    if status != 200:
        raise RuntimeError(f"nkpredict answered {status}: {ours[:300]!r}")
    for name, path in (("explain", "/v1/explain"),):
        status, answer = post_json(
            servers["nkpredict"].url + path, model.bodies["predict_1"].read_bytes()
        )
        if status != 200:
            raise RuntimeError(f"nkpredict {name} answered {status}: {answer[:300]!r}")
    if "mlflow" not in servers:
        return
    import json

    status, theirs = post_json(
        servers["mlflow"].url + "/invocations", model.bodies["mlflow_100"].read_bytes()
    )
    if status != 200:
        raise RuntimeError(f"mlflow answered {status}: {theirs[:300]!r}")
    a = [p["probability"] for p in json.loads(ours)["predictions"]]
    b = [p["probability"] for p in json.loads(theirs)["predictions"]]
    if a != b:
        raise RuntimeError("nkpredict and mlflow models serve disagree on the same model")


QUIET_EXPLAIN = "nkpredict explain without driver sentences, 1 sample"
"""The one-sample explanation with ``"n_drivers": 0`` (no top drivers, no driver sentences and
no counterfactual outputs behind them): about the content of the explanation that the first
service table measured (its 0.39x row), before the driver sentences and domain checks."""


def quiet_explain_body(model: bench_model.BenchModel, workdir: Path) -> Path:
    """The one-sample body of :data:`QUIET_EXPLAIN`: ``predict_1`` with ``"n_drivers": 0``."""
    document = json.loads(model.bodies["predict_1"].read_text())
    document["n_drivers"] = 0
    path = workdir / "explain_quiet_1.json"
    path.write_text(json.dumps(document))
    return path


def cases(with_mlflow: bool, workers: int) -> list[Case]:
    """Everything measured, in the order of each round."""
    one, hundred = "bare, 1 sample", "bare, 100 samples"
    out = [
        Case(one, "bare", "/predict", "predict_1", "1-sample body", one),
        Case(
            "nkpredict predict, 1 sample", "nkpredict", "/v1/predict", "predict_1", "predict", one
        ),
        Case(
            "nkpredict explain, 1 sample", "nkpredict", "/v1/explain", "predict_1", "explain", one
        ),
        Case(
            QUIET_EXPLAIN, "nkpredict", "/v1/explain", "explain_quiet_1",
            "explain, no driver sentences", one,
        ),
        Case(hundred, "bare", "/predict", "predict_100", "100-sample body", hundred),
        Case(
            "nkpredict predict, 100 samples", "nkpredict", "/v1/predict", "predict_100", "batch",
            hundred,
        ),
    ]  # fmt: skip
    if workers > 1:
        many = f"({workers} workers)"
        one_w, hundred_w = (
            f"bare {workers} workers, 1 sample",
            f"bare {workers} workers, 100 samples",
        )
        out += [
            Case(one_w, "bare-workers", "/predict", "predict_1", f"1-sample body {many}", one_w),
            Case(
                f"nkpredict {workers} workers, 1 sample", "nkpredict-workers", "/v1/predict",
                "predict_1", f"predict {many}", one_w,
            ),
            Case(
                hundred_w, "bare-workers", "/predict", "predict_100", f"100-sample body {many}",
                hundred_w,
            ),
            Case(
                f"nkpredict {workers} workers, 100 samples", "nkpredict-workers", "/v1/predict",
                "predict_100", f"batch {many}", hundred_w,
            ),
        ]  # fmt: skip
    if with_mlflow:
        out += [
            Case("mlflow serve, 1 sample", "mlflow", "/invocations", "mlflow_1", "predict", one),
            Case(
                "mlflow serve, 100 samples", "mlflow", "/invocations", "mlflow_100", "batch",
                hundred,
            ),
        ]  # fmt: skip
    return out


@dataclass
class Measured:
    """All rounds of one case."""

    case: Case
    runs: list[WrkResult]
    cpu_ms: list[float]

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(r, attribute) for r in self.runs)

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.runs)

    @property
    def failures(self) -> int:
        return sum(r.failures for r in self.runs)


def measure(
    servers: dict[str, Server],
    model: bench_model.BenchModel,
    todo: list[Case],
    args: argparse.Namespace,
) -> dict[str, Measured]:
    """Run every case ``args.rounds`` times, interleaved."""
    results = {c.label: Measured(c, [], []) for c in todo}
    for round_number in range(args.rounds):
        for case in todo:
            server = servers[case.server]
            body = model.bodies[case.body]
            run_wrk(server.url + case.path, body, connections=args.connections, seconds=1)
            before = cpu_seconds(server.pid())
            result = run_wrk(
                server.url + case.path,
                body,
                connections=args.connections,
                threads=args.threads,
                seconds=args.seconds,
            )
            used = cpu_seconds(server.pid()) - before
            results[case.label].runs.append(result)
            results[case.label].cpu_ms.append(1e3 * used / max(result.requests, 1))
            print(
                f"round {round_number + 1}: {case.label:32s} {result.rps:8.1f} req/s "
                f"p50 {result.p50_ms:6.2f} ms p99 {result.p99_ms:7.2f} ms "
                f"failed {result.failures}",
                file=sys.stderr,
            )
    return results


def table(results: dict[str, Measured], with_mlflow: bool) -> str:
    """The markdown table with ratios to the bare endpoint and to mlflow models serve."""
    mlflow = (
        {1: results["mlflow serve, 1 sample"].rps, 100: results["mlflow serve, 100 samples"].rps}
        if with_mlflow
        else {}
    )
    lines = [
        "| server | request | req/s | p50 ms | p99 ms | server CPU ms/req | x bare | x mlflow |"
        " failed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, measured in results.items():
        n = 100 if "100" in label else 1
        rps = measured.rps
        server = measured.case.server.replace("-workers", "")
        baseline = results[measured.case.baseline].rps
        vs_bare = f"{rps / baseline:.2f}" if server != "bare" else "1"
        vs_mlflow = (
            f"{rps / mlflow[n]:.1f}"
            if mlflow and measured.case.request.split(" ")[0] in ("predict", "batch")
            else ""
        )
        lines.append(
            f"| {server} | {measured.case.request}, {n} sample"
            f"{'s' if n > 1 else ''} | {rps:,.0f} | {measured.median('p50_ms'):.2f} | "
            f"{measured.median('p99_ms'):.2f} | {statistics.median(measured.cpu_ms):.2f} | "
            f"{vs_bare} | {vs_mlflow} | {measured.failures} |"
        )
    return "\n".join(lines)


def profile_table(results: dict[str, Measured]) -> str:
    """The whole-profile rows: req/s and ratios to the read-only and parse-only endpoints."""
    lines = [
        "| request | body | req/s | p50 ms | p99 ms | server CPU ms/req | x read-only |"
        " x parse-only | failed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for genes, n in PROFILES:
        shape = f"{genes:,} genes, {n} sample{'s' if n > 1 else ''}"
        read = results[f"bare, {shape}"].rps
        parse = results[f"parse, {shape}"].rps
        for label in (
            f"bare, {shape}",
            f"parse, {shape}",
            f"nkpredict predict, {shape}",
            f"nkpredict explain, {shape}",
        ):
            if label not in results:
                continue
            measured = results[label]
            rps = measured.rps
            lines.append(
                f"| {measured.case.request} | {shape} | {rps:,.0f} | "
                f"{measured.median('p50_ms'):.2f} | {measured.median('p99_ms'):.2f} | "
                f"{statistics.median(measured.cpu_ms):.2f} | {rps / read:.2f} | "
                f"{rps / parse:.2f} | {measured.failures} |"
            )
    return "\n".join(lines)


TARGET_ROWS: tuple[tuple[str, str, float], ...] = (
    ("nkpredict predict, 3,000 genes, 1 sample", "parse, 3,000 genes, 1 sample", 0.7),
    ("nkpredict predict, 19,000 genes, 1 sample", "parse, 19,000 genes, 1 sample", 0.7),
    ("nkpredict predict, 3,000 genes, 100 samples", "parse, 3,000 genes, 100 samples", 0.7),
    ("nkpredict explain, 3,000 genes, 1 sample", "parse, 3,000 genes, 1 sample", 0.6),
    ("nkpredict explain, 19,000 genes, 1 sample", "parse, 19,000 genes, 1 sample", 0.6),
    # the catalogue-gene rows "stay where they are": predict >= 0.5x (the words),
    # explain and batches within 10% of their rows of the first service table (0.39x, 0.16x)
    ("nkpredict predict, 1 sample", "bare, 1 sample", 0.5),
    ("nkpredict explain, 1 sample", "bare, 1 sample", 0.35),
    ("nkpredict predict, 100 samples", "bare, 100 samples", 0.144),
)
"""Issue 17's HTTP targets: (case, the endpoint it is compared with, least ratio of req/s)."""


def _catalogue_answer(label: str) -> tuple[str, str] | None:
    """For a whole-profile case: the same answer of a body of the model's genes only, and that
    body's read-only endpoint (their difference is the answer's own work, with no whole
    profile to read); ``None`` for the other cases."""
    if "genes," not in label:
        return None
    kind = label.split(",")[0]  # "nkpredict predict" / "nkpredict explain"
    samples = label.rsplit(", ", 1)[1]  # "1 sample" / "100 samples"
    return f"{kind}, {samples}", f"bare, {samples}"


def _paired(results: dict[str, Measured], label: str, baseline: str) -> list[tuple[float, float]]:
    """Each round's (req/s of ``label``, req/s of ``baseline``): two measurements seconds
    apart."""
    ours, base = results[label].runs, results[baseline].runs
    return [(a.rps, b.rps) for a, b in zip(ours, base, strict=True)]


def _ratio_cell(results: dict[str, Measured], label: str, baseline: str) -> tuple[float, str]:
    """The median of the rounds' ratios of ``label`` to ``baseline``, and the table cell that
    shows it with every round's ratio."""
    per_round = [ours / base for ours, base in _paired(results, label, baseline)]
    median = statistics.median(per_round)
    return median, f"{median:.2f} x ({' / '.join(f'{r:.2f}' for r in per_round)})"


def profile_targets(results: dict[str, Measured]) -> str:
    """Issue 17's HTTP targets, as ratios in this run: each round's ratio of the two
    measurements made in it, and their median (the figure a target is judged by: a pair of
    measurements a few seconds apart is the comparison the machine's drift spoils least)."""
    rows = []
    for label, baseline, goal in TARGET_ROWS:
        if label not in results or baseline not in results:
            continue
        median, cell = _ratio_cell(results, label, baseline)
        rows.append(
            f"| {label} >= {goal} x {baseline.split(',')[0]} | {cell} | "
            f"{'yes' if median >= goal else 'no'} |"
        )
    label, baseline = QUIET_EXPLAIN, "bare, 1 sample"
    if label in results and baseline in results:
        _, cell = _ratio_cell(results, label, baseline)
        rows.append(f"| (reference, not a target) {label} x bare | {cell} | |")
    lines = ["| target | median of the rounds (rounds) | met |", "|---|---:|---|", *rows]
    return "\n".join(lines)


def budget_table(results: dict[str, Measured]) -> str:
    """What each target leaves for the service's own work, in milliseconds per request.

    A request's time is 1 / req/s (one worker answers one request at a time). A target of
    ``g`` x an endpoint that takes ``t`` allows ``t / g`` per request, so ``t (1 / g - 1)`` of
    work on top of what that endpoint does; the table sets it beside the work measured (the
    case's time minus the endpoint's) and, for whole profiles, beside the same answer's work
    on a body of the model's genes alone (:func:`_catalogue_answer`). When that alone exceeds
    the allowance, no handling of the profile's other genes, however fast, meets the target
    with the answer as it is. Medians over the rounds of per-round figures."""
    rows = []
    for label, baseline, goal in TARGET_ROWS:
        if label not in results or baseline not in results:
            continue
        pairs = _paired(results, label, baseline)
        allowed = statistics.median(1e3 / base * (1 / goal - 1) for _, base in pairs)
        measured = statistics.median(1e3 / ours - 1e3 / base for ours, base in pairs)
        case = label.removeprefix("nkpredict ")
        same = _catalogue_answer(label)
        answer_work = ""
        verdict = "fits" if measured <= allowed else f"over by {measured - allowed:.2f} ms"
        if same is not None and all(k in results for k in same):
            work = statistics.median(
                1e3 / ours - 1e3 / base for ours, base in _paired(results, *same)
            )
            answer_work = f"{work:.2f}"
            if measured > allowed:
                verdict = (
                    "over: the answer's own work alone exceeds the allowance"
                    if work > allowed
                    else f"over: leaves {allowed - work:.2f} ms for the profile's genes, "
                    f"which take {measured - work:.2f}"
                )
        rows.append(
            f"| {case} | {goal} x {baseline.split(',')[0]} | {allowed:.2f} | {measured:.2f} | "
            f"{answer_work} | {verdict} |"
        )
    lines = [
        "| request | target | work allowed, ms | work measured, ms | the answer's own work"
        " (model's genes only), ms | |",
        "|---|---|---:|---:|---:|---|",
        *rows,
    ]
    return "\n".join(lines)


def targets(results: dict[str, Measured]) -> str:
    """The issue's targets, as ratios in this run."""
    bare = results["bare, 1 sample"].rps
    predict = results["nkpredict predict, 1 sample"]
    explain = results["nkpredict explain, 1 sample"]
    batch = results["nkpredict predict, 100 samples"]
    rows = [
        (
            "single-sample predict >= 0.5 x bare req/s",
            f"{predict.rps / bare:.2f} x",
            predict.rps / bare >= 0.5,
        ),
        (
            "single-sample predict p99 < 10 ms",
            f"{predict.median('p99_ms'):.2f} ms",
            predict.median("p99_ms") < 10,
        ),
        (
            "single-sample explain >= 0.25 x bare req/s",
            f"{explain.rps / bare:.2f} x",
            explain.rps / bare >= 0.25,
        ),
        ("100-sample batch predict >= 200 req/s", f"{batch.rps:,.0f} req/s", batch.rps >= 200),
        (
            "no failed request",
            str(sum(m.failures for m in results.values())),
            all(m.failures == 0 for m in results.values()),
        ),
    ]
    lines = ["| target | measured | met |", "|---|---:|---|"]
    lines += [f"| {name} | {value} | {'yes' if ok else 'no'} |" for name, value, ok in rows]
    return "\n".join(lines)


def main() -> None:
    """Prepare the model, start the servers, measure, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--skip-mlflow", action="store_true", help="no mlflow models serve")
    parser.add_argument(
        "--workers", type=int, default=2, help="also measure nkpredict with this many workers"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep files here")
    parser.add_argument(
        "--no-profiles", action="store_true", help="leave out the whole-profile cases"
    )
    parser.add_argument(
        "--learners",
        action="store_true",
        help="also serve a model of the earlier learner (303 trees, no prior) and compare",
    )
    args = parser.parse_args()
    require_wrk()
    with tempfile.TemporaryDirectory(prefix="nkp-service-load-") as tmp:
        workdir = args.workdir or Path(tmp)
        started = time.perf_counter()
        model = bench_model.prepare(workdir)
        model.bodies["explain_quiet_1"] = quiet_explain_body(model, workdir)
        todo = cases(not args.skip_mlflow, args.workers)
        if not args.no_profiles:
            model.bodies.update(profile_bodies(model.model_dir, workdir))
            todo += profile_cases()
        learner_dir = None
        if args.learners:
            learner_dir = bench_model.prepare_learner(workdir, bench_model.EARLIER_LEARNER)
            todo += learner_cases()
        print(f"model ready in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        servers = start_all(model, workdir, not args.skip_mlflow, args.workers)
        try:
            if learner_dir is not None:
                servers["earlier-learner"] = start_nkpredict(
                    model, workdir, 1, str(learner_dir), "earlier-learner"
                )
            check_same_answers(servers, model)
            load_before = os.getloadavg()[0]
            results = measure(servers, model, todo, args)
            load_after = os.getloadavg()[0]
        finally:
            for server in servers.values():
                stop_server(server)
    print(
        f"\n{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"model: {model.n_trees} trees, {model.n_genes} genes, {model.n_features} features; "
        f"wrk -t{args.threads} -c{args.connections}, {args.seconds:g} s x {args.rounds} rounds "
        f"(median); load average {load_before:.1f} before, {load_after:.1f} after\n"
    )
    catalogue = {k: v for k, v in results.items() if not v.case.body.startswith("profile_")}
    print(table(catalogue, not args.skip_mlflow))
    print()
    print(targets(results))
    if not args.no_profiles:
        print()
        print(profile_table(results))
        print()
        print(profile_targets(results))
        print()
        print(budget_table(results))
    if args.learners:
        print()
        print(learner_table(results))


if __name__ == "__main__":
    main()
