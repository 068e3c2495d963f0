"""GitHub App credentials: an installation token in place of a personal token.

Organisations that forbid personal tokens install a GitHub App instead. The App proves who it
is with a JWT signed RS256 by its private key (`iat` backdated 60 s for clock drift, `exp` at
most 10 minutes ahead, `iss` the App ID), and trades it at
``POST {api}/app/installations/{id}/access_tokens`` for an installation token that is then
sent exactly like a personal token. Installation tokens live one hour; `InstallationToken` is
kept by the caller (the charm in a Juju secret it owns, the CLI in memory) and reused until
`REFRESH_MARGIN` before it expires, so a sync costs one token request an hour, not one a
sync. The token is requested for the one repository that holds the PMR.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from profiles_automator.sources.errors import FetchError
from profiles_automator.sources.http_client import Credentials, HTTPClient, Reply
from profiles_automator.sources.source import GitHubSource

if TYPE_CHECKING:  # PyJWT and cryptography are imported when a key is used: ~10 MiB otherwise
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

JWT_BACKDATE_SECONDS = 60
JWT_LIFETIME_SECONDS = 540  # GitHub refuses an `exp` more than 10 minutes after now
REFRESH_MARGIN = timedelta(minutes=5)
JSON_MEDIA_TYPE = "application/vnd.github+json"

_ID = re.compile(r"^[0-9]{1,20}$")


@dataclass(frozen=True)
class GitHubApp:
    """An App's ID, the ID of its installation on the organisation, and its private key.

    The key is never shown by `repr()`. Raises ValueError naming the key to fix.
    """

    app_id: str
    installation_id: str
    private_key: str = field(repr=False)

    def __post_init__(self) -> None:
        for key, value in (("app-id", self.app_id), ("installation-id", self.installation_id)):
            if not _ID.match(value.strip()):
                raise ValueError(f"`{key}` must be a number (the GitHub App's), got {value!r}")
        self.signing_key()

    def signing_key(self) -> RSAPrivateKey:
        """The private key, loaded; ValueError unless it is an unencrypted RSA PEM key."""
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        text = self.private_key.strip()
        try:
            key = load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError):
            raise ValueError(
                "`private-key` is not a PEM private key: set it to the contents of the .pem "
                "file GitHub generated under the App's settings, Private keys"
            ) from None
        if not isinstance(key, RSAPrivateKey):
            raise ValueError("`private-key` must be the GitHub App's RSA private key")
        return key

    def jwt(self, now: float | None = None) -> str:
        """The App's JWT (RS256) as GitHub documents it, valid for the next 9 minutes."""
        issued = int(time.time() if now is None else now) - JWT_BACKDATE_SECONDS
        claims = {
            "iat": issued,
            "exp": issued + JWT_BACKDATE_SECONDS + JWT_LIFETIME_SECONDS,
            "iss": self.app_id.strip(),
        }
        import jwt

        return jwt.encode(claims, self.signing_key(), algorithm="RS256")


@dataclass(frozen=True)
class InstallationToken:
    """An installation token, what it was issued for, and when it expires (UTC)."""

    token: str = field(repr=False)
    expires_at: datetime
    scope: str

    def usable_for(self, scope: str, now: datetime | None = None) -> bool:
        """Issued for `scope` and not within `REFRESH_MARGIN` of its expiry."""
        now = now or datetime.now(UTC)
        return self.scope == scope and self.expires_at - now > REFRESH_MARGIN

    def to_content(self) -> dict[str, str]:
        """Juju secret content (keys match Juju's `^[a-z](-?[a-z0-9]){2,}$`)."""
        return {
            "token": self.token,
            "expires-at": self.expires_at.isoformat(),
            "scope": self.scope,
        }

    @classmethod
    def from_content(cls, content: dict[str, str]) -> InstallationToken | None:
        """The token kept in a secret, or None when the content is not one."""
        try:
            expires = datetime.fromisoformat(content["expires-at"])
            return cls(content["token"], expires.astimezone(UTC), content["scope"])
        except (KeyError, ValueError, TypeError):
            return None


def token_scope(app: GitHubApp, source: GitHubSource) -> str:
    """What a cached token must have been issued for to be reused."""
    api = source.api_url.rstrip("/")
    return f"{api} app {app.app_id.strip()} installation {app.installation_id.strip()} " + (
        source.repository
    )


def installation_token(
    app: GitHubApp,
    source: GitHubSource,
    *,
    ca_pem: str | None = None,
    cached: InstallationToken | None = None,
    deadline_seconds: float = 15.0,
) -> InstallationToken:
    """Return `cached` while it is usable, else a new installation token for `source`'s repo.

    Raises:
        FetchError: the token endpoint refused; the message says which setting to fix.
    """
    scope = token_scope(app, source)
    if cached is not None and cached.usable_for(scope):
        return cached
    api = source.api_url.rstrip("/")
    url = f"{api}/app/installations/{app.installation_id.strip()}/access_tokens"
    what = f"requesting an installation token for GitHub App {app.app_id.strip()}"
    with HTTPClient(
        credentials=Credentials(ca_pem=ca_pem), auth_url=None, deadline_seconds=deadline_seconds
    ) as client:
        reply = client.post(
            url,
            what=what,
            payload={"repositories": [source.name]},
            accept=JSON_MEDIA_TYPE,
            authorization=f"Bearer {app.jwt()}",
        )
    if reply.status != 201:
        raise FetchError(_explain(reply, app, source, what))
    data = _json(reply.body)
    token, expires = data.get("token"), data.get("expires_at")
    try:
        expires_at = datetime.fromisoformat(str(expires).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        expires_at = None
    if not isinstance(token, str) or not token or expires_at is None:
        raise FetchError(
            f"unexpected answer from {urlsplit(api).netloc} while {what}: no token or expiry; "
            "is `github-api-url` the GitHub API URL (https://HOST/api/v3 for GitHub Enterprise)?"
        )
    return InstallationToken(token, expires_at, scope)


def _explain(reply: Reply, app: GitHubApp, source: GitHubSource, what: str) -> str:
    """Say which of app-id, installation-id, private-key, the clock or the App's set-up to fix."""
    message = str(_json(reply.body).get("message", ""))[:200]
    detail = f"HTTP {reply.status}" + (f": {message}" if message else "")
    host = urlsplit(source.api_url).netloc
    if reply.status == 401:
        return (
            f"GitHub rejected the GitHub App's JWT ({detail}) while {what}: check that "
            "`private-key` is a current private key of the App whose ID is `app-id` "
            f"({app.app_id.strip()}), and that this machine's clock is right (the JWT is "
            "valid from 60 s ago for 10 minutes)"
        )
    if reply.status == 403:
        return (
            f"{host} refused the GitHub App an installation token ({detail}) while {what}: "
            "the installation may be suspended (unsuspend it in the organisation's settings, "
            "GitHub Apps) or the App lacks the repository permissions: give it Contents: read"
        )
    if reply.status == 404:
        return (
            f"installation {app.installation_id.strip()} of GitHub App {app.app_id.strip()} "
            f"not found at {host} ({detail}): check `installation-id` (the number at the end "
            "of the installation's settings URL, .../settings/installations/ID) and that the "
            f"App is installed on {source.owner}"
        )
    if reply.status == 422:
        return (
            f"the GitHub App installation cannot read {source.repository} ({detail}) while "
            f"{what}: add the repository to the App's installation (organisation settings, "
            "GitHub Apps, Configure, Repository access)"
        )
    return f"unexpected answer from {host} ({detail}) while {what}"


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
