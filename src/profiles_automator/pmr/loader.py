"""PMR files in, an immutable expanded model (plus warnings) out, or every error found."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from profiles_automator.gc_pause import no_gc_pauses
from profiles_automator.pmr.kfam_names import MAX_OBJECT_NAME, binding_name, binding_user_part
from profiles_automator.pmr.membership import (
    is_valid_user_id,
    personal_name,
    personal_name_problem,
    template_problem,
)
from profiles_automator.pmr.model import (
    PMR,
    Contributor,
    EntraProvider,
    GroupGrant,
    GroupSource,
    IdentityProvider,
    LDAPProvider,
    Origin,
    Owner,
    PersonalProfiles,
    Profile,
    Role,
    freeze,
)
from profiles_automator.pmr.problems import Location, PMRInvalidError, Problem
from profiles_automator.pmr.reserved import RESERVED_NAMESPACES as RESERVED_NAMESPACES
from profiles_automator.pmr.reserved import is_reserved
from profiles_automator.pmr.schema import schema_problems
from profiles_automator.pmr.yaml_reader import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_NODES,
    ParsedYAML,
    YAMLReadError,
    extend_path,
    format_path,
    key_text,
    read_yaml,
)

SUPPORTED_VERSIONS = (1,)
_ROLES = {role.value: role for role in Role}  # a dict lookup; calling the Enum is slow
_RANKS = {role.value: role.rank for role in Role}
YAML_SUFFIXES = (".yaml", ".yml")

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_RDN = r"\s*[A-Za-z][A-Za-z0-9-]*\s*=\s*(?:[^,=\\]|\\.)+"
_DN = re.compile(rf"^{_RDN}(?:,{_RDN})*\s*$")


class DocumentLike(Protocol):
    """Anything with a display name and raw bytes (a local file, a fetched file)."""

    @property
    def name(self) -> str:
        """The path or URL an admin recognises."""
        ...

    @property
    def content(self) -> bytes:
        """The raw bytes, decoded only by the YAML reader."""
        ...


@dataclass(frozen=True)
class Document:
    """One PMR file: the name used in messages and its raw bytes."""

    name: str
    content: bytes


@dataclass(frozen=True)
class LoadResult:
    """A valid PMR and what is worth an admin's attention in it."""

    pmr: PMR
    warnings: tuple[Problem, ...] = ()


def read_paths(paths: Sequence[str | Path]) -> list[Document]:
    """Read PMR files and folders (``*.yaml``/``*.yml``, recursively) from disk."""
    documents: list[Document] = []
    errors: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix in YAML_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not files:
                errors.append(
                    Problem(Location(str(path)), "", "folder holds no *.yaml or *.yml files")
                )
            documents.extend(Document(str(f), f.read_bytes()) for f in files)
        elif path.is_file():
            documents.append(Document(str(path), path.read_bytes()))
        else:
            errors.append(Problem(Location(str(path)), "", "no such file or folder"))
    if errors:
        raise PMRInvalidError(errors)
    return documents


@dataclass(slots=True)
class _Entry:
    """A located piece of one file, kept until the files are merged."""

    parsed: ParsedYAML
    path: tuple[str | int, ...]
    value: Any
    text: str = ""  # format_path(path), when the creator already has it

    @property
    def location(self) -> Location:
        return self.parsed.where(self.path)

    def at(self, *child: str | int, key: bool = False) -> Location:
        return self.parsed.where((*self.path, *child), key=key)

    def name(self, *child: str | int) -> str:
        if not self.text:
            self.text = format_path(self.path)
        if self.text and len(child) == 1 and isinstance(child[0], str):  # the common case
            return self.text + key_text(child[0])
        return extend_path(self.text, child)

    def item(self, key: str, index: int, value: Any) -> _Entry:
        """The entry of ``value`` at ``key[index]`` under this one."""
        return _Entry(self.parsed, (*self.path, key, index), value, self.name(key, index))


class _Loader:
    def __init__(self, protected_namespaces: Iterable[str]):
        self.protected = tuple(protected_namespaces)
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.groups: dict[str, _Entry] = {}
        self.used_groups: set[str] = set()
        self.defaults: _Entry | None = None
        self.profiles: list[_Entry] = []
        self.providers: dict[str, _Entry] = {}
        self.personal: list[_Entry] = []
        self.files: list[str] = []

    def error(self, location: Location, path: str, message: str) -> None:
        self.errors.append(Problem(location, path, message))

    def warn(self, location: Location, path: str, message: str) -> None:
        self.warnings.append(Problem(location, path, message, "warning"))

    # -- merging files -------------------------------------------------------

    def add_file(self, parsed: ParsedYAML) -> None:
        self.files.append(parsed.file)
        data = parsed.data
        for name, group in (data.get("groups") or {}).items():
            entry = _Entry(parsed, ("groups", name), group)
            if name in self.groups:
                first = self.groups[name]
                self.error(
                    entry.at(key=True),
                    entry.name(),
                    f"group {name!r} is defined twice (also at {first.at(key=True)}); "
                    "define each group once",
                )
            else:
                self.groups[name] = entry
        if "defaults" in data:
            entry = _Entry(parsed, ("defaults",), data["defaults"])
            if self.defaults is not None:
                self.error(
                    entry.at(key=True),
                    "defaults",
                    f"`defaults` is set in two files (also at {self.defaults.at(key=True)}); "
                    "keep it in one file",
                )
            else:
                self.defaults = entry
        for index, profile in enumerate(data.get("profiles") or []):
            self.profiles.append(_Entry(parsed, ("profiles", index), profile))
        for name, provider in (data.get("identityProviders") or {}).items():
            entry = _Entry(parsed, ("identityProviders", name), provider)
            if name in self.providers:
                first = self.providers[name]
                self.error(
                    entry.at(key=True),
                    entry.name(),
                    f"identity provider {name!r} is defined twice (also at "
                    f"{first.at(key=True)}); define each provider once",
                )
            else:
                self.providers[name] = entry
        for index, template in enumerate(data.get("personalProfiles") or []):
            self.personal.append(_Entry(parsed, ("personalProfiles", index), template))

    # -- building the model --------------------------------------------------

    def build(self) -> PMR:
        providers = {n: self.provider(n, e) for n, e in self.providers.items()}
        sources = {
            name: self.group_sources(entry, providers)
            for name, entry in self.groups.items()
            if "from" in entry.value
        }
        seen: dict[str, _Entry] = {}
        profiles: list[Profile] = []
        for entry in self.profiles:
            name = entry.value["name"]
            if name in seen:
                self.error(
                    entry.at("name"),
                    entry.name("name"),
                    f"profile {name!r} is defined twice (also at {seen[name].at('name')}); "
                    "keep one definition",
                )
                continue
            seen[name] = entry
            profile = self.profile(entry)
            if profile is not None:
                profiles.append(profile)
        personal = [t for t in map(self.personal_template, self.personal) if t is not None]
        self.check_personal_names(personal, seen)
        for name, entry in self.groups.items():
            if name not in self.used_groups:
                self.warn(entry.at(key=True), entry.name(), f"group {name!r} is not used")
        groups = {
            n: tuple(dict.fromkeys(e.value.get("members") or ())) for n, e in self.groups.items()
        }
        return PMR(
            tuple(profiles),
            MappingProxyType(groups),
            tuple(self.files),
            identity_providers=MappingProxyType(providers),
            group_sources=MappingProxyType(sources),
            group_locations=MappingProxyType({n: e.at(key=True) for n, e in self.groups.items()}),
            personal_profiles=tuple(t for t, _ in personal),
        )

    # -- identity providers and personal profiles -----------------------------

    def provider(self, name: str, entry: _Entry) -> IdentityProvider:
        if "entra" in entry.value:
            v = entry.value["entra"]
            return EntraProvider(
                name=name,
                tenant_id=v["tenantId"],
                user_id_attribute=v.get("userIdAttribute", "mail"),
                authority_host=v.get("authorityHost", EntraProvider.authority_host).rstrip("/"),
                graph_url=v.get("graphUrl", EntraProvider.graph_url).rstrip("/"),
                location=entry.location,
            )
        v = entry.value["ldap"]
        start_tls = bool(v.get("startTLS", False))
        url = v["url"]
        if url.lower().startswith("ldap://") and not start_tls:
            self.error(
                entry.at("ldap", "url"),
                entry.name("ldap", "url"),
                f"{url!r} would send the bind password in clear text; use ldaps:// or set "
                "`startTLS: true`",
            )
        elif url.lower().startswith("ldaps://") and start_tls:
            self.error(
                entry.at("ldap", "startTLS"),
                entry.name("ldap", "startTLS"),
                "StartTLS is for ldap:// URLs; an ldaps:// connection is already TLS: remove "
                "`startTLS` or use ldap://",
            )
        return LDAPProvider(
            name=name,
            url=url,
            user_base=v["userBase"],
            schema=v["schema"],
            user_id_attribute=v.get("userIdAttribute", "mail"),
            group_base=v.get("groupBase"),
            start_tls=start_tls,
            location=entry.location,
        )

    def group_sources(
        self, entry: _Entry, providers: dict[str, IdentityProvider]
    ) -> tuple[GroupSource, ...]:
        sources: list[GroupSource] = []
        for index, item in enumerate(entry.value["from"]):
            at = _Entry(entry.parsed, (*entry.path, "from", index), item)
            name = item["provider"]
            provider = providers.get(name)
            if provider is None:
                hint = difflib.get_close_matches(name, list(providers), n=1)
                fix = (
                    f"did you mean {hint[0]!r}?"
                    if hint
                    else "define it under `identityProviders:`"
                )
                self.error(
                    at.at("provider"),
                    at.name("provider"),
                    f"unknown identity provider {name!r}; {fix}",
                )
                continue
            problem = _source_problem(provider, item)
            if problem:
                key = "group" if "group" in item else "filter"
                self.error(at.at(key), at.name(key), problem)
                continue
            sources.append(GroupSource(name, item.get("group"), item.get("filter")))
        return tuple(dict.fromkeys(sources))

    def personal_template(self, entry: _Entry) -> tuple[PersonalProfiles, _Entry] | None:
        value = entry.value
        group = value["group"]
        ok = True
        if group not in self.groups:
            hint = difflib.get_close_matches(group, list(self.groups), n=1)
            known = f"did you mean {hint[0]!r}?" if hint else "define it under `groups:`"
            self.error(entry.at("group"), entry.name("group"), f"unknown group {group!r}; {known}")
            ok = False
        else:
            self.used_groups.add(group)
        problem = template_problem(value["name"])
        if problem is None:
            sample = personal_name(value["name"], "a@b")
            problem = personal_name_problem(sample, self.protected)
            if problem:
                problem = f"the template always gives a reserved name: {problem}"
        if problem:
            self.error(entry.at("name"), entry.name("name"), problem)
            ok = False
        # The member is unknown here: their own entry is dropped per member on expansion.
        contributors, grants = self.contributors(entry, Owner("User", ""))
        if not ok:
            return None
        defaults = self.defaults.value if self.defaults else {}
        resources = value["resources"] if "resources" in value else defaults.get("resources", {})
        clusters = value.get("clusters")
        template = PersonalProfiles(
            group=group,
            name=value["name"],
            contributors=contributors,
            group_grants=grants,
            resources=freeze(resources),
            plugins=freeze(value.get("plugins", [])),
            clusters=tuple(clusters) if clusters is not None else None,
            location=entry.location,
            path=entry.name(),
        )
        return template, entry

    def check_personal_names(
        self, personal: list[tuple[PersonalProfiles, _Entry]], explicit: dict[str, _Entry]
    ) -> None:
        """Collisions visible offline: static members, explicit profiles, other templates."""
        taken: dict[str, tuple[str, str]] = {}  # name -> (user, where)
        for template, entry in personal:
            where = entry.at("name")
            group = self.groups[template.group]
            members = group.value.get("members") or []
            for index, user in enumerate(members):
                member_at = group.at("members", index)
                if not is_valid_user_id(user):
                    continue
                name = personal_name(template.name, user)
                problem = personal_name_problem(name, self.protected)
                if problem:
                    self.error(
                        where,
                        entry.name("name"),
                        f"{user} would get no personal profile: {problem}; change the template",
                    )
                    continue
                if name in explicit:
                    other = explicit[name]
                    self.error(
                        where,
                        entry.name("name"),
                        f"the personal profile of {user} would be {name!r}, which is already "
                        f"profile {name!r} (at {other.at('name')}, owner "
                        f"{(other.value.get('owner') or {}).get('name', 'from defaults')}); "
                        "change the template or rename that profile",
                    )
                    continue
                if name in taken and taken[name][0] != user:
                    first_user, first_where = taken[name]
                    self.error(
                        where,
                        entry.name("name"),
                        f"{user} (at {member_at}) and {first_user} (at {first_where}) would "
                        f"both get personal "
                        f"profile {name!r}; use a template that tells them apart, e.g. "
                        '"{local}-{domain}"',
                    )
                    continue
                taken.setdefault(name, (user, str(member_at)))

    def profile(self, entry: _Entry) -> Profile | None:
        value = entry.value
        name = value["name"]
        if is_reserved(name, self.protected):
            self.error(
                entry.at("name"),
                entry.name("name"),
                f"{name!r} is a reserved namespace and can never be a profile: a contributor "
                "binding there would hand out power over the platform; choose another name",
            )
            return None
        defaults = self.defaults.value if self.defaults else {}
        owner_data = value.get("owner") or defaults.get("owner")
        if owner_data is None:
            self.error(
                entry.location,
                entry.name(),
                f"profile {name!r} has no owner: set `owner` on it or `defaults.owner`",
            )
            return None
        owner = Owner(owner_data["kind"], owner_data["name"], owner_data.get("namespace"))
        if owner.kind == "Group":
            where = entry if "owner" in value else self.defaults
            assert where is not None
            self.warn(
                where.at("owner"),
                where.name("owner"),
                f"profile {name!r} is owned by Group {owner.name!r}: its members get Kubernetes "
                "RBAC, but Kubeflow grants web access by matching the owner's name in the "
                "user-id header, so none of them can use the profile through the dashboard "
                "(kubeflow/kubeflow#4923); make one person the owner and the group "
                "contributors instead",
            )
        contributors, grants = self.contributors(entry, owner)
        resources = value["resources"] if "resources" in value else defaults.get("resources", {})
        clusters = value.get("clusters")
        return Profile(
            name=name,
            owner=owner,
            contributors=contributors,
            resources=freeze(resources),
            plugins=freeze(value.get("plugins", [])),
            clusters=tuple(clusters) if clusters is not None else None,
            location=entry.location,
            group_grants=grants,
        )

    def _entries(self, entry: _Entry) -> list[_Entry]:
        own = [
            entry.item("contributors", i, c)
            for i, c in enumerate(entry.value.get("contributors") or [])
        ]
        if self.defaults is None:
            return own
        defaults = self.defaults
        return own + [
            defaults.item("contributors", i, c)
            for i, c in enumerate(defaults.value.get("contributors") or [])
        ]

    def contributors(
        self, entry: _Entry, owner: Owner
    ) -> tuple[tuple[Contributor, ...], tuple[GroupGrant, ...]]:
        roles: dict[str, Role] = {}
        ranks: dict[str, int] = {}  # roles[user].rank, without hashing an Enum each time
        origins: dict[str, list[Origin]] = {}
        grants: list[GroupGrant] = []
        for item in self._entries(entry):
            value = item.value
            role, rank = _ROLES[value["role"]], _RANKS[value["role"]]  # the schema's roles
            if "name" in value:  # nearly every entry: one user, located at the name
                reached = [(value["name"], Origin(item.at("name"), item.name("name")))]
            else:
                group = value["group"]
                if group in self.groups and "from" in self.groups[group].value:
                    origin = Origin(item.location, item.name(), group)
                    grants.append(GroupGrant(group, role, origin))
                reached = self.expand(item)
            for user, origin in reached:
                if ranks.get(user, -1) < rank:
                    roles[user], ranks[user] = role, rank
                origins.setdefault(user, []).append(origin)
        if owner.kind == "User" and owner.name in roles:
            # Through a group this is normal (owners are often in their team's group);
            # listed by name it is a slip worth pointing out.
            for origin in origins[owner.name]:
                if origin.group is None:
                    self.warn(
                        origin.location,
                        origin.path,
                        f"{owner.name} owns profile {entry.value['name']!r} and already has "
                        "admin access; this contributor entry is ignored",
                    )
            del roles[owner.name]
        self.check_names(entry, roles, origins)
        contributors = tuple(
            Contributor(user, roles[user], tuple(origins[user])) for user in sorted(roles)
        )
        return contributors, tuple(grants)

    def expand(self, item: _Entry) -> list[tuple[str, Origin]]:
        """The members of a `{group, role}` entry's group, each with that entry as origin."""
        group = item.value["group"]
        if group not in self.groups:
            hint = difflib.get_close_matches(group, list(self.groups), n=1)
            known = f"did you mean {hint[0]!r}?" if hint else "define it under `groups:`"
            self.error(item.at("group"), item.name("group"), f"unknown group {group!r}; {known}")
            return []
        self.used_groups.add(group)
        members = self.groups[group].value.get("members") or []
        if not members and "from" not in self.groups[group].value:
            self.warn(
                item.at("group"),
                item.name("group"),
                f"group {group!r} has no members, so it gives nobody access",
            )
        return [(m, Origin(item.location, item.name(), group)) for m in members]

    def check_names(
        self, entry: _Entry, roles: dict[str, Role], origins: dict[str, list[Origin]]
    ) -> None:
        """Users KFAM cannot tell apart, or whose objects could not be named, are errors."""
        by_part: dict[str, str] = {}
        for user in roles:  # PMR order, so the later entry is the one reported
            origin = origins[user][0]
            name = binding_name(user, roles[user].value)  # a str key hashes faster than an Enum
            if len(name) > MAX_OBJECT_NAME:
                self.error(
                    origin.location,
                    origin.path,
                    f"{user!r} is too long: its KFAM binding name would exceed "
                    f"{MAX_OBJECT_NAME} characters",
                )
                continue
            part = binding_user_part(user)
            if part in by_part:
                other = by_part[part]
                self.error(
                    origin.location,
                    origin.path,
                    f"{user!r} and {other!r} (at {origins[other][0].location}) in profile "
                    f"{entry.value['name']!r} get the same KFAM binding name "
                    f"({name}), so Kubeflow cannot tell them apart; "
                    "keep only one spelling",
                )
                continue
            by_part[part] = user


def _source_problem(provider: IdentityProvider, item: dict[str, Any]) -> str | None:
    """Why a `from:` entry cannot name a group of this provider, or None."""
    if isinstance(provider, EntraProvider):
        if "filter" in item:
            return (
                f"{provider.name} is Entra ID: filters are for LDAP providers; reference the "
                "group by its object id (`group: <id>`)"
            )
        if not _GUID.match(item["group"]):
            return (
                f"{item['group']!r} is not an Entra group object id (a GUID such as "
                "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b, shown as Object Id in the portal)"
            )
        return None
    if "group" in item and not _DN.match(item["group"]):
        return (
            f"{item['group']!r} is not an LDAP distinguished name; write the group's DN, e.g. "
            "cn=data-eng,ou=groups,dc=corp,dc=example"
        )
    if "filter" in item and not _balanced_filter(item["filter"]):
        return (
            f"{item['filter']!r} is not an LDAP filter: write it in parentheses, e.g. "
            "(department=Machine Learning)"
        )
    return None


def _balanced_filter(text: str) -> bool:
    text = text.strip()
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for index, char in enumerate(text):
        if char == "\\":
            continue
        if char == "(" and (index == 0 or text[index - 1] != "\\"):
            depth += 1
        elif char == ")" and text[index - 1] != "\\":
            depth -= 1
            if depth < 0 or (depth == 0 and index != len(text) - 1):
                return False
    return depth == 0


def _check_version(parsed: ParsedYAML) -> list[Problem]:
    version = parsed.data.get("version", 1)
    if version in SUPPORTED_VERSIONS and not isinstance(version, bool):
        return []
    shown = str(version).lower() if isinstance(version, bool) else repr(version)
    readable = ", ".join(map(str, SUPPORTED_VERSIONS))
    return [
        Problem(
            parsed.where(("version",)),
            "version",
            f"PMR version {shown} is not supported; this release reads version {readable}",
        )
    ]


def load_pmr(
    documents: Sequence[DocumentLike],
    *,
    protected_namespaces: Iterable[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> LoadResult:
    """Validate and expand a PMR made of one or more files.

    Raises PMRInvalidError with every error found; nothing may be applied then.
    """
    with no_gc_pauses(freeze_survivors=True):
        return _load(documents, protected_namespaces, max_bytes, max_nodes)


def _load(
    documents: Sequence[DocumentLike],
    protected_namespaces: Iterable[str],
    max_bytes: int,
    max_nodes: int,
) -> LoadResult:
    if not documents:
        raise PMRInvalidError([Problem(Location("<pmr>"), "", "no PMR files were given")])
    loader = _Loader(protected_namespaces)
    structural: list[Problem] = []
    parsed_files: list[ParsedYAML] = []
    for document in documents:
        try:
            parsed = read_yaml(
                document.name, document.content, max_bytes=max_bytes, max_nodes=max_nodes
            )
        except YAMLReadError as exc:
            structural.append(exc.problem)
            continue
        problems = _check_version(parsed) or schema_problems(parsed)
        structural.extend(problems)
        if not problems:
            parsed_files.append(parsed)
    if structural:
        raise PMRInvalidError(structural)
    if not any("profiles" in parsed.data for parsed in parsed_files):
        # An emptied or truncated file must not read as "remove every profile".
        raise PMRInvalidError(
            [
                Problem(
                    parsed_files[0].where(()),
                    "profiles",
                    "no file of the PMR has a `profiles:` list; write `profiles: []` if this "
                    "cluster should have no profiles",
                )
            ]
        )
    for parsed in parsed_files:
        loader.add_file(parsed)
    pmr = loader.build()
    if loader.errors:
        raise PMRInvalidError(loader.errors, loader.warnings)
    return LoadResult(pmr, tuple(sorted(loader.warnings, key=lambda p: (p.location, p.path))))
