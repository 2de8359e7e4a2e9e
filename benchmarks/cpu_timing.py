"""In-process timing shared by the benchmarks that time Python calls on one thread.

Thread CPU time (``time.thread_time``) leaves out what other processes on the machine take
from it, and the best of a few repeats leaves out this thread's own slow moments; what is left
still drifts with the machine's speed, so the scripts compare calls in interleaved rounds.
Used by ``answer_parts.py`` and ``json_parsers.py``; not part of the installed package.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def best_thread_us(call: Callable[[], object], calls: int, repeats: int) -> float:
    """The best of ``repeats`` runs of ``calls`` calls: thread CPU microseconds per call."""
    best = float("inf")
    for _ in range(repeats):
        started = time.thread_time()
        for _ in range(calls):
            call()
        best = min(best, time.thread_time() - started)
    return 1e6 * best / calls


def round_ratios(values: list[float], reference: list[float]) -> list[float]:
    """Each round's time over the reference's time of the same round (the machine's drift
    between rounds cancels out; take the median of these, not the ratio of the medians)."""
    return [value / base for value, base in zip(values, reference, strict=True)]
