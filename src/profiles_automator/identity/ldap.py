"""Group members from an LDAP directory: Active Directory or an rfc2307bis-style server.

One `members()` call opens one TLS connection (LDAPS, or StartTLS on ldap://; the certificate
is always verified, against the credentials' `ca-cert` or the system store), binds simply, and
reads the whole answer with the simple paged results control before returning it. A partial
answer is never returned: any fault becomes a `DirectoryError`, retried a few times first when
it is transient, and the resolver then treats the group as unknown.

How membership is read:

- ``activeDirectory``: one paged search of user objects under `user_base` with
  LDAP_MATCHING_RULE_IN_CHAIN (``memberOf:1.2.840.113556.1.4.1941:=<group>``), which the
  domain controller expands through nested groups itself; disabled accounts
  (``userAccountControl`` bit 2, ACCOUNTDISABLE) are excluded in the same filter with the
  bitwise rule 1.2.840.113556.1.4.803. Membership through ``primaryGroupID`` (typically
  "Domain Users") is not in ``memberOf`` and so does not count, as in AD's own rule.
- ``rfc2307bis``: ``member`` and ``uniqueMember`` are followed from the group, level by level,
  with cycle detection. Each level's member DNs are looked up in batches (one-level searches
  under each parent entry matching up to 100 RDNs at once), not one read per member, and
  classified by ``objectClass``: groups (groupOfNames, groupOfUniqueNames, groupOfMembers,
  group, posixGroup with rfc2307bis ``member``; RFC 2307's ``memberUid`` is not followed) are
  followed wherever they are, or only under `group_base` when it is set; users (person and its
  subclasses, posixAccount, account) count only under `user_base`, like the users an AD search
  finds. Members outside `user_base`, nested groups outside `group_base`,
  other objects and DNs that do not exist are left out and counted in `Members.warnings`.
  There is no standard "disabled" flag here, so an account counts as disabled when it carries
  one of the common markers: ppolicy's administrative lock (``pwdAccountLockedTime`` of
  ``000001010000Z``; a temporary lockout after failed logins is not a revocation), an expired
  ``shadowExpire`` (days since 1970, as ``usermod -e`` sets it) or 389-ds/FreeIPA's
  ``nsAccountLock: TRUE``.

A filter reference (`GroupRef.filter`) selects users under `user_base` directly, with the same
user and disabled-account rules.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import re
import ssl
import time
from collections.abc import Iterable, Iterator
from typing import Any, Literal
from urllib.parse import urlsplit

import ldap3
from ldap3.core import exceptions as ldap_errors
from ldap3.utils.conv import escape_filter_chars

from profiles_automator.identity.directory import DirectoryError, GroupRef, Members

log = logging.getLogger(__name__)

Schema = Literal["activeDirectory", "rfc2307bis"]
SCHEMAS: tuple[str, ...] = ("activeDirectory", "rfc2307bis")

IN_CHAIN = "1.2.840.113556.1.4.1941"
BIT_AND = "1.2.840.113556.1.4.803"
ACCOUNTDISABLE = 2
AD_USERS = "(objectCategory=person)(objectClass=user)"
POSIX_USERS = "(|(objectClass=person)(objectClass=posixAccount)(objectClass=account))"

USER_CLASSES = frozenset(
    {"person", "organizationalperson", "inetorgperson", "posixaccount", "account", "user"}
)
GROUP_CLASSES = frozenset(
    {"groupofnames", "groupofuniquenames", "groupofmembers", "group", "posixgroup"}
)
MEMBER_ATTRIBUTES = ("member", "uniqueMember")
DISABLED_MARKERS = ("pwdAccountLockedTime", "shadowExpire", "nsAccountLock")
ADMIN_LOCK = "000001010000Z"
DISABLED_LEFT_OUT = "disabled accounts left out"

_OPTIONAL_UID = re.compile(r"#'[01]*'B$")
_ATTRIBUTE_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)*")

RESULT_TIME_LIMIT = 3
RESULT_SIZE_LIMIT = 4
RESULT_REFERRAL = 10
SKIPPED_SHOWN = 5
ATTEMPTS = 3
RDN_BATCH = 100
PAGED_RESULTS = "1.2.840.113556.1.4.319"
CA_KEY = "ca-cert"
SCHEME_AND_PORT = (
    "check that the url's scheme and port match the server (ldaps:// is usually port 636; "
    "ldap:// with startTLS usually 389)"
)

_TRANSIENT = (
    ldap_errors.LDAPSocketOpenError,
    ldap_errors.LDAPSocketReceiveError,
    ldap_errors.LDAPSocketSendError,
    ldap_errors.LDAPSessionTerminatedByServerError,
    ldap_errors.LDAPBusyResult,
    ldap_errors.LDAPUnavailableResult,
    ldap_errors.LDAPTimeLimitExceededResult,
)


class LDAPSettingsError(DirectoryError, ValueError):
    """Settings or credentials that can never work; raised when the client is built.

    A `DirectoryError` (group ``*``: every group of the provider) so the resolver reports the
    provider's groups as unknown, and a `ValueError` for callers that validate settings.
    """

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(provider, "*", message)


class _TransientError(Exception):
    """A fault worth another attempt; carries the message for when attempts run out."""


class _DeadlineError(Exception):
    """The resolution's deadline passed."""


class _PageTooLargeError(Exception):
    """The server refused the requested page size."""


class _NoSuchObjectError(Exception):
    """The search base does not exist; what that means depends on the search."""


RDN = frozenset[tuple[str, str]]
NormalDN = tuple[RDN, ...]


class LDAPDirectory:
    """A client of one LDAP / Active Directory server (see the module docstring).

    `password` never appears in `repr()`, a log line or an error message.
    """

    def __init__(
        self,
        name: str,
        *,
        url: str,
        user_base: str,
        schema: Schema,
        user_id_attribute: str = "mail",
        group_base: str | None = None,
        start_tls: bool = False,
        bind_dn: str,
        password: str,
        ca_cert: str | None = None,
        page_size: int = 500,
        max_members: int = 50_000,
        timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.url = url
        self.user_base = user_base
        self.schema = schema
        self.user_id_attribute = user_id_attribute
        self.group_base = group_base
        self.start_tls = start_tls
        self.bind_dn = bind_dn
        self.password = password
        self.ca_cert = ca_cert
        self.page_size = page_size
        self.max_members = max_members
        self.timeout = timeout
        self._validate()

    def __repr__(self) -> str:
        return (
            f"LDAPDirectory({self.name!r}, url={self.url!r}, schema={self.schema!r}, "
            f"user_base={self.user_base!r})"
        )

    def _validate(self) -> None:
        if self.schema not in SCHEMAS:
            raise self._settings_error(f"schema must be one of {', '.join(SCHEMAS)}")
        parts = urlsplit(self.url)
        if parts.scheme not in ("ldaps", "ldap") or not parts.hostname:
            raise self._settings_error(f"url {self.url!r} must be ldaps://HOST[:PORT]")
        self._ldaps = parts.scheme == "ldaps"
        if self._ldaps and self.start_tls:
            raise self._settings_error("startTLS is for ldap:// URLs; ldaps:// is TLS already")
        if not self._ldaps and not self.start_tls:
            raise self._settings_error(
                f"{self.url} would send the bind password in clear text: "
                "use ldaps:// or set startTLS: true"
            )
        self._host = parts.hostname
        try:
            self._port = parts.port or (636 if self._ldaps else 389)
        except ValueError as error:
            raise self._settings_error(f"url {self.url!r}: {error}") from None
        for label, dn in (("userBase", self.user_base), ("groupBase", self.group_base)):
            if dn is not None and not _valid_dn(dn):
                raise self._settings_error(f"{label} {dn!r} is not a DN")
        if self.ca_cert:
            try:
                ssl.create_default_context(cadata=self.ca_cert)
            except (ssl.SSLError, ValueError):
                raise self._settings_error(
                    f"the '{CA_KEY}' credential is not a PEM CA certificate"
                ) from None
        self._user_base = _normal_dn(self.user_base)
        self._group_base = None if self.group_base is None else _normal_dn(self.group_base)
        if self.page_size < 1 or self.max_members < 1 or self.timeout <= 0:
            raise self._settings_error("page_size, max_members and timeout must be positive")

    def _settings_error(self, message: str) -> LDAPSettingsError:
        return LDAPSettingsError(self.name, self._redact(message))

    def members(self, ref: GroupRef, *, deadline: float) -> Members:
        """All enabled user members of `ref`, nested groups included, paged to the end."""
        label = ref.group if ref.group is not None else ref.filter or ""
        if (ref.group is None) == (ref.filter is None):
            raise DirectoryError(self.name, label, "a reference needs a group DN or a filter")
        if ref.group is not None and not _valid_dn(ref.group):
            raise DirectoryError(
                self.name, label, f"{ref.group!r} is not a valid DN: fix the group DN in the PMR"
            )
        if (
            ref.group is not None
            and self._group_base is not None
            and not _under(_normal_dn(ref.group), self._group_base)
        ):
            raise DirectoryError(
                self.name,
                label,
                f"{ref.group} is not under groupBase {self.group_base}: fix the group DN or "
                "groupBase",
            )
        last = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                pause = min(0.5 * 2 ** (attempt - 1), deadline - time.monotonic())
                if pause > 0:
                    time.sleep(pause)
            try:
                return self._resolve(ref, deadline)
            except _TransientError as fault:
                last = str(fault)
            except _DeadlineError:
                break
            if time.monotonic() >= deadline:
                break
        else:
            raise DirectoryError(
                self.name, label, f"{last} (after {ATTEMPTS} attempts)", retryable=True
            )
        detail = f" (last fault: {last})" if last else ""
        raise DirectoryError(
            self.name,
            label,
            f"resolving {label} did not finish before the deadline{detail}; "
            "the group is left unchanged and tried again next sync",
            retryable=True,
        )

    def _resolve(self, ref: GroupRef, deadline: float) -> Members:
        label = ref.group if ref.group is not None else ref.filter or ""
        session = _Session(self, label, deadline)
        try:
            session.open()
            if ref.group is not None:
                if self.schema == "activeDirectory":
                    return session.ad_group(ref.group)
                return session.nested_group(ref.group)
            return session.filtered(ref.filter or "")
        except _NoSuchObjectError as missing:
            raise self._error(label, f"no such object (32): {missing}") from None
        except (DirectoryError, _TransientError, _DeadlineError):
            raise
        except Exception as error:
            # Whatever else breaks (a bug, a reply ldap3 cannot parse) must still leave the
            # group unknown rather than stop the whole sync.
            log.warning("%s: resolving %s failed unexpectedly", self.name, label, exc_info=True)
            raise self._error(
                label, f"resolving {label} failed: {type(error).__name__}: {_short(str(error))}"
            ) from None
        finally:
            session.close()

    def _error(self, label: str, message: str, *, retryable: bool = False) -> DirectoryError:
        return DirectoryError(self.name, label, self._redact(message), retryable=retryable)

    def _redact(self, text: str) -> str:
        return text.replace(self.password, "***") if self.password else text


class _Tally:
    """Users found so far, and what was left out and why."""

    def __init__(self, directory: LDAPDirectory, label: str) -> None:
        self.directory = directory
        self.label = label
        self.user_ids: set[str] = set()
        self.skipped: list[str] = []
        self.skipped_count = 0
        self.left_out: dict[str, int] = {}

    def add(self, dn: str, attributes: Any) -> None:
        value = _first(attributes.get(self.directory.user_id_attribute))
        if not value:
            self.skipped_count += 1
            if len(self.skipped) < SKIPPED_SHOWN:
                self.skipped.append(dn)
            return
        self.user_ids.add(value.strip().lower())
        if len(self.user_ids) > self.directory.max_members:
            raise self.directory._error(
                self.label,
                f"{self.label} has more than {self.directory.max_members} members (the cap per "
                "group): split the group or narrow the filter",
            )

    def leave_out(self, reason: str) -> None:
        self.left_out[reason] = self.left_out.get(reason, 0) + 1

    def result(self, requests: int) -> Members:
        """The members, with at most one warning for the group (as the resolver expects)."""
        parts = []
        if self.skipped_count:
            parts.append(
                f"{self.skipped_count} member(s) have no {self.directory.user_id_attribute} and "
                f"are left out (e.g. {'; '.join(self.skipped)})"
            )
        # Disabled accounts are left out by design; the rest suggests a settings mistake.
        parts += [
            f"{count} {reason}"
            for reason, count in sorted(self.left_out.items())
            if reason != DISABLED_LEFT_OUT
        ]
        warnings: tuple[str, ...] = ()
        if parts:
            warnings = (f"{self.directory.name}: group {self.label}: {'; '.join(parts)}",)
            log.warning("%s", warnings[0])
        return Members(
            user_ids=frozenset(self.user_ids),
            skipped_count=self.skipped_count,
            skipped=tuple(self.skipped),
            requests=requests,
            warnings=warnings,
        )


class _Session:
    """One connection's worth of work: bind, searches, errors translated for the admin."""

    def __init__(self, directory: LDAPDirectory, label: str, deadline: float) -> None:
        self.directory = directory
        self.label = label
        self.deadline = deadline
        self.requests = 0
        self.page_size = directory.page_size
        self.connection: ldap3.Connection | None = None

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _DeadlineError
        return min(self.directory.timeout, left)

    def open(self) -> None:
        d = self.directory
        tls = _VerifiedTls(d._host, d.ca_cert)
        wait = self.remaining()
        server = ldap3.Server(
            d._host,
            port=d._port,
            use_ssl=d._ldaps,
            tls=tls,
            get_info=ldap3.NONE,
            connect_timeout=wait,
        )
        self.connection = ldap3.Connection(
            server,
            user=d.bind_dn,
            password=d.password,
            authentication=ldap3.SIMPLE,
            client_strategy=ldap3.SYNC,
            read_only=True,
            raise_exceptions=True,
            auto_referrals=False,
            # ldap3's own DN check refuses DNs servers return (a "#" inside a value).
            check_names=False,
            # ldap3 packs this into SO_RCVTIMEO as an integer number of seconds.
            receive_timeout=max(1, math.ceil(wait)),
        )
        self._call("connecting", self.connection.open)
        if d.start_tls:
            self._call("StartTLS", self.connection.start_tls)
        self._call("binding", self.connection.bind)

    def close(self) -> None:
        if self.connection is not None:
            # Closing a broken connection must not mask the error that broke it.
            with contextlib.suppress(Exception):
                self.connection.unbind()
            self.connection = None

    def _call(self, doing: str, operation: Any, *args: Any, **kwargs: Any) -> Any:
        connection = self.connection
        assert connection is not None
        if connection.socket is not None:
            connection.socket.settimeout(self.remaining())
        else:
            self.remaining()
        self.requests += 1
        try:
            return operation(*args, **kwargs)
        except ldap_errors.LDAPNoSuchObjectResult as error:
            raise _NoSuchObjectError(self.directory._redact(str(error))) from None
        except ldap_errors.LDAPAdminLimitExceededResult as error:
            if "paged_size" in kwargs:
                raise _PageTooLargeError from None
            raise self._translate(doing, error) from None
        except ldap_errors.LDAPException as error:
            raise self._translate(doing, error) from None

    def _translate_tls(self, doing: str, error: Exception, text: str) -> Exception | None:
        """The admin's view of a TLS failure, or None when `error` is not one."""
        d = self.directory
        where = f"{d._host}:{d._port}"
        if _is_hostname_mismatch(error):
            return d._error(
                self.label,
                f"the TLS certificate of {where} is not trusted: it does not name {d._host}; "
                "use a host name the certificate names in the url",
            )
        reason = _verify_failure(text)
        if reason is not None:
            source = "the CA in" if d.ca_cert else "the system's CAs, as there is no"
            return d._error(
                self.label,
                f"the TLS certificate of {where} is not trusted ({reason}; checked against "
                f"{source} '{CA_KEY}' key): put the CA that signed it (PEM) in the '{CA_KEY}' "
                f"key of the {d.name} credentials",
            )
        if isinstance(error, ssl.SSLEOFError) or "UNEXPECTED_EOF" in text:
            # The connection was cut mid-handshake (a restart, a load balancer): try again.
            return _TransientError(
                f"{doing} {where} failed: the server cut the TLS handshake off; if this "
                f"persists, {SCHEME_AND_PORT}"
            )
        if isinstance(error, ssl.SSLError):
            return d._error(
                self.label,
                f"the TLS handshake with {where} failed ({_short(text)}): {SCHEME_AND_PORT}",
            )
        return None

    def _translate(self, doing: str, error: Exception) -> Exception:
        d = self.directory
        where = f"{d._host}:{d._port}"
        text = d._redact(str(error))
        tls = self._translate_tls(doing, error, text)
        if tls is not None:
            return tls
        if isinstance(error, ldap_errors.LDAPInvalidCredentialsResult):
            return d._error(
                self.label,
                f"{where} rejected the bind: invalid credentials (49): check the bind-dn and "
                f"password keys of the {d.name} credentials",
            )
        if isinstance(error, ldap_errors.LDAPStartTLSError):
            return d._error(
                self.label,
                f"{where} refused StartTLS ({_short(text)}): enable TLS on the server or use an "
                "ldaps:// url",
            )
        if isinstance(error, ldap_errors.LDAPInsufficientAccessRightsResult):
            return d._error(
                self.label,
                f"the bind DN may not read what {doing} needs (50 insufficientAccessRights): "
                "grant it read access to the users and groups",
            )
        if isinstance(error, ldap_errors.LDAPSizeLimitExceededResult):
            return d._error(
                self.label,
                f"{where} stopped {doing} at its size limit (4) although the search was paged: "
                "allow paged searches past the limit (OpenLDAP: sizelimit size.prtotal="
                "unlimited; Active Directory: MaxPageSize) or narrow the group",
            )
        if isinstance(error, ldap_errors.LDAPUnavailableCriticalExtensionResult):
            return d._error(
                self.label,
                f"{where} does not support the simple paged results control, which is needed "
                "to read a group to the end",
            )
        if isinstance(error, ldap_errors.LDAPInvalidFilterError):
            return d._error(self.label, f"the filter {self.label!r} is not valid: {text}")
        if isinstance(error, ldap_errors.LDAPInvalidDnError):
            return d._error(self.label, f"{doing}: not a valid DN ({text}): fix the DN in the PMR")
        if isinstance(error, _TRANSIENT):
            text = text.removeprefix("socket connection error while opening: ")
            return _TransientError(f"{doing} {where} failed: {_short(text)}")
        return d._error(self.label, f"{doing} {where} failed: {_short(text)}")

    def search(
        self,
        base: str,
        search_filter: str,
        attributes: Iterable[str],
        *,
        scope: str = ldap3.SUBTREE,
        doing: str = "searching",
    ) -> Iterator[tuple[str, Any]]:
        """Every entry of a search, page after page to the end, as (dn, attributes)."""
        connection = self.connection
        assert connection is not None
        cookie: bytes | None = None
        while True:
            paged = {} if scope == ldap3.BASE else {"paged_size": self.page_size}
            try:
                self._call(
                    doing,
                    connection.search,
                    base,
                    search_filter,
                    search_scope=scope,
                    attributes=list(attributes),
                    paged_criticality=scope != ldap3.BASE,
                    paged_cookie=cookie,
                    **paged,
                )
            except _PageTooLargeError:
                # OpenLDAP refuses a page larger than its size.pr limit (Active Directory
                # quietly caps at MaxPageSize instead): ask again with smaller pages.
                if cookie is not None or self.page_size == 1:
                    raise self._page_refused() from None
                self.page_size = max(1, self.page_size // 2)
                continue
            self._check_result(doing, connection.result)
            for entry in connection.response or ():
                if entry.get("type") == "searchResEntry":
                    yield entry["dn"], entry["attributes"]
            control = (connection.result.get("controls") or {}).get(PAGED_RESULTS)
            cookie = control["value"]["cookie"] if control else None
            if not cookie:
                return

    def _check_result(self, doing: str, result: dict[str, Any]) -> None:
        """Fail on the results ldap3 does not raise for, each of which means a partial answer."""
        code = result.get("result", 0)
        if code == 0:
            return
        d = self.directory
        where = f"{d._host}:{d._port}"
        if code == RESULT_TIME_LIMIT:
            raise _TransientError(f"{doing} {where} hit the server's time limit (3)")
        if code == RESULT_SIZE_LIMIT:
            raise self._translate(doing, ldap_errors.LDAPSizeLimitExceededResult())
        if code == RESULT_REFERRAL:
            raise d._error(
                self.label,
                f"{where} referred {doing} elsewhere ({', '.join(result.get('referrals') or [])})"
                ": point url at a server that holds userBase and the groups",
            )
        raise d._error(self.label, f"{doing} {where} failed: {result.get('description')} ({code})")

    def _page_refused(self) -> DirectoryError:
        return self.directory._error(
            self.label,
            f"{self.directory._host}:{self.directory._port} refused every page size down to "
            f"{self.page_size} (11 adminLimitExceeded): allow paged searches for the bind DN",
        )

    def read_group(self, dn: str, attributes: Iterable[str] = ()) -> Any:
        """The group entry at `dn` (objectClass and `attributes`), or a clear error."""
        try:
            entries = list(
                self.search(
                    dn,
                    "(objectClass=*)",
                    ("objectClass", *attributes),
                    scope=ldap3.BASE,
                    doing=f"reading the group {dn}",
                )
            )
        except _NoSuchObjectError:
            raise self._missing_group(dn) from None
        if not entries:
            raise self._missing_group(dn)
        attributes = entries[0][1]
        if not _classes(attributes) & GROUP_CLASSES:
            classes = ", ".join(_values(attributes, "objectClass"))
            raise self.directory._error(
                self.label,
                f"{dn} is not a group (objectClass {classes}): fix the group DN in the PMR",
            )
        return attributes

    def _missing_group(self, dn: str) -> DirectoryError:
        return self.directory._error(
            self.label,
            f"the group {dn} does not exist (32 noSuchObject) on {self.directory.url}: "
            "fix the group DN in the PMR",
        )

    def _users(self, search_filter: str, attributes: Iterable[str], tally: _Tally) -> None:
        d = self.directory
        try:
            for dn, entry in self.search(
                d.user_base, search_filter, attributes, doing="searching userBase"
            ):
                if d.schema == "rfc2307bis" and _disabled(entry):
                    tally.leave_out(DISABLED_LEFT_OUT)
                    continue
                tally.add(dn, entry)
        except _NoSuchObjectError:
            raise d._error(
                self.label,
                f"userBase {d.user_base} does not exist (32 noSuchObject): fix userBase "
                f"of {d.name} in the PMR",
            ) from None

    def ad_group(self, group_dn: str) -> Members:
        self.read_group(group_dn)
        tally = _Tally(self.directory, self.label)
        search_filter = (
            f"(&{AD_USERS}(memberOf:{IN_CHAIN}:={escape_filter_chars(group_dn)})"
            f"(!(userAccountControl:{BIT_AND}:={ACCOUNTDISABLE})))"
        )
        self._users(search_filter, (self.directory.user_id_attribute,), tally)
        return tally.result(self.requests)

    def filtered(self, user_filter: str) -> Members:
        d = self.directory
        wrapped = user_filter.strip()
        if not wrapped.startswith("("):
            wrapped = f"({wrapped})"
        tally = _Tally(d, self.label)
        if d.schema == "activeDirectory":
            search_filter = (
                f"(&{AD_USERS}{wrapped}(!(userAccountControl:{BIT_AND}:={ACCOUNTDISABLE})))"
            )
            attributes: tuple[str, ...] = (d.user_id_attribute,)
        else:
            search_filter = f"(&{POSIX_USERS}{wrapped})"
            attributes = (d.user_id_attribute, *DISABLED_MARKERS)
        self._users(search_filter, attributes, tally)
        return tally.result(self.requests)

    def nested_group(self, group_dn: str) -> Members:
        d = self.directory
        tally = _Tally(d, self.label)
        seen: set[NormalDN] = {_normal_dn(group_dn)}
        pending = self._member_dns(self.read_group(group_dn, MEMBER_ATTRIBUTES), seen, tally)
        while pending:
            found = self._lookup(pending)
            tally_missing = len(pending) - len(found)
            for _ in range(tally_missing):
                tally.leave_out("member DNs that do not exist left out")
            next_level: dict[NormalDN, str] = {}
            for normal, (dn, entry) in found.items():
                classes = _classes(entry)
                if classes & GROUP_CLASSES:
                    if d._group_base is not None and not _under(normal, d._group_base):
                        tally.leave_out("nested groups outside groupBase not followed")
                        continue
                    next_level.update(self._member_dns(entry, seen, tally))
                elif not classes & USER_CLASSES:
                    tally.leave_out("members that are neither users nor groups left out")
                elif not _under(normal, d._user_base):
                    tally.leave_out("users outside userBase left out")
                elif _disabled(entry):
                    tally.leave_out(DISABLED_LEFT_OUT)
                else:
                    tally.add(dn, entry)
            pending = next_level
        return tally.result(self.requests)

    def _member_dns(self, entry: Any, seen: set[NormalDN], tally: _Tally) -> dict[NormalDN, str]:
        """The not yet seen member DNs of a group entry, marking them seen (cycle detection)."""
        out: dict[NormalDN, str] = {}
        for attribute in MEMBER_ATTRIBUTES:
            for value in _values(entry, attribute):
                # uniqueMember is NameAndOptionalUID: "DN#'0101'B"; the UID part is not the DN.
                dn = _OPTIONAL_UID.sub("", value) if attribute == "uniqueMember" else value
                if not _valid_dn(dn):
                    tally.leave_out("member values that are not DNs left out")
                    continue
                normal = _normal_dn(dn)
                if normal in seen or not normal:
                    continue
                seen.add(normal)
                out[normal] = dn
        return out

    def _lookup(self, dns: dict[NormalDN, str]) -> dict[NormalDN, tuple[str, Any]]:
        """Read many entries by DN with few requests: one-level searches under each parent."""
        d = self.directory
        attributes = ("objectClass", d.user_id_attribute, *MEMBER_ATTRIBUTES, *DISABLED_MARKERS)
        by_parent: dict[str, list[tuple[NormalDN, str]]] = {}
        for normal, dn in dns.items():
            parent, rdn_filter = _split_rdn(dn)
            by_parent.setdefault(parent, []).append((normal, rdn_filter))
        found: dict[NormalDN, tuple[str, Any]] = {}
        for parent, members in by_parent.items():
            for start in range(0, len(members), RDN_BATCH):
                batch = members[start : start + RDN_BATCH]
                wanted = {normal for normal, _ in batch}
                search_filter = "(|" + "".join(f for _, f in batch) + ")"
                try:
                    for dn, entry in self.search(
                        parent,
                        search_filter,
                        attributes,
                        scope=ldap3.LEVEL,
                        doing="reading members",
                    ):
                        normal = _normal_dn(dn)
                        if normal in wanted:
                            found[normal] = (dn, entry)
                except _NoSuchObjectError:
                    continue  # the parent is gone, so are these members: counted as missing
        return found


class _VerifiedTls(ldap3.Tls):
    """TLS through the standard library's default context: chain and host name verified.

    ldap3's own host-name check turns the context's off and, from Python 3.12 on, falls back
    to a copy that accepts no IP address; the standard library checks both, during the
    handshake, for LDAPS and StartTLS alike.
    """

    def __init__(self, host: str, ca_cert: str | None) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED, ca_certs_data=ca_cert)
        self._host = host
        self._context = ssl.create_default_context(cadata=ca_cert or None)

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        connection.socket = self._context.wrap_socket(
            connection.socket,
            server_side=False,
            do_handshake_on_connect=do_handshake,
            server_hostname=self._host,
        )


def _is_hostname_mismatch(error: BaseException) -> bool:
    # OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH (62) and X509_V_ERR_IP_ADDRESS_MISMATCH (64);
    # ldap3 re-raises the error merged into LDAPSocketOpenError (LDAPS) or LDAPStartTLSError.
    # (its copy of the error has no verify_code, so the text decides there).
    if getattr(error, "verify_code", None) in (62, 64):
        return True
    return "Hostname mismatch" in str(error) or "IP address mismatch" in str(error)


def _verify_failure(text: str) -> str | None:
    """OpenSSL's reason when the text reports a failed certificate verification, else None."""
    marker = "certificate verify failed: "
    if "CERTIFICATE_VERIFY_FAILED" not in text:
        return None
    reason = text.split(marker, 1)[1] if marker in text else "verification failed"
    return reason.split(" (_ssl", 1)[0].strip(" ()'\",")


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first(value: Any) -> str | None:
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return None if value is None else str(value)


def _values(attributes: Any, name: str) -> list[str]:
    value = attributes.get(name)
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    return [i.decode("utf-8", "replace") if isinstance(i, bytes) else str(i) for i in items]


def _classes(attributes: Any) -> set[str]:
    return {value.lower() for value in _values(attributes, "objectClass")}


def _disabled(attributes: Any) -> bool:
    """An rfc2307bis account carrying a common "disabled" marker (see the module docstring)."""
    if ADMIN_LOCK in _values(attributes, "pwdAccountLockedTime"):
        return True
    if any(v.strip().upper() == "TRUE" for v in _values(attributes, "nsAccountLock")):
        return True
    for value in _values(attributes, "shadowExpire"):
        try:
            days = int(value)
        except ValueError:
            continue
        today = (datetime.datetime.now(datetime.UTC).date() - datetime.date(1970, 1, 1)).days
        if 0 <= days <= today:
            return True
    return False


def _valid_dn(dn: str) -> bool:
    try:
        return bool(_components(dn))
    except ValueError:
        return False


def _unescape(value: str) -> str:
    r"""A DN attribute value with RFC 4514 escapes (``\\,`` and ``\\2C``) undone."""
    out = bytearray()
    i = 0
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            pair = value[i + 1 : i + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                out.append(int(pair, 16))
                i += 3
                continue
            out.extend(value[i + 1].encode())
            i += 2
            continue
        out.extend(char.encode())
        i += 1
    return out.decode("utf-8", "replace")


def _components(dn: str) -> list[list[tuple[str, str]]]:
    """A DN (RFC 4514) as RDNs, each a list of (attribute type, escaped value), leftmost first.

    Our own small parser: ldap3's refuses DNs servers do return, such as a ``#`` inside a value.
    """
    rdns: list[list[tuple[str, str]]] = [[]]
    attribute: str | None = None
    buffer: list[str] = []
    i = 0
    while i <= len(dn):
        char = dn[i] if i < len(dn) else ","
        if char == "\\" and i + 1 < len(dn):
            buffer.append(dn[i : i + 2])
            i += 2
            continue
        if char == "=" and attribute is None:
            attribute = "".join(buffer).strip()
            if not _ATTRIBUTE_TYPE.fullmatch(attribute):
                raise ValueError(f"{attribute!r} is not an attribute type")
            buffer = []
        elif char in ",+":
            if attribute is None:
                raise ValueError(f"an RDN without '=' in {dn!r}")
            rdns[-1].append((attribute, _strip(buffer)))
            if char == ",":
                rdns.append([])
            attribute, buffer = None, []
        else:
            buffer.append(char)
        i += 1
    return [rdn for rdn in rdns if rdn]


def _strip(chunks: list[str]) -> str:
    """The value without the spaces around it; an escaped space (one chunk) stays."""
    start, end = 0, len(chunks)
    while start < end and chunks[start] == " ":
        start += 1
    while end > start and chunks[end - 1] == " ":
        end -= 1
    return "".join(chunks[start:end])


def _normal_dn(dn: str) -> NormalDN:
    """A DN in a form where equal DNs compare equal (types and values case-folded)."""
    return tuple(
        frozenset((a.lower(), " ".join(_unescape(v).lower().split())) for a, v in rdn)
        for rdn in _components(dn)
    )


def _under(dn: NormalDN, base: NormalDN) -> bool:
    return len(dn) >= len(base) and dn[len(dn) - len(base) :] == base


def _split_rdn(dn: str) -> tuple[str, str]:
    """The parent DN and a filter matching the DN's RDN (for a one-level search)."""
    rdns = _components(dn)
    parent = ",".join("+".join(f"{a}={v}" for a, v in rdn) for rdn in rdns[1:])
    terms = [f"({a}={escape_filter_chars(_unescape(v))})" for a, v in rdns[0]]
    return parent, terms[0] if len(terms) == 1 else "(&" + "".join(terms) + ")"
