"""The validated-model cache: hits skip validation, anything else validates afresh."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from profiles_automator.pmr.cache import ValidatedModelCache, cache_key, load_pmr_cached
from profiles_automator.pmr.loader import Document, load_pmr, read_paths
from profiles_automator.pmr.problems import PMRInvalidError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WITH_WARNING = b"""
profiles:
- name: team-a
  owner: {kind: User, name: a@example.com}
  contributors:
  - {name: a@example.com, role: view}
  - {name: b@example.com, role: edit}
"""


@pytest.fixture
def cache(tmp_path: Path) -> ValidatedModelCache:
    return ValidatedModelCache(tmp_path / "cache" / "validated-pmr.json")


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()))
def test_a_second_load_of_the_same_content_is_a_hit_equal_to_the_validated_model(cache, example):
    # Arrange
    documents = read_paths([EXAMPLES / example])
    validated, first_hit = load_pmr_cached(documents, cache)

    # Act
    cached, second_hit = load_pmr_cached(documents, cache)

    # Assert
    assert (first_hit, second_hit) == (False, True)
    assert cached == validated == load_pmr(documents)
    for profile in cached.pmr.profiles:
        with pytest.raises(TypeError):
            profile.resources["hard"] = {}  # type: ignore[index]  # still read-only
    assert cached.pmr.groups == validated.pmr.groups
    assert cached.pmr.identity_providers == validated.pmr.identity_providers


def test_warnings_come_back_from_the_cache(cache):
    # Arrange
    documents = [Document("pmr.yaml", WITH_WARNING)]
    validated, _ = load_pmr_cached(documents, cache)

    # Act
    cached, hit = load_pmr_cached(documents, cache)

    # Assert
    assert hit and validated.warnings
    assert [str(w) for w in cached.warnings] == [str(w) for w in validated.warnings]


@pytest.mark.parametrize(
    "changed",
    [
        [Document("pmr.yaml", WITH_WARNING.replace(b"role: edit", b"role: view"))],
        [Document("other.yaml", WITH_WARNING)],
        [Document("pmr.yaml", WITH_WARNING), Document("more.yaml", b"groups: {}\n")],
    ],
    ids=["content", "file name", "another file"],
)
def test_a_changed_document_misses_and_is_validated(cache, changed):
    # Arrange
    load_pmr_cached([Document("pmr.yaml", WITH_WARNING)], cache)

    # Act
    result, hit = load_pmr_cached(changed, cache)

    # Assert
    assert not hit
    assert result == load_pmr(changed)


def test_other_loader_options_miss(cache):
    # Arrange
    documents = [Document("pmr.yaml", WITH_WARNING)]
    load_pmr_cached(documents, cache)

    # Act / Assert
    with pytest.raises(PMRInvalidError, match="team-a"):
        load_pmr_cached(documents, cache, protected_namespaces=["team-*"])


def test_an_invalid_pmr_is_never_cached(cache):
    # Arrange
    documents = [Document("pmr.yaml", b"profiles:\n- name: Bad_Name\n")]

    # Act / Assert
    for _ in range(2):
        with pytest.raises(PMRInvalidError):
            load_pmr_cached(documents, cache)
    assert not cache.path.exists()


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],
        lambda data: data.replace(b"team-a", b"team-z"),
        lambda data: b"\x80\x81 not a cache at all",
        lambda data: b'{"format": "pmr-validated-model/1"}\n{}',
        lambda data: b"",
    ],
    ids=["truncated", "altered payload", "foreign bytes", "foreign json", "empty"],
)
def test_a_corrupt_cache_is_ignored_with_a_warning_and_replaced(cache, caplog, damage):
    # Arrange
    documents = [Document("pmr.yaml", WITH_WARNING)]
    validated, _ = load_pmr_cached(documents, cache)
    cache.path.write_bytes(damage(cache.path.read_bytes()))

    # Act
    with caplog.at_level(logging.WARNING, logger="profiles_automator.pmr.cache"):
        result, hit = load_pmr_cached(documents, cache)

    # Assert
    assert not hit and result == validated
    assert "ignoring the validated-PMR cache" in caplog.text
    assert load_pmr_cached(documents, cache)[1]  # rewritten: the next load hits


def test_an_entry_for_other_content_is_a_silent_miss(cache, caplog):
    # Arrange
    documents = [Document("pmr.yaml", WITH_WARNING)]
    cache.write("0" * 64, load_pmr(documents))

    # Act
    with caplog.at_level(logging.WARNING):
        _, hit = load_pmr_cached(documents, cache)

    # Assert
    assert not hit and not caplog.records


def test_the_key_covers_names_contents_and_options():
    # Arrange
    base = [Document("a.yaml", b"profiles: []\n")]

    # Act
    keys = {
        cache_key(base),
        cache_key([Document("b.yaml", b"profiles: []\n")]),
        cache_key([Document("a.yaml", b"profiles: [] \n")]),
        # moving bytes between the name and the content is another PMR
        cache_key([Document("a.yamlp", b"rofiles: []\n")]),
        cache_key(base, protected_namespaces=["x"]),
        cache_key(base, max_bytes=10),
    }

    # Assert
    assert len(keys) == 6


def test_an_unwritable_cache_still_loads(tmp_path: Path, caplog):
    # Arrange
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = ValidatedModelCache(blocker / "validated-pmr.json")
    documents = [Document("pmr.yaml", WITH_WARNING)]

    # Act
    with caplog.at_level(logging.WARNING):
        result, hit = load_pmr_cached(documents, cache)

    # Assert
    assert not hit and result == load_pmr(documents)
    assert "could not write the validated-PMR cache" in caplog.text
