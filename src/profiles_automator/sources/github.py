"""Read the PMR from the GitHub REST API, all of it at one commit.

The branch (or tag, or SHA) is first resolved to a commit SHA, then every file is read at
that SHA, so one sync never mixes two revisions even if someone pushes meanwhile. The SHA is
what the charm reports, and when it has not moved the files are not read again.

Errors are translated into what the administrator must change: the token, `repository`,
`branch` or `pmr-path`. On a 404 the repository itself is looked up to tell "no such
repository (or private and not visible to the token)" from "no such branch".
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from profiles_automator.sources.document import (
    TooLargeError,
    check_document,
    looks_like_html,
    too_large_error,
)
from profiles_automator.sources.errors import FetchError
from profiles_automator.sources.http_client import HTTPClient, Reply
from profiles_automator.sources.source import GitHubSource

SHA_MEDIA_TYPE = "application/vnd.github.sha"
RAW_MEDIA_TYPE = "application/vnd.github.raw+json"
JSON_MEDIA_TYPE = "application/vnd.github+json"
API_ANSWER_LIMIT = 4 * 1024 * 1024
YAML_SUFFIXES = (".yaml", ".yml")

_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
_SPLIT_HINT = "split the PMR into several files in a folder and point `pmr-path` at it"


@dataclass(frozen=True)
class GitHubSnapshot:
    """The PMR files at one commit: (repository path, bytes) pairs sorted by path."""

    sha: str
    files: tuple[tuple[str, bytes], ...]
    unchanged: bool


class GitHubReader:
    """Fetch one `GitHubSource` through an `HTTPClient` (which owns retries and caching)."""

    def __init__(self, client: HTTPClient, source: GitHubSource, max_bytes: int) -> None:
        self._client = client
        self._source = source
        self._max_bytes = max_bytes
        self._repo = source.repository
        self._host = urlsplit(source.api_url).netloc
        self._base = f"{source.api_url.rstrip('/')}/repos/{quote(source.owner, safe='')}/" + quote(
            source.name, safe=""
        )
        self._html_hint = (
            "is `github-api-url` the GitHub API URL (https://HOST/api/v3 for GitHub Enterprise)?"
        )

    def read(self, last_revision: str | None) -> GitHubSnapshot:
        """Resolve the ref, then read the file or folder at that commit (or from the cache).

        `unchanged` is True when the commit equals `last_revision`; the files then come from
        the cache without any request when it holds all of them.
        """
        sha = self.resolve()
        unchanged = sha == last_revision
        if unchanged and (files := self._cached_files(sha)) is not None:
            return GitHubSnapshot(sha, files, unchanged=True)
        return GitHubSnapshot(sha, self._read_at(sha), unchanged=unchanged)

    def resolve(self) -> str:
        """Return the commit SHA the configured branch, tag or SHA points to."""
        ref = self._source.branch
        what = f"resolving {ref!r} in {self._repo}"
        reply = self._client.get(
            f"{self._base}/commits/{quote(ref, safe='')}",
            what=what,
            accept=SHA_MEDIA_TYPE,
            limit=API_ANSWER_LIMIT,
            label=f"the commit of {ref!r}",
            check=self._check_sha,
        )
        if reply.status == 200:
            return self._parse_sha(reply.body, reply.content_type)
        if reply.status in (404, 422):
            raise self._explain_missing_ref(what)
        if reply.status == 409:
            raise FetchError(
                f"repository {self._repo} is empty ({self._host} answered HTTP 409 while {what}): "
                "commit the PMR to it first"
            )
        raise self._error(reply, what)

    def _read_at(self, sha: str) -> tuple[tuple[str, bytes], ...]:
        path = self._source.path
        body = self._read_path(path, sha, folder_ok=True)
        entries = _as_listing(body)
        if entries is None:
            return ((path, body),)
        names = sorted(
            name
            for entry in entries
            if entry.get("type") == "file"
            and isinstance(name := entry.get("name"), str)
            and "/" not in name
            and name.lower().endswith(YAML_SUFFIXES)
        )
        if not names:
            raise FetchError(
                f"folder {path!r} in {self._repo} at commit {sha[:12]} contains no .yaml or .yml "
                "files: add the PMR files there, or point `pmr-path` at a file"
            )
        return tuple(
            (f"{path}/{name}", self._read_path(f"{path}/{name}", sha, folder_ok=False))
            for name in names
        )

    def _read_path(self, path: str, sha: str, *, folder_ok: bool) -> bytes:
        """Read a file's raw bytes, or a folder's JSON listing when `folder_ok`."""
        what = f"reading {path!r} from {self._repo} at commit {sha[:12]}"

        def check(body: bytes, content_type: str) -> None:
            if folder_ok and _as_listing(body) is not None:
                return
            if _as_content_object(body) is None:
                self._check(path, body, content_type)

        try:
            reply = self._client.get(
                self._contents_url(path, sha),
                what=what,
                accept=RAW_MEDIA_TYPE,
                # A folder listing may be larger than a file may be; files are held to
                # `max_bytes` by `check`, and the error below states the files' limit.
                limit=max(self._max_bytes, API_ANSWER_LIMIT) if folder_ok else self._max_bytes,
                label=path,
                check=check,
                too_large_hint=_SPLIT_HINT,
            )
        except TooLargeError as exc:
            raise too_large_error(path, self._max_bytes, exc.size, _SPLIT_HINT) from None
        if reply.status == 404:
            raise FetchError(
                f"{path!r} not found in {self._repo} at {self._source.branch!r} "
                f"(commit {sha[:12]}): check `pmr-path`"
            )
        if reply.status != 200:
            raise self._error(reply, what)
        if obj := _as_content_object(reply.body):
            return self._decode_content_object(path, obj)
        return reply.body

    def _cached_files(self, sha: str) -> tuple[tuple[str, bytes], ...] | None:
        """Return the files at `sha` if the cache holds every one of them, else None."""
        path = self._source.path
        entry = self._client.cached(self._contents_url(path, sha))
        if entry is None or _as_content_object(entry[1]) is not None:
            return None
        entries = _as_listing(entry[1])
        if entries is None:
            self._check(path, entry[1], "")
            return ((path, entry[1]),)
        files: list[tuple[str, bytes]] = []
        for item in entries:
            name = item.get("name")
            if item.get("type") != "file" or not isinstance(name, str):
                continue
            if "/" in name or not name.lower().endswith(YAML_SUFFIXES):
                continue
            cached = self._client.cached(self._contents_url(f"{path}/{name}", sha))
            if cached is None:
                return None
            self._check(f"{path}/{name}", cached[1], "")
            files.append((f"{path}/{name}", cached[1]))
        return tuple(sorted(files)) or None

    def _contents_url(self, path: str, sha: str) -> str:
        return f"{self._base}/contents/{quote(path, safe='/')}?ref={sha}"

    def _check(self, path: str, body: bytes, content_type: str) -> None:
        check_document(
            path,
            body,
            content_type=content_type,
            max_bytes=self._max_bytes,
            html_hint=self._html_hint,
            too_large_hint=_SPLIT_HINT,
        )

    def _decode_content_object(self, path: str, obj: dict[str, Any]) -> bytes:
        """Handle a JSON object answer: a file in base64 (raw form ignored), or a non-file."""
        kind = obj.get("type")
        content = obj.get("content")
        if kind == "file" and obj.get("encoding") == "base64" and isinstance(content, str):
            try:
                body = base64.b64decode(content)
            except (binascii.Error, ValueError):
                raise FetchError(
                    f"{path!r} in {self._repo}: GitHub sent undecodable content"
                ) from None
            self._check(path, body, "")
            return body
        raise FetchError(
            f"{path!r} in {self._repo} is a {kind}, not a YAML file or a folder: check `pmr-path`"
        )

    def _check_sha(self, body: bytes, content_type: str) -> None:
        self._parse_sha(body, content_type)

    def _parse_sha(self, body: bytes, content_type: str) -> str:
        text = body.decode("utf-8", errors="replace").strip()
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except ValueError:
                data = None
            text = str(data.get("sha", "")) if isinstance(data, dict) else ""
        if _SHA.match(text.lower()):
            return text.lower()
        kind = "an HTML page" if looks_like_html(body, content_type) else "an unexpected answer"
        raise FetchError(
            f"got {kind} from {self._host} instead of a commit SHA while resolving "
            f"{self._source.branch!r} in {self._repo}: {self._html_hint}"
        )

    def _explain_missing_ref(self, what: str) -> FetchError:
        """Tell a missing repository from a missing branch by looking the repository up."""
        reply = self._client.get(
            self._base,
            what=f"checking that repository {self._repo} exists",
            accept=JSON_MEDIA_TYPE,
            limit=API_ANSWER_LIMIT,
            use_cache=False,
        )
        if reply.status == 404:
            return FetchError(self._repo_not_found())
        if reply.status != 200:
            return self._error(reply, what)
        default = _json_field(reply.body, "default_branch")
        hint = f" (its default branch is {default!r})" if default else ""
        return FetchError(
            f"branch, tag or commit {self._source.branch!r} not found in {self._repo}{hint}: "
            "check the `branch` option"
        )

    def _repo_not_found(self) -> str:
        where = f"repository {self._repo} not found at {self._host}: check `repository`"
        if self._client.token_sent:
            return (
                f"{where}; if it is private, the configured token cannot see it: grant the token "
                "read access to it (GitHub answers 404, not 403, for private repositories a "
                "token cannot see)"
            )
        return (
            f"{where}; if it is private, note that no token was sent: configure a token that "
            "can read it"
        )

    def _error(self, reply: Reply, what: str) -> FetchError:
        """Explain an answer that is neither success nor one of the expected failures."""
        message = _api_message(reply)
        detail = f"HTTP {reply.status}" + (f": {self._client.scrub(message)}" if message else "")
        if reply.status == 401:
            if self._client.token_sent:
                return FetchError(
                    f"GitHub rejected the token ({detail}) while {what}: it is invalid, expired "
                    f"or revoked; configure a valid token that can read {self._repo}"
                )
            return FetchError(
                f"{self._host} requires authentication ({detail}) while {what}, and no token "
                f"was sent: configure a token that can read {self._repo}"
            )
        if reply.status == 403:
            if self._client.token_sent:
                return FetchError(
                    f"the token cannot read {self._repo} ({detail}) while {what}: give it read "
                    "access to the repository contents (fine-grained token: Contents read-only; "
                    "classic token: repo scope) and, if the organisation enforces SAML SSO, "
                    "authorise the token for it"
                )
            return FetchError(
                f"the token is missing: {self._host} refused access to {self._repo} ({detail}) "
                f"while {what} and no token was sent; configure a token that can read it"
            )
        return FetchError(f"unexpected answer from {self._host} ({detail}) while {what}")


def _as_listing(body: bytes) -> list[dict[str, Any]] | None:
    """Return the entries if `body` is a contents-API folder listing, else None.

    Detection relies on the shape of the body (a non-empty JSON array of objects with name,
    path and type), because cached bodies come without their Content-Type.
    """
    if not body.lstrip().startswith(b"["):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, list) or not data:
        return None
    for entry in data:
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(key), str) for key in ("name", "path", "type")
        ):
            return None
    return data


def _as_content_object(body: bytes) -> dict[str, Any] | None:
    """Return the object if `body` is a contents-API JSON object (file, symlink, submodule)."""
    if not body.lstrip().startswith(b"{"):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if (
        isinstance(data, dict)
        and data.get("type") in {"file", "dir", "symlink", "submodule"}
        and all(isinstance(data.get(key), str) for key in ("name", "path", "sha"))
    ):
        return data
    return None


def _json_field(body: bytes, key: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


def _api_message(reply: Reply) -> str:
    """GitHub's own explanation (the JSON `message`), shortened for status messages."""
    return _json_field(reply.body, "message")[:200]
