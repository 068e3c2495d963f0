"""PMR files at a revision of the local git checkout: the `REV:PATH` side of `pmr diff`.

A CI job has the pull request checked out; the base branch is one `git` command away, so the
access review needs no API, token or network. `git` is run as a subprocess (it is there
wherever the checkout is) with the revision and path passed as separate arguments, never through
a shell. Each file is named ``REV:PATH/FILE`` so that errors say which side they are about.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from profiles_automator.sources.errors import FetchError

YAML_SUFFIXES = (".yaml", ".yml")
GIT_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class GitFile:
    """One PMR file read from git: ``REV:PATH`` and its bytes."""

    name: str
    content: bytes


def read_revision(spec: str, *, cwd: str | None = None) -> list[GitFile]:
    """Read the file or folder `spec` (``REV:PATH``, PATH from the repository's root).

    A folder gives its ``*.yaml``/``*.yml`` files, recursively, skipping hidden ones (as a
    local folder does).

    Raises:
        FetchError: not a git checkout, unknown revision or path, or no YAML files.
    """
    revision, _, path = spec.partition(":")
    path = path.strip("/") or "."
    if not revision:
        raise FetchError(f"{spec}: name a revision before the colon, e.g. origin/main:{path}")
    object_name = f"{revision}:{path if path != '.' else ''}"
    kind = _git(["cat-file", "-t", object_name], spec, cwd).decode().strip()
    if kind == "blob":
        return [GitFile(spec, _git(["cat-file", "blob", object_name], spec, cwd))]
    if kind != "tree":
        raise FetchError(f"{spec}: is a git {kind}, not a file or folder")
    listing = _git(["ls-tree", "-r", "-z", "--name-only", object_name], spec, cwd)
    names = sorted(
        name
        for name in listing.decode("utf-8", errors="surrogateescape").split("\0")
        if name.lower().endswith(YAML_SUFFIXES)
        and not any(part.startswith(".") for part in name.split("/"))
    )
    if not names:
        raise FetchError(f"{spec}: the folder holds no *.yaml or *.yml files at {revision}")
    prefix = "" if path == "." else f"{path}/"
    return [
        GitFile(
            f"{revision}:{prefix}{name}",
            _git(["cat-file", "blob", f"{revision}:{prefix}{name}"], spec, cwd),
        )
        for name in names
    ]


def _git(arguments: list[str], spec: str, cwd: str | None) -> bytes:
    try:
        done = subprocess.run(
            ["git", *arguments],
            cwd=cwd,
            capture_output=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError:
        raise FetchError(f"{spec}: reading a git revision needs the `git` command") from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"{spec}: git did not answer within {GIT_TIMEOUT_SECONDS} s") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        detail = message[0] if message else f"exit code {done.returncode}"
        if "does not exist" in detail or "exists on disk, but not in" in detail:
            hint = "check the path after the colon (it is relative to the repository's root)"
        else:
            hint = (
                "run it inside the checkout, and fetch the base branch first "
                "(actions/checkout: fetch-depth: 0, or git fetch origin main)"
            )
        raise FetchError(f"{spec}: git cannot read it ({detail}): {hint}")
    return done.stdout
