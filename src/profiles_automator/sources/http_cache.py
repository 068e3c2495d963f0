"""ETag + body stores for conditional HTTP requests.

Sending `If-None-Match` with the ETag of the last answer lets the server reply 304 instead of
the body; GitHub does not count such replies against the rate limit, so a sync that finds
nothing changed costs (almost) nothing. Two stores: `MemoryCache`, small enough to keep in the
charm's stored state, and `DirectoryCache` for the CLI's `--cache-dir`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)

# Bodies are base64 in `to_json`, so the JSON is ~4/3 of this: it stays well under Juju's
# default 2 MiB limit on charm state.
DEFAULT_MEMORY_CACHE_BYTES = 1024 * 1024
_FORMAT_VERSION = 1


class HTTPCache(Protocol):
    """An ETag and body store keyed by URL."""

    def get(self, url: str) -> tuple[str, bytes] | None:
        """Return the (etag, body) last stored for `url`, or None."""
        ...

    def put(self, url: str, etag: str, body: bytes) -> None:
        """Remember the ETag and body of a successful answer for `url`."""
        ...


class MemoryCache:
    """A bounded in-memory cache that serialises to JSON (for the charm's stored state).

    When the entries together exceed `max_bytes`, the least recently used are dropped: entries
    for old commits stop being read once the branch moves on, so they go first.
    """

    def __init__(self, max_bytes: int = DEFAULT_MEMORY_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Bytes held (URLs, ETags and bodies), always at most `max_bytes`."""
        return self._size

    def get(self, url: str) -> tuple[str, bytes] | None:
        """Return the (etag, body) stored for `url`, marking it recently used."""
        entry = self._entries.get(url)
        if entry is not None:
            self._entries.move_to_end(url)
        return entry

    def put(self, url: str, etag: str, body: bytes) -> None:
        """Store an entry, evicting the least recently used ones to stay within the bound."""
        self._discard(url)
        cost = _cost(url, etag, body)
        if cost > self.max_bytes:
            return
        self._entries[url] = (etag, body)
        self._size += cost
        while self._size > self.max_bytes:
            oldest = next(iter(self._entries))
            self._discard(oldest)

    def to_json(self) -> str:
        """Serialise to a JSON string (bodies base64-encoded), oldest entry first."""
        entries = [
            [url, etag, base64.b64encode(body).decode("ascii")]
            for url, (etag, body) in self._entries.items()
        ]
        return json.dumps({"version": _FORMAT_VERSION, "entries": entries})

    @classmethod
    def from_json(cls, text: str, max_bytes: int = DEFAULT_MEMORY_CACHE_BYTES) -> MemoryCache:
        """Rebuild a cache from `to_json` output; unreadable input gives an empty cache.

        A cache is only an optimisation, so a corrupt or outdated stored copy must not stop a
        sync: it is logged and ignored.
        """
        cache = cls(max_bytes)
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("version") != _FORMAT_VERSION:
                raise ValueError("unknown cache format")
            for url, etag, body in data["entries"]:
                if not (isinstance(url, str) and isinstance(etag, str)):
                    raise ValueError("malformed cache entry")
                cache.put(url, etag, base64.b64decode(body, validate=True))
        except (ValueError, TypeError, KeyError) as exc:
            logger.warning("ignoring the stored HTTP cache: %s", exc)
            return cls(max_bytes)
        return cache

    def _discard(self, url: str) -> None:
        entry = self._entries.pop(url, None)
        if entry is not None:
            self._size -= _cost(url, *entry)


class DirectoryCache:
    """A cache kept as one file per URL in a directory (for the CLI's `--cache-dir`).

    File names are the SHA-256 of the URL, so any URL maps to a safe name. Files are written
    atomically and readable by the owner only, since they may hold private repository content.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def get(self, url: str) -> tuple[str, bytes] | None:
        """Return the stored (etag, body) for `url`, or None if absent or unreadable."""
        try:
            data = self._file(url).read_bytes()
            header, body = data.split(b"\n", 1)
            meta = json.loads(header)
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("url") != url:
            return None
        etag = meta.get("etag")
        return (etag, body) if isinstance(etag, str) else None

    def put(self, url: str, etag: str, body: bytes) -> None:
        """Store an entry atomically; a failure to write is logged, not raised."""
        header = json.dumps({"url": url, "etag": etag}).encode()
        target = self._file(url)
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(header + b"\n" + body)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            logger.warning("could not write the HTTP cache in %s: %s", self.directory, exc)

    def _file(self, url: str) -> Path:
        return self.directory / hashlib.sha256(url.encode()).hexdigest()


def _cost(url: str, etag: str, body: bytes) -> int:
    return len(url) + len(etag) + len(body)
