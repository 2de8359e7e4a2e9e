"""Long fuzzing run of the live service from its OpenAPI document (schemathesis + Hypothesis).

The same checks as ``tests/test_fuzz.py`` (no 5xx, documented status codes, declared content
types, response bodies matching their schemas, schema-violating data refused), but against a
real ``nkpredict serve`` process over HTTP and with many more examples per operation, in
both generation modes (schema-valid and schema-violating requests).

Usage::

    python benchmarks/fuzz_service.py                     # 1,000 examples per operation/mode
    python benchmarks/fuzz_service.py --examples 200

Prints one line per operation and mode and a summary; exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import free_port, python_command, start_server, stop_server

from nkpredict.model.fitted import NKResistanceModel
from nkpredict.simulate.cohort import simulate_cohort
from nkpredict.simulate.config import SimulationConfig

API_KEY = "fuzz-api-key"
EXCLUDED_CHECKS = ("positive_data_acceptance",)  # why: see tests/test_fuzz.py


def fuzz_operation(operation: Any, mode: str, examples: int, base_url: str) -> str | None:
    """Run one operation in one generation mode; the failure report, or None."""
    strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))
    excluded = [getattr(schemathesis.checks, name) for name in EXCLUDED_CHECKS]

    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        case.call_and_validate(
            base_url=base_url, headers={"X-API-Key": API_KEY}, excluded_checks=excluded
        )

    try:
        check()
    except Unsatisfiable:
        return "Unsatisfiable"
    except AssertionError as exc:  # schemathesis failures are AssertionError subclasses
        return str(exc)
    except BaseExceptionGroup as group:  # several distinct failures
        return "\n".join(str(e) for e in group.exceptions)
    return None


def main() -> None:
    """Train a small model, serve it, fuzz every operation in both modes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000, help="per operation and mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nkp-fuzz-") as tmp:
        workdir = Path(tmp)
        cohort = simulate_cohort(SimulationConfig(n_samples=200, n_genes=400, seed=1))
        model = NKResistanceModel(booster={"n_estimators": 50}).fit(
            cohort.counts, cohort.labels["resistant"]
        )
        model.save(workdir / "model")
        port = free_port()
        server = start_server(
            "nkpredict",
            python_command(
                "-m", "training.cli", "serve", "--model", str(workdir / "model"),
                "--port", str(port), "--log-level", "warning",
            ),
            port,
            workdir,
            env={
                "NKP_API_KEY": API_KEY,
                "NKP_ADMIN_API_KEY": "an admin key the fuzzer never sends",
                "NKP_MAX_SAMPLES": "50",
                "NKP_MAX_BODY_BYTES": "200000",
            },
            ready_path="/ready",
        )  # fmt: skip
        failures = 0
        started = time.perf_counter()
        try:
            api = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
            for result in api.get_all_operations():
                operation = result.ok()
                for mode in ("positive", "negative"):
                    begun = time.perf_counter()
                    report = fuzz_operation(operation, mode, args.examples, server.url)
                    status = "ok" if report is None else "FAILED"
                    if report is not None and "Unsatisfiable" in report:
                        status = "nothing to vary"
                        report = None
                    failures += report is not None
                    print(
                        f"{operation.label:28s} {mode:9s} {status:16s} "
                        f"{time.perf_counter() - begun:6.1f} s"
                    )
                    if report:
                        print(report)
        finally:
            code = stop_server(server)
            if "Traceback" in server.output():
                failures += 1
                print("server log has a traceback:\n" + server.output())
        print(
            f"\n{args.examples} examples per operation and mode, "
            f"{time.perf_counter() - started:.0f} s, server exit status {code}, "
            f"{failures} failing operation/mode pairs"
        )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
