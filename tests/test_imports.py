"""A hook or a `pmr` run loads the heavy libraries only for the sources that use them.

paramiko (with cryptography), dulwich, PyJWT, msal and ldap3 cost a charm hook about 20 MiB
at import; a GitHub repository read over the API and a PMR without identity providers need
none of them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("paramiko", "dulwich", "jwt", "cryptography", "msal", "ldap3")


@pytest.mark.parametrize("module", ["charm", "profiles_automator.cli"])
def test_importing_the_entry_points_loads_no_source_or_provider_library(module):
    # Arrange
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "lib")])}

    # Act
    loaded = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()

    # Assert
    assert loaded == []
