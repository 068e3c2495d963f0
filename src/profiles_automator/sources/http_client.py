"""The fetcher's HTTP transport: bounded, conditional, credential-safe GET requests.

Everything that touches the network goes through `HTTPClient.get`, so the hard rules hold in
one place:

* every request has connect and read timeouts, and the whole fetch has a deadline;
* 5xx answers, dropped connections and timeouts are retried with a short exponential backoff,
  at most `MAX_ATTEMPTS` times; rate limits are never retried;
* bodies are streamed and refused past a size limit;
* answers are remembered by ETag and revalidated with `If-None-Match` (a 304 costs nothing
  against GitHub's rate limit);
* the token is sent only to one origin, redirects are followed by hand so it is never sent to
  another host and never over plain http, and it never appears in a message or log record;
* TLS is always verified, against the configured CA bundle if there is one.

The module-level constants are read at call time so tests can shrink them.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import os
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.client import IncompleteRead, RemoteDisconnected
from types import TracebackType
from typing import Self
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions

from profiles_automator.sources.document import too_large_error
from profiles_automator.sources.errors import (
    FetchError,
    RateLimitedError,
    UntrustedTLSError,
    exception_chain,
)
from profiles_automator.sources.http_cache import HTTPCache
from profiles_automator.sources.url_policy import display_url, origin, url_problem

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
BACKOFF_SECONDS: tuple[float, ...] = (0.5, 1.0, 2.0)
MAX_ATTEMPTS = 3
MAX_REDIRECTS = 5
ERROR_BODY_LIMIT = 64 * 1024
USER_AGENT = "kubeflow-profiles-automator"

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK_SIZE = 64 * 1024
_PEM_CERT_MARKER = "-----BEGIN CERTIFICATE-----"

BodyCheck = Callable[[bytes, str], None]


@dataclass(frozen=True)
class Credentials:
    """What the fetcher may need to authenticate: a token, SSH keys, and a CA bundle to trust.

    `username` goes with the token for git over HTTPS (each host documents its own default,
    see `sources.git`). `ssh_key` is a private key in OpenSSH or PEM form and `known_hosts`
    the OpenSSH known_hosts lines that the server's host key must match. No field is shown by
    `repr()`: they come from secrets and must not end up in logs.
    """

    token: str | None = field(default=None, repr=False)
    ca_pem: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    ssh_key: str | None = field(default=None, repr=False)
    known_hosts: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Reply:
    """A complete answer: status, headers and body (the cached body after a 304)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    etag: str | None = None
    from_cache: bool = False

    @property
    def content_type(self) -> str:
        """The Content-Type header, or an empty string."""
        return self.headers.get("Content-Type", "")


class _RetriableError(Exception):
    """An attempt failed in a way that another attempt may fix."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class HTTPClient:
    """Make GET requests under one deadline, with one set of credentials and one cache.

    Use as a context manager: it writes the CA bundle to a private temporary file (what
    `requests` needs) and removes it on exit, and closes the session if it created it.
    """

    def __init__(
        self,
        *,
        credentials: Credentials,
        auth_url: str | None,
        cache: HTTPCache | None = None,
        session: requests.Session | None = None,
        deadline_seconds: float = 30.0,
    ) -> None:
        token = (credentials.token or "").strip() or None
        if token is not None and not all(33 <= ord(char) < 127 for char in token):
            raise FetchError(
                "the token contains spaces, line breaks or non-ASCII characters; "
                "set it again, copying only the token itself"
            )
        ca_pem = (credentials.ca_pem or "").strip() or None
        if ca_pem is not None and _PEM_CERT_MARKER not in ca_pem:
            raise FetchError(
                "the CA bundle is not a PEM certificate: it must contain "
                f"'{_PEM_CERT_MARKER}' blocks"
            )
        self._token = token
        self._ca_pem = ca_pem
        self._auth_origin = origin(auth_url) if auth_url and token else None
        self._cache = cache
        self._given_session = session
        self._session: requests.Session | None = None
        self._ca_file: str | None = None
        self._deadline_seconds = deadline_seconds
        self._deadline_at = time.monotonic() + deadline_seconds

    @property
    def token_sent(self) -> bool:
        """Whether requests to the API origin carry a token (for messages about access)."""
        return self._auth_origin is not None

    def __enter__(self) -> Self:
        if self._ca_pem is not None:
            fd, self._ca_file = tempfile.mkstemp(prefix="pmr-ca-", suffix=".pem")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self._ca_pem + "\n")
        self._session = self._given_session or requests.Session()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._given_session is None and self._session is not None:
            self._session.close()
        self._session = None
        if self._ca_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._ca_file)
            self._ca_file = None

    def scrub(self, text: str) -> str:
        """Remove the token from `text` (defence in depth for text from elsewhere)."""
        return text.replace(self._token, "***") if self._token else text

    def cached(self, url: str) -> tuple[str, bytes] | None:
        """Return the cached (etag, body) for `url` without any request."""
        return self._cache.get(url) if self._cache is not None else None

    def get(
        self,
        url: str,
        *,
        what: str,
        accept: str,
        limit: int,
        label: str | None = None,
        check: BodyCheck | None = None,
        use_cache: bool = True,
        too_large_hint: str = "",
    ) -> Reply:
        """GET `url` and return the answer; retry what is worth retrying.

        `what` completes "while ..." in messages (e.g. "reading pmr.yaml from org/repo").
        `label` names the body in size errors. `check` validates a successful body before it
        is cached or returned. Statuses below 500 other than 304 and rate limits are returned
        for the caller to interpret.

        Raises:
            RateLimitedError: on a 403/429 rate-limit answer (never retried).
            FetchError: on network, TLS, size or deadline failures.
        """
        cached = self.cached(url) if use_cache else None
        label = label or display_url(url)
        problem = ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            timeouts = self._timeouts(what, problem)
            try:
                reply = self._attempt(
                    url, what, accept, limit, label, cached, timeouts, too_large_hint
                )
            except _RetriableError as exc:
                problem = exc.problem
            else:
                if reply.status < 500:
                    return self._accept(url, reply, what, check, use_cache)
                problem = f"{_host(url)} answered HTTP {reply.status}"
            logger.debug("attempt %d/%d failed while %s: %s", attempt, MAX_ATTEMPTS, what, problem)
            if attempt < MAX_ATTEMPTS:
                self._backoff(attempt, what, problem)
        raise FetchError(
            f"gave up {what} after {MAX_ATTEMPTS} attempts: {problem}; "
            "the next sync will try again"
        )

    def post(
        self,
        url: str,
        *,
        what: str,
        payload: Mapping[str, object],
        accept: str,
        authorization: str | None = None,
    ) -> Reply:
        """POST `payload` as JSON to `url` and return the answer (any status below 500).

        For the few writes the engine makes (a GitHub App token request, a commit status):
        the same timeouts, deadline, TLS and credential rules as `get`, no redirects
        followed, 5xx and dropped connections retried. `authorization` replaces the
        configured token (the GitHub App's JWT).

        Raises:
            RateLimitedError: on a 403/429 rate-limit answer (never retried).
            FetchError: on network, TLS or deadline failures.
        """
        problem = ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            timeouts = self._timeouts(what, problem)
            try:
                reply = self._post_once(url, what, payload, accept, authorization, timeouts)
            except _RetriableError as exc:
                problem = exc.problem
            else:
                if reply.status < 500:
                    if (limited := self._rate_limit_error(url, reply, what)) is not None:
                        raise limited
                    return reply
                problem = f"{_host(url)} answered HTTP {reply.status}"
            if attempt < MAX_ATTEMPTS:
                self._backoff(attempt, what, problem)
        raise FetchError(f"gave up {what} after {MAX_ATTEMPTS} attempts: {problem}")

    def _post_once(
        self,
        url: str,
        what: str,
        payload: Mapping[str, object],
        accept: str,
        authorization: str | None,
        timeouts: tuple[float, float],
    ) -> Reply:
        assert self._session is not None, "HTTPClient must be used as a context manager"
        headers = {
            "Accept": accept,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-GitHub-Api-Version": "2022-11-28",
        }
        if authorization is not None:
            headers["Authorization"] = authorization
        elif self._auth_origin is not None and origin(url) == self._auth_origin:
            headers["Authorization"] = f"Bearer {self._token}"
        with self._request_errors(url, what, timeouts):
            response = self._session.post(
                url,
                data=json.dumps(dict(payload)).encode(),
                headers=headers,
                timeout=timeouts,
                stream=True,
                allow_redirects=False,
                verify=self._ca_file or True,
            )
            with contextlib.closing(response):
                logger.debug("POST %s -> HTTP %d", display_url(url), response.status_code)
                label = display_url(url)
                body = self._read(response, ERROR_BODY_LIMIT, label, what, truncate=True)
                return Reply(response.status_code, response.headers, body)

    @contextlib.contextmanager
    def _request_errors(
        self, url: str, what: str, timeouts: tuple[float, float]
    ) -> Iterator[None]:
        """Turn requests' exceptions into the errors the retry loop and the admin understand."""
        try:
            yield
        except requests.exceptions.SSLError as exc:
            raise self._tls_error(exc, url, what) from None
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            raise _RetriableError(self._describe_failure(exc, url, timeouts)) from None
        except requests.exceptions.RequestException as exc:
            detail = self.scrub(f"{type(exc).__name__}: {exc}")[:300]
            raise FetchError(f"request to {display_url(url)} failed while {what}: {detail}") from (
                None
            )

    def _accept(
        self, url: str, reply: Reply, what: str, check: BodyCheck | None, use_cache: bool
    ) -> Reply:
        if (limited := self._rate_limit_error(url, reply, what)) is not None:
            raise limited
        if 200 <= reply.status < 300:
            if check is not None:
                check(reply.body, reply.content_type)
            if use_cache and reply.etag and not reply.from_cache and self._cache is not None:
                self._cache.put(url, reply.etag, reply.body)
        return reply

    def _attempt(
        self,
        url: str,
        what: str,
        accept: str,
        limit: int,
        label: str,
        cached: tuple[str, bytes] | None,
        timeouts: tuple[float, float],
        too_large_hint: str,
    ) -> Reply:
        headers = {
            "Accept": accept,
            "User-Agent": USER_AGENT,
            "X-GitHub-Api-Version": "2022-11-28",
        }
        if cached is not None:
            headers["If-None-Match"] = cached[0]
        with self._request_errors(url, what, timeouts):
            response = self._send(url, headers, timeouts, what)
            with contextlib.closing(response):
                status = response.status_code
                if status == 304:
                    if cached is None:
                        raise FetchError(
                            f"{_host(url)} answered 304 Not Modified to an unconditional "
                            f"request while {what}"
                        )
                    etag = response.headers.get("ETag") or cached[0]
                    return Reply(200, response.headers, cached[1], etag, from_cache=True)
                if 200 <= status < 300:
                    body = self._read(response, limit, label, what, too_large_hint)
                else:
                    body = self._read(response, ERROR_BODY_LIMIT, label, what, truncate=True)
                return Reply(status, response.headers, body, response.headers.get("ETag"))

    def _send(
        self, url: str, headers: dict[str, str], timeouts: tuple[float, float], what: str
    ) -> requests.Response:
        """Send the request, following redirects by hand so credentials stay on their origin."""
        assert self._session is not None, "HTTPClient must be used as a context manager"
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            request_headers = dict(headers)
            with_token = self._auth_origin is not None and origin(current) == self._auth_origin
            if with_token:
                request_headers["Authorization"] = f"Bearer {self._token}"
            response = self._session.get(
                current,
                headers=request_headers,
                timeout=timeouts,
                stream=True,
                allow_redirects=False,
                verify=self._ca_file or True,
            )
            logger.debug(
                "GET %s (token %s) -> HTTP %d",
                display_url(current),
                "sent" if with_token else "not sent",
                response.status_code,
            )
            location = response.headers.get("Location")
            if response.status_code not in _REDIRECT_STATUSES or not location:
                return response
            response.close()
            target = urljoin(current, location)
            if problem := url_problem(target):
                raise FetchError(
                    f"refusing to follow the redirect from {display_url(current)} while {what}: "
                    f"the target {problem}"
                )
            current = target
        raise FetchError(f"too many redirects (more than {MAX_REDIRECTS}) while {what}")

    def _read(
        self,
        response: requests.Response,
        limit: int,
        label: str,
        what: str,
        too_large_hint: str = "",
        *,
        truncate: bool = False,
    ) -> bytes:
        """Stream the body, refusing (or truncating) it past `limit` bytes."""
        length = response.headers.get("Content-Length", "").strip()
        if not truncate and length.isdigit() and int(length) > limit:
            raise too_large_error(label, limit, int(length), too_large_hint)
        chunks: list[bytes] = []
        total = 0
        for chunk in response.iter_content(_CHUNK_SIZE):
            total += len(chunk)
            if total > limit:
                if truncate:
                    chunks.append(chunk[: len(chunk) - (total - limit)])
                    break
                raise too_large_error(label, limit, None, too_large_hint)
            chunks.append(chunk)
            if self._remaining() <= 0:
                raise self._deadline_error(what, f"{label} was still arriving")
        return b"".join(chunks)

    def _remaining(self) -> float:
        return self._deadline_at - time.monotonic()

    def _timeouts(self, what: str, problem: str) -> tuple[float, float]:
        remaining = self._remaining()
        if remaining <= 0:
            raise self._deadline_error(what, problem)
        return min(CONNECT_TIMEOUT, remaining), min(READ_TIMEOUT, remaining)

    def _backoff(self, attempt: int, what: str, problem: str) -> None:
        delay = BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)]
        if delay >= self._remaining():
            raise self._deadline_error(what, problem)
        time.sleep(delay)

    def _deadline_error(self, what: str, problem: str) -> FetchError:
        return FetchError(
            f"timed out {what}: gave up after the {self._deadline_seconds:g} s deadline"
            + (f" ({problem})" if problem else "")
            + "; the next sync will try again"
        )

    def _rate_limit_error(self, url: str, reply: Reply, what: str) -> RateLimitedError | None:
        if reply.status not in (403, 429):
            return None
        headers = reply.headers
        exhausted = headers.get("X-RateLimit-Remaining", "").strip() == "0"
        retry_after = headers.get("Retry-After")
        mentions_limit = b"rate limit" in reply.body[:4096].lower()
        if not (reply.status == 429 or exhausted or retry_after or mentions_limit):
            return None
        reset_at = _parse_retry_after(retry_after) if retry_after else None
        if reset_at is None and exhausted:
            reset_at = _parse_epoch(headers.get("X-RateLimit-Reset"))
        if reset_at is not None:
            wait = max(0, round((reset_at - datetime.now(UTC)).total_seconds()))
            when = f"it resets at {reset_at:%Y-%m-%d %H:%M:%S} UTC (in {_duration(wait)})"
        else:
            when = "it did not say when the limit resets"
        advice = (
            "a token was sent; syncing less often helps"
            if self.token_sent
            else "no token was sent: anonymous clients get a much lower limit, configure a token"
        )
        return RateLimitedError(
            f"rate limit exceeded at {_host(url)} (HTTP {reply.status}) while {what}; "
            f"{when}; {advice}",
            reset_at,
        )

    def _tls_error(self, exc: BaseException, url: str, what: str) -> UntrustedTLSError:
        reason = "the TLS handshake failed"
        for cause in exception_chain(exc):
            if isinstance(cause, ssl.SSLCertVerificationError):
                reason = f"certificate verification failed ({cause.verify_message})"
                break
            if isinstance(cause, ssl.SSLError):
                reason = f"the TLS handshake failed ({cause.reason or cause.strerror})"
        if self._ca_pem is not None:
            advice = "check that the configured CA bundle holds the CA that signed its certificate"
        else:
            advice = (
                "if the server uses a certificate from a private CA, configure that CA's "
                "certificate (PEM) as the CA bundle"
            )
        problem = (
            f"could not establish a trusted TLS connection to {_host(url)} while {what}: "
            f"{self.scrub(reason)}"
        )
        return UntrustedTLSError(
            f"{problem}; {advice}", problem, ca_configured=self._ca_pem is not None
        )

    def _describe_failure(
        self, exc: BaseException, url: str, timeouts: tuple[float, float]
    ) -> str:
        host = _host(url)
        causes = list(exception_chain(exc))
        kinds = tuple(type(cause) for cause in causes)

        def has(*types: type[BaseException]) -> bool:
            return any(issubclass(kind, types) for kind in kinds)

        if has(ConnectionRefusedError):
            return f"connection to {host} refused"
        if has(urllib3.exceptions.NameResolutionError, socket.gaierror):
            return f"could not resolve the host name {host}"
        if has(requests.exceptions.ConnectTimeout):
            return f"could not connect to {host} within {timeouts[0]:g} s"
        if has(requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError):
            return f"no answer from {host} within {timeouts[1]:g} s (read timeout)"
        if has(
            RemoteDisconnected,
            ConnectionResetError,
            IncompleteRead,
            urllib3.exceptions.ProtocolError,
            requests.exceptions.ChunkedEncodingError,
        ):
            return f"the connection to {host} was dropped"
        if has(TimeoutError):
            return f"no answer from {host} in time"
        return self.scrub(f"network error talking to {host}: {type(exc).__name__}")


def _host(url: str) -> str:
    return urlsplit(url).netloc.rpartition("@")[2]


def _parse_epoch(value: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(int((value or "").strip()), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _parse_retry_after(value: str) -> datetime | None:
    value = value.strip()
    if value.isdigit():
        return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=int(value))
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
