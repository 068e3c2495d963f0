"""The access review (`pmr diff`): golden outputs, git revisions, exit codes, and the rules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from profiles_automator.cli import main
from profiles_automator.pmr.loader import Document, load_pmr
from profiles_automator.pmr.model import PMR, Role
from profiles_automator.report.access_diff import AccessChange, access_diff, render_text
from profiles_automator.report.markdown import code, escape_cell

HERE = Path(__file__).parent
PAIR = HERE / "pmr_pair"
GOLDEN = HERE / "golden"
BASE, HEAD = "tests/report/pmr_pair/base", "tests/report/pmr_pair/head"
ROOT = HERE.parents[1]
GIT = ("git", "-c", "user.name=t", "-c", "user.email=t@example.com")
OWNED_A = "profiles:\n- name: a\n  owner: {kind: User, name: o@example.com}\n"


def pmr(text: str) -> PMR:
    return load_pmr([Document("pmr.yaml", text.encode())]).pmr


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("output", "suffix"), [("text", "txt"), ("markdown", "md"), ("json", "json")]
)
def test_golden_output_covers_every_kind_of_change(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, output: str, suffix: str
):
    monkeypatch.chdir(ROOT)

    code, out, err = run(capsys, "diff", BASE, HEAD, "--output", output)

    golden = GOLDEN / f"diff.{suffix}"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(out, encoding="utf-8")
    assert (code, err) == (2, "")
    assert out == golden.read_text(encoding="utf-8")


def test_the_golden_pair_really_covers_every_kind_of_change():
    diff = access_diff(_load(PAIR / "base"), _load(PAIR / "head"))

    kinds = {p.change for p in diff.profiles}
    access = {a.kind for p in diff.profiles for a in p.access}
    settings = {s.setting.split(" ")[0] for p in diff.profiles for s in p.settings}
    routes = {route.split(" ")[0] for p in diff.profiles for a in p.access for route in a.via}
    values = {(s.before is None, s.after is None) for p in diff.profiles for s in p.settings}
    assert kinds == {"added", "removed", "changed"}
    assert access == {"gains", "loses", "role"}
    assert settings == {"owner", "quota", "plugin", "clusters"}
    assert routes == {"direct", "group", "defaults"}
    assert values == {(False, False), (True, False), (False, True)}


def test_the_same_pmr_on_both_sides_is_no_change(capsys: pytest.CaptureFixture[str]):
    code, out, _ = run(capsys, "diff", str(PAIR / "base"), str(PAIR / "base"))

    assert code == 0
    assert "No changes: nobody gains or loses access." in out


def test_an_invalid_side_is_named_with_its_located_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    broken = tmp_path / "pmr.yaml"
    broken.write_text(OWNED_A + "  contributors:\n  - {name: y@example.com, role: edtor}\n")

    code, out, err = run(capsys, "diff", str(PAIR / "base"), str(broken))

    assert (code, out) == (1, "")
    assert err.startswith(f"HEAD ({broken}) is not a valid PMR:\n{broken}:5:")
    assert "'edtor' is not one of" in err


def test_a_missing_side_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    code, _, err = run(capsys, "diff", str(tmp_path / "nope"), str(PAIR / "head"))

    assert code == 1
    assert "BASE" in err and "no such file or folder" in err


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository whose main holds the base pair and whose work tree holds the head."""
    if shutil.which("git") is None:
        pytest.fail("git is needed for REV:PATH (Debian package git)")
    repo = tmp_path / "access"
    shutil.copytree(PAIR / "base", repo / "pmr")
    git = [*GIT, "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "-C", str(repo), "add", "."], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "base"], check=True)
    shutil.rmtree(repo / "pmr")
    shutil.copytree(PAIR / "head", repo / "pmr")
    monkeypatch.chdir(repo)
    return repo


def test_a_git_revision_is_one_side(capsys: pytest.CaptureFixture[str], checkout: Path):
    code, out, _ = run(capsys, "diff", "main:pmr", "pmr", "--output", "json")

    data = json.loads(out)
    golden = json.loads((GOLDEN / "diff.json").read_text())
    assert code == 2
    assert (data["base"], data["head"]) == ("main:pmr", "pmr")
    assert data["profiles"] == golden["profiles"]


def test_errors_at_a_git_revision_name_the_revision_and_file(
    capsys: pytest.CaptureFixture[str], checkout: Path
):
    bad = "profiles: [{name: a, owner: {kind: Usr, name: b@example.com}}]\n"
    (checkout / "pmr" / "profiles.yaml").write_text(bad)
    subprocess.run([*GIT, "add", "."], check=True)
    subprocess.run([*GIT, "commit", "-qm", "bad"], check=True)

    code, _, err = run(capsys, "diff", "HEAD:pmr", "main:pmr")

    assert code == 1
    assert err.startswith("BASE (HEAD:pmr) is not a valid PMR:\nHEAD:pmr/profiles.yaml:1:")


@pytest.mark.parametrize(
    ("spec", "problem"),
    [("nosuchbranch:pmr", "fetch the base branch"), ("main:elsewhere", "check the path")],
)
def test_an_unreadable_revision_says_what_to_fix(
    capsys: pytest.CaptureFixture[str], checkout: Path, spec: str, problem: str
):
    code, _, err = run(capsys, "diff", spec, "pmr")

    assert code == 1
    assert err.startswith(f"BASE: {spec}: git cannot read it")
    assert problem in err


def test_a_contributor_who_becomes_the_owner_loses_nothing():
    base = pmr(OWNED_A + "  contributors: [{name: b@example.com, role: edit}]\n")
    head = pmr("profiles:\n- name: a\n  owner: {kind: User, name: b@example.com}\n")

    (profile,) = access_diff(base, head).profiles

    assert profile.access == ()
    assert [(s.setting, s.before, s.after) for s in profile.settings] == [
        ("owner", "User o@example.com", "User b@example.com")
    ]


def test_a_route_change_with_the_same_role_is_no_access_change():
    base = pmr(
        "groups: {g: {members: [u@example.com]}}\n"
        + OWNED_A
        + "  contributors: [{group: g, role: view}]\n"
    )
    head = pmr(OWNED_A + "  contributors: [{name: u@example.com, role: view}]\n")

    assert not access_diff(base, head).has_changes


def test_the_cluster_name_limits_the_review_to_that_cluster():
    base = pmr(OWNED_A)
    head = pmr(OWNED_A + "  clusters: [prod]\n")

    staging = access_diff(base, head, cluster_name="staging")
    prod = access_diff(base, head, cluster_name="prod")

    assert [(p.name, p.change) for p in staging.profiles] == [("a", "removed")]
    assert [s.setting for p in prod.profiles for s in p.settings] == ["clusters"]


def test_unresolved_groups_are_said_in_every_output():
    same = pmr("profiles: []\n")

    diff = access_diff(same, same, unresolved_groups=["ml-team", "ml-team", "admins"])

    assert diff.unresolved_groups == ("admins", "ml-team")
    assert "group membership was not resolved for admins, ml-team" in render_text(diff, "a", "b")
    assert diff.to_json()["group_membership_resolved"] is False


def test_markdown_cells_and_code_cannot_break_the_table():
    assert escape_cell("a|b\nc") == "a\\|b c"
    assert code("x`y") == "``x`y``"
    assert code("`x") == "`` `x ``"


def test_access_changes_serialise_roles_by_name():
    change = AccessChange("u", "role", Role.VIEW, Role.ADMIN, ("direct entry",))

    assert change.to_json() == {
        "user": "u",
        "change": "role",
        "before": "view",
        "after": "admin",
        "via": ["direct entry"],
    }


def _load(folder: Path) -> PMR:
    files = sorted(folder.glob("*.yaml"))
    return load_pmr([Document(str(f), f.read_bytes()) for f in files]).pmr


def test_a_single_file_at_a_git_revision(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    repo = tmp_path / "single"
    repo.mkdir()
    (repo / "pmr.yaml").write_text(OWNED_A)
    subprocess.run([*GIT, "-c", "init.defaultBranch=main", "init", "-q", str(repo)], check=True)
    subprocess.run([*GIT, "-C", str(repo), "add", "."], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-qm", "one"], check=True)
    grant = "  contributors: [{name: b@example.com, role: view}]\n"
    (repo / "pmr.yaml").write_text(OWNED_A + grant)
    monkeypatch.chdir(repo)

    code, out, _ = run(capsys, "diff", "main:pmr.yaml", "pmr.yaml")

    assert code == 2
    assert out == (
        "Access review: main:pmr.yaml -> pmr.yaml\n"
        "profile a: changed\n"
        "  + b@example.com gains view (via direct entry)\n"
        "Summary: 1 profile changed; 1 grant, 0 revocations, 0 role changes.\n"
    )
