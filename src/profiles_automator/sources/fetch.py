"""Fetch the PMR (the YAML file or folder that lists Kubeflow Profiles) for one sync.

This is the public entry point: `fetch_pmr(source, ...)` returns the PMR documents and the
revision they came from, or raises `FetchError` with a message an administrator can act on.
The work is split by concept: `pmr_source` (where the PMR lives), `http_client` (timeouts,
retries, caching, credentials, TLS), `github` (the GitHub REST API), `http_cache` (ETag
stores) and `pmr_document` (checks on each file).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import requests

from profiles_automator.sources.document import PMRDocument, check_document
from profiles_automator.sources.errors import FetchError, RateLimitedError, UntrustedTLSError
from profiles_automator.sources.github import GitHubReader
from profiles_automator.sources.http_cache import DirectoryCache, HTTPCache, MemoryCache
from profiles_automator.sources.http_client import Credentials, HTTPClient
from profiles_automator.sources.source import (
    GitHubSource,
    GitSource,
    Source,
    URLSource,
    source_from_options,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Credentials",
    "DirectoryCache",
    "FetchError",
    "FetchResult",
    "GitHubSource",
    "GitSource",
    "HTTPCache",
    "MemoryCache",
    "PMRDocument",
    "RateLimitedError",
    "Source",
    "URLSource",
    "UntrustedTLSError",
    "fetch_pmr",
    "source_from_options",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1024 * 1024
_NO_CREDENTIALS = Credentials()
_URL_ACCEPT = "application/yaml, application/x-yaml, text/yaml, text/plain;q=0.9, */*;q=0.5"


@dataclass(frozen=True)
class FetchResult:
    """The PMR documents of one sync and the revision they were read at.

    `revision` is the commit SHA for GitHub and git; for a URL, the ETag if the server sent one,
    else the first 12 hex digits of the body's SHA-256. `unchanged` is True when the revision
    equals the `last_revision` passed in (for GitHub the documents then come from the cache when
    it holds them all, without downloading; for git, from the cached repository).
    """

    documents: tuple[PMRDocument, ...]
    revision: str
    unchanged: bool


def fetch_pmr(
    source: Source,
    *,
    credentials: Credentials = _NO_CREDENTIALS,
    cache: HTTPCache | None = None,
    last_revision: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    session: requests.Session | None = None,
    deadline_seconds: float = 30.0,
    git_cache_dir: str | os.PathLike[str] | None = None,
) -> FetchResult:
    """Fetch the PMR from `source`, all at one revision, within `deadline_seconds`.

    The token in `credentials` is only sent to the GitHub API host (or the URL's or the git
    server's host), and `credentials.ca_pem`, if set, is the only trusted CA. `cache` makes
    repeat fetches from GitHub and URLs cheap; for a `GitSource`, `git_cache_dir` keeps the bare
    repository that makes an unchanged branch cost one ref lookup (without it, a temporary
    directory is used and everything is fetched).

    Raises:
        RateLimitedError: the server's rate limit is exhausted (`reset_at` says until when).
        FetchError: anything else; the message says what to fix.
    """
    if isinstance(source, GitSource):
        result = _fetch_git(
            source, credentials, git_cache_dir, last_revision, max_bytes, deadline_seconds
        )
        logger.debug(
            "fetched %d PMR document(s) from %s at %s%s",
            len(result.documents),
            source.describe(),
            result.revision,
            " (unchanged)" if result.unchanged else "",
        )
        return result
    auth_url = source.api_url if isinstance(source, GitHubSource) else source.url
    with HTTPClient(
        credentials=credentials,
        auth_url=auth_url,
        cache=cache,
        session=session,
        deadline_seconds=deadline_seconds,
    ) as client:
        if isinstance(source, GitHubSource):
            result = _fetch_github(client, source, last_revision, max_bytes)
        else:
            result = _fetch_url(client, source, last_revision, max_bytes)
    logger.debug(
        "fetched %d PMR document(s) from %s at %s%s",
        len(result.documents),
        source.describe(),
        result.revision,
        " (unchanged)" if result.unchanged else "",
    )
    return result


def _fetch_git(
    source: GitSource,
    credentials: Credentials,
    cache_dir: str | os.PathLike[str] | None,
    last_revision: str | None,
    max_bytes: int,
    deadline_seconds: float,
) -> FetchResult:
    holder: contextlib.AbstractContextManager[str] = (
        tempfile.TemporaryDirectory(prefix="pmr-git-")
        if cache_dir is None
        else contextlib.nullcontext(os.fspath(cache_dir))
    )
    # Imported here: dulwich and paramiko cost every other source ~20 MiB of memory.
    from profiles_automator.sources.git import GitReader

    with holder as directory:
        reader = GitReader(
            source,
            credentials=credentials,
            cache_dir=Path(directory),
            max_bytes=max_bytes,
            deadline_seconds=deadline_seconds,
        )
        try:
            snapshot = reader.read(last_revision)
        finally:
            reader.close()
    documents = tuple(PMRDocument(name, body) for name, body in sorted(snapshot.files))
    return FetchResult(documents, snapshot.sha, snapshot.unchanged)


def _fetch_github(
    client: HTTPClient, source: GitHubSource, last_revision: str | None, max_bytes: int
) -> FetchResult:
    snapshot = GitHubReader(client, source, max_bytes).read(last_revision)
    documents = tuple(PMRDocument(name, body) for name, body in sorted(snapshot.files))
    return FetchResult(documents, snapshot.sha, snapshot.unchanged)


def _fetch_url(
    client: HTTPClient, source: URLSource, last_revision: str | None, max_bytes: int
) -> FetchResult:
    name = source.name
    what = f"downloading {source.describe()}"

    def check(body: bytes, content_type: str) -> None:
        check_document(name, body, content_type=content_type, max_bytes=max_bytes)

    reply = client.get(
        source.url, what=what, accept=_URL_ACCEPT, limit=max_bytes, label=name, check=check
    )
    if reply.status != 200:
        sent = "a token was sent" if client.token_sent else "no token was sent"
        if reply.status in (401, 403):
            problem = f"the server refused access (HTTP {reply.status}); {sent}"
            if client.token_sent:
                problem += ": check that the token is valid and may read this file"
            else:
                problem += ": configure a token if the file is private"
        elif reply.status == 404:
            problem = "not found (HTTP 404): check `pmr-url`"
        else:
            problem = f"unexpected answer HTTP {reply.status}"
        raise FetchError(f"{source.describe()}: {problem}")
    revision = reply.etag or hashlib.sha256(reply.body).hexdigest()[:12]
    return FetchResult((PMRDocument(name, reply.body),), revision, revision == last_revision)
