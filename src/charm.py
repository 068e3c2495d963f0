#!/usr/bin/env python3
"""Kubeflow Profiles Automator: keep Profiles and contributors identical to a PMR in git.

The leader unit syncs on every `update-status` (the periodic loop) and whenever something that
changes the outcome happens (install, config, upgrade, leadership, secret rotation): it fetches
the PMR at the branch's current commit, validates it, and hands it to the engine
(`profiles_automator`), which plans and applies the changes. Each hook does one bounded pass: no
sleeping, no waiting for the profile controller.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import pathlib
import shutil
from collections.abc import Iterator, Sequence

import lightkube
import ops
from lightkube.core.exceptions import ConfigError as KubeConfigError

from charm_config import CharmConfig
from profiles_automator.identity.directory import DirectoryError
from profiles_automator.identity.resolver import (
    OPTIONAL_KEYS,
    REQUIRED_KEYS,
    Resolution,
    group_members,
    resolve,
)
from profiles_automator.pmr.cache import ValidatedModelCache, load_pmr_cached
from profiles_automator.pmr.loader import LoadResult
from profiles_automator.pmr.membership import expand
from profiles_automator.pmr.model import PMR
from profiles_automator.pmr.problems import PMRInvalidError
from profiles_automator.report import commit_status
from profiles_automator.sources.errors import HostKeyError
from profiles_automator.sources.fetch import (
    Credentials,
    FetchError,
    GitHubSource,
    GitSource,
    MemoryCache,
    Source,
    UntrustedTLSError,
    fetch_pmr,
)
from profiles_automator.sources.github_app import GitHubApp, InstallationToken, installation_token
from profiles_automator.sync import engine
from profiles_automator.sync.cluster import ClusterError
from profiles_automator.sync.kfam import MANAGER_NAME

logger = logging.getLogger(__name__)

SYNC_NOW = "sync-now"
LIST_STALE = "list-stale-profiles"
DELETE_STALE = "delete-stale-profiles"
SHOW_GROUPS = "show-groups"
IDP_OPTION = "idp-credentials"
# Secret keys must match Juju's rule ^([a-z](?:-?[a-z0-9]){2,})$ (no dots): `juju add-secret`
# refuses any other key. tests/test_secret_keys.py checks every key in SECRET_KEYS.
TOKEN_KEY = "token"
USERNAME_KEY = "username"
CA_KEY = "ca-cert"
SSH_KEY_KEY = "ssh-key"
KNOWN_HOSTS_KEY = "known-hosts"
TOKEN_OPTION = "token-secret-id"
CA_OPTION = "ca-secret-id"
SSH_KEY_OPTION = "ssh-key-secret-id"
GITHUB_APP_OPTION = "github-app-secret-id"
GITHUB_APP_KEYS = ("app-id", "installation-id", "private-key")
# The keys each secret option's secret holds.
SECRET_KEYS = {
    TOKEN_OPTION: (TOKEN_KEY, USERNAME_KEY),
    CA_OPTION: (CA_KEY,),
    SSH_KEY_OPTION: (SSH_KEY_KEY, KNOWN_HOSTS_KEY),
    GITHUB_APP_OPTION: GITHUB_APP_KEYS,
}
# How `juju update-secret` sets the keys whose values are files.
_FILE_KEYS = {
    SSH_KEY_KEY: f"{SSH_KEY_KEY}#file=deploy-key",
    KNOWN_HOSTS_KEY: f"{KNOWN_HOSTS_KEY}#file=known_hosts",
    "private-key": "private-key#file=app.pem",
}
# The bare repository of a git source, kept between hooks next to the charm's own files.
GIT_CACHE_DIR = ".pmr-git-cache"
# The libraries under the engine log several records per HTTP request (httpx2/httpcore2 under
# lightkube, urllib3 under requests). Through ops each record is one `juju-log` process, so a
# sync would log thousands; at WARNING a hook logs its summary and its problems only.
QUIET_LOGGERS = (
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "hpack",
    "h2",
    "urllib3",
    "requests",
    "charset_normalizer",
    "lightkube",
    "msal",
    "ldap3",
    "dulwich",
    "paramiko",
)
# The installation token lives in a secret the unit owns: encrypted by Juju, readable by
# this unit only, never in StoredState, a log or an action result.
APP_TOKEN_LABEL = "github-app-installation-token"
ALL_PROFILES = "all"
STANDBY_MESSAGE = "standby: the leader syncs"
STATUS_LIMIT = 120  # status lines listing names are kept shorter than this
SHORT_SHA = 7
NONE = "none"
# The last validated PMR model, beside ops' own state in the charm directory (a file, since
# StoredState would rewrite megabytes on every hook).
MODEL_CACHE_FILE = ".pmr-validated-model.json"


class SyncBlockedError(Exception):
    """The PMR cannot be fetched or used, or the cluster cannot be reached.

    `str()` is the Blocked status message (and an action's failure message). `revision` is
    the commit already read when the sync stopped after fetching (for its commit status), and
    `invalid` the PMR's errors when that is why.
    """

    def __init__(
        self,
        message: str,
        *,
        revision: str | None = None,
        invalid: PMRInvalidError | None = None,
    ) -> None:
        super().__init__(message)
        self.revision = revision
        self.invalid = invalid


@dataclasses.dataclass(frozen=True)
class SyncOutcome:
    """What this hook's sync found; the collect-status handler turns it into a status."""

    report: engine.SyncReport | None = None
    profiles: int = 0
    problem: str | None = None
    standby: bool = False
    resolution: Resolution = dataclasses.field(default_factory=Resolution)


@dataclasses.dataclass(frozen=True)
class ResolvedPMR:
    """A validated PMR with its provider groups resolved, at one revision."""

    loaded: LoadResult
    pmr: PMR
    resolution: Resolution
    revision: str


class KubeflowProfilesAutomatorCharm(ops.CharmBase):
    """Sync Kubeflow Profiles and their contributors from the PMR."""

    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework) -> None:
        super().__init__(framework)
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        # The fetcher's ETag cache and the last commit validated: an unmoved branch costs one
        # conditional request (free against GitHub's rate limit) and no file downloads.
        self._stored.set_default(http_cache="", revision="", reported_status="")
        self._outcome: SyncOutcome | None = None
        self._credentials = Credentials()
        framework.observe(self.on.install, self._on_install)
        framework.observe(self.on.config_changed, self._on_config_changed)
        framework.observe(self.on.upgrade_charm, self._on_upgrade_charm)
        framework.observe(self.on.leader_elected, self._on_leader_elected)
        framework.observe(self.on.update_status, self._on_update_status)
        framework.observe(self.on.secret_changed, self._on_secret_changed)
        framework.observe(self.on[SYNC_NOW].action, self._on_sync_now_action)
        framework.observe(self.on[LIST_STALE].action, self._on_list_stale_profiles_action)
        framework.observe(self.on[DELETE_STALE].action, self._on_delete_stale_profiles_action)
        framework.observe(self.on[SHOW_GROUPS].action, self._on_show_groups_action)
        framework.observe(self.on.collect_unit_status, self._on_collect_unit_status)

    # --- events that sync ------------------------------------------------------------------

    def _on_install(self, _: ops.InstallEvent) -> None:
        self._sync()

    def _on_config_changed(self, _: ops.ConfigChangedEvent) -> None:
        self._sync()

    def _on_upgrade_charm(self, _: ops.UpgradeCharmEvent) -> None:
        self._sync()

    def _on_leader_elected(self, _: ops.LeaderElectedEvent) -> None:
        self._sync()

    def _on_update_status(self, _: ops.UpdateStatusEvent) -> None:
        self._sync()

    def _on_secret_changed(self, _: ops.SecretChangedEvent) -> None:
        self._sync()

    # --- actions ---------------------------------------------------------------------------

    def _on_sync_now_action(self, event: ops.ActionEvent) -> None:
        config = self._action_config(event, SYNC_NOW)
        if config is None:
            return
        dry_run = bool(event.params.get("dry-run")) or config.dry_run
        # The unit status describes the configured mode: a dry run asked for on top of a
        # real-mode config only answers the action.
        shapes_status = dry_run == config.dry_run
        try:
            outcome = self._run_sync(
                config, dry_run=dry_run, force=bool(event.params.get("force"))
            )
        except SyncBlockedError as exc:
            if shapes_status:
                self._outcome = SyncOutcome(problem=str(exc))
            if not dry_run:
                event.set_results({"commit-status": self._report_blocked(config, exc)})
            event.fail(str(exc))
            return
        if shapes_status:
            self._outcome = outcome
        report = outcome.report
        assert report is not None
        results = _sync_results(report, outcome.resolution)
        if not dry_run:
            results["commit-status"] = self._report_sync(config, report, outcome.profiles)
        event.set_results(results)
        if report.failures:
            event.fail(f"{_count(len(report.failures), 'change')} failed: see `failures`")

    def _on_list_stale_profiles_action(self, event: ops.ActionEvent) -> None:
        config = self._action_config(event, LIST_STALE)
        if config is None:
            return
        try:
            resolved = self._resolved_pmr(config)
            with self._kubernetes() as client:
                stale = engine.stale_profiles(client, resolved.pmr, config.sync_settings())
        except SyncBlockedError as exc:
            event.fail(str(exc))
            return
        event.set_results(
            {
                "stale-profiles": ",".join(profile.name for profile in stale),
                "details": "\n".join(str(profile) for profile in stale) or NONE,
            }
        )

    def _on_delete_stale_profiles_action(self, event: ops.ActionEvent) -> None:
        config = self._action_config(event, DELETE_STALE)
        if config is None:
            return
        wanted = str(event.params.get("profiles", "")).strip()
        names = None if wanted == ALL_PROFILES else _split(wanted)
        if names == []:
            event.fail("name the profiles to delete: profiles=a,b (or profiles=all)")
            return
        try:
            resolved = self._resolved_pmr(config)
            with self._kubernetes() as client:
                outcome = engine.delete_stale_profiles(
                    client,
                    resolved.pmr,
                    config.sync_settings(),
                    names,
                    dry_run=bool(event.params.get("dry-run")),
                )
        except SyncBlockedError as exc:
            event.fail(str(exc))
            return
        if outcome.refusal:
            event.fail(f"{outcome.refusal}: {self._trust_fix}")
            return
        event.set_results(
            {
                "deleted": ",".join(outcome.deleted),
                "refused": "\n".join(f"{n}: {why}" for n, why in outcome.refused.items()) or NONE,
                "dry-run": str(outcome.dry_run).lower(),
            }
        )
        if outcome.failures:
            first = outcome.failures[0]
            event.fail(f"could not delete {_count(len(outcome.failures), 'profile')}: {first}")
        elif not outcome.deleted:
            event.fail(_nothing_deleted(outcome.refused))

    def _on_show_groups_action(self, event: ops.ActionEvent) -> None:
        config = self._action_config(event, SHOW_GROUPS)
        if config is None:
            return
        try:
            resolved = self._resolved_pmr(config)
        except SyncBlockedError as exc:
            event.fail(str(exc))
            return
        wanted = str(event.params.get("group") or "").strip()
        members = group_members(resolved.loaded.pmr, resolved.resolution)
        if wanted and wanted not in members:
            event.fail(f"no group {wanted!r} in the PMR; groups: {', '.join(members) or NONE}")
            return
        results: dict[str, str] = {
            "groups": "\n".join(
                _group_line(resolved, name, users) for name, users in members.items()
            )
            or NONE,
            "revision": resolved.revision,
        }
        if wanted:
            results["members"] = (
                "\n".join(f"{user} ({', '.join(src)})" for user, src in members[wanted].items())
                or NONE
            )
        event.set_results(results)

    # --- status ----------------------------------------------------------------------------

    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        """Set the status from this hook's sync; without one, keep the status last set.

        A hook that did not sync (an action, or a sync-now dry run) adds nothing, so ops
        leaves the unit status as the last sync set it rather than a guess.
        """
        outcome = self._outcome
        if outcome is None:
            return
        if outcome.standby:
            event.add_status(ops.ActiveStatus(STANDBY_MESSAGE))
            return
        if outcome.problem is not None or outcome.report is None:
            event.add_status(ops.BlockedStatus(outcome.problem or "sync did not run"))
            return
        for error in outcome.resolution.unknown.values():
            # Everything else was synced; what this group grants was left as it was.
            status = ops.WaitingStatus if error.retryable else ops.BlockedStatus
            event.add_status(status(_group_problem(error, len(outcome.resolution.unknown))))
        report, app = outcome.report, self.app.name
        at = f"@ {_short(report.revision)}"
        if report.dry_run:
            message = f"dry-run: {_count(len(report.changes), 'change')} planned {at}"
            if report.plan.hold_reason:
                message += f"; {report.plan.hold_reason}"
            event.add_status(ops.ActiveStatus(_with_stale(message, report.plan.stale_profiles)))
            return
        if report.failures:
            count = _count(len(report.failures), "change")
            event.add_status(ops.BlockedStatus(f"failed to apply {count}: {report.failures[0]}"))
        if report.plan.held:
            event.add_status(
                ops.BlockedStatus(
                    f"{report.plan.hold_reason}: juju run {app}/leader {SYNC_NOW} force=true"
                )
            )
        if report.plan.refused:
            names = [r.name for r in report.plan.refused]
            prefix = f"refused {_count(len(names), 'profile')} whose namespace is taken"
            event.add_status(
                ops.BlockedStatus(_fit(prefix, names, f"; see {SYNC_NOW} dry-run=true"))
            )
        if report.pending:
            count = _count(len(report.pending), "namespace")
            waiting = f"waiting for the profile controller to create {count}"
            event.add_status(ops.WaitingStatus(_fit(waiting, report.pending, "")))
        message = f"{_count(outcome.profiles, 'profile')} in sync {at}"
        if groups := outcome.resolution.summary():
            message += f"; {groups}"
        event.add_status(ops.ActiveStatus(_with_stale(message, report.plan.stale_profiles)))

    # --- the sync --------------------------------------------------------------------------

    def _sync(self) -> None:
        """Fetch, validate and apply the PMR on the leader; record the outcome for the status."""
        config = self.load_config(CharmConfig, app_name=self.app.name, errors="blocked")
        if not self.unit.is_leader():
            self._outcome = SyncOutcome(standby=True)
            return
        try:
            outcome = self._run_sync(config, dry_run=config.dry_run, force=False)
        except SyncBlockedError as exc:
            logger.error("sync blocked: %s", exc)
            self._outcome = SyncOutcome(problem=str(exc))
            if not config.dry_run:
                self._report_blocked(config, exc)
            return
        self._outcome = outcome
        if not config.dry_run and outcome.report is not None:
            self._report_sync(config, outcome.report, outcome.profiles)

    # --- the result on the commit ----------------------------------------------------------

    def _report_sync(self, config: CharmConfig, report: engine.SyncReport, profiles: int) -> str:
        """Set the commit status of a finished sync; return what happened, for sync-now."""
        state, description = commit_status.status_of_sync(
            report, profiles=profiles, app=self.app.name
        )
        return self._report(config, report.revision, state, description)

    def _report_blocked(self, config: CharmConfig, exc: SyncBlockedError) -> str:
        """A sync that stopped after reading a commit: report failure on that commit."""
        state, description = commit_status.status_of_problem(str(exc), exc.invalid)
        return self._report(config, exc.revision, state, description)

    def _report(
        self,
        config: CharmConfig,
        revision: str | None,
        state: commit_status.State,
        description: str,
    ) -> str:
        """Report once per (commit, outcome); a failure is one warning, never a blocked sync."""
        if not config.report_status:
            return "off (report-status=false)"
        if not revision:
            return "not reported: no commit was read"
        reporter = commit_status.reporter_for(config.source, self._credentials)
        if reporter is None:
            where = config.source.describe()
            return f"not reported: {where} is not a GitHub or GitLab repository"
        status = commit_status.CommitStatus(
            sha=revision,
            state=state,
            description=description,
            context=commit_status.context_for(config.cluster_name, self.model.name),
            target_url=config.status_url.strip() or None,
        )
        if status.key == self._stored.reported_status:
            return f"unchanged: {state} already reported on {_short(revision)}"
        if problem := commit_status.report(reporter, status):
            logger.warning("%s", problem)
            return f"failed: {problem}"
        self._stored.reported_status = status.key
        logger.info("commit status %s set on %s (%s)", state, _short(revision), status.context)
        return f"{state} reported on {_short(revision)} as {status.context}"

    def _run_sync(self, config: CharmConfig, *, dry_run: bool, force: bool) -> SyncOutcome:
        """One pass: fetch, validate, resolve groups, sync."""
        resolved = self._resolved_pmr(config)
        revision = resolved.revision
        settings = config.sync_settings(force=force)
        try:
            with self._kubernetes() as client:
                report = engine.sync(
                    client, resolved.pmr, settings, dry_run=dry_run, revision=revision
                )
        except SyncBlockedError as exc:
            raise SyncBlockedError(str(exc), revision=revision) from exc
        if report.refusal:
            # A dry run says the same: the admin must act before a real run could work.
            raise SyncBlockedError(f"{report.refusal}: {self._trust_fix}", revision=revision)
        logger.info(
            "sync @ %s%s: %s, %d held, %d pending, %d failed, %d stale, %d refused",
            revision,
            " (dry run)" if dry_run else "",
            report.counts(),
            len(report.plan.held),
            len(report.pending),
            len(report.failures),
            len(report.plan.stale_profiles),
            len(report.plan.refused),
        )
        for refusal in report.plan.refused:
            logger.warning("refused profile %s", refusal)
        profiles = len(resolved.pmr.for_cluster(settings.cluster_name))
        return SyncOutcome(report=report, profiles=profiles, resolution=resolved.resolution)

    def _resolved_pmr(self, config: CharmConfig) -> ResolvedPMR:
        """The PMR with every provider group resolved (or left unknown, with the reason)."""
        loaded, revision = self._fetch_pmr(config)
        credentials: dict[str, dict[str, str]] = {}
        broken: dict[str, DirectoryError] = {}
        secrets = config.idp_secrets
        for name, provider in loaded.pmr.identity_providers.items():
            if name not in secrets:
                continue  # the resolver reports the missing credentials for its groups
            try:
                credentials[name] = self._idp_secret(name, provider.kind, secrets[name])
            except DirectoryError as exc:
                broken[name] = exc
        resolution = resolve(loaded.pmr, credentials, broken=broken)
        for warning in resolution.warnings:
            logger.warning("%s", warning)
        expansion = expand(
            loaded.pmr, resolution.member_sets(), protected_namespaces=config.protected
        )
        for warning in expansion.warnings:
            logger.warning("PMR: %s", warning)
        return ResolvedPMR(loaded, expansion.pmr, resolution, revision)

    def _idp_secret(self, name: str, kind: str, secret_id: str) -> dict[str, str]:
        """A provider's credentials from its Juju secret, with token-secret-id's messages."""
        try:
            content = self.model.get_secret(id=secret_id).get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError):
            raise DirectoryError(
                name,
                "*",
                f"cannot read the secret for {name} in `{IDP_OPTION}`: juju grant-secret "
                f"{secret_id} {self.app.name}",
            ) from None
        missing = [key for key in REQUIRED_KEYS[kind] if not content.get(key)]
        if missing:
            raise DirectoryError(
                name,
                "*",
                f"the secret for {name} in `{IDP_OPTION}` has no `{missing[0]}` key: juju "
                f"update-secret {secret_id} {missing[0]}=...",
            )
        allowed = (*REQUIRED_KEYS[kind], *OPTIONAL_KEYS[kind])
        return {key: content[key] for key in allowed if content.get(key)}

    def _fetch_pmr(self, config: CharmConfig) -> tuple[LoadResult, str]:
        """Fetch and validate the PMR; any failure raises before anything is applied."""
        source = config.source
        credentials = self._fetch_credentials(config)
        self._credentials = credentials
        stored_cache = self._stored.http_cache
        cache = MemoryCache.from_json(stored_cache) if stored_cache else MemoryCache()
        git_cache = self._git_cache_dir(source)
        try:
            fetched = fetch_pmr(
                source,
                credentials=credentials,
                cache=cache,
                last_revision=self._stored.revision or None,
                git_cache_dir=git_cache,
            )
        except HostKeyError as exc:
            secret = config.ssh_key_secret_id
            name = (secret.id if secret else None) or SSH_KEY_OPTION
            raise SyncBlockedError(
                f"cannot fetch the PMR: {exc}: juju update-secret {name} "
                f"{KNOWN_HOSTS_KEY}#file=known_hosts"
            ) from exc
        except UntrustedTLSError as exc:
            advice = self._ca_advice(config, configured=exc.ca_configured)
            raise SyncBlockedError(f"cannot fetch the PMR: {exc.problem}; {advice}") from exc
        except FetchError as exc:
            if config.github_app_secret_id is not None:
                # A revoked or uninstalled App's token would fail every sync until it expires.
                self._forget_app_token()
            raise SyncBlockedError(f"cannot fetch the PMR: {exc}") from exc
        finally:
            if (cached := cache.to_json()) != stored_cache:
                self._stored.http_cache = cached
        if fetched.unchanged:
            logger.info("PMR commit %s unchanged since the last sync", _short(fetched.revision))
        try:
            loaded, from_cache = load_pmr_cached(
                fetched.documents,
                ValidatedModelCache(self.charm_dir / MODEL_CACHE_FILE),
                protected_namespaces=config.protected,
            )
        except PMRInvalidError as exc:
            raise SyncBlockedError(
                f"invalid PMR @ {_short(fetched.revision)}: {exc.summary()}",
                revision=fetched.revision,
                invalid=exc,
            ) from exc
        if from_cache:
            logger.info("PMR @ %s: validated model read from cache", _short(fetched.revision))
        for warning in loaded.warnings:
            logger.warning("PMR: %s", warning)
        self._stored.revision = fetched.revision
        return loaded, fetched.revision

    def _fetch_credentials(self, config: CharmConfig) -> Credentials:
        """The token (personal, or a GitHub App's installation token), SSH keys and CA bundle."""
        token = self._secret_content(config.token_secret_id, TOKEN_OPTION, TOKEN_KEY)
        ssh = self._secret_content(
            config.ssh_key_secret_id, SSH_KEY_OPTION, SSH_KEY_KEY, KNOWN_HOSTS_KEY
        )
        credentials = Credentials(
            token=token.get(TOKEN_KEY),
            username=token.get(USERNAME_KEY),
            ca_pem=self._secret_value(config.ca_secret_id, CA_KEY, CA_OPTION),
            ssh_key=ssh.get(SSH_KEY_KEY),
            known_hosts=ssh.get(KNOWN_HOSTS_KEY),
        )
        if config.github_app_secret_id is None:
            return credentials
        source = config.source
        assert isinstance(source, GitHubSource), "CharmConfig allows an App for GitHub only"
        app = self._github_app(config.github_app_secret_id)
        cached = self._cached_app_token()
        try:
            app_token = installation_token(app, source, ca_pem=credentials.ca_pem, cached=cached)
        except FetchError as exc:
            raise SyncBlockedError(f"cannot fetch the PMR: {exc}") from exc
        if app_token != cached:
            self._keep_app_token(app_token)
        return dataclasses.replace(credentials, token=app_token.token)

    def _github_app(self, secret: ops.Secret) -> GitHubApp:
        content = self._secret_content(secret, GITHUB_APP_OPTION, *GITHUB_APP_KEYS)
        try:
            return GitHubApp(*(content[key] for key in GITHUB_APP_KEYS))
        except ValueError as exc:
            raise SyncBlockedError(
                f"the secret in `{GITHUB_APP_OPTION}`: {exc} "
                f"(juju update-secret {secret.id or GITHUB_APP_OPTION} ...)"
            ) from exc

    def _cached_app_token(self) -> InstallationToken | None:
        try:
            secret = self.model.get_secret(label=APP_TOKEN_LABEL)
            return InstallationToken.from_content(secret.get_content(refresh=True))
        except (ops.SecretNotFoundError, ops.ModelError):
            return None

    def _keep_app_token(self, token: InstallationToken) -> None:
        """Keep the installation token for the next hooks, in a secret only this unit reads."""
        try:
            secret = self.model.get_secret(label=APP_TOKEN_LABEL)
        except ops.SecretNotFoundError:
            self.unit.add_secret(token.to_content(), label=APP_TOKEN_LABEL)
            return
        secret.set_content(token.to_content())

    def _forget_app_token(self) -> None:
        with contextlib.suppress(ops.SecretNotFoundError, ops.ModelError):
            self.model.get_secret(label=APP_TOKEN_LABEL).remove_all_revisions()

    def _secret_value(self, secret: ops.Secret | None, key: str, option: str) -> str | None:
        """Read `key` from the latest revision of a user secret (None when not configured)."""
        return self._secret_content(secret, option, key).get(key)

    def _secret_content(
        self, secret: ops.Secret | None, option: str, *required: str
    ) -> dict[str, str]:
        """The latest revision of a user secret ({} when not configured); `required` keys set."""
        if secret is None:
            return {}
        name = secret.id or option
        try:
            content = secret.get_content(refresh=True)
        except ops.ModelError as exc:  # not found, or not granted to this application
            raise SyncBlockedError(
                f"cannot read the secret in `{option}`: juju grant-secret {name} {self.app.name}"
            ) from exc
        for key in required:
            if not content.get(key):
                value = _FILE_KEYS.get(key, f"{key}=...")
                raise SyncBlockedError(
                    f"the secret in `{option}` has no `{key}` key: juju update-secret {name} "
                    f"{value}"
                )
        return content

    def _git_cache_dir(self, source: Source) -> pathlib.Path | None:
        """Where a git source's bare repository is kept between hooks (None: not needed).

        Only the configured repository is kept: others (an earlier `repository`) are removed.
        """
        path = self.charm_dir / GIT_CACHE_DIR
        if not isinstance(source, GitSource):
            shutil.rmtree(path, ignore_errors=True)
            return None
        # Imported here: dulwich and paramiko cost a hook that reads no git source ~20 MiB.
        from profiles_automator.sources.git import prune_cache

        try:
            path.mkdir(mode=0o700, exist_ok=True)
            prune_cache(path, keep=source)
        except OSError as exc:
            logger.warning("cannot keep the git cache in %s (%s); fetching without it", path, exc)
            return None
        return path

    def _ca_advice(self, config: CharmConfig, *, configured: bool) -> str:
        """How to make the server's CA trusted, naming `ca-secret-id` and the commands."""
        if configured and config.ca_secret_id is not None:
            name = config.ca_secret_id.id or "SECRET"
            return (
                f"the CA in `{CA_OPTION}` did not sign its certificate: "
                f"juju update-secret {name} {CA_KEY}#file=ca.pem"
            )
        return (
            f"for a private CA, set `{CA_OPTION}`: juju add-secret pmr-ca {CA_KEY}#file=ca.pem; "
            f"juju grant-secret pmr-ca {self.app.name}; "
            f"juju config {self.app.name} {CA_OPTION}=SECRET_ID"
        )

    @contextlib.contextmanager
    def _kubernetes(self) -> Iterator[lightkube.Client]:
        """A Kubernetes client; cluster-wide failures become SyncBlockedError."""
        try:
            with lightkube.Client(field_manager=MANAGER_NAME) as client:
                yield client
        except KubeConfigError as exc:
            raise SyncBlockedError(
                f"no Kubernetes credentials ({exc}): deploy with --trust"
            ) from exc
        except ClusterError as exc:
            if exc.missing_permissions:
                raise SyncBlockedError(exc.with_fix(self._trust_fix)) from exc
            if exc.unauthenticated:
                pod = self.unit.name.replace("/", "-")
                fix = (
                    "the unit's service-account token was rejected; for a fresh one, "
                    f"kubectl -n {self.model.name} delete pod {pod}"
                )
                raise SyncBlockedError(exc.with_fix(fix)) from exc
            raise SyncBlockedError(str(exc)) from exc

    @property
    def _trust_fix(self) -> str:
        return f"run `juju trust {self.app.name} --scope=cluster`"

    def _action_config(self, event: ops.ActionEvent, action: str) -> CharmConfig | None:
        """The config for an action on the leader, or None after failing the action."""
        if not self.unit.is_leader():
            event.fail(f"run this on the leader unit: juju run {self.app.name}/leader {action}")
            return None
        try:
            return self.load_config(CharmConfig, app_name=self.app.name)
        except ValueError as exc:
            event.fail(f"invalid config: {exc}")
            return None


def _group_problem(error: DirectoryError, unknown: int) -> str:
    """`corp-entra group 6f1c...: 403 ...: fix` for the status line, plus a count of others."""
    message = str(error).removeprefix(f"{error.provider}: ")
    group = "" if error.group == "*" else f" group {_abbreviate(error.group)}"
    more = f" (+{unknown - 1} more unknown, see {SHOW_GROUPS})" if unknown > 1 else ""
    text = f"{error.provider}{group}: {message}{more}"
    return text if len(text) <= 2 * STATUS_LIMIT else text[: 2 * STATUS_LIMIT - 3] + "..."


def _abbreviate(group: str) -> str:
    return group if len(group) <= 40 else group[:37] + "..."


def _group_line(resolved: ResolvedPMR, name: str, users: dict[str, list[str]]) -> str:
    """`ml-team: 12 members from corp-entra:6f1c..., static in 0.4 s` (or why unknown)."""
    sources = resolved.loaded.pmr.group_sources.get(name, ())
    unknown = [resolved.resolution.unknown[s] for s in sources if s in resolved.resolution.unknown]
    found = [resolved.resolution.resolved[s] for s in sources if s in resolved.resolution.resolved]
    origins = [str(s) for s in sources] + (
        ["static"] if resolved.loaded.pmr.groups.get(name) else []
    )
    line = f"{name}: {_count(len(users), 'member')} from {', '.join(origins) or 'static'}"
    if found:
        line += f" in {sum(r.seconds for r in found):.1f} s"
    if unknown:
        line += "; UNKNOWN: " + "; ".join(str(e) for e in unknown)
    return line


def _sync_results(report: engine.SyncReport, resolution: Resolution) -> dict[str, str | int]:
    """The sync-now action's results."""
    lines = [str(change) for change in report.changes]
    lines += [f"held: {change}" for change in report.plan.held]
    lines += [f"refused: {refusal}" for refusal in report.plan.refused]
    shown = lines[: engine.MAX_LISTED_CHANGES]
    if len(lines) > len(shown):
        shown.append(f"... and {len(lines) - len(shown)} more")
    return {
        "revision": report.revision or "",
        **report.counts(),
        "held": len(report.plan.held),
        "refused": len(report.plan.refused),
        "pending": len(report.pending),
        "stale": len(report.plan.stale_profiles),
        "changes": "\n".join(shown) or NONE,
        "failures": "\n".join(str(failure) for failure in report.failures) or NONE,
        "dry-run": str(report.dry_run).lower(),
        "groups": resolution.summary() or NONE,
        "unknown-groups": "\n".join(str(e) for e in resolution.unknown.values()) or NONE,
    }


def _nothing_deleted(refused: dict[str, str]) -> str:
    if not refused:
        return "nothing to delete: there are no stale profiles"
    reasons = "; ".join(f"{name}: {why}" for name, why in list(refused.items())[:3])
    more = f" (+{len(refused) - 3} more, see `refused`)" if len(refused) > 3 else ""
    return f"nothing deleted: {reasons}{more}"


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _short(revision: str | None) -> str:
    """A commit's short SHA (or the start of a URL's ETag)."""
    text = (revision or "unknown").removeprefix("W/").strip('"')
    return text[:SHORT_SHA]


def _with_stale(message: str, stale: Sequence[str]) -> str:
    """Append `; k stale: a, b (+n more), see list-stale-profiles` when there are any."""
    if not stale:
        return message
    return _fit(f"{message}; {len(stale)} stale", stale, f", see {LIST_STALE}")


def _fit(prefix: str, names: Sequence[str], suffix: str) -> str:
    """`prefix: a, b (+n more)suffix` with as many names as keep it under STATUS_LIMIT."""
    for shown in range(len(names), 0, -1):
        rest = len(names) - shown
        more = f" (+{rest} more)" if rest else ""
        text = f"{prefix}: {', '.join(names[:shown])}{more}{suffix}"
        if len(text) < STATUS_LIMIT:
            return text
    return f"{prefix}{suffix}"


if __name__ == "__main__":  # pragma: nocover
    ops.main(KubeflowProfilesAutomatorCharm)
