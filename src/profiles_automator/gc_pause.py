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

# New container objects a block may leave alive before they are frozen: a
# 1000-profile model is about 50,000, a 10,000-profile one about 500,000.
FREEZE_ABOVE = 100_000


@contextlib.contextmanager
def no_gc_pauses(*, freeze_survivors: bool = False) -> Iterator[None]:
    """Disable the cyclic collector inside the block, restoring its previous state.

    With ``freeze_survivors``, a block that leaves more than ``FREEZE_ABOVE`` new
    objects alive (a validated model of thousands of profiles, which lives as long
    as the hook or CLI run) moves everything tracked to the permanent generation
    (``gc.freeze``). Otherwise the first collections after the block walk every one
    of them to find nothing, about a tenth of the load of 10,000 profiles. Frozen
    objects are still freed by reference counting; only reference cycles among them
    are never collected, and the model has none.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze_survivors and gc.get_count()[0] > FREEZE_ABOVE:
            gc.freeze()
        if was_enabled:
            gc.enable()
