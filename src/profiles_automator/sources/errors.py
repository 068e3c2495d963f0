"""Errors raised while fetching the PMR.

They live in their own module so that the HTTP transport, the GitHub reader and the public
`fetch` facade can all raise them without importing each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime


class FetchError(Exception):
    """The PMR could not be fetched.

    `str()` is a complete message meant for the administrator: it says what failed and what to
    change. It never contains the access token.
    """


class RateLimitedError(FetchError):
    """The server said we sent too many requests; retrying now would only make it worse.

    `reset_at` is when the server said the limit resets (timezone-aware UTC), if it said so.
    """

    def __init__(self, message: str, reset_at: datetime | None = None) -> None:
        super().__init__(message)
        self.reset_at = reset_at


class UntrustedTLSError(FetchError):
    """The server's certificate could not be verified, or the TLS handshake failed.

    `problem` says what failed without advice, so that a front end (the charm, the CLI) can
    name its own way to configure the CA; `str()` carries the generic advice.
    """

    def __init__(self, message: str, problem: str, *, ca_configured: bool) -> None:
        super().__init__(message)
        self.problem = problem
        self.ca_configured = ca_configured


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """Walk an exception and what it wraps (args, urllib3 `reason`, cause, context).

    HTTP and git transports both bury the telling error (a TLS failure, a refused
    connection) several wrappers deep; messages are chosen from the whole chain.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen or len(seen) > 20:
            continue
        seen.add(id(current))
        yield current
        nested = [arg for arg in current.args if isinstance(arg, BaseException)]
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            nested.append(reason)
        nested.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        pending.extend(nested)


class HostKeyError(FetchError):
    """The server's host key is not the one in known_hosts (or known_hosts has none for it)."""

    def __init__(self, message: str, *, host: str, offered: str, expected: str | None) -> None:
        super().__init__(message)
        self.host = host
        self.offered = offered
        self.expected = expected
