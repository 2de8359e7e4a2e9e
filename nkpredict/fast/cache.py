"""The one cache of derived serving state: built once per fitted object, kept while it lives.

The fast path derives things from a fitted object that are costly to build and cheap to keep:
the compiled trees and TreeSHAP tables of a booster, the attribution allocations of a feature
builder, the column positions of the model genes per input layout. :class:`PerObject` holds
each of them, keyed weakly on the object it was derived from (so a refitted or reloaded model
gets its own and a dropped one frees its state) and rebuilt when the object's fitted state is
replaced (``state`` gives that state's identity, e.g. a refitted builder's new ``specs_``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["PerObject"]

K = TypeVar("K")
T = TypeVar("T")


class PerObject(Generic[K, T]):
    """``build(owner)``, built on first use and kept as long as ``owner`` lives.

    Parameters
    ----------
    build : callable
        ``build(owner) -> value``; called once per owner (and fitted state).
    state : callable, optional
        ``state(owner)``: the object that ``build`` read from ``owner``. When it is no longer
        the same object (the owner was fitted again), the value is built anew. Without it the
        owner never changes what ``build`` gives (a booster).
    """

    def __init__(self, build: Callable[[K], T], state: Callable[[K], object] | None = None) -> None:
        self._build = build
        self._state = state
        self._built: weakref.WeakKeyDictionary[K, tuple[object, T]] = weakref.WeakKeyDictionary()

    def __call__(self, owner: K) -> T:
        """What ``build`` gives for ``owner`` (built now if this is its first use)."""
        current = self._state(owner) if self._state is not None else None
        cached = self._built.get(owner)
        if cached is not None and cached[0] is current:
            return cached[1]
        value = self._build(owner)
        self._built[owner] = (current, value)
        return value
