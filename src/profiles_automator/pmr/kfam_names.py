"""The names KFAM gives contributor objects, and the limit they must fit.

They belong to the PMR stage because the loader refuses a PMR whose users KFAM could not tell
apart (two users giving one name) or whose names would be too long; the sync stage uses the
same functions to name the objects it writes.
"""

from __future__ import annotations

import functools
import re

from profiles_automator.pmr.model import Role

_NON_ALNUM = re.compile(r"[^a-zA-Z0-9]+")
MAX_OBJECT_NAME = 253


@functools.lru_cache(maxsize=65536)  # the same users recur across many profiles
def binding_name(user: str, role: Role | str) -> str:
    """The name KFAM's ``getBindingName`` gives a contributor's RoleBinding and policy.

    KFAM joins ``User``, the user with runs of non-alphanumerics turned into
    ``-`` (then query-escaped, a no-op after that), ``ClusterRole`` and the role,
    lower-cases it, and collapses non-alphanumeric runs once more, so ``--``
    from a leading or trailing symbol in the user becomes a single ``-``.
    """
    raw = "-".join(["User", _NON_ALNUM.sub("-", user), "ClusterRole", str(Role(role))]).lower()
    return _NON_ALNUM.sub("-", raw)


@functools.lru_cache(maxsize=65536)
def binding_user_part(user: str) -> str:
    """The part of a binding name that identifies the user (for collision checks)."""
    return binding_name(user, Role.VIEW).removesuffix("-clusterrole-view")
