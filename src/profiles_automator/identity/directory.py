"""What every identity provider client offers: the members of one group, as user ids.

Entra ID (`entra.py`) and LDAP / Active Directory (`ldap.py`) implement `Directory`; the
resolver calls them with a deadline and treats any `DirectoryError` as "this group is
unknown", so a provider outage never turns into revoked access.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from profiles_automator.pmr.model import GroupSource

# A directory is asked about a PMR `from:` entry exactly as the loader built it.
GroupRef = GroupSource


@dataclass(frozen=True)
class Members:
    """A resolved group: user ids (lower-cased), and members left out and why.

    `skipped` holds at most a few identifiers (object id or DN, never a credential) of
    members that lacked the user-id attribute; `skipped_count` counts all of them.
    """

    user_ids: frozenset[str]
    skipped_count: int = 0
    skipped: tuple[str, ...] = ()
    requests: int = 0
    warnings: tuple[str, ...] = field(default=())


class DirectoryError(Exception):
    """A group could not be resolved; `str()` names the provider, the group and the fix.

    Never contains a credential. `retryable` tells a transient fault (timeout, throttling,
    5xx) from one an admin must fix (401/403, unknown group, TLS), for Waiting vs Blocked.
    """

    def __init__(self, provider: str, group: str, message: str, *, retryable: bool = False):
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.group = group
        self.retryable = retryable


class Directory(Protocol):
    """A client of one identity provider, built from its PMR settings and credentials."""

    name: str

    def members(self, ref: GroupRef, *, deadline: float) -> Members:
        """All user members of `ref`, nested groups included, paged to the end.

        `deadline` is a `time.monotonic()` value; past it, raise a retryable `DirectoryError`.
        Only enabled user objects count. Raises `DirectoryError` for anything else that
        stops a complete answer: a partial member list must never be returned.
        """
        ...
