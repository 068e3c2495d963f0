"""Run a staged charm's `./dispatch` the way a Juju 3.6 unit agent runs it.

`stage_charm` lays a charm directory out as charmcraft's `charm` plugin packs it (dispatch,
hooks/, src/, lib/, the metadata files and a flat `venv/` of the pinned dependencies, see
`DISPATCH`). `JujuUnit` is one unit of that charm: it runs hooks and actions in a clean
environment holding only what the agent sets, with the fake hook tools of `hook_tools.py` on
PATH, and returns what the charm did (`Run`).

One deliberate difference from a pod: lightkube's in-cluster config reads the service-account
token from the fixed path /var/run/secrets/kubernetes.io/serviceaccount, which a test cannot
provide, so the unit finds the fake API server through KUBECONFIG, lightkube's next source.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
HOOK_TOOLS = Path(__file__).with_name("hook_tools.py")
APP = "kubeflow-profiles-automator"
MODEL = "kubeflow"
JUJU_VERSION = "3.6.11"
TIMEOUT = 300

# The `dispatch` script charmcraft 4's charm plugin writes (see a packed .charm); the hooks
# Juju would otherwise look for (install, start, upgrade-charm) are copies of it.
DISPATCH = """#!/bin/sh

JUJU_DISPATCH_PATH="${JUJU_DISPATCH_PATH:-$0}" PYTHONPATH=lib:venv \\
  exec ./src/charm.py
"""
PACKED_HOOKS = ("install", "start", "upgrade-charm")
METADATA_FILES = ("metadata.yaml", "config.yaml", "actions.yaml")
TOOL_NAMES = (
    "juju-log",
    "config-get",
    "is-leader",
    "status-set",
    "status-get",
    "application-version-set",
    "action-get",
    "action-set",
    "action-fail",
    "action-log",
    "secret-get",
    "secret-info-get",
    "state-get",
    "state-set",
    "state-delete",
    "goal-state",
    "unit-get",
)


def charm_python() -> Path:
    """The interpreter the charm runs on: Python 3.12 (the base's) when present, else ours.

    Looks on PATH, then in pyenv's versions (whose shims only work for the selected version),
    then in /usr/bin; set CHARM_PYTHON to choose one.
    """
    candidates = [os.environ.get("CHARM_PYTHON", ""), shutil.which("python3.12") or ""]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in pyenv_root.glob("versions/3.12*/bin/python3.12"))
    candidates.append("/usr/bin/python3.12")
    for candidate in filter(None, candidates):
        real = subprocess.run(
            [candidate, "-c", "import sys; print(sys.executable)"],
            capture_output=True,
            text=True,
            check=False,
        )
        if real.returncode == 0 and real.stdout.strip():
            return Path(real.stdout.strip())
    return Path(sys.executable)


def stage_charm(target: Path, python: Path) -> Path:
    """Lay the charm out in `target` as the packed .charm holds it; returns `target`."""
    target.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "src", target / "src", ignore=ignore)
    shutil.copytree(ROOT / "lib", target / "lib", ignore=ignore)
    for name in METADATA_FILES:
        shutil.copy2(ROOT / name, target / name)
    (target / "dispatch").write_text(DISPATCH)
    (target / "dispatch").chmod(0o755)
    (target / "hooks").mkdir()
    for hook in PACKED_HOOKS:
        shutil.copy2(target / "dispatch", target / "hooks" / hook)
    # The pinned set, installed flat like the plugin's venv/ (PYTHONPATH=lib:venv).
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-compile",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--target",
            str(target / "venv"),
            "--requirement",
            str(ROOT / "requirements.txt"),
        ],
        check=True,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    return target


def unpack_charm(charm: Path, target: Path) -> Path:
    """Unzip a packed .charm into `target` as Juju does, keeping the files' modes."""
    with zipfile.ZipFile(charm) as archive:
        for info in archive.infolist():
            path = Path(archive.extract(info, target))
            if mode := (info.external_attr >> 16) & 0o777:
                path.chmod(mode)
    return target


@dataclasses.dataclass(frozen=True)
class Call:
    """One hook-tool call the charm made."""

    tool: str
    args: list[str]
    stdin: str


@dataclasses.dataclass(frozen=True)
class Run:
    """What one `./dispatch` run did."""

    returncode: int
    stdout: str
    stderr: str
    calls: list[Call]
    unit_status: tuple[str, str]
    action_results: dict[str, str]
    action_failure: str | None

    def tool_calls(self, tool: str) -> list[Call]:
        return [call for call in self.calls if call.tool == tool]

    @property
    def logs(self) -> list[str]:
        """The juju-log messages, as `LEVEL message`."""
        out = []
        for call in self.tool_calls("juju-log"):
            level = call.args[call.args.index("--log-level") + 1]
            out.append(f"{level} {call.args[-1]}")
        return out

    @property
    def statuses(self) -> list[tuple[str, str]]:
        """Every unit status the charm set, in order."""
        out = []
        for call in self.tool_calls("status-set"):
            words = [a for a in call.args if not a.startswith("--application")]
            if words and words[0] == "--":
                words = words[1:]
            status = words[0]
            message = " ".join(w for w in words[1:] if w != "--")
            out.append((status, message))
        return out


class JujuUnit:
    """Unit 0 of the staged charm, with its own charm directory, hook tools and state."""

    def __init__(
        self,
        stage: Path,
        home: Path,
        python: Path,
        *,
        kubeconfig: Path,
        leader: bool = True,
    ) -> None:
        self.charm_dir = home / "charm"
        self.charm_dir.mkdir(parents=True)
        # Fresh files per unit; the large, read-only parts are shared with the session's stage.
        for entry in stage.iterdir():
            if entry.name in ("src", "lib", "venv", "hooks"):
                (self.charm_dir / entry.name).symlink_to(entry)
            else:
                shutil.copy2(entry, self.charm_dir / entry.name)
        self.home = home
        self.python = python
        self.kubeconfig = kubeconfig
        self.name = f"{APP}/0"
        self.model_uuid = str(uuid.uuid4())
        self.state_file = home / "juju-state.json"
        self.log_file = home / "hook-tools.jsonl"
        self.tools = home / "bin"
        self._write_tools()
        self._runs = 0
        self.options = yaml.safe_load((stage / "config.yaml").read_text())["options"]
        self.actions = yaml.safe_load((stage / "actions.yaml").read_text())
        self.state: dict[str, Any] = {
            "config": {},
            "leader": leader,
            "secrets": {},
            "action": None,
            "status": {
                "unit": {"status": "maintenance", "message": ""},
                "app": {"status": "unknown", "message": ""},
            },
            "unit_state": {},
            "model_uuid": self.model_uuid,
            "unit_name": self.name,
        }

    def _write_tools(self) -> None:
        self.tools.mkdir()
        (self.tools / "python3").symlink_to(self.python)
        for tool in TOOL_NAMES:
            path = self.tools / tool
            path.write_text(
                f"#!/bin/sh\nexec {sys.executable} {HOOK_TOOLS} "
                f'{self.state_file} {self.log_file} {tool} "$@"\n'
            )
            path.chmod(0o755)

    # --- arranging the model ---------------------------------------------------------------

    def configure(self, **options: Any) -> None:
        """Set options (`pmr_path=...` for `pmr-path`); config-get adds the defaults."""
        for key, value in options.items():
            self.state["config"][key.replace("_", "-")] = value

    def add_secret(self, content: Mapping[str, str], *, granted: bool = True) -> str:
        """A user secret, as `juju add-secret` makes it (which refuses invalid keys)."""
        from tests.dispatch.hook_tools import SECRET_KEY

        for key in content:
            if not SECRET_KEY.match(key):
                raise ValueError(f'juju add-secret: key "{key}" not valid')
        bare = uuid.uuid4().hex[:20]
        self.state["secrets"][bare] = {"content": dict(content), "granted": granted}
        return f"secret:{bare}"

    # --- running ---------------------------------------------------------------------------

    def hook(self, name: str, **env: str) -> Run:
        """Run the hook `name` (e.g. "install", "update-status")."""
        return self._dispatch(f"hooks/{name}", {"JUJU_HOOK_NAME": name, **env}, action=None)

    def action(self, name: str, **params: Any) -> Run:
        """Run the action `name` with `params` (dashes as underscores); Juju adds defaults."""
        schema = self.actions[name].get("params", {})
        given = {key.replace("_", "-"): value for key, value in params.items()}
        unknown = set(given) - set(schema)
        if unknown and self.actions[name].get("additionalProperties") is False:
            raise ValueError(f"juju run: unknown params for {name}: {sorted(unknown)}")
        defaults = {k: v["default"] for k, v in schema.items() if "default" in v}
        env = {"JUJU_ACTION_NAME": name, "JUJU_ACTION_UUID": str(self._runs + 1)}
        action = {"params": {**defaults, **given}, "results": {}, "failed": None}
        return self._dispatch(f"actions/{name}", env, action=action)

    def _environment(self, dispatch_path: str, extra: Mapping[str, str]) -> dict[str, str]:
        self._runs += 1
        return {
            "PATH": f"{self.tools}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "JUJU_CHARM_DIR": str(self.charm_dir),
            "JUJU_CONTEXT_ID": f"{self.name}-{dispatch_path.split('/')[-1]}-{self._runs}",
            "JUJU_DISPATCH_PATH": dispatch_path,
            "JUJU_MODEL_NAME": MODEL,
            "JUJU_MODEL_UUID": self.model_uuid,
            "JUJU_UNIT_NAME": self.name,
            "JUJU_PRINCIPAL_UNIT": "",
            "JUJU_VERSION": JUJU_VERSION,
            "JUJU_AGENT_SOCKET_ADDRESS": "@/var/lib/juju/agents/unit-0/agent.socket",
            "JUJU_AGENT_SOCKET_NETWORK": "unix",
            "JUJU_API_ADDRESSES": "10.152.183.10:17070",
            "JUJU_AVAILABILITY_ZONE": "",
            "CLOUD_API_VERSION": "1.33.0",
            "KUBECONFIG": str(self.kubeconfig),
            "NO_PROXY": "127.0.0.1,localhost",
            **extra,
        }

    def _config(self) -> dict[str, Any]:
        """What config-get prints: every option with a default, overridden by what is set."""
        merged = {k: v["default"] for k, v in self.options.items() if "default" in v}
        return {**merged, **self.state["config"]}

    def _dispatch(
        self, dispatch_path: str, extra: Mapping[str, str], *, action: dict[str, Any] | None
    ) -> Run:
        state = {**self.state, "config": self._config(), "action": action}
        self.state_file.write_text(json.dumps(state))
        self.log_file.write_text("")
        proc = subprocess.run(
            ["./dispatch"],
            cwd=self.charm_dir,
            env=self._environment(dispatch_path, extra),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        after = json.loads(self.state_file.read_text())
        # What persists between runs (like the controller's copy): status and unit state.
        self.state["status"] = after["status"]
        self.state["unit_state"] = after["unit_state"]
        calls = [
            Call(entry["tool"], entry["args"], entry["stdin"])
            for entry in map(json.loads, self.log_file.read_text().splitlines())
        ]
        done = after.get("action") or {}
        unit = after["status"]["unit"]
        return Run(
            returncode=proc.returncode,
            stdout=proc.stdout,
            stderr=proc.stderr,
            calls=calls,
            unit_status=(unit["status"], unit["message"]),
            action_results=dict(done.get("results", {})),
            action_failure=done.get("failed"),
        )
