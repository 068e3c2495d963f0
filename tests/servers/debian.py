"""Install the Debian package that provides a server binary, when it is missing.

The README's test command must run the real-server tests on a fresh Debian machine with nothing
installed by hand, so the first test that needs a binary installs its package with apt-get
(root only). Off Debian or without root the test is skipped locally, but never in CI: there a
missing server is a failure, not a silent skip.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

# The server binaries live in sbin directories that a non-login PATH may not list.
_SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
_APT_LOCK = threading.Lock()


def find_binary(name: str) -> str | None:
    """The binary's full path, looking in the sbin directories too."""
    found = shutil.which(name)
    if found:
        return found
    for directory in _SBIN_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_debian_package(binary: str, *packages: str) -> str:
    """Return the path of `binary`, installing `packages` from Debian first if needed.

    Skips the test when it cannot be installed here (not root, not Debian), except in CI
    (``CI`` set), where it fails with apt-get's own output.
    """
    path = find_binary(binary)
    if path:
        return path
    problem = _install(tuple(packages))
    path = find_binary(binary)
    if path:
        return path
    message = f"{binary} is not installed and could not be installed ({', '.join(packages)}): "
    message += problem or "apt-get finished but the binary is still missing"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@functools.cache
def _apt_updated() -> str:
    result = subprocess.run(
        ["apt-get", "update", "-qq"], capture_output=True, text=True, check=False, timeout=600
    )
    return "" if result.returncode == 0 else f"apt-get update failed: {result.stderr[-2000:]}"


def _install(packages: tuple[str, ...]) -> str:
    """Install packages non-interactively; return a description of what went wrong, or ''."""
    if os.geteuid() != 0:
        return "not root, so apt-get cannot run"
    if not Path("/etc/debian_version").exists() or not shutil.which("apt-get"):
        return "not a Debian system"
    with _APT_LOCK:
        problem = _apt_updated()
        if problem:
            return problem
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        # Packages like slapd try to start their service from the postinst script; policy-rc.d
        # exit 101 tells invoke-rc.d not to, so only the tests' own instances ever run.
        policy = Path("/usr/sbin/policy-rc.d")
        had_policy = policy.exists()
        if not had_policy:
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
        try:
            result = subprocess.run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
                capture_output=True,
                text=True,
                env=env,
                check=False,
                timeout=900,
            )
        finally:
            if not had_policy:
                policy.unlink(missing_ok=True)
    if result.returncode != 0:
        return f"apt-get install failed: {(result.stdout + result.stderr)[-2000:]}"
    return ""
