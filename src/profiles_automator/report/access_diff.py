"""The access review of a PMR change: who gains and who loses what, per profile (pure).

Takes two validated, expanded PMR models (groups and defaults already resolved, so a change to a
group's members shows up in every profile that uses the group) and gives, per profile: people
who gain a role, lose it, or change role, each with the PMR route (listed by name, a group, the
defaults) that gives or gave it; owner, quota, plugin and cluster changes; profiles added and
removed. Removed profiles are not deleted by a sync: they become stale and their contributors
lose access. Groups whose members come from an identity provider and could not be resolved are
named in the result, so a reviewer knows what the diff cannot show.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from profiles_automator.pmr.model import PMR, Origin, Owner, Profile, Role, thaw
from profiles_automator.report.markdown import code, escape_cell

ProfileChangeKind = Literal["added", "removed", "changed"]
AccessChangeKind = Literal["gains", "loses", "role"]

_KIND_ORDER = {"gains": 0, "role": 1, "loses": 2}
_SYMBOL = {"gains": "+", "loses": "-", "role": "~"}
_STALE_NOTE = (
    "becomes stale, not deleted: its contributors lose access (unless revoke-stale-access is "
    "off), its owner keeps it, and an admin deletes it with delete-stale-profiles"
)


@dataclass(frozen=True)
class AccessChange:
    """One person's access to one profile, before and after, and the routes behind it.

    `via` holds the routes that give the new role (gains, role changes) or gave the old one
    (losses): ``direct entry`` (listed by name), ``group ml-team``, ``defaults`` or
    ``defaults (group platform-admins)``.
    """

    user: str
    kind: AccessChangeKind
    before: Role | None
    after: Role | None
    via: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "user": self.user,
            "change": self.kind,
            "before": self.before.value if self.before else None,
            "after": self.after.value if self.after else None,
            "via": list(self.via),
        }


@dataclass(frozen=True)
class SettingChange:
    """A profile setting that changed: its name and its values before and after (None: unset)."""

    setting: str
    before: str | None
    after: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"setting": self.setting, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class ProfileDiff:
    """Everything that changes for one profile."""

    name: str
    change: ProfileChangeKind
    access: tuple[AccessChange, ...] = ()
    settings: tuple[SettingChange, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "change": self.change,
            "access": [a.to_json() for a in self.access],
            "settings": [s.to_json() for s in self.settings],
        }


@dataclass(frozen=True)
class AccessDiff:
    """The whole review: changed profiles sorted by name, and what could not be resolved."""

    profiles: tuple[ProfileDiff, ...]
    unresolved_groups: tuple[str, ...] = ()

    @property
    def has_changes(self) -> bool:
        """Whether anything at all differs."""
        return bool(self.profiles)

    def counts(self) -> dict[str, int]:
        """Profiles added/removed/changed and people gaining/losing/changing role."""
        counts: dict[str, int] = dict.fromkeys(
            ("added", "removed", "changed", "gains", "loses", "role"), 0
        )
        for profile in self.profiles:
            counts[profile.change] += 1
            for access in profile.access:
                counts[access.kind] += 1
        return counts

    def summary(self) -> str:
        """One line, e.g. ``1 profile added, 2 changed; 3 grants, 1 revocation``."""
        counts = self.counts()
        profiles = [
            f"{counts[kind]} {kind}" for kind in ("added", "removed", "changed") if counts[kind]
        ]
        if profiles:
            first, *rest = profiles
            number, word = first.split(" ", 1)
            profiles = [f"{number} {_plural(int(number), 'profile')} {word}", *rest]
        people = [
            _count(counts["gains"], "grant"),
            _count(counts["loses"], "revocation"),
            _count(counts["role"], "role change"),
        ]
        return f"{', '.join(profiles) or 'no profile changes'}; {', '.join(people)}"

    def to_json(self) -> dict[str, Any]:
        """The ``pmr diff --output json`` document (without base and head)."""
        return {
            "changed": self.has_changes,
            "profiles": [p.to_json() for p in self.profiles],
            "counts": self.counts(),
            "group_membership_resolved": not self.unresolved_groups,
            "unresolved_groups": list(self.unresolved_groups),
        }


def access_diff(
    base: PMR,
    head: PMR,
    *,
    cluster_name: str | None = None,
    unresolved_groups: Iterable[str] = (),
) -> AccessDiff:
    """Compare two PMRs; with `cluster_name`, only the profiles that cluster would have."""
    if cluster_name is None:
        before = {p.name: p for p in base.profiles}
        after = {p.name: p for p in head.profiles}
    else:
        before = {p.name: p for p in base.for_cluster(cluster_name)}
        after = {p.name: p for p in head.for_cluster(cluster_name)}
    diffs: list[ProfileDiff] = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old is None and new is not None:
            diffs.append(_added(new))
        elif new is None and old is not None:
            diffs.append(_removed(old))
        elif old is not None and new is not None and (changed := _changed(old, new)):
            diffs.append(changed)
    return AccessDiff(tuple(diffs), tuple(sorted(set(unresolved_groups))))


def _added(profile: Profile) -> ProfileDiff:
    access = tuple(
        AccessChange(c.name, "gains", None, c.role, _routes(c.origins))
        for c in profile.contributors
    )
    settings = [SettingChange("owner", None, _owner(profile.owner))]
    settings += _quota_changes({}, thaw(profile.resources))
    settings += _plugin_changes((), profile.plugins)
    if profile.clusters is not None:
        settings.append(SettingChange("clusters", None, _clusters(profile.clusters)))
    return ProfileDiff(profile.name, "added", _sorted(access), tuple(settings))


def _removed(profile: Profile) -> ProfileDiff:
    access = tuple(
        AccessChange(c.name, "loses", c.role, None, _routes(c.origins))
        for c in profile.contributors
    )
    return ProfileDiff(profile.name, "removed", _sorted(access))


def _changed(old: Profile, new: Profile) -> ProfileDiff | None:
    before = {c.name: c for c in old.contributors}
    after = {c.name: c for c in new.contributors}
    access: list[AccessChange] = []
    for user in before.keys() | after.keys():
        was, now = before.get(user), after.get(user)
        if now is None and was is not None:
            if not _owns(new.owner, user):  # a contributor who becomes the owner loses nothing
                access.append(AccessChange(user, "loses", was.role, None, _routes(was.origins)))
        elif was is None and now is not None:
            access.append(AccessChange(user, "gains", None, now.role, _routes(now.origins)))
        elif was is not None and now is not None and was.role != now.role:
            access.append(AccessChange(user, "role", was.role, now.role, _routes(now.origins)))
    settings: list[SettingChange] = []
    if old.owner != new.owner:
        settings.append(SettingChange("owner", _owner(old.owner), _owner(new.owner)))
    settings += _quota_changes(thaw(old.resources), thaw(new.resources))
    settings += _plugin_changes(old.plugins, new.plugins)
    if old.clusters != new.clusters:
        settings.append(
            SettingChange("clusters", _clusters(old.clusters), _clusters(new.clusters))
        )
    if not access and not settings:
        return None
    return ProfileDiff(new.name, "changed", _sorted(access), tuple(settings))


def _sorted(access: Iterable[AccessChange]) -> tuple[AccessChange, ...]:
    return tuple(sorted(access, key=lambda a: (_KIND_ORDER[a.kind], a.user)))


def _owns(owner: Owner, user: str) -> bool:
    return owner.kind == "User" and owner.name == user


def _routes(origins: Sequence[Origin]) -> tuple[str, ...]:
    """Name each PMR route that reaches the user, in people's terms, without repeats."""
    routes: list[str] = []
    for origin in origins:
        from_defaults = origin.path.startswith("defaults")
        if origin.group is not None:
            route = f"group {origin.group}"
            route = f"defaults ({route})" if from_defaults else route
        else:
            route = "defaults" if from_defaults else "direct entry"
        if route not in routes:
            routes.append(route)
    return tuple(routes)


def _owner(owner: Owner) -> str:
    if owner.kind == "ServiceAccount":
        return f"ServiceAccount {owner.namespace}/{owner.name}"
    return f"{owner.kind} {owner.name}"


def _clusters(clusters: tuple[str, ...] | None) -> str:
    return "every cluster" if clusters is None else ", ".join(clusters)


def _value(value: Any) -> str:
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, separators=(", ", ": "))
    return str(value)


def _quota_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[SettingChange]:
    """Per-resource changes of `hard`, and whole-value changes of the other quota fields."""
    changes: list[SettingChange] = []
    old_hard, new_hard = old.get("hard") or {}, new.get("hard") or {}
    for key in sorted(old_hard.keys() | new_hard.keys()):
        was, now = old_hard.get(key), new_hard.get(key)
        if was != now:
            changes.append(
                SettingChange(
                    f"quota {key}",
                    None if was is None else _value(was),
                    None if now is None else _value(now),
                )
            )
    for key in sorted((old.keys() | new.keys()) - {"hard"}):
        was, now = old.get(key), new.get(key)
        if was != now:
            changes.append(
                SettingChange(
                    f"quota {key}",
                    None if was is None else _value(was),
                    None if now is None else _value(now),
                )
            )
    return changes


def _plugin_changes(old: Sequence[Any], new: Sequence[Any]) -> list[SettingChange]:
    before = {p["kind"]: thaw(p.get("spec")) for p in old}
    after = {p["kind"]: thaw(p.get("spec")) for p in new}
    changes = []
    for kind in sorted(before.keys() | after.keys()):
        was, now = before.get(kind), after.get(kind)
        if was != now:
            changes.append(
                SettingChange(
                    f"plugin {kind}",
                    None if kind not in before else _value(was),
                    None if kind not in after else _value(now),
                )
            )
    return changes


# --- rendering ---------------------------------------------------------------------------


def unresolved_note(groups: Sequence[str]) -> str:
    """What the diff cannot show when identity-provider groups were not resolved."""
    return (
        f"group membership was not resolved for {', '.join(groups)} (members come from an "
        "identity provider): access through these groups is not shown; give the provider "
        "credentials to resolve them"
    )


def render_text(diff: AccessDiff, base: str, head: str) -> str:
    """Plain text for a terminal or a CI log."""
    lines = [f"Access review: {base} -> {head}"]
    for profile in diff.profiles:
        heading = f"profile {profile.name}: {profile.change}"
        if profile.change == "removed":
            heading += f" from the PMR; it {_STALE_NOTE}"
        lines.append(heading)
        lines.extend(f"  {_SYMBOL[a.kind]} {_access_text(a)}" for a in profile.access)
        lines.extend(
            f"  {s.setting}: {_shown(s.before)} -> {_shown(s.after)}" for s in profile.settings
        )
    if not diff.has_changes:
        lines.append("No changes: nobody gains or loses access.")
    else:
        lines.append(f"Summary: {diff.summary()}.")
    if diff.unresolved_groups:
        lines.append(f"Note: {unresolved_note(diff.unresolved_groups)}.")
    return "\n".join(lines) + "\n"


def _access_text(access: AccessChange) -> str:
    if access.kind == "gains":
        return f"{access.user} gains {_role(access.after)} (via {', '.join(access.via)})"
    if access.kind == "loses":
        return f"{access.user} loses {_role(access.before)} (was via {', '.join(access.via)})"
    return (
        f"{access.user}: {_role(access.before)} -> {_role(access.after)} "
        f"(via {', '.join(access.via)})"
    )


def render_markdown(diff: AccessDiff, base: str, head: str) -> str:
    """Markdown for a pull request comment or `$GITHUB_STEP_SUMMARY`."""
    lines = [f"### Access review: {code(base)} → {code(head)}", ""]
    if not diff.has_changes:
        lines.append("No changes: nobody gains or loses access.")
    else:
        lines.append(f"**{diff.summary()}**")
    for profile in diff.profiles:
        lines += ["", f"#### {code(profile.name)} ({profile.change})", ""]
        if profile.change == "removed":
            lines += [f"Removed from the PMR: it {_STALE_NOTE}.", ""]
        if profile.access:
            lines += ["| Who | Change | Role | Through |", "| --- | --- | --- | --- |"]
            for a in profile.access:
                role = (
                    f"{_role(a.before)} → {_role(a.after)}"
                    if a.kind == "role"
                    else _role(a.after if a.kind == "gains" else a.before)
                )
                cells = (a.user, a.kind, role, ", ".join(a.via))
                lines.append("| " + " | ".join(escape_cell(c) for c in cells) + " |")
            if profile.settings:
                lines.append("")
        lines.extend(
            f"- {escape_cell(s.setting)}: {_md_value(s.before)} → {_md_value(s.after)}"
            for s in profile.settings
        )
    if diff.unresolved_groups:
        lines += ["", f"> **Note:** {unresolved_note(diff.unresolved_groups)}."]
    return "\n".join(lines) + "\n"


def render_json(diff: AccessDiff, base: str, head: str) -> str:
    """The JSON document, with the two sides named."""
    return json.dumps({"base": base, "head": head, **diff.to_json()}, indent=2) + "\n"


def _role(role: Role | None) -> str:
    return role.value if role else "none"


def _shown(value: str | None) -> str:
    return "(none)" if value is None else value


def _md_value(value: str | None) -> str:
    return "*(none)*" if value is None else code(value)


def _plural(number: int, noun: str) -> str:
    return noun if number == 1 else f"{noun}s"


def _count(number: int, noun: str) -> str:
    return f"{number} {_plural(number, noun)}"
