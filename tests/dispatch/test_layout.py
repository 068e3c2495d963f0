"""The staged (or packed, with CHARM_PATH) charm holds what dispatch needs, for its Python."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.dispatch.agent import DISPATCH


def test_dispatch_and_the_entrypoint_are_executable(staged_charm: Path):
    assert (staged_charm / "dispatch").read_text() == DISPATCH
    assert os.access(staged_charm / "dispatch", os.X_OK)
    assert os.access(staged_charm / "src" / "charm.py", os.X_OK)


def test_the_venv_imports_the_engine_and_loads_its_schema(staged_charm: Path, python: Path):
    script = (
        "import sys, charm; "
        "from profiles_automator.pmr.schema import pmr_schema; "
        "print(sys.version_info[:2], pmr_schema()['$schema'])"
    )

    # As dispatch runs it: cwd the charm, PYTHONPATH=lib:venv, src/ first on sys.path.
    out = subprocess.run(
        [str(python), "-c", f"import sys; sys.path.insert(0, 'src'); {script}"],
        cwd=staged_charm,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": "lib:venv"},
        capture_output=True,
        text=True,
        check=False,
    )

    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("https://json-schema.org/draft/2020-12/schema")


def test_compiled_wheels_match_the_python(staged_charm: Path, python: Path):
    tag = subprocess.run(
        [
            str(python),
            "-c",
            "import sys; print(f'cpython-{sys.version_info[0]}{sys.version_info[1]}')",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    extensions = list((staged_charm / "venv").rglob("*.so"))

    assert extensions, "the pins include compiled wheels (pyyaml, msgspec, rpds-py, ...)"
    assert all(".abi3." in so.name or tag in so.name for so in extensions), tag
