"""One sync: observe, plan, apply, finish pending namespaces, report.

Shared by the charm and the ``pmr`` command so both behave the same.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from lightkube import Client

from profiles_automator.gc_pause import no_gc_pauses
from profiles_automator.pmr.loader import RESERVED_NAMESPACES
from profiles_automator.pmr.model import PMR
from profiles_automator.sync.cluster import (
    HTTP_ERRORS,
    ApplyResult,
    ClusterError,
    Failure,
    RetryPolicy,
    WatchExpiredError,
    apply_changes,
    delete_profiles,
    get_namespace,
    list_owner_policies,
    list_profiles,
    observe,
    watch_owner_policies,
)
from profiles_automator.sync.kfam import (
    AccessPolicyOptions,
    PolicyShape,
    SharedParts,
    owner_from_subject,
    personal_group_of,
)
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
    iter_pending,
    plan,
    plan_pending,
    stale_names,
)
from profiles_automator.sync.state import (
    DesiredState,
    NamespaceRecord,
    ObservedState,
    OwnerPolicy,
    desired_state,
)

log = logging.getLogger(__name__)

MAX_LISTED_CHANGES = 50
DEFAULT_NAMESPACE_WAIT = 30.0
MAX_WATCHES = 3
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
    # How long a run waits for the profile controller to set up new namespaces.
    namespace_wait: float = DEFAULT_NAMESPACE_WAIT

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
        """Nothing failed, held, refused or left pending; no permission missing."""
        return (
            not self.failures
            and not self.plan.held
            and not self.pending
            and not self.missing_permissions
            and not self.plan.refused
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
            "refused": [
                {"profile": r.name, "reason": r.reason, "fix": r.fix} for r in self.plan.refused
            ],
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
    the_plan, desired, _ = _observe_and_plan(client, pmr, settings)
    return the_plan, desired


def _observe_and_plan(
    client: Client, pmr: PMR, settings: SyncSettings
) -> tuple[Plan, DesiredState, ObservedState]:
    with no_gc_pauses():
        desired = settings.desired(pmr)
        observed = observe(client, settings.retry)
        return plan(desired, observed, settings.plan_options()), desired, observed


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
    the_plan, desired, observed = _observe_and_plan(client, pmr, settings)
    changes, watches = _changes_to_check(the_plan, desired)
    missing = preflight(client, changes, settings, watches=watches)
    if dry_run or missing:
        return SyncReport(
            the_plan,
            pending=the_plan.pending,
            revision=revision,
            dry_run=dry_run,
            missing_permissions=missing,
        )
    result = _apply(client, the_plan.changes, settings)
    late = _LateGrants(client, desired, settings, the_plan.pending, observed)
    late.run(made={c.name for c in result.applied if c.kind in ("Profile", "Namespace")})
    return SyncReport(
        replace(the_plan, changes=(*the_plan.changes, *late.changes)),
        (*result.applied, *late.applied),
        (*result.failures, *late.failures),
        tuple(sorted(late.waiting)),
        revision,
    )


class _LateGrants:
    """Grant contributors in namespaces the profile controller sets up during this run.

    A namespace is ready once its owner policy exists (the controller makes it right
    after the namespace, and contributor policies copy its shape). One list, then
    one watch from that list's resourceVersion, granting each namespace as its owner
    policy appears, for at most ``namespace_wait`` seconds; the rest stays pending.
    """

    def __init__(
        self,
        client: Client,
        desired: DesiredState,
        settings: SyncSettings,
        pending: tuple[str, ...],
        observed: ObservedState,
    ) -> None:
        self.client, self.desired, self.settings = client, desired, settings
        self.waiting = set(pending)
        # RoleBindings in namespaces that already existed went with the main plan.
        self.bindings_done = {n for n in pending if n in observed.namespace_records}
        self.changes: list[Change] = []
        self.applied: list[Change] = []
        self.failures: list[Failure] = []
        # Every grant written is kept (in the report): one spec per user and shape.
        self.parts = SharedParts()

    def run(self, *, made: set[str]) -> None:
        """Wait only for what the controller has new work for: Profiles this run wrote."""
        if not self.waiting:
            return
        wait = self.settings.namespace_wait if self.waiting & made else 0.0
        deadline = time.monotonic() + wait
        try:
            version = self._list()
            # One watch; another only if the server ends it early or its version expired.
            for _ in range(MAX_WATCHES):
                if not self.waiting & made or time.monotonic() >= deadline:
                    break
                try:
                    version = self._watch(version, deadline, made)
                except WatchExpiredError as exc:
                    log.info("watch restarted from a new list: %s", exc)
                    version = self._list()
        except (ClusterError, *HTTP_ERRORS) as exc:
            log.warning("namespaces left pending for the next run: %s", exc)
        if self.waiting:
            log.info(
                "still waiting for %d namespaces; the next run grants them", len(self.waiting)
            )

    def _list(self) -> str:
        owners, version = list_owner_policies(self.client, self.settings.retry)
        self._grant({n: p for n, p in owners.items() if n in self.waiting})
        return version

    def _watch(self, version: str, deadline: float, made: set[str]) -> str:
        remaining = deadline - time.monotonic()
        for kind, obj in watch_owner_policies(self.client, version, remaining):
            meta = obj.get("metadata") or {}
            version = meta.get("resourceVersion") or version
            namespace = meta.get("namespace", "")
            if kind in ("ADDED", "MODIFIED") and namespace in self.waiting:
                policy = OwnerPolicy.from_object(obj)
                if policy is not None:
                    self._grant({namespace: policy})
            if not self.waiting & made or time.monotonic() >= deadline:
                break
        return version

    def _grant(self, owners: dict[str, OwnerPolicy]) -> None:
        if not owners:
            return
        changes = plan_pending(
            self.desired, owners, bindings_done=self.bindings_done, parts=self.parts
        )
        result = _apply(self.client, changes, self.settings)
        self.changes.extend(changes)
        self.applied.extend(result.applied)
        self.failures.extend(result.failures)
        self.waiting -= owners.keys()


def preflight(
    client: Client,
    changes: Iterable[Change],
    settings: SyncSettings,
    *,
    watches: tuple[str, ...] = (),
) -> tuple[Permission, ...]:
    """The permissions these changes need that the credentials lack (SelfSubjectAccessReview)."""
    needed = required_permissions(changes, watches=watches)
    return missing_permissions(client, needed, workers=settings.workers, retry=settings.retry)


def _changes_to_check(
    the_plan: Plan, desired: DesiredState
) -> tuple[Iterable[Change], tuple[str, ...]]:
    """The plan, plus the grants of pending namespaces that may appear during this run.

    Those are written with the shape of owner policies not seen yet; any shape needs the
    same permissions. Waiting for them takes a watch on owner policies. The grants are
    made one namespace at a time as the preflight reads them, never all at once.
    """
    changes = the_plan.changes
    if not the_plan.pending or not any(c.kind in ("Profile", "Namespace") for c in changes):
        return changes, ()
    unseen = {name: OwnerPolicy("", PolicyShape()) for name in the_plan.pending}
    return itertools.chain(changes, iter_pending(desired, unseen)), ("AuthorizationPolicy",)


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


def _juju_model_namespace(client: Client, name: str, settings: SyncSettings) -> bool:
    namespace = get_namespace(client, name, settings.retry)
    return namespace is not None and NamespaceRecord.from_object(namespace).juju_model


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
        elif _juju_model_namespace(client, name, settings):
            refused[name] = (
                "its namespace belongs to a Juju model: deleting the Profile would delete the "
                "model's namespace; never deleted by this charm"
            )
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
