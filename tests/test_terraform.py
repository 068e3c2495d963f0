"""The Terraform module in terraform/ has the shape of Charmed Kubeflow's charm modules.

Parsed with python-hcl2 (no Terraform binary needed): the inputs, `trust = true`, the charm it
deploys, and outputs whose endpoint maps match metadata.yaml.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "terraform"
INPUTS = {
    "app_name",
    "base",
    "channel",
    "config",
    "constraints",
    "model_name",
    "revision",
    "units",
}
METADATA = yaml.safe_load((ROOT / "metadata.yaml").read_text())


def _plain(value: Any) -> Any:
    """python-hcl2 keeps HCL's quotes on strings and block labels: drop them."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _load(name: str) -> dict[str, Any]:
    with (MODULE / name).open() as handle:
        return _plain(hcl2.load(handle))


def _blocks(parsed: dict[str, Any], kind: str) -> dict[str, Any]:
    return {label: body for block in parsed.get(kind, []) for label, body in block.items()}


@pytest.fixture(scope="module")
def application() -> dict[str, Any]:
    resources = _blocks(_load("main.tf"), "resource")
    assert list(resources) == ["juju_application"]
    (app,) = resources["juju_application"].values()
    return app


def test_the_module_has_the_files_of_a_charmed_kubeflow_module():
    assert {p.name for p in MODULE.iterdir()} >= {
        "main.tf",
        "variables.tf",
        "outputs.tf",
        "versions.tf",
        "README.md",
    }


def test_inputs_are_those_of_charmed_kubeflow_modules():
    variables = _blocks(_load("variables.tf"), "variable")

    assert set(variables) == INPUTS
    assert "default" not in variables["model_name"]
    assert variables["app_name"]["default"] == METADATA["name"]
    assert variables["config"]["default"] == {}
    assert variables["units"]["default"] == 1
    assert variables["revision"]["default"] is None
    assert all(body.get("description") for body in variables.values())


def test_the_application_is_trusted_and_uses_every_input(application: dict[str, Any]):
    charm = application["charm"][0]

    assert application["trust"] is True
    assert charm["name"] == METADATA["name"]
    assert application["model"] == "${var.model_name}"
    used = set(re.findall(r"var\.([a-z_]+)", repr(application)))
    assert used == INPUTS


def test_outputs_name_the_app_and_the_charms_endpoints():
    outputs = _blocks(_load("outputs.tf"), "output")

    def endpoints(kind: str) -> dict[str, str]:
        return {name.replace("-", "_"): name for name in METADATA.get(kind) or {}}

    assert set(outputs) == {"app_name", "provides", "requires"}
    assert outputs["app_name"]["value"] == "${juju_application.kubeflow_profiles_automator.name}"
    assert outputs["provides"]["value"] == endpoints("provides")
    assert outputs["requires"]["value"] == endpoints("requires")


def test_the_juju_provider_is_pinned():
    terraform = _load("versions.tf")["terraform"][0]

    assert terraform["required_providers"][0]["juju"]["source"] == "juju/juju"
    assert terraform["required_providers"][0]["juju"]["version"]
    assert terraform["required_version"]
