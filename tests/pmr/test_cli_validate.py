"""``pmr validate`` and ``pmr schema``: exit codes, located errors on stderr, the schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from profiles_automator.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.rglob("*.yaml"))
MINIMAL = EXAMPLES / "minimal" / "pmr.yaml"
FULL = EXAMPLES / "full"


def summary(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def test_minimal_example_is_valid(capsys: pytest.CaptureFixture[str]):
    code = main(["validate", str(MINIMAL)])

    assert code == 0
    assert summary(capsys.readouterr().err) == (
        "PMR is valid: 1 profile, 2 contributors, 0 warnings"
    )


def test_full_example_folder_is_valid(capsys: pytest.CaptureFixture[str]):
    code = main(["validate", str(FULL)])

    assert code == 0
    assert summary(capsys.readouterr().err).startswith("PMR is valid: 4 profiles, ")


def test_warnings_are_printed_but_do_not_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    pmr = tmp_path / "pmr.yaml"
    pmr.write_text("groups:\n  spare: {members: [bob@x.io]}\nprofiles: []\n")

    code = main(["validate", str(pmr)])

    err = capsys.readouterr().err
    assert code == 0
    assert f"{pmr}:2:3: groups.spare: warning: group 'spare' is not used" in err.splitlines()
    assert summary(err).startswith("PMR is valid: ")


def test_invalid_pmr_exits_1_with_the_located_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    pmr = tmp_path / "pmr.yaml"
    pmr.write_text(
        "profiles:\n- name: team-a\n  owner: {kind: User, name: owner@x.io}\n"
        "  contributors:\n  - {name: bob@x.io, role: edtor}\n"
    )

    code = main(["validate", str(pmr)])

    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert err == [
        f"{pmr}:5:28: profiles[0].contributors[0].role: 'edtor' is not one of admin, edit, view",
        "PMR is invalid: 1 error",
    ]


def test_error_count_is_plural(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    pmr = tmp_path / "pmr.yaml"
    pmr.write_text("profiles: []\nversions: 1\ngroup: {}\n")

    code = main(["validate", str(pmr)])

    assert code == 1
    assert summary(capsys.readouterr().err) == "PMR is invalid: 2 errors"


def test_missing_path_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    missing = tmp_path / "nope"

    code = main(["validate", str(missing)])

    assert code == 1
    assert f"{missing}:1:1: no such file or folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["validate"], id="no-path"),
        pytest.param(["validate", "--strict", str(MINIMAL)], id="unknown-option"),
        pytest.param([], id="no-command"),
        pytest.param(["check", str(MINIMAL)], id="unknown-command"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]):
    code = main(argv)

    assert code == 2
    assert "usage: pmr" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]):
    code = main(["validate", "--help"])

    assert code == 0
    assert "--protected-namespaces" in capsys.readouterr().out


@pytest.mark.parametrize("protected", ["ml-engineers", "ml-*", "finance, ml-engineers"])
def test_protected_namespaces_make_a_profile_name_invalid(
    protected: str, capsys: pytest.CaptureFixture[str]
):
    code = main(["validate", str(MINIMAL), "--protected-namespaces", protected])

    assert code == 1
    assert capsys.readouterr().err.startswith(
        f"{MINIMAL}:5:9: profiles[0].name: 'ml-engineers' is a reserved namespace"
    )


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        (
            "staging",
            "PMR is valid: 4 profiles for cluster 'staging', 17 contributors, 0 warnings",
        ),
        ("prod", "PMR is valid: 3 profiles for cluster 'prod', 13 contributors, 0 warnings"),
    ],
)
def test_cluster_name_is_reflected_in_the_summary(
    cluster: str, expected: str, capsys: pytest.CaptureFixture[str]
):
    code = main(["validate", str(FULL), "--cluster-name", cluster])

    assert code == 0
    assert summary(capsys.readouterr().err) == expected


def test_summary_without_cluster_name_counts_every_contributor(
    capsys: pytest.CaptureFixture[str],
):
    main(["validate", str(FULL)])

    assert summary(capsys.readouterr().err) == (
        "PMR is valid: 4 profiles, 17 contributors, 0 warnings"
    )


def test_schema_prints_a_valid_draft_2020_12_schema(capsys: pytest.CaptureFixture[str]):
    code = main(["schema"])

    schema = json.loads(capsys.readouterr().out)
    assert code == 0
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize(
    "example", EXAMPLE_FILES, ids=[str(p.relative_to(EXAMPLES)) for p in EXAMPLE_FILES]
)
def test_example_file_validates_against_the_printed_schema(
    example: Path, capsys: pytest.CaptureFixture[str]
):
    main(["schema"])
    validator = jsonschema.Draft202012Validator(json.loads(capsys.readouterr().out))

    errors = list(validator.iter_errors(yaml.safe_load(example.read_text())))

    assert errors == []


def test_there_are_example_files_to_check():
    assert len(EXAMPLE_FILES) >= 4


def test_module_runs_as_a_command():
    completed = subprocess.run(
        [sys.executable, "-m", "profiles_automator", "validate", "examples/"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": "src"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert summary(completed.stderr).startswith("PMR is valid: 6 profiles, ")  # with examples/idp


def test_max_file_bytes_is_configurable(capsys: pytest.CaptureFixture[str]):
    code = main(["validate", str(MINIMAL), "--max-file-bytes", "100"])

    assert code == 1
    assert "over the 100-byte limit" in capsys.readouterr().err


def test_validate_with_a_cache_dir_reads_the_model_back_and_survives_a_damaged_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
):
    # Arrange
    cache_dir = tmp_path / "cache"
    args = ["validate", str(FULL), "--cache-dir", str(cache_dir)]
    assert main(args) == 0
    first = summary(capsys.readouterr().err)
    cached = cache_dir / "validated-pmr.json"
    assert cached.is_file()

    # Act
    second_code = main(args)
    second = summary(capsys.readouterr().err)
    cached.write_bytes(cached.read_bytes()[:100])
    damaged_code = main(args)
    damaged = summary(capsys.readouterr().err)

    # Assert
    assert (second_code, damaged_code) == (0, 0)
    assert first == second == damaged
    assert "ignoring the validated-PMR cache" in caplog.text
