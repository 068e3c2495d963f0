"""The ETag + body stores."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from profiles_automator.sources.fetch import DirectoryCache, HTTPCache, MemoryCache


def test_memory_cache_round_trip_through_json():
    cache = MemoryCache()
    cache.put("https://a/1", '"e1"', b"\x00\xffbinary")
    cache.put("https://a/2", 'W/"e2"', b"text")
    restored = MemoryCache.from_json(cache.to_json())
    assert restored.get("https://a/1") == ('"e1"', b"\x00\xffbinary")
    assert restored.get("https://a/2") == ('W/"e2"', b"text")
    assert restored.get("https://a/3") is None


def test_memory_cache_is_bounded_and_evicts_least_recently_used():
    cache = MemoryCache(max_bytes=300)
    for index in range(3):
        cache.put(f"u{index}", "e", b"x" * 90)
    assert cache.get("u0") is not None  # u0 is now the most recently used
    cache.put("u3", "e", b"x" * 90)
    assert cache.get("u1") is None
    assert all(cache.get(url) is not None for url in ("u0", "u2", "u3"))
    assert cache.size <= 300


def test_memory_cache_skips_an_entry_larger_than_the_bound():
    cache = MemoryCache(max_bytes=100)
    cache.put("small", "e", b"x")
    cache.put("big", "e", b"x" * 200)
    assert cache.get("big") is None
    assert cache.get("small") is not None


def test_memory_cache_replaces_an_entry():
    cache = MemoryCache()
    cache.put("u", "e1", b"one")
    cache.put("u", "e2", b"two!")
    assert cache.get("u") == ("e2", b"two!")
    assert len(cache) == 1
    assert cache.size == len("u") + len("e2") + len(b"two!")


@pytest.mark.parametrize("text", ["", "not json", "[]", '{"version": 99, "entries": []}'])
def test_memory_cache_from_bad_json_is_empty(text: str, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING):
        cache = MemoryCache.from_json(text)
    assert len(cache) == 0
    assert "ignoring the stored HTTP cache" in caplog.text


def test_memory_cache_json_respects_a_smaller_bound():
    cache = MemoryCache()
    for index in range(10):
        cache.put(f"u{index}", "e", b"x" * 100)
    restored = MemoryCache.from_json(cache.to_json(), max_bytes=350)
    assert restored.size <= 350
    assert restored.get("u9") is not None  # the newest survive
    assert restored.get("u0") is None


def test_directory_cache(tmp_path: Path):
    directory = tmp_path / "cache"
    cache: HTTPCache = DirectoryCache(directory)
    url = "https://api.github.com/repos/o/r/contents/a b/../c?ref=x"
    cache.put(url, '"etag"', b"body\nwith lines\n")
    assert DirectoryCache(directory).get(url) == ('"etag"', b"body\nwith lines\n")
    assert cache.get(url + "&other") is None
    files = os.listdir(directory)
    assert len(files) == 1
    assert len(files[0]) == 64 and all(c in "0123456789abcdef" for c in files[0])
    assert stat.S_IMODE((directory / files[0]).stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_directory_cache_ignores_corrupt_files(tmp_path: Path):
    cache = DirectoryCache(tmp_path)
    cache.put("u", "e", b"b")
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"garbage without header")
    assert cache.get("u") is None
    path.write_bytes(b'{"url": "other", "etag": "e"}\nb')
    assert cache.get("u") is None
