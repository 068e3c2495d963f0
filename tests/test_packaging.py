"""What `charmcraft pack` needs from the repository, checked without charmcraft.

The charm plugin installs requirements.txt exactly (charm-strict-dependencies) and builds
every package from its sdist unless charm-binary-python-packages lists it. A package added to
the lock must therefore be classified here: either taken as a wheel (in charmcraft.yaml) or
checked to build from source with a pure-Python build chain (BUILDS_FROM_SOURCE, with the
backend its sdist names). To classify one, read `[build-system]` in its sdist's
pyproject.toml: a compiler (C, Rust, Cython), a non-Python backend (maturin, uv_build), a
version taken from git, or no sdist at all means binary.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
CHARMCRAFT = yaml.safe_load((ROOT / "charmcraft.yaml").read_text())
PART = CHARMCRAFT["parts"]["charm"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)(?:\s*#.*)?$")

# Checked in each pinned sdist's pyproject.toml (or setup.py): pure Python, built by pip with
# only Python build dependencies.
BUILDS_FROM_SOURCE = {
    "anyio": "setuptools + setuptools-scm",
    "attrs": "hatchling + hatch-vcs",
    "charset-normalizer": "in-tree setuptools backend; Cython speedups off unless asked for",
    "h11": "setuptools (setup.py)",
    "h2": "setuptools",
    "hpack": "setuptools",
    "hyperframe": "setuptools",
    "idna": "flit-core",
    "invoke": "setuptools",
    "jsonschema": "hatchling + hatch-vcs",
    "jsonschema-specifications": "hatchling + hatch-vcs",
    "ldap3": "setuptools (setup.py)",
    "lightkube-models": "pdm-backend",
    "msal": "setuptools (setup.py)",
    "opentelemetry-api": "hatchling",
    "ops": "hatchling",
    "paramiko": "setuptools",
    "pyasn1": "setuptools",
    "pycparser": "setuptools",
    "pyjwt": "setuptools",
    "referencing": "hatchling + hatch-vcs",
    "requests": "setuptools",
    "truststore": "flit-core",
    "typing-extensions": "flit-core",
    "urllib3": "hatchling + hatch-vcs",
    "websocket-client": "setuptools",
    "wsproto": "setuptools",
}


def _pins() -> dict[str, str]:
    pins = {}
    for number, line in enumerate((ROOT / "requirements.txt").read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        match = PIN.match(text)
        assert match, f"requirements.txt:{number}: not an exact pin `name==version`: {text!r}"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


PINS = _pins()
BINARY = {canonicalize_name(name) for name in PART["charm-binary-python-packages"]}


def test_requirements_are_generated_by_the_lock_command():
    header = (ROOT / "requirements.txt").read_text().splitlines()[:2]

    assert header[1].strip() == "#    tox -e lock"


def test_the_plugin_installs_exactly_the_lock():
    assert PART["charm-requirements"] == ["requirements.txt"]
    assert PART["charm-strict-dependencies"] is True


@pytest.mark.parametrize("dependency", PYPROJECT["project"]["dependencies"])
def test_every_runtime_dependency_is_pinned_within_its_range(dependency: str):
    requirement = Requirement(dependency)
    name = canonicalize_name(requirement.name)

    assert name in PINS, f"{name} is in pyproject.toml but not locked: run `tox -e lock`"
    assert requirement.specifier.contains(PINS[name]), (
        f"{name}=={PINS[name]} is outside {requirement.specifier}: run `tox -e lock`"
    )


@pytest.mark.parametrize("name", sorted(PINS))
def test_every_locked_package_is_classified_once(name: str):
    binary, source = name in BINARY, name in BUILDS_FROM_SOURCE

    assert binary or source, (
        f"{name} is locked but neither in charm-binary-python-packages (charmcraft.yaml) nor "
        "in BUILDS_FROM_SOURCE: check its sdist's build backend (see this module's docstring)"
    )
    assert not (binary and source), f"{name} is listed as binary and as built from source"


def test_classified_packages_are_all_locked():
    stale = (BINARY | set(BUILDS_FROM_SOURCE)) - set(PINS)

    assert not stale, f"classified but no longer locked: {sorted(stale)}"


def test_the_entrypoint_is_executable():
    entrypoint = ROOT / PART["charm-entrypoint"]

    assert os.access(entrypoint, os.X_OK)
    if shutil.which("git") and (ROOT / ".git").exists():
        staged = subprocess.run(
            ["git", "ls-files", "--stage", PART["charm-entrypoint"]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert staged.startswith("100755"), f"commit it as executable: {staged!r}"


def test_jujuignore_keeps_non_runtime_files_out():
    patterns = set((ROOT / ".jujuignore").read_text().split())

    assert {"/tests", "/build", "/.tox", "*.egg-info", "__pycache__", "/terraform"} <= patterns


def test_the_charm_runs_as_non_root_on_juju_3_6():
    metadata = yaml.safe_load((ROOT / "metadata.yaml").read_text())

    assert metadata["charm-user"] == "non-root"
    assert "juju >= 3.6" in metadata["assumes"]
    assert CHARMCRAFT["base"] == "ubuntu@24.04"
