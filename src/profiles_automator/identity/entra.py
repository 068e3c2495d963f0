"""Entra ID groups through Microsoft Graph: every enabled user member, nested groups included.

Tokens come from msal (client credentials, app permission GroupMember.Read.All); members from
`/v1.0/groups/{id}/transitiveMembers/microsoft.graph.user`, whose cast leaves out devices,
service principals and contacts server-side. `$count=true` with `ConsistencyLevel: eventual`
is what Graph requires for that cast on a directory-object collection (without it: 400
Request_UnsupportedQuery). The answer is all or nothing: any failure raises `DirectoryError`
and the resolver treats the group as unknown.
"""

from __future__ import annotations

import atexit
import contextlib
import email.utils
import logging
import os
import tempfile
import threading
import time
from typing import Any
from urllib.parse import quote

import msal
import requests

from profiles_automator.identity.directory import DirectoryError, GroupRef, Members

log = logging.getLogger(__name__)

GRAPH_SCOPE_SUFFIX = "/.default"
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.microsoftonline.de",
        "login.windows.net",
        "login.microsoft.com",
        "sts.windows.net",
    }
)
SELECT = "id,mail,userPrincipalName,accountEnabled"
PAGE_SIZE = 999
MAX_ATTEMPTS = 5
MAX_RETRY_AFTER = 60.0
SKIPPED_SHOWN = 5
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})

# What an admin does about Graph's error codes (https://learn.microsoft.com/graph/errors).
_FIXES = {
    "Authorization_RequestDenied": (
        "grant the application GroupMember.Read.All (application permission) and admin consent"
    ),
    "Request_ResourceNotFound": "check the group's object id in the PMR",
    "Authorization_IdentityNotFound": "check the tenant id and that the application exists",
    "InvalidAuthenticationToken": "check the client id and secret in idp-credentials",
}
# Token endpoint errors (AADSTS codes) whose fix is known.
_TOKEN_FIXES = {
    "invalid_client": "check the client id and client secret in idp-credentials",
    "unauthorized_client": "check the client id in idp-credentials",
    "invalid_request": "check tenantId and authorityHost in the PMR",
    "invalid_scope": "check graphUrl in the PMR",
}


class EntraDirectory:
    """One Entra ID tenant, read with an application's client credentials."""

    def __init__(
        self,
        name: str,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        user_id_attribute: str = "mail",
        authority_host: str = "https://login.microsoftonline.com",
        graph_url: str = "https://graph.microsoft.com",
        ca_cert: str | None = None,  # PEM text, as stored in the credentials secret
        max_members: int = 50_000,
        timeout: float = 10.0,
    ):
        self.name = name
        self.tenant_id = tenant_id
        self.user_id_attribute = user_id_attribute
        self.authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self.graph_url = graph_url.rstrip("/")
        self.max_members = max_members
        self.timeout = timeout
        self._client_id = client_id
        self._client_secret = client_secret
        self._session = _Session(_ca_file(ca_cert) if ca_cert else True, timeout)
        self._app: msal.ConfidentialClientApplication | None = None
        # Groups are resolved concurrently: one discovery and one token for all of them.
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the secret
        return f"EntraDirectory({self.name!r}, tenant_id={self.tenant_id!r})"

    # -- tokens ----------------------------------------------------------------

    def _application(self, group: str) -> msal.ConfidentialClientApplication:
        with self._lock:
            return self._build_application(group)

    def _build_application(self, group: str) -> msal.ConfidentialClientApplication:
        if self._app is None:
            host = self.authority.split("/")[2].split(":")[0].lower()
            try:
                self._app = msal.ConfidentialClientApplication(
                    self._client_id,
                    client_credential=self._client_secret,
                    authority=self.authority,
                    # Instance discovery asks login.microsoftonline.com about the host:
                    # wrong for a sovereign or private authority.
                    instance_discovery=host in MICROSOFT_AUTHORITY_HOSTS,
                    http_client=self._session,
                )
            except (ValueError, requests.RequestException) as exc:
                raise self._error(
                    group,
                    f"cannot reach the authority {self.authority}: {_short(exc)}; check "
                    "tenantId and authorityHost",
                    retryable=isinstance(exc, requests.ConnectionError | requests.Timeout)
                    and not isinstance(exc, requests.exceptions.SSLError),
                ) from None
        return self._app

    def _token(self, group: str, calls: list[int], *, rejected: str | None = None) -> str:
        """A token for Graph; `rejected` is one Graph refused (expired), dropped first.

        Under the lock, so concurrent groups share one token request and a token refused
        by several of them is renewed once.
        """
        app = self._application(group)
        with self._lock:
            return self._acquire(app, group, calls, rejected)

    def _acquire(
        self,
        app: msal.ConfidentialClientApplication,
        group: str,
        calls: list[int],
        rejected: str | None,
    ) -> str:
        if rejected is not None:
            cache = app.token_cache
            for token in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                if token.get("secret") == rejected:
                    cache.remove_at(token)
        try:
            result = app.acquire_token_for_client([self.graph_url + GRAPH_SCOPE_SUFFIX])
        except requests.RequestException as exc:
            raise self._error(
                group, f"token request failed: {_short(exc)}", retryable=True
            ) from None
        if not result or "access_token" not in result:
            code = (result or {}).get("error", "no token")
            description = str((result or {}).get("error_description", "")).split("\r\n")[0]
            fix = _TOKEN_FIXES.get(code, "check idp-credentials and the PMR settings")
            raise self._error(
                group,
                f"token request refused: {code}: {description[:200]}: {fix}",
                retryable=code in ("temporarily_unavailable", "server_error"),
            )
        if result.get("token_source") == "identity_provider":
            calls[0] += 1
        return result["access_token"]

    # -- members ---------------------------------------------------------------

    def members(self, ref: GroupRef, *, deadline: float) -> Members:
        """Every enabled user in the group, nested groups included, paged to the end."""
        group = ref.group or ""
        if ref.filter is not None or not group:
            raise self._error(str(ref), "Entra groups are referenced by object id, not filter")
        url: str | None = (
            f"{self.graph_url}/v1.0/groups/{quote(group, safe='')}/transitiveMembers/"
            f"microsoft.graph.user?$select={SELECT}&$count=true&$top={PAGE_SIZE}"
        )
        user_ids: set[str] = set()
        skipped: list[str] = []
        skipped_count = 0
        seen = 0
        calls = [0]  # HTTP requests this call made (pages, retries, tokens)
        while url is not None:
            page = self._get(url, group, deadline, calls)
            count = page.get("@odata.count")
            if isinstance(count, int) and count > self.max_members:
                raise self._cap_error(group, count)
            for user in page.get("value") or []:
                seen += 1
                if seen > self.max_members:
                    raise self._cap_error(group, seen)
                if user.get("accountEnabled") is False:
                    continue
                value = user.get(self.user_id_attribute)
                if not isinstance(value, str) or not value.strip():
                    skipped_count += 1
                    if len(skipped) < SKIPPED_SHOWN:
                        skipped.append(str(user.get("id", "?")))
                    continue
                user_ids.add(value.strip().lower())
            url = page.get("@odata.nextLink")
        warnings: tuple[str, ...] = ()
        if skipped_count:
            warnings = (
                f"{self.name}: {skipped_count} member(s) of group {group} have no "
                f"{self.user_id_attribute} and are left out (e.g. {', '.join(skipped)})",
            )
            log.warning("%s", warnings[0])
        return Members(
            frozenset(user_ids),
            skipped_count=skipped_count,
            skipped=tuple(skipped),
            requests=calls[0],
            warnings=warnings,
        )

    def _get(self, url: str, group: str, deadline: float, calls: list[int]) -> dict[str, Any]:
        """One page, with a fresh token once on 401 and bounded, deadline-aware retries."""
        refreshed = False
        token = self._token(group, calls)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._error(group, "deadline reached", retryable=True)
            try:
                calls[0] += 1
                response = self._session.get(
                    url,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "ConsistencyLevel": "eventual",
                        "Accept": "application/json",
                    },
                    timeout=min(self.timeout, remaining),
                )
            except requests.exceptions.SSLError as exc:
                raise self._error(
                    group, f"TLS: {_short(exc)}: check ca-cert in idp-credentials"
                ) from None
            except requests.RequestException as exc:
                if attempt == MAX_ATTEMPTS:
                    raise self._error(
                        group, f"Graph unreachable: {_short(exc)}", retryable=True
                    ) from None
                _sleep(_backoff(attempt), deadline)
                continue
            if response.status_code == 200:
                try:
                    return response.json()
                except ValueError:
                    raise self._error(
                        group, "Graph answered 200 with no JSON", retryable=True
                    ) from None
            code, message = _graph_error(response)
            if response.status_code == 401 and not refreshed:
                refreshed = True
                token = self._token(group, calls, rejected=token)
                continue
            if response.status_code in _RETRYABLE_STATUS and attempt < MAX_ATTEMPTS:
                wait = _retry_after(response) or _backoff(attempt)
                if time.monotonic() + wait >= deadline:
                    raise self._error(
                        group,
                        f"{response.status_code} {code}: throttled past the deadline "
                        f"(Retry-After {wait:g} s); the next sync retries",
                        retryable=True,
                    )
                _sleep(wait, deadline)
                continue
            fix = _FIXES.get(code)
            if response.status_code == 404 and code == "Request_ResourceNotFound":
                text = f"404 Request_ResourceNotFound: group {group} does not exist: {fix}"
            else:
                text = f"{response.status_code} {code}: {fix or message}"
            raise self._error(group, text, retryable=response.status_code in _RETRYABLE_STATUS)
        raise self._error(group, f"gave up after {MAX_ATTEMPTS} attempts", retryable=True)

    def _cap_error(self, group: str, count: int) -> DirectoryError:
        return self._error(
            group,
            f"group {group} has {count} members, more than the cap of {self.max_members}: "
            "reference smaller groups",
        )

    def _error(self, group: str, message: str, *, retryable: bool = False) -> DirectoryError:
        return DirectoryError(self.name, group, message, retryable=retryable)


class _Session(requests.Session):
    """A session whose CA and timeout hold for every request msal or we make.

    requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's `verify`; the
    provider's own CA must win over the environment, so it is passed per request.
    """

    def __init__(self, verify: str | bool, timeout: float):
        super().__init__()
        self._pinned_verify = verify
        self._timeout = timeout

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        """Every request with the pinned CA and a timeout."""
        kwargs["verify"] = self._pinned_verify
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, *args, **kwargs)


def _ca_file(pem: str) -> str:
    """The PEM in a file for the process: requests and msal verify against a path."""
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - must outlive this call
        "w", prefix="idp-ca-", suffix=".pem", delete=False
    )
    with handle:
        handle.write(pem)
    atexit.register(_remove, handle.name)
    return handle.name


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _graph_error(response: requests.Response) -> tuple[str, str]:
    """Graph's `{"error": {"code", "message"}}`, or the HTTP reason when absent."""
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return str(error.get("code", response.reason)), str(error.get("message", ""))[:200]
    except ValueError:
        pass
    return str(response.reason or "error"), ""


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        seconds = parsed.timestamp() - time.time() if parsed else 0.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _backoff(attempt: int) -> float:
    return min(0.2 * 2 ** (attempt - 1), 5.0)


def _sleep(seconds: float, deadline: float) -> None:
    time.sleep(max(0.0, min(seconds, deadline - time.monotonic())))


def _short(exc: Exception) -> str:
    """An exception as one line without URLs' query strings (no tokens ever live there)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
