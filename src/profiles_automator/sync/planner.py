"""The pure planner: desired and observed state in, an ordered list of changes out.

Level-triggered like a controller's reconcile: it looks only at the two states,
never at history, so running it again after a partial apply finishes the job.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from profiles_automator.pmr.model import Role
from profiles_automator.sync.kfam import (
    MANAGED_BY_LABEL,
    MANAGER_NAME,
    NAMESPACE_OWNER_ANNOTATION,
    OWNER_AUTHORIZATION_POLICY,
    OWNER_OBJECT_NAMES,
    OWNER_ROLEBINDING,
    SharedParts,
    kfam_identity,
    normalise_quota,
    owner_of_namespace,
    personal_group_of,
    same_quota,
)
from profiles_automator.sync.state import (
    DesiredState,
    NamespacedKey,
    NamespaceRecord,
    Obj,
    ObservedState,
    OwnerPolicy,
    PolicyGrant,
)

Action = Literal["create", "update", "delete", "replace"]
Kind = Literal["Profile", "Namespace", "RoleBinding", "AuthorizationPolicy"]

# Apply order: make the namespace acceptable to the profile controller, then
# Profiles, then grant, then let the controller recreate the owner's objects
# (only once the Profile names the new owner, and only when everything before
# it in that namespace went through), then revoke: a role change never leaves
# a gap, and a failed run never leaves the old owner without access.
PHASE_NAMESPACE, PHASE_PROFILE, PHASE_GRANT, PHASE_OWNER_RESET, PHASE_REVOKE = range(5)

DEFAULT_MAX_REVOCATIONS = 50
DEFAULT_MAX_STALE_FRACTION = 0.2


@dataclass(frozen=True)
class PlanOptions:
    """The admin's safety settings for one run."""

    ignored_profiles: tuple[str, ...] = ()
    revoke_stale_access: bool = True
    max_revocations: int = DEFAULT_MAX_REVOCATIONS
    max_stale_fraction: float = DEFAULT_MAX_STALE_FRACTION
    force: bool = False
    adopt_namespaces: bool = False


@dataclass(frozen=True)
class Change:
    """One write to the cluster, with the reason an admin reads in the plan."""

    action: Action
    kind: Kind
    name: str
    reason: str
    namespace: str | None = None
    body: Obj | None = field(default=None, compare=False, repr=False)
    # JSON-pointer paths to remove before applying: server-side apply cannot
    # drop fields that another field manager (a person, KFAM) set.
    remove_paths: tuple[str, ...] = ()
    phase: int = PHASE_GRANT
    # False when the user keeps access in the namespace (a role change, or a
    # binding of the same user and role under another name being tidied up).
    revokes_access: bool = True
    # Whose access a contributor object carries: the guard counts people, not objects.
    user: str = field(default="", compare=False)

    @property
    def removes_contributor_object(self) -> bool:
        """Deleting a contributor's binding or policy (never the owner's)."""
        return (
            self.action == "delete"
            and self.kind in ("RoleBinding", "AuthorizationPolicy")
            and self.name not in OWNER_OBJECT_NAMES
        )

    @property
    def is_revocation(self) -> bool:
        """Takes someone's access to a profile away: what the safety guard counts."""
        return self.removes_contributor_object and self.revokes_access

    @property
    def ident(self) -> str:
        """``Kind namespace/name``, the way kubectl users read an object."""
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"

    def __str__(self) -> str:
        return f"{self.action} {self.ident}: {self.reason}"


@dataclass(frozen=True)
class Refusal:
    """A PMR profile this run will not create, with why and what the admin can do."""

    name: str
    reason: str
    fix: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}; {self.fix}"


@dataclass(frozen=True)
class Plan:
    """Everything one run would do, plus what it will not do and why."""

    changes: tuple[Change, ...] = ()
    stale_profiles: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    held: tuple[Change, ...] = ()
    hold_reason: str | None = None
    refused: tuple[Refusal, ...] = ()

    @property
    def is_empty(self) -> bool:
        """Nothing to write (held deletions still count as work left)."""
        return not self.changes and not self.held


def _sort_key(change: Change) -> tuple[Any, ...]:
    return (change.phase, change.kind, change.namespace or "", change.name, change.action)


def _labels(obj: Obj) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _annotations(obj: Obj) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def _missing_metadata(desired: Obj, observed: Obj) -> list[str]:
    """Labels and annotations we set that the observed object lacks or has changed."""
    reasons = []
    for key, value in _labels(desired).items():
        if _labels(observed).get(key) != value:
            reasons.append(f"label {key} is not {value}")
    for key, value in _annotations(desired).items():
        if _annotations(observed).get(key) != value:
            reasons.append(f"annotation {key} is not {value}")
    return reasons


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def extra_paths(desired: Any, observed: Any, prefix: str = "") -> list[str]:
    """JSON-pointer paths of map entries present in observed but not in desired.

    Lists are compared whole (they are atomic for server-side apply), so only
    mapping keys need removing.
    """
    if not isinstance(desired, dict) or not isinstance(observed, dict):
        return []
    paths = []
    for key, value in observed.items():
        path = f"{prefix}/{_escape(key)}"
        if key not in desired:
            paths.append(path)
        else:
            paths.extend(extra_paths(desired[key], value, path))
    return paths


def _profile_spec(obj: Obj) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    owner = {k: v for k, v in (spec.get("owner") or {}).items() if v not in (None, "")}
    return {
        "owner": owner,
        "resourceQuotaSpec": normalise_quota(spec.get("resourceQuotaSpec") or {}),
        "plugins": spec.get("plugins") or [],
    }


def _describe_owner(owner: Mapping[str, Any]) -> str:
    return f"{owner.get('kind', '?')} {owner.get('name', '?')}"


def _owner_difference(have: Mapping[str, Any], want: Mapping[str, Any]) -> str:
    """``owner User a -> User b``, or the one field that differs when the names agree."""
    if _describe_owner(have) != _describe_owner(want):
        return f"owner {_describe_owner(have)} -> {_describe_owner(want)}"
    fields = sorted(k for k in {*have, *want} if have.get(k) != want.get(k))
    changed = ", ".join(
        f"{k} {have.get(k, '(unset)')} -> {want.get(k, '(unset)')}" for k in fields
    )
    return f"owner {_describe_owner(want)}: {changed}"


def plan_profile(name: str, desired: Obj, observed: ObservedState) -> list[Change]:
    """Create or update one Profile, re-owning its namespace when the owner differs."""
    want = _profile_spec(desired)
    changes = _profile_change(name, desired, want, observed.profiles.get(name))
    namespace = observed.namespaces.get(name)
    new_owner = want["owner"].get("name")
    if namespace is not None and (
        owner_of_namespace(namespace) != new_owner
        or _owner_binding_names_someone_else(name, new_owner, observed)
    ):
        changes.extend(_reown_namespace(name, new_owner, observed))
    return changes


def _owner_binding_names_someone_else(name: str, owner: str, observed: ObservedState) -> bool:
    """An owner change half done: the annotation moved on but namespaceAdmin did not.

    A run that held the reset (a change for the profile failed), or whose delete
    failed, leaves it so; looking at the binding keeps the reset level-triggered.
    A missing binding is the profile controller's to create.
    """
    binding = observed.role_bindings.get((name, OWNER_ROLEBINDING))
    if binding is None:
        return False
    subjects = binding.get("subjects") or []
    return not any(s.get("name") == owner for s in subjects)


def _profile_change(
    name: str, desired: Obj, want: dict[str, Any], current: Obj | None
) -> list[Change]:
    if current is None:
        return [
            Change(
                "create", "Profile", name, "not in the cluster", body=desired, phase=PHASE_PROFILE
            )
        ]
    have = _profile_spec(current)
    reasons = _missing_metadata(desired, current)
    if want["owner"] != have["owner"]:
        reasons.append(_owner_difference(have["owner"], want["owner"]))
    if not same_quota(want["resourceQuotaSpec"], have["resourceQuotaSpec"]):
        reasons.append("resource quota differs")
    if want["plugins"] != have["plugins"]:
        reasons.append("plugins differ")
    if not reasons:
        return []
    return [
        Change(
            "update",
            "Profile",
            name,
            "; ".join(reasons),
            body=desired,
            remove_paths=tuple(f"/spec{p}" for p in extra_paths(want, have)),
            phase=PHASE_PROFILE,
        )
    ]


def _reown_namespace(name: str, owner: str, observed: ObservedState) -> list[Change]:
    """Kubeflow's profile controller will not re-own a namespace by itself.

    It refuses a namespace whose ``owner`` annotation names someone else, and it
    only creates the owner's binding and policy when they are missing; so we
    rewrite the annotation and delete both for it to recreate for the new owner.
    """
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "annotations": {NAMESPACE_OWNER_ANNOTATION: owner}},
    }
    reason = f"owner changed to {owner}; the profile controller recreates it for the new owner"
    changes = []
    if owner_of_namespace(observed.namespaces[name]) != owner:
        changes.append(
            Change(
                "update",
                "Namespace",
                name,
                f"owner annotation -> {owner}",
                body=body,
                phase=PHASE_NAMESPACE,
            )
        )
    if (name, OWNER_ROLEBINDING) in observed.role_bindings:
        changes.append(
            Change(
                "delete", "RoleBinding", OWNER_ROLEBINDING, reason, name, phase=PHASE_OWNER_RESET
            )
        )
    if (name, OWNER_AUTHORIZATION_POLICY) in observed.authorization_policies:
        changes.append(
            Change(
                "delete",
                "AuthorizationPolicy",
                OWNER_AUTHORIZATION_POLICY,
                reason,
                name,
                phase=PHASE_OWNER_RESET,
            )
        )
    return changes


def _compare_contributor(
    kind: Kind, namespace: str, name: str, desired: Obj, current: Obj
) -> Change | None:
    """None when in line; else the update (or, for a new roleRef, the replace) to make."""
    removals: tuple[str, ...] = ()
    if kind == "RoleBinding":
        if current.get("roleRef") != desired["roleRef"]:
            reason = "roleRef differs (immutable: delete and create)"
            return Change("replace", kind, name, reason, namespace, desired)
        reasons = _missing_metadata(desired, current)
        if current.get("subjects") != desired["subjects"]:
            reasons.append("subjects differ")
    else:
        reasons = _missing_metadata(desired, current)
        have = current.get("spec") or {}
        if have != desired["spec"]:
            reasons.append(_policy_difference(have, desired["spec"]))
            # e.g. `action: DENY` added by hand: apply alone would leave it in place
            removals = tuple(f"/spec{p}" for p in extra_paths(desired["spec"], have))
    if not reasons:
        return None
    return Change("update", kind, name, "; ".join(reasons), namespace, desired, removals)


def _policy_shape_of(spec: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    try:
        rule = spec["rules"][0]
        principals = rule["from"][0]["source"]["principals"]
        condition = rule["when"][0]
        return principals, condition["key"], condition["values"]
    except (KeyError, IndexError, TypeError):
        return None, None, None


def _policy_difference(have: Mapping[str, Any], want: Mapping[str, Any]) -> str:
    """Why a contributor policy is rewritten, in the terms of the owner policy it follows."""
    what = []
    for label, a, b in zip(
        ("principals", "user header", "user value"),
        _policy_shape_of(have),
        _policy_shape_of(want),
        strict=True,
    ):
        if a != b:
            what.append(label)
    if have.get("targetRefs") != want.get("targetRefs"):
        if want.get("targetRefs"):
            what.append("targetRefs (the owner policy is on a waypoint: ambient mode)")
        else:
            what.append("targetRefs (the owner policy has none: sidecar mode)")
    if not what:
        what.append("extra rules or fields")
    return f"differs from {OWNER_AUTHORIZATION_POLICY}: " + ", ".join(what)


def _removal(
    kind: Kind, namespace: str, name: str, obj: Obj, wanted_users: Mapping[str, str]
) -> Change:
    """Delete a contributor object the PMR does not ask for, saying what it means."""
    identity = kfam_identity(obj)
    user, role = identity if identity else ("", "")
    if user not in wanted_users:
        reason = f"{user} is not a contributor of {namespace} in the PMR"
    elif wanted_users[user] == role:
        reason = f"duplicate of the KFAM-named object for {user} {role} (e.g. an older naming)"
    else:
        reason = f"{user} is now {wanted_users[user]} in {namespace}, not {role}"
    return Change(
        "delete",
        kind,
        name,
        reason,
        namespace,
        phase=PHASE_REVOKE,
        revokes_access=user not in wanted_users,
        user=user,
    )


def plan_contributors(
    namespace: str,
    kind: Kind,
    desired: Mapping[NamespacedKey, Obj],
    current: Mapping[NamespacedKey, Obj],
    kfam_current: Iterable[NamespacedKey],
    unknown_role: Role | None = None,
    *,
    keep: Mapping[str, str] | None = None,
) -> list[Change]:
    """Make one namespace's contributor objects of one kind equal to the desired ones.

    `unknown_role`: the widest role an unresolved group grants here; an existing object of
    that role or a narrower one may be that group's doing and is kept. ``keep`` (user ->
    role) names contributors whose objects cannot be written yet (their policy shape is
    unknown) but must not be removed either.
    """
    changes: list[Change] = []
    wanted_users = {
        _annotations(o).get("user", ""): _annotations(o).get("role", "") for o in desired.values()
    }
    wanted_users.update(keep or {})
    for key, body in desired.items():
        existing = current.get(key)
        user = _annotations(body).get("user")
        if existing is None:
            reason = f"grant {user} {_annotations(body).get('role')}"
            changes.append(Change("create", kind, key[1], reason, namespace, body))
            continue
        drift = _compare_contributor(kind, namespace, key[1], body, existing)
        if drift is not None:
            changes.append(drift)
    for key in kfam_current:
        if key in desired:
            continue
        identity = kfam_identity(current[key])
        if keep and identity and keep.get(identity[0]) == identity[1].value:
            continue
        if unknown_role is not None and _maybe_granted(current[key], wanted_users, unknown_role):
            continue
        changes.append(_removal(kind, namespace, key[1], current[key], wanted_users))
    return changes


def _maybe_granted(obj: Obj, wanted_users: Mapping[str, str], unknown_role: Role) -> bool:
    """Removing `obj` could take away access an unresolved group gives its user.

    The group may grant its user up to `unknown_role`; the removal is safe only when what the
    PMR still grants the user here (if anything) covers that much of the object's role.
    """
    identity = kfam_identity(obj)
    if identity is None:
        return False
    user, role = identity
    at_stake = min(Role(role).rank, unknown_role.rank)
    kept = wanted_users.get(user)
    return kept is None or Role(kept).rank < at_stake


def _in_namespace(objects: Mapping[NamespacedKey, Obj]) -> dict[str, dict[NamespacedKey, Obj]]:
    grouped: dict[str, dict[NamespacedKey, Obj]] = {}
    for key, obj in objects.items():
        grouped.setdefault(key[0], {})[key] = obj
    return grouped


def _is_managed(obj: Obj) -> bool:
    return _labels(obj).get(MANAGED_BY_LABEL) == MANAGER_NAME


def _guard(
    changes: list[Change], stale: list[str], observed: ObservedState, options: PlanOptions
) -> tuple[list[Change], list[Change], str | None]:
    """Hold every revocation when a run looks like an emptied or truncated PMR.

    The limit counts people losing access to a profile: a contributor's RoleBinding
    and AuthorizationPolicy are one revocation.
    """
    revocations = [c for c in changes if c.is_revocation]
    if options.force or not revocations:
        return changes, [], None
    reasons = []
    people = len({(c.namespace, c.user or c.name) for c in revocations})
    if people > options.max_revocations:
        noun = "revocation" if people == 1 else "revocations"
        reasons.append(f"held {people} {noun} (limit {options.max_revocations})")
    managed = [n for n, p in observed.profiles.items() if _is_managed(p)]
    stale_managed = [n for n in stale if n in managed]
    if managed and len(stale_managed) > options.max_stale_fraction * len(managed):
        reasons.append(
            f"{len(stale_managed)} of {len(managed)} managed profiles would become stale "
            f"(limit {options.max_stale_fraction:.0%})"
        )
    if not reasons:
        return changes, [], None
    kept = [c for c in changes if not c.is_revocation]
    return kept, revocations, "; ".join(reasons)


def is_ignored(name: str, ignored: Iterable[str]) -> bool:
    """Profiles matching an ignored name or glob are never stale and never touched."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in ignored)


def stale_names(
    existing: Mapping[str, Obj],
    wanted: Container[str],
    ignored: Iterable[str],
    unknown_personal_groups: Container[str] = frozenset(),
) -> list[str]:
    """Profiles in the cluster that the PMR does not name, ignored ones excluded.

    A personal Profile of a group whose members are unknown right now is not stale: its
    owner may well still be a member.
    """
    ignored = tuple(ignored)
    return sorted(
        n
        for n, obj in existing.items()
        if n not in wanted
        and not is_ignored(n, ignored)
        and (personal_group_of(obj) or "") not in unknown_personal_groups
    )


def adoption_refusal(
    name: str, namespace: NamespaceRecord, profile: Obj | None, options: PlanOptions
) -> Refusal | None:
    """Why an existing namespace must not become this profile's, or None.

    Re-owning a namespace hands it to the profile controller, and a later
    stale-profile deletion deletes it with everything in it; so taking over one
    that no Profile (or another Profile) owns needs the admin's opt-in, and a
    Juju model's namespace is never taken.
    """
    uid = ((profile or {}).get("metadata") or {}).get("uid")
    others = [
        owner for owner, owner_uid in namespace.profile_owners if owner != name or owner_uid != uid
    ]
    ours = profile is not None and not others
    rename = "rename the profile in the PMR"
    if namespace.juju_model and not (ours and namespace.profile_owners):
        return Refusal(
            name,
            f"namespace {name} belongs to a Juju model and is never adopted",
            f"{rename} (a Juju model's namespace cannot be a profile)",
        )
    if ours or options.adopt_namespaces:
        return None
    if not others:
        why = f"namespace {name} exists and no Profile owns it"
    elif others[0] == name:
        why = f"namespace {name} is owned by an earlier Profile {name} (another uid)"
    else:
        why = f"namespace {name} is owned by Profile {others[0]}"
    return Refusal(
        name,
        why,
        f"{rename}, or set adopt-namespaces=true (pmr: --adopt-namespaces) to let the profile "
        "controller take it over (deleting the Profile later deletes the namespace)",
    )


def _grants_in(
    grants: Mapping[NamespacedKey, PolicyGrant],
) -> dict[str, dict[NamespacedKey, PolicyGrant]]:
    grouped: dict[str, dict[NamespacedKey, PolicyGrant]] = {}
    for key, grant in grants.items():
        grouped.setdefault(key[0], {})[key] = grant
    return grouped


def _policy_changes(
    name: str,
    desired: DesiredState,
    grants: Mapping[NamespacedKey, PolicyGrant],
    owner: OwnerPolicy | None,
    current: Mapping[NamespacedKey, Obj],
    kfam_current: Iterable[NamespacedKey],
    unknown: Role | None = None,
) -> list[Change]:
    """Contributor policies shaped like the namespace's owner policy.

    Without one yet, nothing can be written (its principals, header and
    targetRefs are unknown), but the wanted contributors' policies are kept.
    """
    kind: Kind = "AuthorizationPolicy"
    if owner is None:
        keep = {g.user: g.role.value for g in grants.values()}
        return plan_contributors(name, kind, {}, current, kfam_current, unknown, keep=keep)
    wanted = desired.policies_in(grants, owner)
    return plan_contributors(name, kind, wanted, current, kfam_current, unknown)


def plan(desired: DesiredState, observed: ObservedState, options: PlanOptions) -> Plan:
    """Compute the changes that make the cluster match the PMR, safely."""
    changes: list[Change] = []
    pending: list[str] = []
    refused: list[Refusal] = []
    want_rb, want_ap = _in_namespace(desired.role_bindings), _grants_in(desired.policy_grants)
    have_rb, have_ap = (
        _in_namespace(observed.role_bindings),
        _in_namespace(observed.authorization_policies),
    )
    for name, body in desired.profiles.items():
        record = observed.namespace_records.get(name)
        if record is not None:
            refusal = adoption_refusal(name, record, observed.profiles.get(name), options)
            if refusal is not None:
                refused.append(refusal)
                continue
        changes.extend(plan_profile(name, body, observed))
        if record is None:
            if want_rb.get(name) or want_ap.get(name):
                pending.append(name)
            continue
        kfam_rb, kfam_ap = observed.contributor_objects(name)
        unknown = desired.unknown_access.get(name)
        changes.extend(
            plan_contributors(
                name, "RoleBinding", want_rb.get(name, {}), have_rb.get(name, {}), kfam_rb, unknown
            )
        )
        owner = observed.owner_policies.get(name)
        grants = want_ap.get(name, {})
        if owner is None and grants:
            pending.append(name)
        changes.extend(
            _policy_changes(name, desired, grants, owner, have_ap.get(name, {}), kfam_ap, unknown)
        )
    stale = stale_names(
        observed.profiles,
        desired.profiles,
        options.ignored_profiles,
        desired.unknown_personal_groups,
    )
    if options.revoke_stale_access:
        for name in stale:
            kfam_rb, kfam_ap = observed.contributor_objects(name)
            changes.extend(
                plan_contributors(name, "RoleBinding", {}, have_rb.get(name, {}), kfam_rb)
            )
            changes.extend(
                plan_contributors(name, "AuthorizationPolicy", {}, have_ap.get(name, {}), kfam_ap)
            )
    kept, held, hold_reason = _guard(changes, stale, observed, options)
    return Plan(
        changes=tuple(sorted(kept, key=_sort_key)),
        stale_profiles=tuple(stale),
        pending=tuple(sorted(pending)),
        held=tuple(sorted(held, key=_sort_key)),
        hold_reason=hold_reason,
        refused=tuple(sorted(refused, key=lambda r: r.name)),
    )


def plan_pending(
    desired: DesiredState,
    owners: Mapping[str, OwnerPolicy],
    *,
    bindings_done: Iterable[str] = (),
    parts: SharedParts | None = None,
) -> list[Change]:
    """Contributor objects for namespaces the profile controller has just set up.

    They did not exist (or had no owner policy) when the cluster was observed,
    so nothing of ours can be in them yet; ``bindings_done`` names namespaces
    whose RoleBindings the main plan already wrote. ``parts`` shares the policies'
    specs and metadata across calls (see ``DesiredState.policies_in``).
    """
    pending = iter_pending(desired, owners, bindings_done=bindings_done, parts=parts)
    return sorted(pending, key=_sort_key)


def iter_pending(
    desired: DesiredState,
    owners: Mapping[str, OwnerPolicy],
    *,
    bindings_done: Iterable[str] = (),
    parts: SharedParts | None = None,
) -> Iterator[Change]:
    """``plan_pending``'s changes one namespace at a time, unsorted.

    For what only looks at each change once (the preflight's permissions): at 10,000
    pending namespaces, 200,000 changes with their bodies never exist at once.
    """
    want_rb, want_ap = _in_namespace(desired.role_bindings), _grants_in(desired.policy_grants)
    done = set(bindings_done)
    for name, owner in owners.items():
        if name not in done:
            yield from plan_contributors(name, "RoleBinding", want_rb.get(name, {}), {}, ())
        grants = want_ap.get(name, {})
        yield from plan_contributors(
            name, "AuthorizationPolicy", desired.policies_in(grants, owner, parts), {}, ()
        )
