"""Loading valid PMRs: merging, groups, defaults, roles, warnings and the immutable model."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from typing import Any, cast

import pytest

from profiles_automator.pmr.loader import Document, LoadResult, load_pmr, read_paths
from profiles_automator.pmr.model import PMR, Owner, Profile, Role
from profiles_automator.pmr.problems import PMRInvalidError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(text: str, name: str = "pmr.yaml") -> LoadResult:
    return load_pmr([Document(name, textwrap.dedent(text).encode())])


def only_profile(result: LoadResult) -> Profile:
    (profile,) = result.pmr.profiles
    return profile


def roles(profile: Profile) -> dict[str, Role]:
    return {c.name: c.role for c in profile.contributors}


def warnings(result: LoadResult) -> list[str]:
    return [str(w) for w in result.warnings]


def by_name(pmr: PMR) -> dict[str, Profile]:
    return {p.name: p for p in pmr.profiles}


def test_github_profiles_automator_format_loads_unchanged():
    result = load(
        """\
        profiles:
        - name: ml-engineers
          owner:
            kind: User
            name: admin@canonical.com
          resources:
            hard:
              limits.cpu: "1"
          contributors:
          - name: kimonas@canonical.com
            role: admin
          - name: michal@canonical.com
            role: edit
          - name: daniela@canonical.com
            role: view
        """
    )

    profile = only_profile(result)
    assert profile.name == "ml-engineers"
    assert profile.owner == Owner("User", "admin@canonical.com")
    assert dict(profile.resources["hard"]) == {"limits.cpu": "1"}
    assert roles(profile) == {
        "daniela@canonical.com": Role.VIEW,
        "kimonas@canonical.com": Role.ADMIN,
        "michal@canonical.com": Role.EDIT,
    }
    assert profile.plugins == ()
    assert profile.clusters is None
    assert result.warnings == ()


def test_absent_version_means_version_1():
    body = "profiles:\n- name: team-a\n  owner: {kind: User, name: owner@x.io}\n"

    without = load(body)
    with_version = load(body + "version: 1\n")

    assert without.pmr == with_version.pmr


def test_group_expands_to_one_contributor_per_member():
    result = load(
        """\
        groups:
          ml-team:
            members: [alice@x.io, bob@x.io, carol@x.io]
        profiles:
        - name: team-a
          owner: {kind: User, name: owner@x.io}
          contributors:
          - {group: ml-team, role: edit}
        """
    )

    profile = only_profile(result)
    assert roles(profile) == {
        "alice@x.io": Role.EDIT,
        "bob@x.io": Role.EDIT,
        "carol@x.io": Role.EDIT,
    }
    assert {c.origins[0].group for c in profile.contributors} == {"ml-team"}


def test_group_members_listed_twice_count_once():
    result = load(
        """\
        groups:
          ml-team: {members: [bob@x.io, bob@x.io]}
        profiles:
        - name: team-a
          owner: {kind: User, name: owner@x.io}
          contributors: [{group: ml-team, role: view}]
        """
    )

    assert result.pmr.groups["ml-team"] == ("bob@x.io",)


def test_user_reached_three_ways_gets_the_widest_role_and_every_origin():
    result = load(
        """\
        groups:
          ml-team: {members: [bob@x.io]}
        defaults:
          contributors:
          - {name: bob@x.io, role: admin}
        profiles:
        - name: team-a
          owner: {kind: User, name: owner@x.io}
          contributors:
          - {name: bob@x.io, role: view}
          - {group: ml-team, role: edit}
        """
    )

    (bob,) = only_profile(result).contributors
    assert bob.role is Role.ADMIN
    assert [(o.path, o.group, str(o.location)) for o in bob.origins] == [
        ("profiles[0].contributors[0].name", None, "pmr.yaml:10:12"),
        ("profiles[0].contributors[1]", "ml-team", "pmr.yaml:11:5"),
        ("defaults.contributors[0].name", None, "pmr.yaml:5:12"),
    ]


def test_defaults_owner_applies_only_to_profiles_without_an_owner():
    result = load(
        """\
        defaults:
          owner: {kind: User, name: platform@x.io}
        profiles:
        - name: team-a
        - name: team-b
          owner: {kind: ServiceAccount, name: ci-bot, namespace: ci}
        """
    )

    profiles = by_name(result.pmr)
    assert profiles["team-a"].owner == Owner("User", "platform@x.io")
    assert profiles["team-b"].owner == Owner("ServiceAccount", "ci-bot", "ci")


def test_defaults_resources_apply_only_to_profiles_without_resources():
    result = load(
        """\
        defaults:
          owner: {kind: User, name: platform@x.io}
          resources: {hard: {limits.cpu: "8"}}
        profiles:
        - name: inherits
        - name: own-quota
          resources: {hard: {limits.cpu: "2"}}
        - name: no-quota
          resources: {}
        """
    )

    profiles = by_name(result.pmr)
    assert dict(profiles["inherits"].resources["hard"]) == {"limits.cpu": "8"}
    assert dict(profiles["own-quota"].resources["hard"]) == {"limits.cpu": "2"}
    assert dict(profiles["no-quota"].resources) == {}


def test_defaults_contributors_are_added_to_every_profile():
    result = load(
        """\
        defaults:
          contributors:
          - {name: auditor@x.io, role: view}
        profiles:
        - name: team-a
          owner: {kind: User, name: owner@x.io}
        - name: team-b
          owner: {kind: User, name: owner@x.io}
          contributors:
          - {name: bob@x.io, role: edit}
        """
    )

    profiles = by_name(result.pmr)
    assert roles(profiles["team-a"]) == {"auditor@x.io": Role.VIEW}
    assert roles(profiles["team-b"]) == {"auditor@x.io": Role.VIEW, "bob@x.io": Role.EDIT}


def test_owner_listed_by_name_as_contributor_is_dropped_with_a_warning():
    result = load(
        """\
        profiles:
        - name: team-a
          owner: {kind: User, name: owner@x.io}
          contributors:
          - {name: owner@x.io, role: edit}
          - {name: bob@x.io, role: view}
        """
    )

    assert roles(only_profile(result)) == {"bob@x.io": Role.VIEW}
    assert warnings(result) == [
        "pmr.yaml:5:12: profiles[0].contributors[0].name: warning: owner@x.io owns profile "
        "'team-a' and already has admin access; this contributor entry is ignored"
    ]


def test_owner_reached_only_through_a_group_is_dropped_silently():
    result = load(
        """\
        groups:
          ml-team: {members: [owner@x.io, bob@x.io]}
        profiles:
        - name: team-a
          owner: {kind: User, name: owner@x.io}
          contributors:
          - {group: ml-team, role: edit}
        """
    )

    assert roles(only_profile(result)) == {"bob@x.io": Role.EDIT}
    assert result.warnings == ()


def test_group_owner_named_as_contributor_is_kept():
    """Only a User owner already has the access a contributor entry would give."""
    result = load(
        """\
        profiles:
        - name: team-a
          owner: {kind: Group, name: ml-admins}
          contributors:
          - {name: bob@x.io, role: edit}
        """
    )

    assert roles(only_profile(result)) == {"bob@x.io": Role.EDIT}


def test_group_owner_is_accepted_with_a_warning_about_dashboard_access():
    result = load(
        """\
        profiles:
        - name: team-a
          owner: {kind: Group, name: ml-admins}
        """
    )

    assert only_profile(result).owner.kind == "Group"
    assert warnings(result) == [
        "pmr.yaml:3:10: profiles[0].owner: warning: profile 'team-a' is owned by Group "
        "'ml-admins': its members get Kubernetes RBAC, but Kubeflow grants web access by "
        "matching the owner's name in the user-id header, so none of them can use the profile "
        "through the dashboard (kubeflow/kubeflow#4923); make one person the owner and the "
        "group contributors instead"
    ]


def test_empty_group_in_use_warns():
    result = load(
        """\
        groups:
          nobody: {members: []}
        profiles:
        - name: team-a
          owner: {kind: User, name: owner@x.io}
          contributors:
          - {group: nobody, role: edit}
        """
    )

    assert only_profile(result).contributors == ()
    assert warnings(result) == [
        "pmr.yaml:7:13: profiles[0].contributors[0].group: warning: group 'nobody' has no "
        "members, so it gives nobody access"
    ]


def test_unused_group_warns():
    result = load(
        """\
        groups:
          spare:
            members: [bob@x.io]
        profiles: []
        """
    )

    assert warnings(result) == ["pmr.yaml:2:3: groups.spare: warning: group 'spare' is not used"]


def test_group_used_only_by_defaults_counts_as_used():
    result = load(
        """\
        groups:
          auditors: {members: [auditor@x.io]}
        defaults:
          contributors: [{group: auditors, role: view}]
        profiles:
        - name: team-a
          owner: {kind: User, name: owner@x.io}
        """
    )

    assert result.warnings == ()


def test_binding_name_of_exactly_253_characters_is_accepted():
    """``user-`` + 226 + ``-x-io`` + ``-clusterrole-edit`` is 253 characters."""
    user = "u" * 226 + "@x.io"
    result = load(
        f"""\
        profiles:
        - name: team-a
          owner: {{kind: User, name: owner@x.io}}
          contributors: [{{name: {user}, role: edit}}]
        """
    )

    assert roles(only_profile(result)) == {user: Role.EDIT}


def test_same_kfam_spelling_in_different_profiles_is_allowed():
    result = load(
        """\
        profiles:
        - name: team-a
          owner: {kind: User, name: owner@x.io}
          contributors: [{name: a.b@x.io, role: edit}]
        - name: team-b
          owner: {kind: User, name: owner@x.io}
          contributors: [{name: a-b@x.io, role: edit}]
        """
    )

    assert [len(p.contributors) for p in result.pmr.profiles] == [1, 1]


class TestClusters:
    TEXT = """\
        profiles:
        - name: everywhere
          owner: {kind: User, name: owner@x.io}
        - name: prod-only
          owner: {kind: User, name: owner@x.io}
          clusters: [prod]
        - name: prod-and-staging
          owner: {kind: User, name: owner@x.io}
          clusters: [staging, prod]
        """

    @pytest.mark.parametrize(
        ("cluster", "expected"),
        [
            ("prod", ["everywhere", "prod-only", "prod-and-staging"]),
            ("staging", ["everywhere", "prod-and-staging"]),
            ("dev", ["everywhere"]),
            (None, ["everywhere"]),
        ],
    )
    def test_for_cluster_keeps_profiles_meant_for_it(self, cluster: str | None, expected):
        pmr = load(self.TEXT).pmr

        assert [p.name for p in pmr.for_cluster(cluster)] == expected

    def test_clusters_are_kept_on_the_profile(self):
        profiles = by_name(load(self.TEXT).pmr)

        assert profiles["prod-and-staging"].clusters == ("staging", "prod")
        assert profiles["everywhere"].clusters is None


class TestFolder:
    def write(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))

    def test_files_of_a_folder_are_merged(self, tmp_path: Path):
        self.write(
            tmp_path / "groups.yaml",
            """\
            groups:
              ml-team: {members: [bob@x.io]}
            defaults:
              owner: {kind: User, name: platform@x.io}
            """,
        )
        self.write(
            tmp_path / "teams" / "ml.yml",
            """\
            profiles:
            - name: ml
              contributors: [{group: ml-team, role: edit}]
            """,
        )

        result = load_pmr(read_paths([tmp_path]))

        (profile,) = result.pmr.profiles
        assert profile.owner == Owner("User", "platform@x.io")
        assert roles(profile) == {"bob@x.io": Role.EDIT}

    def test_yml_and_yaml_files_are_read_in_path_order(self, tmp_path: Path):
        self.write(tmp_path / "b.yml", "profiles: []\n")
        self.write(tmp_path / "a" / "z.yaml", "profiles: []\n")
        self.write(tmp_path / "notes.txt", "not yaml: [\n")

        documents = read_paths([tmp_path])

        assert [Path(d.name).relative_to(tmp_path) for d in documents] == [
            Path("a/z.yaml"),
            Path("b.yml"),
        ]

    def test_hidden_files_and_folders_are_ignored(self, tmp_path: Path):
        self.write(tmp_path / "pmr.yaml", "profiles: []\n")
        self.write(tmp_path / ".draft.yaml", "not: [valid\n")
        self.write(tmp_path / ".github" / "workflow.yaml", "on: push\n")

        documents = read_paths([tmp_path])

        assert [Path(d.name).name for d in documents] == ["pmr.yaml"]

    def test_folder_without_yaml_files_is_an_error(self, tmp_path: Path):
        self.write(tmp_path / "README.md", "# PMR\n")

        with pytest.raises(PMRInvalidError) as caught:
            read_paths([tmp_path])

        assert caught.value.lines() == [f"{tmp_path}:1:1: folder holds no *.yaml or *.yml files"]

    def test_missing_path_is_an_error(self, tmp_path: Path):
        missing = tmp_path / "nope.yaml"

        with pytest.raises(PMRInvalidError) as caught:
            read_paths([missing])

        assert caught.value.lines() == [f"{missing}:1:1: no such file or folder"]

    def test_errors_name_the_file_they_are_in(self, tmp_path: Path):
        self.write(tmp_path / "ok.yaml", "profiles: []\n")
        self.write(tmp_path / "sub" / "bad.yaml", "profiles: []\nversion: 2\n")

        with pytest.raises(PMRInvalidError) as caught:
            load_pmr(read_paths([tmp_path]))

        assert caught.value.first.location.file == str(tmp_path / "sub" / "bad.yaml")


class TestImmutability:
    TEXT = """\
        profiles:
        - name: team-a
          owner: {kind: User, name: owner@x.io}
          resources: {hard: {limits.cpu: "1"}}
          contributors: [{name: bob@x.io, role: edit}]
        """

    def test_profile_fields_cannot_be_assigned(self):
        profile = only_profile(load(self.TEXT))

        with pytest.raises(dataclasses.FrozenInstanceError):
            profile.name = "other"  # pyright: ignore[reportAttributeAccessIssue]

    def test_resources_mapping_is_read_only(self):
        resources = cast(dict[str, Any], only_profile(load(self.TEXT)).resources)

        with pytest.raises(TypeError):
            resources["hard"] = {}

    def test_nested_resources_are_read_only(self):
        hard = cast(dict[str, Any], only_profile(load(self.TEXT)).resources["hard"])

        with pytest.raises(TypeError):
            hard["limits.cpu"] = "64"

    def test_contributors_are_a_tuple(self):
        profile = only_profile(load(self.TEXT))

        assert isinstance(profile.contributors, tuple)

    def test_groups_mapping_is_read_only(self):
        pmr = load("groups:\n  t: {members: [bob@x.io]}\nprofiles: []\n").pmr

        with pytest.raises(TypeError):
            cast(dict[str, Any], pmr.groups)["t"] = ()


def test_minimal_example_loads():
    result = load_pmr(read_paths([EXAMPLES / "minimal"]))

    profile = only_profile(result)
    assert profile.name == "ml-engineers"
    assert profile.owner == Owner("User", "admin@example.com")
    assert roles(profile) == {"alice@example.com": Role.ADMIN, "bob@example.com": Role.VIEW}
    assert result.warnings == ()


@pytest.fixture(scope="module")
def full_example() -> LoadResult:
    return load_pmr(read_paths([EXAMPLES / "full"]))


class TestFullExample:
    @pytest.fixture
    def result(self, full_example: LoadResult) -> LoadResult:
        return full_example

    def test_loads_without_warnings(self, result: LoadResult):
        assert result.warnings == ()

    def test_contributors_and_roles(self, result: LoadResult):
        everyone = {name: roles(p) for name, p in by_name(result.pmr).items()}

        assert everyone == {
            # dave owns it and is dropped from data-eng; platform-admins come from defaults.
            "data-pipelines": {
                "erin@example.com": Role.EDIT,
                "ops@example.com": Role.VIEW,
                "sre@example.com": Role.VIEW,
            },
            "data-staging": {
                "dave@example.com": Role.ADMIN,
                "erin@example.com": Role.ADMIN,
                "ops@example.com": Role.VIEW,
                "sre@example.com": Role.VIEW,
            },
            # alice owns it (dropped from ml-team); ops is admin directly and view by default.
            "ml-research": {
                "bob@example.com": Role.EDIT,
                "carol@example.com": Role.EDIT,
                "frank@example.com": Role.VIEW,
                "ops@example.com": Role.ADMIN,
                "sre@example.com": Role.VIEW,
            },
            # carol is view through ml-team and admin by name.
            "ml-serving": {
                "alice@example.com": Role.VIEW,
                "bob@example.com": Role.VIEW,
                "carol@example.com": Role.ADMIN,
                "ops@example.com": Role.VIEW,
                "sre@example.com": Role.VIEW,
            },
        }

    def test_owners(self, result: LoadResult):
        owners = {name: p.owner for name, p in by_name(result.pmr).items()}

        assert owners == {
            "data-pipelines": Owner("User", "dave@example.com"),
            "data-staging": Owner("ServiceAccount", "ci-bot", "ci"),
            "ml-research": Owner("User", "alice@example.com"),
            "ml-serving": Owner("User", "platform@example.com"),
        }

    def test_quotas(self, result: LoadResult):
        profiles = by_name(result.pmr)
        default_hard = {
            "requests.cpu": "8",
            "requests.memory": "32Gi",
            "limits.cpu": "16",
            "limits.memory": "64Gi",
        }

        assert dict(profiles["data-pipelines"].resources) == {}
        assert dict(profiles["data-staging"].resources["hard"]) == default_hard
        assert dict(profiles["ml-serving"].resources["hard"]) == default_hard
        assert profiles["ml-research"].resources["hard"]["pods"] == 200

    def test_plugins(self, result: LoadResult):
        kinds = {
            name: [p["kind"] for p in prof.plugins] for name, prof in by_name(result.pmr).items()
        }

        assert kinds == {
            "data-pipelines": ["AwsIamForServiceAccount"],
            "data-staging": [],
            "ml-research": ["WorkloadIdentity"],
            "ml-serving": [],
        }

    def test_staging_profile_exists_only_on_staging(self, result: LoadResult):
        assert [p.name for p in result.pmr.for_cluster("staging")] == [
            "data-pipelines",
            "data-staging",
            "ml-research",
            "ml-serving",
        ]
        assert "data-staging" not in [p.name for p in result.pmr.for_cluster("prod")]


def test_explicit_empty_profiles_list_is_a_valid_pmr():
    result = load("profiles: []\n")

    assert result.pmr.profiles == ()
