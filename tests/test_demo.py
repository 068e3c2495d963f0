"""The README's first command keeps working: the demo syncs the example PMR end to end."""

from __future__ import annotations

import pytest

from tests import demo


def test_demo_runs_every_step_as_the_readme_says(capsys: pytest.CaptureFixture[str]):
    code = demo.main([])

    out = capsys.readouterr().out
    assert code == 0
    assert "demo passed: every step behaved as expected" in out
    assert "Plan: 3 to create, 2 to delete." in out
    assert "requests: 4 list\n" in out  # the no-op sync
    assert "legacy-team (owner old-lead@example.com" in out
