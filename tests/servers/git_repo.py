"""Bare git repositories for the git servers, built with Debian's git plumbing.

Commits are written straight into the bare repository (hash-object, a throwaway index,
write-tree, commit-tree, update-ref), so a test can point a branch anywhere, including at a
commit that does not descend from the old tip: a force-push.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": tempfile.gettempdir(),
}

# A file's content, or (mode, content) for a symbolic link ("120000") or an executable file.
Entry = bytes | tuple[str, bytes]


class BareRepo:
    """One bare repository on disk; `commit` moves a branch to a new snapshot of files."""

    def __init__(self, path: Path, default_branch: str = "main") -> None:
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "--quiet", "--bare", f"--initial-branch={default_branch}")

    def git(self, *args: str, data: bytes | None = None, env: Mapping[str, str] = {}) -> str:
        """Run git in the repository and return its stripped stdout."""
        result = subprocess.run(
            ["git", *args],
            cwd=self.path,
            input=data,
            capture_output=True,
            env={**os.environ, **_ENV, **env},
            check=True,
            timeout=60,
        )
        return result.stdout.decode().strip()

    def commit(
        self,
        files: Mapping[str, Entry],
        *,
        branch: str = "main",
        parent: str | None = None,
        message: str = "update the PMR",
        submodules: Mapping[str, str] | None = None,
    ) -> str:
        """Point `branch` at a new commit holding exactly `files` (and `submodules`).

        The parent is the branch's current tip unless `parent` is given ("" for none: the
        branch is rewritten as after a force-push).
        """
        with tempfile.TemporaryDirectory() as scratch:
            env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            for name, entry in files.items():
                mode, content = entry if isinstance(entry, tuple) else ("100644", entry)
                blob = self.git("hash-object", "-w", "--stdin", data=content)
                self.git("update-index", "--add", "--cacheinfo", f"{mode},{blob},{name}", env=env)
            for name, sha in (submodules or {}).items():
                self.git("update-index", "--add", "--cacheinfo", f"160000,{sha},{name}", env=env)
            tree = self.git("write-tree", env=env)
        if parent is None:
            parent = self.tip(branch)
        parents = ["-p", parent] if parent else []
        sha = self.git("commit-tree", tree, *parents, "-m", message)
        self.git("update-ref", f"refs/heads/{branch}", sha)
        return sha

    def tip(self, branch: str = "main") -> str:
        """The branch's commit, or "" when it does not exist."""
        try:
            return self.git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
        except subprocess.CalledProcessError:
            return ""

    def tag(self, name: str, sha: str, *, annotated: bool = False) -> None:
        """Tag a commit (an annotated tag object when `annotated`)."""
        if annotated:
            self.git("tag", "-a", name, sha, "-m", f"tag {name}")
        else:
            self.git("update-ref", f"refs/tags/{name}", sha)

    def config(self, key: str, value: str) -> None:
        """Set a config value of the repository (e.g. uploadpack.allowAnySHA1InWant)."""
        self.git("config", key, value)
