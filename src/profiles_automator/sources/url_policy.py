"""Which URLs the fetcher may talk to, and how to show them in messages.

One rule is shared by the configuration parser and the redirect follower: https only (plain
http is tolerated for the loopback host, which only tests use), and no credentials embedded in
the URL. `display_url` drops anything that might be secret (user info, query) before a URL is
put in a log record or an error message.
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def display_url(url: str) -> str:
    """Return `url` without user info, query or fragment, safe for logs and messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<malformed URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    return f"{parts.scheme}://{netloc}{parts.path}"


def url_problem(url: str) -> str | None:
    """Say what is wrong with `url` as a place to fetch from, or return None if it is fine.

    The answer completes a sentence that starts with the option name, e.g. "`pmr-url` must ...".
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - parsing the port validates it
    except ValueError:
        return f"must be a valid https:// URL, got {display_url(url)!r}"
    if parts.username is not None or parts.password is not None:
        return "must not contain a user name or password: configure the token instead"
    if not host:
        return f"must be an https:// URL with a host name, got {display_url(url)!r}"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http":
        if host in LOOPBACK_HOSTS:
            return None
        return f"must use https:// (plain http is refused), got {display_url(url)!r}"
    return f"must be an https:// URL, got {display_url(url)!r}"


def origin(url: str) -> tuple[str, str, int]:
    """Return (scheme, host, port) of `url`: credentials are only sent to one origin."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    return scheme, (parts.hostname or "").lower(), port
