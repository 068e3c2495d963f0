"""The immutable, fully expanded PMR: what every other part of the engine reads."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from profiles_automator.pmr.problems import Location


class Role(enum.StrEnum):
    """KFAM contributor roles; each maps to ClusterRole ``kubeflow-<role>``."""

    VIEW = "view"
    EDIT = "edit"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Permissiveness, so a user reached several ways keeps the widest role."""
        return _RANK[self]

    @property
    def cluster_role(self) -> str:
        """The ClusterRole Kubeflow ships for this role."""
        return f"kubeflow-{self.value}"


_RANK = {Role.VIEW: 0, Role.EDIT: 1, Role.ADMIN: 2}


def freeze(value: Any) -> Any:
    """Deep read-only copy of plain YAML data (mappings become proxies, lists tuples)."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain, mutable JSON-ready data from a frozen value."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)  # one per contributor: 100,000 at scale
class Owner:
    """``Profile.spec.owner``: an RBAC subject."""

    kind: str
    name: str
    namespace: str | None = None

    def subject(self) -> dict[str, str]:
        """The RBAC subject the profile controller binds to kubeflow-admin."""
        if self.kind == "ServiceAccount":
            return {"kind": "ServiceAccount", "name": self.name, "namespace": self.namespace or ""}
        return {"kind": self.kind, "name": self.name, "apiGroup": "rbac.authorization.k8s.io"}


@dataclass(frozen=True, slots=True)  # one per contributor: 100,000 at scale
class Origin:
    """One PMR entry that gives a user access, so reports can say why."""

    location: Location
    path: str
    group: str | None = None

    def __str__(self) -> str:
        via = f" (group {self.group})" if self.group else ""
        return f"{self.location} {self.path}{via}"


@dataclass(frozen=True, slots=True)  # one per contributor: 100,000 at scale
class Contributor:
    """A user with one role in one profile, after groups and defaults are resolved."""

    name: str
    role: Role
    origins: tuple[Origin, ...] = ()


@dataclass(frozen=True)
class Profile:
    """One profile as the cluster must have it."""

    name: str
    owner: Owner
    contributors: tuple[Contributor, ...] = ()
    resources: Mapping[str, Any] = field(default_factory=lambda: freeze({}), hash=False)
    plugins: tuple[Any, ...] = ()
    clusters: tuple[str, ...] | None = None
    location: Location = field(default_factory=lambda: Location("<pmr>"))
    # Contributor entries through provider-backed groups whose members are not known yet;
    # what `pmr.membership.expand` could not resolve stays here and protects existing access.
    group_grants: tuple[GroupGrant, ...] = ()
    # Set on a personal profile: the PMR group whose member owns it.
    personal_group: str | None = None

    def applies_to(self, cluster_name: str | None) -> bool:
        """Profiles without ``clusters`` exist everywhere; others only where named."""
        return self.clusters is None or (cluster_name or "") in self.clusters


@dataclass(frozen=True)
class GroupSource:
    """One `from:` entry of a PMR group: a provider's group (id or DN) or an LDAP filter."""

    provider: str
    group: str | None = None
    filter: str | None = None

    def __str__(self) -> str:
        return f"{self.provider}:{self.group if self.group is not None else self.filter}"


@dataclass(frozen=True)
class GroupGrant:
    """A contributor entry `{group, role}` whose group has provider members."""

    group: str
    role: Role
    origin: Origin


@dataclass(frozen=True)
class EntraProvider:
    """Connection settings of an Entra ID tenant (no secrets: those come from the charm/CLI)."""

    name: str
    tenant_id: str
    user_id_attribute: str = "mail"
    authority_host: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com"
    location: Location = field(default_factory=lambda: Location("<pmr>"), compare=False)

    kind = "entra"


@dataclass(frozen=True)
class LDAPProvider:
    """Connection settings of an LDAP / Active Directory server (no secrets)."""

    name: str
    url: str
    user_base: str
    schema: str
    user_id_attribute: str = "mail"
    group_base: str | None = None
    start_tls: bool = False
    location: Location = field(default_factory=lambda: Location("<pmr>"), compare=False)

    kind = "ldap"


IdentityProvider = EntraProvider | LDAPProvider


@dataclass(frozen=True)
class PersonalProfiles:
    """`personalProfiles[i]`: a profile owned by each member of `group`, named by `name`.

    `contributors` and `group_grants` are already expanded for everything static; the
    owner is filled in per member by `pmr.membership.expand`.
    """

    group: str
    name: str
    contributors: tuple[Contributor, ...] = ()
    group_grants: tuple[GroupGrant, ...] = ()
    resources: Mapping[str, Any] = field(default_factory=lambda: freeze({}), hash=False)
    plugins: tuple[Any, ...] = ()
    clusters: tuple[str, ...] | None = None
    location: Location = field(default_factory=lambda: Location("<pmr>"))
    path: str = ""


@dataclass(frozen=True)
class PMR:
    """The whole PMR, merged from all its files."""

    profiles: tuple[Profile, ...] = ()
    groups: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    files: tuple[str, ...] = ()
    identity_providers: Mapping[str, IdentityProvider] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    # PMR groups with provider members: group name -> its `from:` entries.
    group_sources: Mapping[str, tuple[GroupSource, ...]] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    # Where each group is defined, for messages about members found only after resolution.
    group_locations: Mapping[str, Location] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    # Templates whose members are not (all) known yet; `expand` materialises the rest.
    personal_profiles: tuple[PersonalProfiles, ...] = ()

    def sources(self) -> tuple[GroupSource, ...]:
        """Every distinct provider group the PMR references, in PMR order."""
        return tuple(dict.fromkeys(s for refs in self.group_sources.values() for s in refs))

    def for_cluster(self, cluster_name: str | None) -> tuple[Profile, ...]:
        """The profiles this cluster must have."""
        return tuple(p for p in self.profiles if p.applies_to(cluster_name))
