"""Markdown for a GitHub job summary or a pull request comment: the plan of a sync (pure).

`pmr plan --output markdown` writes this; the access review (`access_diff`) shares the
escaping helpers, so a user name or reason with a `|` or a backtick cannot break a table.
"""

from __future__ import annotations

from profiles_automator.sync.engine import SyncReport
from profiles_automator.sync.planner import Change

MAX_TABLE_ROWS = 200
_VERBS = {"created": "create", "updated": "update", "deleted": "delete", "replaced": "replace"}


def code(text: str) -> str:
    """Inline code that survives backticks in `text` (CommonMark: a longer fence)."""
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def escape_cell(text: str) -> str:
    """A table cell: pipes escaped, line breaks folded."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def plan_markdown(report: SyncReport, heading: str, *, permissions_fix: str = "") -> str:
    """The plan (or a sync's result) as a markdown section with one table of changes.

    `permissions_fix` completes the line about missing permissions (who grants them how).
    """
    plan = report.plan
    lines = [f"### {escape_cell(heading)}", ""]
    counts = report.counts()
    if report.dry_run:
        summary = ", ".join(f"{n} to {_VERBS[word]}" for word, n in counts.items() if n)
        lines.append(f"**Plan: {summary or 'nothing to do, the cluster matches the PMR'}.**")
    else:
        summary = ", ".join(f"{n} {word}" for word, n in counts.items() if n)
        lines.append(f"**Applied: {summary or 'nothing'}.**")
    if plan.changes:
        lines += ["", *_table(plan.changes)]
    if plan.held:
        lines += [
            "",
            f"**Held back** ({escape_cell(plan.hold_reason or 'safety guard')}): review, then "
            "confirm with `pmr sync --force` (the charm: `sync-now force=true`).",
            "",
            *_table(plan.held),
        ]
    if plan.stale_profiles:
        names = ", ".join(code(name) for name in plan.stale_profiles)
        lines += [
            "",
            f"**Stale profiles** (in the cluster, not in the PMR; never deleted by a "
            f"sync): {names}",
        ]
    if report.pending:
        names = ", ".join(code(name) for name in report.pending)
        lines += [
            "",
            "**Pending** (the profile controller has not created the namespace yet; "
            f"the next run finishes them): {names}",
        ]
    if report.refusal:
        scope = "a sync would be refused" if report.dry_run else "refused"
        fix = f": {permissions_fix}" if permissions_fix else ""
        lines += ["", f"**Permissions:** {scope}: {escape_cell(report.refusal)}{fix}"]
    if report.failures:
        lines += ["", "**Failed:**", ""]
        lines += [f"- {escape_cell(str(failure))}" for failure in report.failures]
    return "\n".join(lines) + "\n"


def _table(changes: tuple[Change, ...]) -> list[str]:
    rows = ["| Action | Kind | Namespace | Name | Reason |", "| --- | --- | --- | --- | --- |"]
    for change in changes[:MAX_TABLE_ROWS]:
        cells = (change.action, change.kind, change.namespace or "", change.name, change.reason)
        rows.append("| " + " | ".join(escape_cell(str(c)) for c in cells) + " |")
    if len(changes) > MAX_TABLE_ROWS:
        rows.append(f"| … | {len(changes) - MAX_TABLE_ROWS} more | | | |")
    return rows
