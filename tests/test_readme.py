"""The README stays true: its configuration table and PMR example match the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from profiles_automator.pmr.loader import Document, load_pmr

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())["options"]
ROW = re.compile(r"^\| `([a-z-]+)` \| (\w+) \|([^|]*)\|", re.MULTILINE)


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _config_rows() -> dict[str, tuple[str, str]]:
    table = _section(README.read_text(), "Configuration")
    return {name: (kind, default.strip()) for name, kind, default in ROW.findall(table)}


def test_readme_configuration_table_lists_every_option_once():
    assert sorted(_config_rows()) == sorted(CONFIG)


@pytest.mark.parametrize("option", sorted(CONFIG))
def test_readme_configuration_row_matches_config_yaml(option: str):
    kind, default = _config_rows()[option]
    expected = CONFIG[option].get("default", "")
    if isinstance(expected, bool):
        expected = str(expected).lower()

    assert kind == CONFIG[option]["type"]
    assert default == (f"`{expected}`" if expected != "" else "")


def test_docs_charm_configuration_table_lists_every_option():
    table = _section((ROOT / "docs" / "charm.md").read_text(), "Configuration")

    assert sorted(re.findall(r"^\| `([a-z-]+)` \|", table, re.MULTILINE)) == sorted(CONFIG)


def test_readme_pmr_example_is_valid():
    block = _section(README.read_text(), "The PMR").split("```yaml\n")[1].split("```")[0]

    result = load_pmr([Document("README.md", block.encode())])

    assert [p.name for p in result.pmr.profiles] == ["ml-engineers"]


def test_readme_names_the_test_command_that_ci_runs():
    command = "python3 -m pip install 'tox>=4.4' && python3 -m tox"
    ci = (ROOT / ".ci" / "run").read_text()

    assert command in README.read_text()
    assert command in ci
    assert f"{command} -e demo" in README.read_text()


def _permission_rows(text: str) -> dict[str, set[str]]:
    """`resource (names)` -> verbs, from a Permissions table."""
    table = _section(text, "Permissions")
    rows = re.findall(r"^\| (`[^|]+) \| ([a-z, ]+) \|", table, re.MULTILINE)
    return {
        " ".join(re.findall(r"`([^`]+)`", resource)): {v.strip() for v in verbs.split(",")}
        for resource, verbs in rows
    }


def _manifest_rules() -> dict[str, set[str]]:
    documents = yaml.safe_load_all((ROOT / "docs" / "rbac.yaml").read_text())
    role = next(d for d in documents if d["kind"] == "ClusterRole")
    rules: dict[str, set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                qualified = f"{resource}.{group}" if group else resource
                key = " ".join([qualified, *rule.get("resourceNames", [])])
                rules.setdefault(key, set()).update(rule["verbs"])
    return rules


@pytest.mark.parametrize("document", ["README.md", "docs/charm.md"])
def test_permissions_tables_match_docs_rbac_yaml(document: str):
    assert _permission_rows((ROOT / document).read_text()) == _manifest_rules()
