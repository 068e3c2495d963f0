"""Every provider group a PMR references, resolved once per sync, before planning.

Directories are built from the PMR's `identityProviders` and the credentials the charm or the
CLI supplies (one mapping of secret keys per provider). Groups are resolved concurrently
(bounded) under one overall deadline. A group that fails for any reason, or is still running
at the deadline, is *unknown*, with its `DirectoryError`; `pmr.membership.expand` then leaves
everything it might grant alone.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from profiles_automator.identity.directory import Directory, DirectoryError, GroupRef, Members
from profiles_automator.pmr.membership import Expansion, expand
from profiles_automator.pmr.model import (
    PMR,
    EntraProvider,
    GroupSource,
    IdentityProvider,
    LDAPProvider,
)

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 8
DEFAULT_DEADLINE = 60.0
# Juju's rule for secret keys, which the credentials secrets must follow.
SECRET_KEY = re.compile(r"^([a-z](?:-?[a-z0-9]){2,})$")
# Secret keys each provider kind needs, and those it may have.
REQUIRED_KEYS = {"entra": ("client-id", "client-secret"), "ldap": ("bind-dn", "password")}
OPTIONAL_KEYS = {"entra": ("ca-cert",), "ldap": ("ca-cert",)}

Credentials = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class ResolvedGroup:
    """One provider group's members and what it took to get them."""

    source: GroupSource
    members: Members
    seconds: float


@dataclass(frozen=True)
class Resolution:
    """What a sync knows about provider groups: resolved ones, unknown ones and why."""

    resolved: Mapping[GroupSource, ResolvedGroup] = field(
        default_factory=lambda: MappingProxyType({})
    )
    unknown: Mapping[GroupSource, DirectoryError] = field(
        default_factory=lambda: MappingProxyType({})
    )
    seconds: float = 0.0

    def member_sets(self) -> dict[GroupSource, frozenset[str]]:
        """What `pmr.membership.expand` takes."""
        return {s: r.members.user_ids for s, r in self.resolved.items()}

    @property
    def requests(self) -> int:
        """HTTP requests or LDAP searches, summed over the resolved groups."""
        return sum(r.members.requests for r in self.resolved.values())

    def by_provider(self) -> dict[str, int]:
        """Resolved groups per provider, for the status line and sync-now."""
        return dict(sorted(Counter(s.provider for s in self.resolved).items()))

    @property
    def warnings(self) -> tuple[str, ...]:
        """The clients' warnings (members left out), one per group at most."""
        return tuple(w for r in self.resolved.values() for w in r.members.warnings)

    def summary(self) -> str:
        """`3 groups from corp-entra, 1 from corp-ad` (empty when nothing was resolved)."""
        counts = self.by_provider()
        total = sum(counts.values())
        noun = f"{total} group{'s' * (total != 1)}"
        if len(counts) <= 1:
            return f"{noun} from {next(iter(counts))}" if counts else ""
        return f"{noun}: " + ", ".join(f"{n} from {p}" for p, n in counts.items())

    def to_json(self) -> dict[str, object]:
        """Counts and failures for `--output json` and action results (no members)."""
        return {
            "resolved": self.by_provider(),
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "unknown": [
                {
                    "provider": s.provider,
                    "group": _label(s),
                    "error": str(e),
                    "retryable": e.retryable,
                }
                for s, e in self.unknown.items()
            ],
        }

    @property
    def blocking(self) -> DirectoryError | None:
        """The first failure an admin must fix (None when all are retryable or none)."""
        return next((e for e in self.unknown.values() if not e.retryable), None)


def _needed(kind: str, name: str, credentials: Mapping[str, str] | None) -> dict[str, str]:
    if credentials is None:
        raise DirectoryError(
            name,
            "*",
            f"no credentials for provider {name!r}: add `{name}=secret:ID` to the charm's "
            f"idp-credentials, or pass --idp-credentials {name}=FILE to pmr",
        )
    missing = [k for k in REQUIRED_KEYS[kind] if not credentials.get(k)]
    if missing:
        raise DirectoryError(
            name,
            "*",
            f"the credentials of {name!r} lack key(s) {', '.join(missing)}; a {kind} provider "
            f"needs {', '.join(REQUIRED_KEYS[kind])}",
        )
    return dict(credentials)


def _entra(provider: IdentityProvider, credentials: Mapping[str, str] | None) -> Directory:
    assert isinstance(provider, EntraProvider)
    keys = _needed("entra", provider.name, credentials)
    try:  # msal is imported only when an Entra provider is used
        entra = importlib.import_module("profiles_automator.identity.entra")
    except ImportError:
        raise DirectoryError(
            provider.name, "*", "Entra ID support is not installed in this build (msal missing)"
        ) from None
    return entra.EntraDirectory(
        provider.name,
        tenant_id=provider.tenant_id,
        client_id=keys["client-id"],
        client_secret=keys["client-secret"],
        user_id_attribute=provider.user_id_attribute,
        authority_host=provider.authority_host,
        graph_url=provider.graph_url,
        ca_cert=keys.get("ca-cert") or None,
    )


def _ldap(provider: IdentityProvider, credentials: Mapping[str, str] | None) -> Directory:
    assert isinstance(provider, LDAPProvider)
    keys = _needed("ldap", provider.name, credentials)
    try:
        ldap = importlib.import_module("profiles_automator.identity.ldap")
    except ImportError:
        raise DirectoryError(
            provider.name, "*", "LDAP support is not installed in this build"
        ) from None
    return ldap.LDAPDirectory(
        provider.name,
        url=provider.url,
        user_base=provider.user_base,
        schema=provider.schema,
        user_id_attribute=provider.user_id_attribute,
        group_base=provider.group_base,
        start_tls=provider.start_tls,
        bind_dn=keys["bind-dn"],
        password=keys["password"],
        ca_cert=keys.get("ca-cert") or None,
    )


DirectoryFactory = Callable[[IdentityProvider, Mapping[str, str] | None], Directory]
FACTORIES: Mapping[str, DirectoryFactory] = MappingProxyType({"entra": _entra, "ldap": _ldap})


def build_directories(
    providers: Mapping[str, IdentityProvider], credentials: Credentials
) -> tuple[dict[str, Directory], dict[str, DirectoryError]]:
    """One client per provider; a provider that cannot be built is reported, not raised."""
    directories: dict[str, Directory] = {}
    failures: dict[str, DirectoryError] = {}
    for name, provider in providers.items():
        try:
            directories[name] = FACTORIES[provider.kind](provider, credentials.get(name))
        except DirectoryError as exc:
            failures[name] = exc
    return directories, failures


def resolve(
    pmr: PMR,
    credentials: Credentials,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    deadline_seconds: float = DEFAULT_DEADLINE,
    directories: Mapping[str, Directory] | None = None,
    broken: Mapping[str, DirectoryError] | None = None,
) -> Resolution:
    """Resolve every provider group `pmr` references, each once.

    `broken`: providers whose credentials could not be read; their groups are unknown.
    """
    sources = pmr.sources()
    if not sources:
        return Resolution()
    started = time.monotonic()
    deadline = started + deadline_seconds
    failures: dict[str, DirectoryError] = {}
    if directories is None:
        wanted = {n: p for n, p in pmr.identity_providers.items() if n not in (broken or {})}
        directories, failures = build_directories(wanted, credentials)
    failures.update(broken or {})
    unknown: dict[GroupSource, DirectoryError] = {}
    resolved: dict[GroupSource, ResolvedGroup] = {}
    runnable = []
    for source in sources:
        if source.provider in failures:
            failure = failures[source.provider]
            unknown[source] = DirectoryError(
                source.provider,
                _label(source),
                str(failure).split(": ", 1)[-1],
                retryable=failure.retryable,
            )
        else:
            runnable.append(source)

    def one(source: GroupSource) -> ResolvedGroup:
        begun = time.monotonic()
        ref: GroupRef = source
        members = directories[source.provider].members(ref, deadline=deadline)
        return ResolvedGroup(source, members, time.monotonic() - begun)

    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=max(1, min(concurrency, len(runnable) or 1)),
        thread_name_prefix="idp",
    )
    try:
        futures = {pool.submit(one, s): s for s in runnable}
        done, _ = concurrent.futures.wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        for future, source in futures.items():
            if future not in done:
                unknown[source] = DirectoryError(
                    source.provider,
                    _label(source),
                    f"group {_label(source)} not resolved within {deadline_seconds:g} s",
                    retryable=True,
                )
                continue
            try:
                resolved[source] = future.result()
            except DirectoryError as exc:
                unknown[source] = exc
            except Exception as exc:  # a client bug must not pass as an empty group
                log.exception("resolving %s failed", source)
                unknown[source] = DirectoryError(
                    source.provider, _label(source), f"unexpected error: {type(exc).__name__}"
                )
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    for source, error in unknown.items():
        log.warning("group %s is unknown this sync: %s", source, error)
    return Resolution(
        MappingProxyType(resolved), MappingProxyType(unknown), time.monotonic() - started
    )


def resolve_and_expand(
    pmr: PMR,
    credentials: Credentials,
    *,
    protected_namespaces: tuple[str, ...] = (),
    deadline_seconds: float = DEFAULT_DEADLINE,
    directories: Mapping[str, Directory] | None = None,
) -> tuple[Expansion, Resolution]:
    """The PMR with provider members folded in, and the resolution behind it."""
    resolution = resolve(
        pmr, credentials, deadline_seconds=deadline_seconds, directories=directories
    )
    expansion = expand(pmr, resolution.member_sets(), protected_namespaces=protected_namespaces)
    return expansion, resolution


def group_members(pmr: PMR, resolution: Resolution) -> dict[str, dict[str, list[str]]]:
    """Each PMR group's known members with where each came from (`static` or a source)."""
    out: dict[str, dict[str, list[str]]] = {}
    for group, static in pmr.groups.items():
        members: dict[str, list[str]] = {m: ["static"] for m in static}
        for source in pmr.group_sources.get(group, ()):
            found = resolution.resolved.get(source)
            for user in sorted(found.members.user_ids) if found else ():
                members.setdefault(user, []).append(str(source))
        out[group] = dict(sorted(members.items()))
    return out


def _label(source: GroupSource) -> str:
    return source.group if source.group is not None else source.filter or ""
