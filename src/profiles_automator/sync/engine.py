"""One sync: observe, plan, apply, finish pending namespaces, report.

Shared by the charm and the ``pmr`` command so both behave the same.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from lightkube import Client

from profiles_automator.gc_pause import no_gc_pauses
from profiles_automator.pmr.loader import RESERVED_NAMESPACES
from profiles_automator.pmr.model import PMR
from profiles_automator.sync.cluster import (
    ApplyResult,
    ClusterError,
    Failure,
    RetryPolicy,
    apply_changes,
    delete_profiles,
    list_namespace_names,
    list_profiles,
    observe,
)
from profiles_automator.sync.kfam import AccessPolicyOptions, owner_from_subject, personal_group_of
from profiles_automator.sync.permissions import (
    Permission,
    missing_permissions,
    refusal,
    required_permissions,
)
from profiles_automator.sync.planner import (
    Change,
    Plan,
    PlanOptions,
    is_ignored,
    plan,
    plan_pending,
    stale_names,
)
from profiles_automator.sync.state import DesiredState, desired_state

log = logging.getLogger(__name__)

MAX_LISTED_CHANGES = 50
_PAST = {"create": "created", "update": "updated", "delete": "deleted", "replace": "replaced"}


@dataclass(frozen=True)
class SyncSettings:
    """Everything a run needs besides the PMR and a client."""

    cluster_name: str | None = None
    access: AccessPolicyOptions = field(default_factory=AccessPolicyOptions)
    options: PlanOptions = field(default_factory=PlanOptions)
    protected_namespaces: tuple[str, ...] = ()
    workers: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def desired(self, pmr: PMR) -> DesiredState:
        """The PMR rendered for this cluster."""
        return desired_state(pmr, cluster_name=self.cluster_name, access=self.access)

    def plan_options(self) -> PlanOptions:
        """Plan options with protected namespaces folded into the ignore list."""
        ignored = (
            *self.options.ignored_profiles,
            *RESERVED_NAMESPACES,
            *self.protected_namespaces,
        )
        return replace(self.options, ignored_profiles=tuple(dict.fromkeys(ignored)))


@dataclass(frozen=True)
class SyncReport:
    """The outcome of one run, in the terms the status line and actions use."""

    plan: Plan
    applied: tuple[Change, ...] = ()
    failures: tuple[Failure, ...] = ()
    pending: tuple[str, ...] = ()
    revision: str | None = None
    dry_run: bool = False
    # Found by the preflight: nothing was written (a dry run says the same of a real run).
    missing_permissions: tuple[Permission, ...] = ()

    @property
    def refusal(self) -> str | None:
        """Why nothing was written, when the credentials lack a permission the plan needs."""
        return refusal(self.missing_permissions) if self.missing_permissions else None

    @property
    def changes(self) -> tuple[Change, ...]:
        """Planned changes, including those for namespaces that appeared mid-run."""
        return self.plan.changes

    def counts(self) -> dict[str, int]:
        """created/updated/deleted/replaced (planned, when a dry run)."""
        done = self.plan.changes if self.dry_run else self.applied
        counted = Counter(_PAST[c.action] for c in done)
        return {word: counted.get(word, 0) for word in _PAST.values()}

    def counts_by_kind(self) -> dict[str, int]:
        """``created RoleBinding: 3`` style counts for the CLI summary."""
        done = self.plan.changes if self.dry_run else self.applied
        counted = Counter(f"{_PAST[c.action]} {c.kind}" for c in done)
        return dict(sorted(counted.items()))

    @property
    def in_sync(self) -> bool:
        """Nothing failed, nothing held, nothing left pending, nothing refused."""
        return (
            not self.failures
            and not self.plan.held
            and not self.pending
            and not self.missing_permissions
        )

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``--output json`` document."""
        return {
            "revision": self.revision,
            "dry_run": self.dry_run,
            "changes": [_change_json(c) for c in self.plan.changes],
            "stale_profiles": list(self.plan.stale_profiles),
            "pending": list(self.pending),
            "held": [_change_json(c) for c in self.plan.held],
            "hold_reason": self.plan.hold_reason,
            "failures": [
                {**_change_json(f.change), "status": f.status, "message": f.message}
                for f in self.failures
            ],
            "counts": self.counts(),
            "counts_by_kind": self.counts_by_kind(),
            "missing_permissions": [p.to_json() for p in self.missing_permissions],
            "refusal": self.refusal,
        }


def _change_json(change: Change) -> dict[str, Any]:
    return {
        "action": change.action,
        "kind": change.kind,
        "namespace": change.namespace,
        "name": change.name,
        "reason": change.reason,
    }


def plan_sync(client: Client, pmr: PMR, settings: SyncSettings) -> tuple[Plan, DesiredState]:
    """Observe the cluster and plan, writing nothing."""
    with no_gc_pauses():
        desired = settings.desired(pmr)
        return plan(desired, observe(client, settings.retry), settings.plan_options()), desired


def sync(
    client: Client,
    pmr: PMR,
    settings: SyncSettings,
    *,
    dry_run: bool = False,
    revision: str | None = None,
) -> SyncReport:
    """Make the cluster match the PMR (or, with dry_run, say what that would take).

    Before any write, the preflight checks that the credentials hold every permission the
    plan needs; if one is missing, nothing is written and the report says which. A plan
    with nothing to do needs no permission and costs no request.
    """
    the_plan, desired = plan_sync(client, pmr, settings)
    missing = preflight(client, _changes_to_check(the_plan, desired), settings)
    if dry_run or missing:
        return SyncReport(
            the_plan,
            pending=the_plan.pending,
            revision=revision,
            dry_run=dry_run,
            missing_permissions=missing,
        )
    result = _apply(client, the_plan.changes, settings)
    applied, failures = list(result.applied), list(result.failures)
    pending = the_plan.pending
    if pending and any(c.kind == "Profile" for c in applied):
        # The profile controller may already have made some namespaces: one
        # more list (no sleeping, no polling) and the rest waits for next run.
        try:
            present = list_namespace_names(client, settings.retry)
        except ClusterError as exc:
            log.warning("namespaces left pending for the next run: %s", exc)
            present = set()
        ready = [n for n in pending if n in present]
        late_changes = plan_pending(desired, ready)
        late = _apply(client, late_changes, settings)
        applied.extend(late.applied)
        failures.extend(late.failures)
        the_plan = replace(the_plan, changes=(*the_plan.changes, *late_changes))
        pending = tuple(n for n in pending if n not in ready)
    return SyncReport(the_plan, tuple(applied), tuple(failures), pending, revision)


def preflight(
    client: Client, changes: list[Change] | tuple[Change, ...], settings: SyncSettings
) -> tuple[Permission, ...]:
    """The permissions these changes need that the credentials lack (SelfSubjectAccessReview)."""
    return missing_permissions(
        client, required_permissions(changes), workers=settings.workers, retry=settings.retry
    )


def _changes_to_check(the_plan: Plan, desired: DesiredState) -> list[Change]:
    """The plan, plus the grants of pending namespaces that may appear during this run."""
    changes = list(the_plan.changes)
    if the_plan.pending and any(c.kind == "Profile" for c in changes):
        changes.extend(plan_pending(desired, the_plan.pending))
    return changes


def _apply(
    client: Client, changes: tuple[Change, ...] | list[Change], settings: SyncSettings
) -> ApplyResult:
    return apply_changes(client, changes, workers=settings.workers, retry=settings.retry)


@dataclass(frozen=True)
class StaleProfile:
    """A Profile in the cluster that the PMR no longer names."""

    name: str
    owner: str
    created: str

    def __str__(self) -> str:
        return f"{self.name} (owner {self.owner}, created {self.created})"


def stale_profiles(client: Client, pmr: PMR, settings: SyncSettings) -> list[StaleProfile]:
    """Profiles that exist in the cluster but not in the PMR (ignored ones excluded)."""
    profiles = {p["metadata"]["name"]: p for p in list_profiles(client, settings.retry)}
    wanted = {p.name for p in pmr.for_cluster(settings.cluster_name)}
    unknown = {t.group for t in pmr.personal_profiles}
    stale = []
    for name in stale_names(profiles, wanted, settings.plan_options().ignored_profiles, unknown):
        obj = profiles[name]
        owner = owner_from_subject((obj.get("spec") or {}).get("owner") or {})
        created = obj["metadata"].get("creationTimestamp", "unknown")
        stale.append(StaleProfile(name, owner.name, created))
    return stale


def _unknown_personal_profiles(client: Client, pmr: PMR, settings: SyncSettings) -> dict[str, str]:
    """Personal Profiles of groups not resolved this run: name -> group (never stale now)."""
    unknown = {t.group for t in pmr.personal_profiles}
    if not unknown:
        return {}
    found = {}
    for obj in list_profiles(client, settings.retry):
        group = personal_group_of(obj)
        if group in unknown:
            found[obj["metadata"]["name"]] = group
    return found


@dataclass(frozen=True)
class DeleteOutcome:
    """What an admin's stale-profile deletion did and refused."""

    deleted: tuple[str, ...]
    refused: dict[str, str]
    failures: tuple[Failure, ...] = ()
    dry_run: bool = False
    missing_permissions: tuple[Permission, ...] = ()

    @property
    def refusal(self) -> str | None:
        """Why nothing was deleted, when the credentials may not delete Profiles."""
        return refusal(self.missing_permissions) if self.missing_permissions else None


def delete_stale_profiles(
    client: Client,
    pmr: PMR,
    settings: SyncSettings,
    names: list[str] | None,
    *,
    dry_run: bool = False,
) -> DeleteOutcome:
    """Delete the named stale Profiles (None = every stale one); refuse anything else."""
    stale = {s.name for s in stale_profiles(client, pmr, settings)}
    wanted = {p.name for p in pmr.for_cluster(settings.cluster_name)}
    protected = _unknown_personal_profiles(client, pmr, settings) if names else {}
    targets = sorted(stale) if names is None else list(dict.fromkeys(names))
    ignored = settings.plan_options().ignored_profiles
    refused: dict[str, str] = {}
    chosen: list[str] = []
    for name in targets:
        if is_ignored(name, ignored):
            refused[name] = "ignored or protected: never deleted by this charm"
        elif name in wanted:
            refused[name] = "in the PMR: not stale"
        elif name not in stale and name in protected:
            refused[name] = (
                f"personal profile of group {protected[name]!r}, which could not be resolved "
                "this run: not stale"
            )
        elif name not in stale:
            refused[name] = "no such Profile in the cluster"
        else:
            chosen.append(name)
    if not chosen:
        return DeleteOutcome((), refused, dry_run=dry_run)
    deletions = [Change("delete", "Profile", name, "stale") for name in chosen]
    missing = preflight(client, deletions, settings)
    if dry_run or missing:
        deleted = tuple(chosen) if dry_run and not missing else ()
        return DeleteOutcome(deleted, refused, dry_run=dry_run, missing_permissions=missing)
    result = delete_profiles(client, chosen, workers=settings.workers, retry=settings.retry)
    deleted = tuple(c.name for c in result.applied)
    return DeleteOutcome(deleted, refused, result.failures)
