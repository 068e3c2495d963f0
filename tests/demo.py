"""The README's first command: the example PMR synced by the real engine, end to end.

It starts the in-memory Kubernetes API server from tests/fakes (with its
Kubeflow profile-controller emulation), seeds it with what a real cluster
often has (a profile the PMR no longer lists, a contributor added by hand in
the dashboard), then runs the real ``pmr`` command against it: validate,
plan, sync, a second sync that changes nothing, and the stale report.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

from profiles_automator.cli import main as pmr
from profiles_automator.pmr.model import Role
from profiles_automator.sync.kfam import PolicyShape, authorization_policy, role_binding
from tests.fakes.kube_api import FakeKubeAPI

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "full"
VERBS = ("list", "get", "create", "apply", "patch", "update", "delete")


def _seed(api: FakeKubeAPI) -> None:
    """A profile the PMR no longer lists, with a contributor someone added in the dashboard."""
    api.put(
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "Profile",
            "metadata": {"name": "legacy-team"},
            "spec": {"owner": {"kind": "User", "name": "old-lead@example.com"}},
        }
    )
    api.profile_controller.reconcile()
    _grant_by_hand(api, "legacy-team", "intern@example.com")


def _grant_by_hand(api: FakeKubeAPI, namespace: str, user: str) -> None:
    """What the dashboard's "Manage contributors" (KFAM) creates."""
    for obj in (
        role_binding(namespace, user, Role.EDIT),
        authorization_policy(namespace, user, Role.EDIT, PolicyShape()),
    ):
        del obj["metadata"]["labels"]  # made by KFAM, not by us
        api.put(obj)


def _step(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def _requests(api: FakeKubeAPI) -> str:
    counts = {verb: api.count(verb) for verb in VERBS}
    return ", ".join(f"{n} {verb}" for verb, n in counts.items() if n) or "none"


def _counted(api: FakeKubeAPI, argv: list[str], *, expect: int = 0) -> bool:
    """Run one pmr command and show the requests it made; True if it exited as expected."""
    api.clear_requests()
    ok = pmr(argv) == expect
    print(f"requests: {_requests(api)}")
    return ok


def run(pmr_path: Path) -> int:
    """Run the whole demo; returns 0 when every step behaved as expected."""
    with contextlib.redirect_stderr(sys.stdout):  # keep pmr's messages in order
        return _run(pmr_path)


def _run(pmr_path: Path) -> int:
    with FakeKubeAPI(profile_controller="sync") as api, tempfile.TemporaryDirectory() as tmp:
        kubeconfig = str(api.write_kubeconfig(Path(tmp) / "kubeconfig"))
        cluster = ["--kubeconfig", kubeconfig]
        _step("0. in-memory Kubernetes API at " + api.url)
        _seed(api)
        print("seeded: Profile legacy-team (not in the PMR) with contributor intern@example.com")

        _step(f"1. pmr validate {pmr_path}")
        checks = [pmr(["validate", str(pmr_path)]) == 0]

        _step("2. pmr plan (exit code 2: there are changes)")
        checks.append(_counted(api, ["plan", str(pmr_path), *cluster], expect=2))

        _step("3. pmr sync (the safety guard is not triggered by this small revocation)")
        checks.append(_counted(api, ["sync", str(pmr_path), *cluster]))

        _step("4. someone grants eve@example.com edit in ml-research by hand; sync reverts it")
        _grant_by_hand(api, "ml-research", "eve@example.com")
        checks.append(_counted(api, ["sync", str(pmr_path), *cluster]))

        _step("5. pmr sync again: a no-op, only the four cluster-wide lists")
        checks.append(_counted(api, ["sync", str(pmr_path), *cluster]))
        checks.append(api.count() == api.count("list"))

        _step("6. pmr stale: profiles in the cluster but not in the PMR (never auto-deleted)")
        checks.append(pmr(["stale", str(pmr_path), *cluster]) == 0)

        bindings = [
            rb["metadata"]["name"]
            for rb in api.list("rbac.authorization.k8s.io/v1", "RoleBinding", "ml-research")
        ]
        _step("result")
        print("RoleBindings in ml-research: " + ", ".join(sorted(bindings)))
    ok = all(checks)
    print("\ndemo " + ("passed: every step behaved as expected" if ok else "FAILED"))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m tests.demo [PMR]``."""
    parser = argparse.ArgumentParser(prog="python -m tests.demo", description=__doc__)
    parser.add_argument("pmr", nargs="?", default=str(EXAMPLE), help="PMR file or folder")
    return run(Path(parser.parse_args(argv).pmr))


if __name__ == "__main__":
    sys.exit(main())
