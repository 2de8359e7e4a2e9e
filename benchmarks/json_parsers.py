"""Is there a JSON parser substantially faster than orjson for whole-profile request bodies?

The whole-profile targets of the HTTP service are ratios to an endpoint that reads the body and
parses it with orjson, so meeting them with a full parse needs a parser faster than orjson's
own. This script times, in one process and interleaved rounds, on the whole-profile bodies of
``service_load.py`` (3,000 and 19,000 DepMap-style genes, one sample; 3,000 genes, 100
samples):

- ``orjson.loads`` (the service's parser, and the parse-only endpoint's);
- ``msgspec.json.decode``, generic (into dicts, lists, str and float, as orjson);
- ``msgspec.json.decode`` typed (``{"samples": {str: {str: float}}}``, so the decoder also
  checks every value is a number, work the service does after orjson);
- ``service.plain_bodies.scan_plain_body``: the service's own one-pass reader of plain bodies,
  straight into the samples x genes array (no Python object per gene or value), which the
  service now takes for such bodies (orjson for every other).

msgspec is not a dependency of nkpredict: ``pip install msgspec`` to run this script.

Usage::

    python benchmarks/json_parsers.py --rounds 7
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_model
from cpu_timing import best_thread_us, round_ratios
from service_load import profile_bodies

from service.plain_bodies import COMPILED, scan_plain_body

try:
    import msgspec
except ImportError:  # pragma: no cover - the script says what it needs
    sys.exit("json_parsers.py needs msgspec: pip install msgspec")

REPEATS = 5


def main() -> None:
    """Build the bodies, time each parser on each body in interleaved rounds, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    generic = msgspec.json.Decoder()
    typed = msgspec.json.Decoder(dict[str, dict[str, dict[str, float]]])
    with tempfile.TemporaryDirectory(prefix="nkp-json-parsers-") as tmp:
        workdir = Path(tmp)
        bench = bench_model.prepare(workdir)
        bodies = {
            name: path.read_bytes()
            for name, path in profile_bodies(bench.model_dir, workdir).items()
        }
    parsers: dict[str, Callable[[bytes], object]] = {
        "orjson": orjson.loads,
        "msgspec generic": generic.decode,
        "msgspec typed": typed.decode,
        "scan_plain_body": partial(scan_plain_body, max_samples=1_000),
    }
    if not COMPILED:
        sys.exit("json_parsers.py needs the compiled scanner: reinstall with a C compiler")
    for body in bodies.values():  # every parser reads every body the same way
        parsed = parsers["orjson"](body)
        assert parsers["msgspec generic"](body) == parsed
        scanned = scan_plain_body(body, 1_000)
        assert scanned is not None
        assert scanned.values.tolist() == [list(s.values()) for s in parsed["samples"].values()]
    times: dict[tuple[str, str], list[float]] = {}
    for round_number in range(args.rounds):
        for body_name, body in bodies.items():
            calls = max(3, 3_000_000 // len(body))
            for parser_name, parse in parsers.items():
                key = (body_name, parser_name)
                times.setdefault(key, []).append(
                    best_thread_us(partial(parse, body), calls, REPEATS)
                )
        print(f"round {round_number + 1} of {args.rounds} done", file=sys.stderr)
    print(
        f"\n{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"orjson {orjson.__version__}, msgspec {msgspec.__version__}; {args.rounds} rounds, "
        "median of the rounds; ratio to orjson within each round\n"
    )
    lines = [
        "| body | bytes | parser | CPU us per parse | x orjson (median) |",
        "|---|---:|---|---:|---:|",
    ]
    for body_name, body in bodies.items():
        reference = times[(body_name, "orjson")]
        for parser_name in parsers:
            values = times[(body_name, parser_name)]
            ratio = statistics.median(round_ratios(values, reference))
            lines.append(
                f"| {body_name} | {len(body):,} | {parser_name} | "
                f"{statistics.median(values):,.0f} | {ratio:.2f} |"
            )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
