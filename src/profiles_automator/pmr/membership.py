"""Provider members folded into a loaded PMR: contributors and personal profiles.

Pure: the resolver (identity stage) supplies the member ids of every provider group it could
resolve; whatever it could not stays in the model as *unknown* (`Profile.group_grants`,
`PMR.personal_profiles`), and the planner leaves alone any access or profile that unknown part
might account for. Collisions only visible once members are known (two members, one profile
name) are warnings that drop the later member's personal profile, never a failed sync.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from profiles_automator.pmr.kfam_names import MAX_OBJECT_NAME, binding_name, binding_user_part
from profiles_automator.pmr.model import (
    PMR,
    Contributor,
    GroupGrant,
    GroupSource,
    Origin,
    Owner,
    PersonalProfiles,
    Profile,
)
from profiles_automator.pmr.problems import Location, Problem
from profiles_automator.pmr.reserved import is_reserved

PLACEHOLDERS = ("local", "domain")
MAX_PROFILE_NAME = 63
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_NOT_LABEL = re.compile(r"[^a-z0-9]+")
# The schema's `email`: what the Istio header match and KFAM's names can carry.
_USER_ID = re.compile(r"^[^@\s\"',;<>\x00-\x1f\x7f]+@[^@\s\"',;<>\x00-\x1f\x7f]+$")


def template_problem(template: str) -> str | None:
    """Why a `personalProfiles[].name` template can never give valid names, or None."""
    names = _PLACEHOLDER.findall(template)
    unknown = sorted({n for n in names if n not in PLACEHOLDERS})
    if unknown:
        return (
            f"unknown placeholder {{{unknown[0]}}} in {template!r}; use {{local}} and "
            "{domain} (the parts of the user id around '@')"
        )
    if "local" not in names:
        return (
            f"{template!r} has no {{local}}, so every member would get the same profile "
            'name; add {local}, e.g. "{local}" or "ws-{local}"'
        )
    if "{" in _PLACEHOLDER.sub("", template) or "}" in _PLACEHOLDER.sub("", template):
        return f"unbalanced braces in {template!r}; placeholders are {{local}} and {{domain}}"
    literal = normalise_label(_PLACEHOLDER.sub("", template))
    if len(literal) > MAX_PROFILE_NAME - 1:
        return f"{template!r} leaves no room for the member's name in {MAX_PROFILE_NAME} chars"
    return None


def normalise_label(text: str) -> str:
    """A DNS-1123 label from any text: lower-case, other runs to '-', trimmed to 63."""
    label = _NOT_LABEL.sub("-", text.lower()).strip("-")
    return label[:MAX_PROFILE_NAME].rstrip("-")


def personal_name(template: str, user: str) -> str:
    """The profile name a member gets ('' when nothing usable is left)."""
    local, _, domain = user.partition("@")
    parts = {"local": local, "domain": domain}
    return normalise_label(_PLACEHOLDER.sub(lambda m: parts.get(m.group(1), ""), template))


@functools.lru_cache(maxsize=131072)  # members recur across groups
def is_valid_user_id(user: str) -> bool:
    """A user id Kubeflow's header match and KFAM's object names can carry."""
    return len(user) <= 254 and _USER_ID.match(user) is not None


@dataclass(frozen=True)
class Expansion:
    """The PMR with every resolved member in it, and what was dropped and why."""

    pmr: PMR
    warnings: tuple[Problem, ...] = ()


def known_members(
    pmr: PMR, group: str, resolved: Mapping[GroupSource, frozenset[str]]
) -> tuple[frozenset[str], bool]:
    """The members of a PMR group known now, and whether that is all of them."""
    members = set(pmr.groups.get(group, ()))
    complete = True
    for source in pmr.group_sources.get(group, ()):
        found = resolved.get(source)
        if found is None:
            complete = False
        else:
            members.update(found)
    return frozenset(members), complete


def expand(
    pmr: PMR,
    resolved: Mapping[GroupSource, frozenset[str]],
    *,
    protected_namespaces: Iterable[str] = (),
) -> Expansion:
    """Fold resolved provider members into `pmr`; unresolved sources stay unknown."""
    if not pmr.group_sources and not pmr.personal_profiles:
        return Expansion(pmr)
    expander = _Expander(pmr, resolved, tuple(protected_namespaces))
    profiles = [expander.profile(p) for p in pmr.profiles]
    taken = {p.name: f"profile {p.name!r} at {p.location}" for p in pmr.profiles}
    unknown: list[PersonalProfiles] = []
    for template in pmr.personal_profiles:
        members, complete = known_members(pmr, template.group, resolved)
        profiles.extend(expander.personal(template, members, taken))
        if not complete:
            unknown.append(template)
    expanded = replace(
        pmr,
        profiles=tuple(profiles),
        groups=MappingProxyType(
            {g: tuple(sorted(known_members(pmr, g, resolved)[0])) for g in pmr.groups}
        ),
        personal_profiles=tuple(unknown),
    )
    return Expansion(expanded, tuple(expander.warnings))


class _Expander:
    def __init__(
        self,
        pmr: PMR,
        resolved: Mapping[GroupSource, frozenset[str]],
        protected: tuple[str, ...],
    ):
        self.pmr = pmr
        self.protected = protected
        self.resolved = resolved
        self.warnings: list[Problem] = []
        self._members: dict[str, tuple[frozenset[str], bool]] = {}
        self._invalid_reported: set[str] = set()

    def members(self, group: str) -> tuple[frozenset[str], bool]:
        if group not in self._members:
            members, complete = known_members(self.pmr, group, self.resolved)
            valid = frozenset(m for m in members if is_valid_user_id(m))
            bad = sorted(members - valid)
            if bad and group not in self._invalid_reported:
                self._invalid_reported.add(group)
                self.warn(
                    Origin(
                        self.pmr.group_locations.get(group, Location("<pmr>")), f"groups.{group}"
                    ),
                    f"group {group!r}: {len(bad)} member id(s) cannot be Kubeflow user ids "
                    f"and are left out ({', '.join(map(repr, bad[:3]))}); check the "
                    "provider's userIdAttribute",
                )
            self._members[group] = (valid, complete)
        return self._members[group]

    def warn(self, origin: Origin, message: str) -> None:
        self.warnings.append(Problem(origin.location, origin.path, message, "warning"))

    def grants(
        self,
        name: str,
        owner: Owner,
        contributors: Iterable[Contributor],
        grants: Iterable[GroupGrant],
    ) -> tuple[tuple[Contributor, ...], tuple[GroupGrant, ...]]:
        """Static contributors plus resolved group members; unresolved grants kept."""
        roles = {c.name: c.role for c in contributors}
        origins = {c.name: list(c.origins) for c in contributors}
        static = set(roles)
        unresolved: list[GroupGrant] = []
        for grant in grants:
            members, complete = self.members(grant.group)
            if not complete:
                unresolved.append(grant)
            for user in members:
                if owner.kind == "User" and user == owner.name:
                    continue
                if user not in roles or grant.role.rank > roles[user].rank:
                    roles[user] = grant.role
                origins.setdefault(user, []).append(grant.origin)
        parts = {binding_user_part(u): u for u in static}
        for user in sorted(set(roles) - static):
            origin = origins[user][0]
            if len(binding_name(user, roles[user])) > MAX_OBJECT_NAME:
                self.warn(
                    origin,
                    f"{user!r} is left out of {name!r}: its KFAM binding name "
                    f"would exceed {MAX_OBJECT_NAME} characters",
                )
                del roles[user]
                continue
            part = binding_user_part(user)
            if part in parts:
                self.warn(
                    origin,
                    f"{user!r} is left out of {name!r}: {parts[part]!r} gets the "
                    "same KFAM binding name, so Kubeflow cannot tell them apart",
                )
                del roles[user]
                continue
            parts[part] = user
        contributors_out = tuple(
            Contributor(u, roles[u], tuple(origins[u])) for u in sorted(roles)
        )
        return contributors_out, tuple(unresolved)

    def profile(self, profile: Profile) -> Profile:
        if not profile.group_grants:
            return profile
        contributors, unresolved = self.grants(
            profile.name, profile.owner, profile.contributors, profile.group_grants
        )
        return replace(profile, contributors=contributors, group_grants=unresolved)

    def personal(
        self, template: PersonalProfiles, members: frozenset[str], taken: dict[str, str]
    ) -> list[Profile]:
        origin = Origin(template.location, f"{template.path}.name", template.group)
        valid, _ = self.members(template.group)
        profiles = []
        for user in sorted(members & valid):
            name = personal_name(template.name, user)
            problem = personal_name_problem(name, self.protected)
            if problem:
                self.warn(origin, f"{user} gets no personal profile: {problem}")
                continue
            if name in taken:
                self.warn(
                    origin,
                    f"{user} gets no personal profile: {name!r} is already taken by {taken[name]}",
                )
                continue
            taken[name] = f"the personal profile of {user} ({template.path})"
            owner = Owner("User", user)
            contributors, unresolved = self.grants(
                name,
                owner,
                [c for c in template.contributors if c.name != user],
                template.group_grants,
            )
            profiles.append(
                Profile(
                    name=name,
                    owner=owner,
                    contributors=contributors,
                    resources=template.resources,
                    plugins=template.plugins,
                    clusters=template.clusters,
                    location=template.location,
                    group_grants=unresolved,
                    personal_group=template.group,
                )
            )
        return profiles


def personal_name_problem(name: str, protected: Iterable[str] = ()) -> str | None:
    """Why a rendered personal profile name cannot be used, or None."""
    if not name:
        return "the name template leaves nothing of the user id"
    if is_reserved(name, protected):
        return f"{name!r} is a reserved namespace"
    return None
