"""Juju 3.6 hook tools, imitated for the packed-charm tests.

Run as ``python hook_tools.py STATE LOG TOOL ARGS...`` by one small wrapper per tool on the
charm's PATH (see `tests/dispatch/agent.py`), so the charm's environment holds only what Juju
sets. Every call is appended to LOG as one JSON line (tool, argv, stdin); answers come from the
JSON file STATE, which status-set, action-set and state-set also update. Errors look like
Juju's: ``ERROR ...`` on stderr, exit 1 for a failed command and 2 for a usage error.

Standard library only: this runs under whatever Python the test uses, outside the charm.
"""

from __future__ import annotations

import fcntl
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Juju's rule for a secret's keys (core/secrets): `juju add-secret` refuses anything else.
SECRET_KEY = re.compile(r"^([a-z](?:-?[a-z0-9]){2,})$")
# Juju's rule for action result keys (lowercase, digits, '-' and '.' for nesting).
RESULT_KEY = re.compile(r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
RESERVED_RESULT_KEYS = {"stdout", "stdout-encoding", "stderr", "stderr-encoding"}
STATUSES = {"active", "blocked", "maintenance", "waiting"}
LOG_LEVELS = {"TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


class ToolError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _flags(args: list[str]) -> tuple[dict[str, str | bool], list[str]]:
    """Split `--name=value`, `--name value` (for known valued flags) and positionals."""
    valued = {"--log-level", "--format", "--label", "--application", "--file", "-r"}
    flags: dict[str, str | bool] = {}
    positional: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            positional += rest
            break
        if arg.startswith("-") and len(arg) > 1:
            name, eq, value = arg.partition("=")
            if eq:
                flags[name] = value
            elif name in valued and rest:
                flags[name] = rest.pop(0)
            else:
                flags[name] = True
        else:
            positional.append(arg)
    return flags, positional


def _secret_id(raw: str, model_uuid: str) -> str:
    """The bare ID of `secret:ID`, `ID` or `secret://MODEL-UUID/ID`."""
    text = raw.strip()
    if text.startswith("secret://"):
        uuid, _, bare = text.removeprefix("secret://").partition("/")
        if uuid != model_uuid:
            raise ToolError(f'secret "{raw}" not found')
        return bare
    return text.removeprefix("secret:")


def juju_log(state: dict[str, Any], args: list[str]) -> str:
    flags, words = _flags(args)
    level = str(flags.get("--log-level", flags.get("-l", "INFO")))
    if level not in LOG_LEVELS:
        raise ToolError(f'invalid log level "{level}"', 2)
    if not words:
        raise ToolError("no message specified", 2)
    return ""


def config_get(state: dict[str, Any], args: list[str]) -> str:
    _, keys = _flags(args)
    config = state["config"]
    if keys:
        return json.dumps(config.get(keys[0]))
    return json.dumps(config)


def is_leader(state: dict[str, Any], args: list[str]) -> str:
    return json.dumps(bool(state["leader"]))


def status_set(state: dict[str, Any], args: list[str]) -> str:
    flags, words = _flags(args)
    if not words or words[0] not in STATUSES:
        raise ToolError(f"invalid status {words[0] if words else ''!r}", 2)
    app = str(flags.get("--application", "false")).lower() == "true"
    if app and not state["leader"]:
        raise ToolError("this unit is not the leader")
    entry = {"status": words[0], "message": " ".join(words[1:])}
    state["status"]["app" if app else "unit"] = entry
    return ""


def status_get(state: dict[str, Any], args: list[str]) -> str:
    flags, _ = _flags(args)
    if str(flags.get("--application", "false")).lower() == "true":
        if not state["leader"]:
            raise ToolError("finding application status: this unit is not the leader")
        app = state["status"]["app"]
        return json.dumps(
            {
                "application-status": {
                    "status": app["status"],
                    "message": app["message"],
                    "status-data": {},
                    "units": {},
                }
            }
        )
    unit = state["status"]["unit"]
    return json.dumps({"status": unit["status"], "message": unit["message"], "status-data": {}})


def application_version_set(state: dict[str, Any], args: list[str]) -> str:
    state["workload_version"] = args[-1] if args else ""
    return ""


def _action(state: dict[str, Any]) -> dict[str, Any]:
    if state.get("action") is None:
        raise ToolError("not running an action")
    return state["action"]


def action_get(state: dict[str, Any], args: list[str]) -> str:
    _, keys = _flags(args)
    params = _action(state)["params"]
    return json.dumps(params.get(keys[0]) if keys else params)


def action_set(state: dict[str, Any], args: list[str]) -> str:
    action = _action(state)
    for arg in args:
        key, eq, value = arg.partition("=")
        if not eq:
            raise ToolError(f'argument "{arg}" must be of the form key...=value', 2)
        if not RESULT_KEY.match(key) or ".." in key:
            raise ToolError(
                f'key "{key}" must start and end with lowercase alphanumeric, and contain '
                "only lowercase alphanumeric, hyphens and periods",
                2,
            )
        if key in RESERVED_RESULT_KEYS:
            raise ToolError(f'cannot set reserved action key "{key}"', 2)
        action["results"][key] = value
    return ""


def action_fail(state: dict[str, Any], args: list[str]) -> str:
    _, words = _flags(args)
    _action(state)["failed"] = " ".join(words) or "action failed without reason given"
    return ""


def action_log(state: dict[str, Any], args: list[str]) -> str:
    _action(state)
    _, words = _flags(args)
    if not words:
        raise ToolError("no message specified", 2)
    return ""


def secret_get(state: dict[str, Any], args: list[str]) -> str:
    flags, words = _flags(args)
    if not words and "--label" not in flags:
        raise ToolError("require either a secret URI or label", 2)
    if len(words) > 1 and not SECRET_KEY.match(words[1]):
        raise ToolError(f'key "{words[1]}" not valid', 2)
    if not words:
        raise ToolError(f'secret with label "{flags["--label"]}" not found')
    bare = _secret_id(words[0], state["model_uuid"])
    secret = state["secrets"].get(bare)
    if secret is None:
        raise ToolError(f'secret "{bare}" not found')
    if not secret.get("granted", True):
        raise ToolError("permission denied")
    content = secret["content"]
    if len(words) > 1:
        if words[1] not in content:
            raise ToolError(f'secret key "{words[1]}" not found')
        return json.dumps(content[words[1]])
    return json.dumps(content)


def secret_info_get(state: dict[str, Any], args: list[str]) -> str:
    _, words = _flags(args)
    bare = _secret_id(words[0], state["model_uuid"]) if words else ""
    # A user secret belongs to the model, not to this application: Juju shows no info.
    raise ToolError(f'secret "{bare}" not found')


def state_get(state: dict[str, Any], args: list[str]) -> str:
    _, keys = _flags(args)
    store = state["unit_state"]
    if keys:
        return json.dumps(store.get(keys[0]))
    return json.dumps(store)


def state_set(state: dict[str, Any], args: list[str], stdin: str = "") -> str:
    flags, pairs = _flags(args)
    if flags.get("--file") == "-":
        import yaml  # ops sends YAML; only here, so the other tools need no third-party module

        state["unit_state"].update(yaml.safe_load(stdin) or {})
    for pair in pairs:
        key, _, value = pair.partition("=")
        state["unit_state"][key] = value
    return ""


def state_delete(state: dict[str, Any], args: list[str]) -> str:
    _, keys = _flags(args)
    for key in keys:
        state["unit_state"].pop(key, None)
    return ""


def goal_state(state: dict[str, Any], args: list[str]) -> str:
    return json.dumps({"units": {state["unit_name"]: {"status": "active"}}, "relations": {}})


def unit_get(state: dict[str, Any], args: list[str]) -> str:
    _, keys = _flags(args)
    if keys and keys[0] in ("private-address", "public-address"):
        return json.dumps("10.1.0.10")
    raise ToolError(f'unknown setting "{keys[0] if keys else ""}"', 2)


TOOLS: dict[str, Callable[..., str]] = {
    "juju-log": juju_log,
    "config-get": config_get,
    "is-leader": is_leader,
    "status-set": status_set,
    "status-get": status_get,
    "application-version-set": application_version_set,
    "action-get": action_get,
    "action-set": action_set,
    "action-fail": action_fail,
    "action-log": action_log,
    "secret-get": secret_get,
    "secret-info-get": secret_info_get,
    "state-get": state_get,
    "state-set": state_set,
    "state-delete": state_delete,
    "goal-state": goal_state,
    "unit-get": unit_get,
}


def main(argv: list[str]) -> int:
    state_path, log_path, tool, args = Path(argv[1]), Path(argv[2]), argv[3], argv[4:]
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    # One lock around the whole call: the engine logs from several threads at once.
    with open(state_path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with log_path.open("a", encoding="utf-8") as log:
            log.write(json.dumps({"tool": tool, "args": args, "stdin": stdin}) + "\n")
        state = json.loads(state_path.read_text("utf-8"))
        try:
            handler = TOOLS[tool]
            out = handler(state, args, stdin) if tool == "state-set" else handler(state, args)
        except ToolError as exc:
            print(f"ERROR {exc}", file=sys.stderr)
            return exc.code
        state_path.write_text(json.dumps(state), "utf-8")
    if out:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
