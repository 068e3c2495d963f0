"""Every secret key the charm reads, or the docs tell an admin to create, is one Juju can store.

Juju accepts secret keys matching ^([a-z](?:-?[a-z0-9]){2,})$ only: `juju add-secret` refuses
e.g. `ca.crt`, so a charm expecting such a key could never be configured.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import charm
import charm_config
from profiles_automator.identity import resolver

ROOT = Path(__file__).resolve().parents[1]
JUJU_SECRET_KEY = re.compile(r"^([a-z](?:-?[a-z0-9]){2,})$")
DOCUMENTS = [
    ROOT / "config.yaml",
    ROOT / "README.md",
    ROOT / "terraform" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
# `juju add-secret NAME key=value key2#file=path ...` on one line.
ADD_SECRET = re.compile(r"juju add-secret[ \t]+\S+((?:[ \t]+[^\s;&|`]+)+)")


def _code_keys() -> set[str]:
    """The secret keys the code names: SECRET_KEYS, every `*_KEY` constant, the providers'."""
    keys = {key for names in charm.SECRET_KEYS.values() for key in names}
    for table in (resolver.REQUIRED_KEYS, resolver.OPTIONAL_KEYS):
        keys |= {key for names in table.values() for key in names}
    for module in (charm, charm_config):
        for name, value in vars(module).items():
            if name.endswith("_KEY") and isinstance(value, str):
                keys.add(value)
    return keys


def _documented_keys() -> set[tuple[str, str]]:
    found = set()
    for path in DOCUMENTS:
        for match in ADD_SECRET.finditer(path.read_text()):
            for arg in match.group(1).split():
                if arg.startswith("-") or "=" not in arg:
                    continue
                key = re.split(r"[=#]", arg, maxsplit=1)[0]
                found.add((path.name, key))
    return found


def test_the_rule_is_juju_s():
    assert JUJU_SECRET_KEY.match("ca-cert")
    assert not JUJU_SECRET_KEY.match("ca.crt")
    assert not JUJU_SECRET_KEY.match("ab")
    assert not JUJU_SECRET_KEY.match("client--secret")


@pytest.mark.parametrize("key", sorted(_code_keys()))
def test_every_key_the_charm_reads_is_valid(key: str):
    assert JUJU_SECRET_KEY.match(key), f"Juju cannot store the secret key {key!r}"


def test_every_secret_option_has_its_keys():
    options = {name for name, spec in _options().items() if spec["type"] == "secret"}

    assert set(charm.SECRET_KEYS) == options, (
        "list the keys each secret option's secret holds in charm.SECRET_KEYS"
    )


@pytest.mark.parametrize(("document", "key"), sorted(_documented_keys()))
def test_every_documented_add_secret_key_is_valid(document: str, key: str):
    assert JUJU_SECRET_KEY.match(key), f"{document}: `juju add-secret` refuses the key {key!r}"


def test_the_documents_show_add_secret():
    assert {key for _, key in _documented_keys()} >= {"token", "ca-cert"}


def _options() -> dict[str, dict]:
    import yaml

    return yaml.safe_load((ROOT / "config.yaml").read_text())["options"]
