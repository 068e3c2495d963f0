"""Pause Python's cyclic garbage collector for one bounded piece of work.

A sync builds tens of thousands of small JSON dicts (the cluster-wide lists,
the desired objects). They hold no reference cycles, yet their sheer number
triggers repeated full collections that find nothing and, at 1000 profiles,
cost more than the work itself. Reference counting still frees everything.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def no_gc_pauses() -> Iterator[None]:
    """Disable the cyclic collector inside the block, restoring its previous state."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
