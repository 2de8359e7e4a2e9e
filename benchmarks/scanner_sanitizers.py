"""The plain-body scanner (service/_plain_scan.c) under AddressSanitizer and UBSan, fuzzed.

The extension reads untrusted request bodies in C, so a read past the end of the text, a
use of freed memory or undefined behaviour would be a security bug that no Python test can
see. This script compiles the scanner anew with ``-fsanitize=address,undefined`` into a
temporary folder, then feeds it, in a child Python process with the sanitizer runtime
preloaded, bodies of the plain shape mutated at random (bytes deleted, inserted, replaced by
JSON punctuation, the text cut short; random ``max_samples``), each in a buffer of exactly
its size, with Python's allocator replaced by ``malloc`` so that the sanitizer sees every
block. Any sanitizer report ends the child with an error and the report on stderr. Without
the compiler's sanitizer runtime (``libasan``) the script says so and stops.

Usage::

    python benchmarks/scanner_sanitizers.py                 # 200,000 bodies
    python benchmarks/scanner_sanitizers.py --bodies 1000000 --seed 7
    python benchmarks/scanner_sanitizers.py --source broken_copy.c   # must report an error
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "service" / "_plain_scan.c"

CHILD = r"""
import ctypes, json, random, sys
sys.path.insert(0, sys.argv[1])
import _plain_scan
rng = random.Random(int(sys.argv[3]))

def exact(raw):
    # the text in a buffer of exactly its size (a bytes object has a NUL after its text, and
    # small ctypes arrays live inside their object), so a read one byte past it is caught
    size = max(len(raw), 32)
    buffer = (ctypes.c_char * size).from_buffer_copy(raw.rjust(size, b" "))
    return memoryview(buffer).cast("B")[size - len(raw):]

values = [1, 2.5, None, -0.0, 1e300, 12345678901234567890, 0.1, -7e-5]
bases = [
    json.dumps({"samples": {f"s{i}": {f"G{j} ({j})": rng.choice(values) for j in range(6)}
                            for i in range(3)}, "scale": "log", "n_drivers": 2}).encode(),
    b'{"samples": {"a": {"x": 1.5e-3, "y": null}}, "n": "a\\"b", "m": true}',
    b'{"samples":{"\xc3\xa9":{"":0,"k":-0}}}',
]
pieces = [b'"', b"{", b"}", b",", b":", b"\\", b"e", b"-", b".", b"0", b"null", b" ", b"\xff"]
read = 0
for _ in range(int(sys.argv[2])):
    raw = bytearray(rng.choice(bases))
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(raw) + 1)
        kind = rng.random()
        if kind < 0.4 and raw:
            del raw[at : at + rng.randint(1, 5)]
        elif kind < 0.7:
            raw[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3)))
        else:
            raw[at:at] = rng.choice(pieces)
    if rng.random() < 0.3:
        raw = raw[: rng.randint(0, len(raw))]
    read += _plain_scan.scan(exact(bytes(raw)), rng.randint(0, 5)) is not None
print(f"{sys.argv[2]} bodies, {read} read as plain, no sanitizer report")
"""


def _asan_runtime() -> str | None:
    """The compiler's AddressSanitizer runtime library, or ``None`` without one."""
    found = subprocess.run(
        ["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return found if found and os.path.isabs(found) and os.path.exists(found) else None


def main() -> None:
    """Compile with the sanitizers, run the mutated bodies in a child process, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--source", type=Path, default=SOURCE, help="the C file (a broken copy checks the check)"
    )
    args = parser.parse_args()
    runtime = _asan_runtime()
    if runtime is None:
        sys.exit("scanner_sanitizers.py needs gcc with libasan (Debian: gcc, libasan8)")
    with tempfile.TemporaryDirectory(prefix="nkp-scan-asan-") as tmp:
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        library = Path(tmp) / f"_plain_scan{suffix}"
        subprocess.run(
            [
                "gcc", "-shared", "-fPIC", "-O1", "-g", "-fno-omit-frame-pointer",
                "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                f"-I{sysconfig.get_paths()['include']}", str(args.source), "-o", str(library),
            ],
            check=True,
        )  # fmt: skip
        started = time.perf_counter()
        child = subprocess.run(
            [sys.executable, "-c", CHILD, tmp, str(args.bodies), str(args.seed)],
            env={
                **os.environ,
                "LD_PRELOAD": runtime,
                "ASAN_OPTIONS": "detect_leaks=0",
                "PYTHONMALLOC": "malloc",  # every buffer a malloc block the sanitizer watches
            },
            check=False,
        )
        elapsed = time.perf_counter() - started
    if child.returncode != 0:
        sys.exit(f"the sanitizers reported an error (exit status {child.returncode})")
    print(f"seed {args.seed}, {elapsed:.0f} s")


if __name__ == "__main__":
    main()
