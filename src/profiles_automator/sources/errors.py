"""Errors raised while fetching the PMR.

They live in their own module so that the HTTP transport, the GitHub reader and the public
`fetch` facade can all raise them without importing each other.
"""

from __future__ import annotations

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
