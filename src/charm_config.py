"""The charm's configuration, read into one validated, immutable object.

`CharmConfig` is loaded with `CharmBase.load_config`: every option arrives as a keyword argument
(dashes turned into underscores, secret options as `ops.Secret`), and `__post_init__` raises
ValueError with a message that names the option and the `juju config` command that fixes it.
"""

from __future__ import annotations

import dataclasses
import re

import ops

from profiles_automator.sources.fetch import GitHubSource, GitSource, Source, source_from_options
from profiles_automator.sources.url_policy import url_problem
from profiles_automator.sync.engine import DEFAULT_NAMESPACE_WAIT, SyncSettings
from profiles_automator.sync.kfam import AccessPolicyOptions
from profiles_automator.sync.planner import DEFAULT_MAX_REVOCATIONS, PlanOptions

APP_PLACEHOLDER = "APP"

# An HTTP header name is an RFC 9110 token.
_HTTP_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# An Istio principal: trust-domain/ns/NAMESPACE/sa/ACCOUNT, possibly with * wildcards.
_PRINCIPAL = re.compile(r"^[^\s,\"']+$")
# A Kubernetes object name, or a shell-style glob over such names.
_NAME_OR_GLOB = re.compile(r"^[a-z0-9*?\[\]!.-]+$")
_PRINTABLE = re.compile(r"^[!-~]*$")
_OPTION_IN_MESSAGE = re.compile(r"`([a-z-]+)`")
# `NAME=secret:ID`: a PMR identity provider and the Juju secret holding its credentials.
_IDP_CREDENTIAL = re.compile(r"^([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)=(secret:\S+)$")

# What `juju config APP option=...` should suggest for each option.
_EXAMPLES = {
    "repository": "org/repo",
    "branch": "main",
    "pmr-path": "pmr.yaml",
    "pmr-url": "https://HOST/path/pmr.yaml",
    "github-api-url": "https://HOST/api/v3",
    "max-revocations": str(DEFAULT_MAX_REVOCATIONS),
    # The overrides (userid-*, *-principal) have none: --reset follows the profile controller.
    "namespace-wait": str(int(DEFAULT_NAMESPACE_WAIT)),
    "additional-principals": "cluster.local/ns/NAMESPACE/sa/ACCOUNT",
    "ignored-profiles": "kubeflow-user-example-com,team-*",
    "protected-namespaces": "monitoring,team-infra-*",
    "ssh-key-secret-id": "<secret URI printed by juju add-secret>",
    "idp-credentials": "corp-entra=secret:ID",
    "status-url": "https://kubeflow.example.com",
}


def split_list(value: str) -> tuple[str, ...]:
    """Split a comma-separated option into its non-empty, stripped items."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


@dataclasses.dataclass(frozen=True, kw_only=True)
class CharmConfig:
    """Every config option of the charm (see config.yaml), validated.

    `app_name` is not an option: the charm passes its application name so that messages show
    the exact `juju config` command to run.
    """

    repository: str = ""
    branch: str = "main"
    pmr_path: str = "pmr.yaml"
    pmr_url: str = ""
    github_api_url: str = ""
    token_secret_id: ops.Secret | None = None
    github_app_secret_id: ops.Secret | None = None
    ca_secret_id: ops.Secret | None = None
    ssh_key_secret_id: ops.Secret | None = None
    cluster_name: str = ""
    kfp_ui_principal: str = ""
    istio_ingressgateway_principal: str = ""
    additional_principals: str = ""
    userid_header: str = ""
    userid_prefix: str = ""
    ignored_profiles: str = ""
    protected_namespaces: str = ""
    revoke_stale_access: bool = True
    max_revocations: int = DEFAULT_MAX_REVOCATIONS
    adopt_namespaces: bool = False
    namespace_wait: int = int(DEFAULT_NAMESPACE_WAIT)
    report_status: bool = False
    status_url: str = ""
    dry_run: bool = False
    idp_credentials: str = ""
    app_name: dataclasses.InitVar[str] = APP_PLACEHOLDER

    def __post_init__(self, app_name: str) -> None:
        """Validate every option; raise ValueError naming the option and the fix."""
        if problem := self._problem():
            option, message = problem
            raise ValueError(f"{message}: {_fix(app_name, option)}")

    def _problem(self) -> tuple[str, str] | None:
        """Return (option, what is wrong) for the first invalid option, or None."""
        if not self.repository.strip() and not self.pmr_url.strip():
            return "repository", "set `repository`"
        if self.repository.strip() and self.pmr_url.strip():
            return "pmr-url", "set either `repository` or `pmr-url`, not both"
        try:
            source = self.source
        except ValueError as exc:
            match = _OPTION_IN_MESSAGE.search(str(exc))
            return (match.group(1) if match else "repository"), str(exc)
        if (
            isinstance(source, GitSource)
            and source.transport == "ssh"
            and self.ssh_key_secret_id is None
        ):
            return (
                "ssh-key-secret-id",
                "`repository` is an SSH URL: set `ssh-key-secret-id` to a secret with the keys "
                "`ssh-key` and `known-hosts` (or use the HTTPS clone URL with `token-secret-id`)",
            )
        return (
            _override_problem(
                "kfp-ui-principal", self.kfp_ui_principal, _PRINCIPAL, "an Istio principal"
            )
            or _override_problem(
                "istio-ingressgateway-principal",
                self.istio_ingressgateway_principal,
                _PRINCIPAL,
                "an Istio principal",
            )
            or _list_problem(
                "additional-principals", self.additional_principals, _PRINCIPAL, "principals"
            )
            or _override_problem(
                "userid-header", self.userid_header, _HTTP_TOKEN, "an HTTP header name"
            )
            or _prefix_problem(self.userid_prefix)
            or _list_problem(
                "ignored-profiles", self.ignored_profiles, _NAME_OR_GLOB, "profile names or globs"
            )
            or _list_problem(
                "protected-namespaces",
                self.protected_namespaces,
                _NAME_OR_GLOB,
                "namespace names or globs",
            )
            or _revocations_problem(self.max_revocations)
            or _idp_credentials_problem(self.idp_credentials)
            or _namespace_wait_problem(self.namespace_wait)
            or self._github_app_problem()
            or _status_url_problem(self.status_url)
        )

    def _github_app_problem(self) -> tuple[str, str] | None:
        if self.github_app_secret_id is None:
            return None
        if self.token_secret_id is not None:
            return (
                "token-secret-id",
                "set either `token-secret-id` or `github-app-secret-id`, not both",
            )
        if not isinstance(self.source, GitHubSource):
            return (
                "github-app-secret-id",
                "`github-app-secret-id` works only with a GitHub repository in `repository`",
            )
        return None

    @property
    def source(self) -> Source:
        """Where the PMR lives (raises ValueError if the source options are wrong)."""
        return source_from_options(
            repository=self.repository,
            branch=self.branch,
            pmr_path=self.pmr_path,
            pmr_url=self.pmr_url,
            github_api_url=self.github_api_url,
            ssh_key=self.ssh_key_secret_id is not None,
        )

    @property
    def protected(self) -> tuple[str, ...]:
        """The namespaces protected on top of the built-in reserved list."""
        return split_list(self.protected_namespaces)

    @property
    def idp_secrets(self) -> dict[str, str]:
        """Provider name -> the Juju secret id holding its credentials."""
        found = {}
        for item in split_list(self.idp_credentials):
            match = _IDP_CREDENTIAL.match(item)
            if match:
                found[match.group(1)] = match.group(2)
        return found

    def sync_settings(self, *, force: bool = False) -> SyncSettings:
        """The engine's settings for one run; `force` lifts the revocation guard."""
        return SyncSettings(
            cluster_name=self.cluster_name.strip() or None,
            access=AccessPolicyOptions(
                ingress_gateway_principal=self.istio_ingressgateway_principal.strip(),
                kfp_ui_principal=self.kfp_ui_principal.strip(),
                additional_principals=split_list(self.additional_principals),
                userid_header=self.userid_header.strip(),
                userid_prefix=self.userid_prefix,
            ),
            options=PlanOptions(
                ignored_profiles=split_list(self.ignored_profiles),
                revoke_stale_access=self.revoke_stale_access,
                max_revocations=self.max_revocations,
                force=force,
                adopt_namespaces=self.adopt_namespaces,
            ),
            protected_namespaces=self.protected,
            namespace_wait=float(self.namespace_wait),
        )


def _fix(app_name: str, option: str) -> str:
    if option == "pmr-url":
        return f"juju config {app_name} --reset pmr-url (or --reset repository)"
    example = _EXAMPLES.get(option)
    if example is None:
        return f"juju config {app_name} --reset {option}"
    return f"juju config {app_name} {option}={example}"


def _override_problem(
    option: str, value: str, pattern: re.Pattern[str], what: str
) -> tuple[str, str] | None:
    """An override is empty (follow the profile controller) or well-formed."""
    value = value.strip()
    if value and not pattern.match(value):
        return option, f"`{option}` must be {what} (or empty), got {value!r}"
    return None


def _list_problem(
    option: str, value: str, pattern: re.Pattern[str], what: str
) -> tuple[str, str] | None:
    bad = [item for item in split_list(value) if not pattern.match(item)]
    if bad:
        return option, f"`{option}` must be comma-separated {what}, got {bad[0]!r}"
    return None


def _prefix_problem(prefix: str) -> tuple[str, str] | None:
    if not _PRINTABLE.match(prefix):
        return (
            "userid-prefix",
            f"`userid-prefix` must not contain spaces or control characters, got {prefix!r}",
        )
    return None


def _namespace_wait_problem(seconds: int) -> tuple[str, str] | None:
    if not 0 <= seconds <= 300:
        return "namespace-wait", f"`namespace-wait` must be 0 to 300 seconds, got {seconds}"
    return None


def _idp_credentials_problem(value: str) -> tuple[str, str] | None:
    names: set[str] = set()
    for item in split_list(value):
        match = _IDP_CREDENTIAL.match(item)
        if not match:
            return (
                "idp-credentials",
                f"`idp-credentials` must be comma-separated NAME=secret:ID (NAME as in the "
                f"PMR's identityProviders), got {item.split('=')[0]!r}=...",
            )
        if match.group(1) in names:
            return "idp-credentials", f"`idp-credentials` names {match.group(1)!r} twice"
        names.add(match.group(1))
    return None


def _revocations_problem(limit: int) -> tuple[str, str] | None:
    if limit < 0:
        return "max-revocations", f"`max-revocations` must be 0 or more, got {limit}"
    return None


def _status_url_problem(url: str) -> tuple[str, str] | None:
    if url.strip() and (problem := url_problem(url.strip())):
        return "status-url", f"`status-url` {problem}"
    return None
