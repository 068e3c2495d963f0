"""The ``pmr`` command: the charm's engine for a terminal or a PMR repository's CI."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiles_automator.identity.resolver import (
    DEFAULT_DEADLINE,
    OPTIONAL_KEYS,
    REQUIRED_KEYS,
    SECRET_KEY,
    Resolution,
    group_members,
    resolve,
)
from profiles_automator.pmr.cache import CLI_CACHE_FILE, ValidatedModelCache, load_pmr_cached
from profiles_automator.pmr.loader import DocumentLike, LoadResult, read_paths
from profiles_automator.pmr.membership import expand
from profiles_automator.pmr.model import PMR
from profiles_automator.pmr.problems import PMRInvalidError
from profiles_automator.pmr.schema import schema_text
from profiles_automator.pmr.yaml_reader import DEFAULT_MAX_BYTES
from profiles_automator.report.access_diff import (
    access_diff,
    render_json,
    render_markdown,
    render_text,
)
from profiles_automator.report.markdown import plan_markdown
from profiles_automator.sources.fetch import (
    Credentials,
    DirectoryCache,
    FetchError,
    GitHubSource,
    Source,
    fetch_pmr,
    source_from_options,
)
from profiles_automator.sources.github_app import GitHubApp, installation_token
from profiles_automator.sources.local_git import read_revision
from profiles_automator.sync.cluster import ClusterError
from profiles_automator.sync.engine import (
    DEFAULT_NAMESPACE_WAIT,
    SyncReport,
    SyncSettings,
    delete_stale_profiles,
    plan_sync,
    stale_profiles,
    sync,
)
from profiles_automator.sync.kfam import AccessPolicyOptions
from profiles_automator.sync.planner import DEFAULT_MAX_REVOCATIONS, Change, PlanOptions

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CHANGES = 2  # `pmr plan`: there is something to do (like `terraform plan -detailed-exitcode`)
EXIT_HELD = 3  # `pmr sync`: done, but the safety guard held deletions back
DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")

# How a CLI user gets the permissions the engine needs (the manifest ships in this repository).
RBAC_FIX = (
    "grant them to the identity in your kubeconfig, e.g. `kubectl apply -f docs/rbac.yaml` "
    "for a ServiceAccount"
)
LOGIN_FIX = (
    "check --kubeconfig and --context, and refresh the credentials (log in again, or a new "
    "token: `kubectl create token SERVICEACCOUNT`)"
)
_VERBS = {"created": "create", "updated": "update", "deleted": "delete", "replaced": "replace"}
_SYMBOLS = {"create": "+", "update": "~", "delete": "-", "replace": "-/+"}


def _non_negative_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not 0 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 3600 seconds, got {value}")
    return seconds


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


class UsageError(Exception):
    """Options that do not fit together; exit code 2."""


def _credentials(args: argparse.Namespace, source: Source) -> Credentials:
    token = os.environ.get("GITHUB_TOKEN") or None
    if args.token_file:
        token = _read_file(args.token_file, "--token-file").strip()
    ca_pem = _read_file(args.ca_file, "--ca-file") if args.ca_file else None
    ssh_key = _read_file(args.ssh_key_file, "--ssh-key-file") if args.ssh_key_file else None
    known_hosts = None
    if args.known_hosts_file:
        known_hosts = _read_file(args.known_hosts_file, "--known-hosts-file")
    elif ssh_key is not None and DEFAULT_KNOWN_HOSTS.expanduser().is_file():
        known_hosts = DEFAULT_KNOWN_HOSTS.expanduser().read_text(encoding="utf-8")
    if any((args.github_app_id, args.github_app_installation_id, args.github_app_key_file)):
        token = _github_app_token(args, source, ca_pem)
    return Credentials(
        token=token,
        username=args.token_username or None,
        ca_pem=ca_pem,
        ssh_key=ssh_key,
        known_hosts=known_hosts,
    )


def _github_app_token(args: argparse.Namespace, source: Source, ca_pem: str | None) -> str:
    """An installation token, kept in memory for this run only (never written anywhere)."""
    if not (args.github_app_id and args.github_app_installation_id and args.github_app_key_file):
        raise UsageError(
            "a GitHub App needs --github-app-id, --github-app-installation-id and "
            "--github-app-key-file together"
        )
    if args.token_file:
        raise UsageError("give either --token-file or a GitHub App, not both")
    if not isinstance(source, GitHubSource):
        raise UsageError("a GitHub App works only with --repository on GitHub")
    key = _read_file(args.github_app_key_file, "--github-app-key-file")
    try:
        app = GitHubApp(args.github_app_id, args.github_app_installation_id, key)
    except ValueError as exc:
        raise UsageError(f"{args.github_app_key_file}: {exc}") from None
    return installation_token(app, source, ca_pem=ca_pem).token


def _read_file(path: str, option: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {option} {path}: {exc.__class__.__name__}") from None


def _remote_source(args: argparse.Namespace) -> Source | None:
    if not (args.repository or args.pmr_url):
        if not args.paths:
            raise UsageError("give PMR files or folders, or --repository / --pmr-url")
        return None
    if args.paths:
        raise UsageError("give either local PATHs or --repository / --pmr-url, not both")
    try:
        return source_from_options(
            repository=args.repository,
            branch=args.branch,
            pmr_path=args.pmr_path,
            pmr_url=args.pmr_url,
            github_api_url=args.github_api_url,
            ssh_key=bool(args.ssh_key_file),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _documents(args: argparse.Namespace) -> tuple[Sequence[DocumentLike], str | None, str]:
    """The PMR files, the revision they were read at and a description for headings."""
    source = _remote_source(args)
    if source is None:
        return read_paths(args.paths), None, ", ".join(args.paths)
    cache = DirectoryCache(args.cache_dir) if args.cache_dir else None
    fetched = fetch_pmr(
        source,
        credentials=_credentials(args, source),
        cache=cache,
        max_bytes=args.max_file_bytes,
        git_cache_dir=Path(args.cache_dir) / "git" if args.cache_dir else None,
    )
    return fetched.documents, fetched.revision, f"{source.describe()} @ {fetched.revision[:12]}"


def _load(args: argparse.Namespace) -> LoadResult:
    return _read_pmr(args, show_warnings=False).result


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a PMR; warnings do not fail it, errors do."""
    try:
        result = _load(args)
    except PMRInvalidError as exc:
        for line in [*map(str, exc.warnings), *exc.lines()]:
            print(line, file=sys.stderr)
        count = len(exc.errors)
        print(f"PMR is invalid: {count} error{'s' * (count != 1)}", file=sys.stderr)
        return EXIT_INVALID
    for warning in result.warnings:
        print(warning, file=sys.stderr)
    profiles = result.pmr.profiles
    scope = ""
    if args.cluster_name is not None:
        profiles = result.pmr.for_cluster(args.cluster_name)
        scope = f" for cluster {args.cluster_name!r}"
    contributors = sum(len(p.contributors) for p in profiles)
    sources = result.pmr.sources()
    offline = (
        f", {_count(len(sources), 'provider group')} and "
        f"{_count(len(result.pmr.personal_profiles), 'personal-profile template')} "
        "(resolved by plan, sync and groups)"
        if sources or result.pmr.personal_profiles
        else ""
    )
    print(
        f"PMR is valid: {_count(len(profiles), 'profile')}{scope}, "
        f"{_count(contributors, 'contributor')}{offline}, "
        f"{_count(len(result.warnings), 'warning')}",
        file=sys.stderr,
    )
    return EXIT_OK


@dataclass(frozen=True)
class LoadedPMR:
    """A validated PMR, the revision it was read at (a SHA when fetched) and its groups.

    `pmr` has the provider members folded in; what could not be resolved stays unknown in
    it (see `pmr.membership`), so planning from it never revokes what an unknown group grants.
    """

    result: LoadResult
    revision: str | None
    description: str
    pmr: PMR
    resolution: Resolution


def _model_cache(args: argparse.Namespace) -> ValidatedModelCache | None:
    """The validated-model cache under ``--cache-dir``, for every command that loads a PMR."""
    cache_dir = getattr(args, "cache_dir", None)
    return ValidatedModelCache(Path(cache_dir) / CLI_CACHE_FILE) if cache_dir else None


def _read_pmr(args: argparse.Namespace, *, show_warnings: bool = True) -> LoadedPMR:
    """Read and validate the PMR from local paths or its remote source, then resolve groups."""
    documents, revision, description = _documents(args)
    result, _ = load_pmr_cached(
        documents,
        _model_cache(args),
        protected_namespaces=args.protected_namespaces,
        max_bytes=args.max_file_bytes,
    )
    if show_warnings:
        for warning in result.warnings:
            print(warning, file=sys.stderr)
    # `validate` is offline: it checks provider references, it does not call providers.
    resolution = (
        resolve(result.pmr, _idp_credentials(args), deadline_seconds=args.idp_deadline)
        if hasattr(args, "idp_credentials")
        else Resolution()
    )
    expansion = expand(
        result.pmr, resolution.member_sets(), protected_namespaces=args.protected_namespaces
    )
    if show_warnings:
        for line in [*resolution.warnings, *map(str, expansion.warnings)]:
            print(f"warning: {line}", file=sys.stderr)
        for error in resolution.unknown.values():
            print(
                f"warning: group unknown this run, its access is left as it is: {error}",
                file=sys.stderr,
            )
    return LoadedPMR(result, revision, description, expansion.pmr, resolution)


def _idp_credentials(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """`--idp-credentials NAME=FILE`: YAML files of a provider's secret keys."""
    import yaml

    found: dict[str, dict[str, str]] = {}
    for item in getattr(args, "idp_credentials", None) or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--idp-credentials takes NAME=FILE, got {item!r}")
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(
                f"--idp-credentials {name}: cannot read {path}: {type(exc).__name__}"
            ) from None
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise UsageError(
                f"--idp-credentials {name}: {path} must be a YAML mapping of keys to strings, "
                "e.g. `client-id: ...` and `client-secret: ...`"
            )
        known = {k for kind in REQUIRED_KEYS for k in (*REQUIRED_KEYS[kind], *OPTIONAL_KEYS[kind])}
        for key in data:
            if not SECRET_KEY.match(key) or key not in known:
                raise UsageError(
                    f"--idp-credentials {name}: {path} has unknown key {key!r}; keys are "
                    f"{', '.join(sorted(known))}"
                )
        found[name] = data
    return found


def _settings(args: argparse.Namespace) -> SyncSettings:
    return SyncSettings(
        cluster_name=args.cluster_name,
        access=AccessPolicyOptions(
            ingress_gateway_principal=args.istio_ingressgateway_principal,
            kfp_ui_principal=args.kfp_ui_principal,
            additional_principals=tuple(args.additional_principals),
            userid_header=args.userid_header,
            userid_prefix=args.userid_prefix,
        ),
        options=PlanOptions(
            ignored_profiles=tuple(args.ignored_profiles),
            revoke_stale_access=args.revoke_stale_access,
            max_revocations=args.max_revocations,
            force=getattr(args, "force", False),
            adopt_namespaces=args.adopt_namespaces,
        ),
        protected_namespaces=tuple(args.protected_namespaces),
        workers=args.workers,
        namespace_wait=args.namespace_wait,
    )


def _client(args: argparse.Namespace) -> Any:
    """A lightkube client: --kubeconfig, else in-cluster, else KUBECONFIG or ~/.kube/config."""
    from lightkube import Client, KubeConfig

    from profiles_automator.sync.kfam import MANAGER_NAME

    config = KubeConfig.from_file(args.kubeconfig) if args.kubeconfig else KubeConfig.from_env()
    chosen = config.get(context_name=args.context) if args.context else config
    if chosen is None:
        raise ClusterError(f"context {args.context!r} is not in the kubeconfig")
    return Client(config=chosen, field_manager=MANAGER_NAME)


def _change_line(change: Change) -> str:
    return f"  {_SYMBOLS[change.action]:>3} {change}"


def _print_resolution(resolution: Resolution) -> None:
    if resolution.resolved:
        print(f"  groups resolved: {resolution.summary()} in {resolution.seconds:.1f} s")
    for error in resolution.unknown.values():
        print(f"  group unknown (its access is left as it is): {error}")


def _print_json(report: SyncReport, resolution: Resolution) -> None:
    document = report.to_json()
    if resolution.resolved or resolution.unknown:
        document["groups"] = resolution.to_json()
    print(json.dumps(document, indent=2))


def _print_report(
    report: SyncReport, args: argparse.Namespace, heading: str, resolution: Resolution
) -> None:
    if args.output == "json":
        _print_json(report, resolution)
    elif args.output == "markdown":
        sys.stdout.write(plan_markdown(report, heading, permissions_fix=RBAC_FIX))
    else:
        _print_text_report(report, heading, resolution)


def _print_text_report(report: SyncReport, heading: str, resolution: Resolution) -> None:
    plan = report.plan
    print(heading)
    _print_resolution(resolution)
    for change in plan.changes:
        print(_change_line(change))
    if not plan.changes:
        print("  no changes: the cluster matches the PMR")
    if plan.stale_profiles:
        print(
            f"Stale profiles (in the cluster, not in the PMR; never deleted by a sync): "
            f"{', '.join(plan.stale_profiles)}"
        )
    if report.pending:
        print(
            "Pending (the profile controller has not set up the namespace yet; the next "
            f"run finishes them): {', '.join(report.pending)}"
        )
    for refusal in plan.refused:
        print(f"Refused profile {refusal}")
    if plan.held:
        print(f"Held back: {plan.hold_reason}. Review, then run `pmr sync --force` to apply:")
        for change in plan.held:
            print(_change_line(change))
    for failure in report.failures:
        print(f"  failed: {failure}")
    if report.refusal:
        scope = "a sync would be refused" if report.dry_run else "refused"
        print(f"Permissions: {scope}: {report.refusal}: {RBAC_FIX}")
    _print_summary(report)


def _print_summary(report: SyncReport) -> None:
    counts = report.counts()
    if report.dry_run:
        summary = ", ".join(f"{n} to {_VERBS[word]}" for word, n in counts.items() if n)
        print(f"Plan: {summary or 'nothing to do'}.")
        return
    summary = ", ".join(f"{n} {word}" for word, n in counts.items() if n)
    print(f"Applied: {summary or 'nothing'}.")
    by_kind = report.counts_by_kind()
    if by_kind:
        print("  " + ", ".join(f"{what}: {n}" for what, n in by_kind.items()))


def cmd_plan(args: argparse.Namespace) -> int:
    """Show what a sync would change; exit 2 when there is something to do."""
    loaded = _read_pmr(args)
    plan, _ = plan_sync(_client(args), loaded.pmr, _settings(args))
    report = SyncReport(plan, pending=plan.pending, revision=loaded.revision, dry_run=True)
    _print_report(report, args, f"Plan for {loaded.description}:", loaded.resolution)
    return EXIT_OK if plan.is_empty and not plan.pending else EXIT_CHANGES


def cmd_sync(args: argparse.Namespace) -> int:
    """Apply the plan; exit 1 when anything failed, 3 when deletions were held."""
    loaded = _read_pmr(args)
    report = sync(
        _client(args),
        loaded.pmr,
        _settings(args),
        dry_run=args.dry_run,
        revision=loaded.revision,
    )
    _print_report(report, args, f"Sync of {loaded.description}:", loaded.resolution)
    if (
        report.failures
        or report.missing_permissions
        or loaded.resolution.unknown
        or report.plan.refused
    ):
        return EXIT_ERROR
    return EXIT_HELD if report.plan.held else EXIT_OK


def cmd_stale(args: argparse.Namespace) -> int:
    """List stale profiles, or delete them when asked explicitly."""
    loaded = _read_pmr(args)
    client, settings = _client(args), _settings(args)
    if args.delete is None and not args.all:
        stale = stale_profiles(client, loaded.pmr, settings)
        if args.output == "json":
            print(json.dumps([s.__dict__ for s in stale], indent=2))
        else:
            for profile in stale:
                print(profile)
            print(_count(len(stale), "stale profile"), file=sys.stderr)
        return EXIT_OK
    if not args.yes:
        print(
            "deleting a Profile deletes its namespace and all data in it; add --yes to confirm",
            file=sys.stderr,
        )
        return EXIT_USAGE
    names = None if args.all else args.delete
    outcome = delete_stale_profiles(client, loaded.pmr, settings, names)
    status = EXIT_ERROR if outcome.failures or outcome.refused or outcome.refusal else EXIT_OK
    if args.output == "json":
        document: dict[str, Any] = {
            "deleted": list(outcome.deleted),
            "refused": outcome.refused,
            "failures": [
                {"name": f.change.name, "status": f.status, "message": f.message}
                for f in outcome.failures
            ],
        }
        if outcome.refusal:
            document["error"] = f"{outcome.refusal}: {RBAC_FIX}"
        print(json.dumps(document, indent=2))
        return status
    if outcome.refusal:
        print(f"error: {outcome.refusal}: {RBAC_FIX}", file=sys.stderr)
        return EXIT_ERROR
    for name in outcome.deleted:
        print(f"deleted Profile {name}")
    for name, why in outcome.refused.items():
        print(f"refused {name}: {why}", file=sys.stderr)
    for failure in outcome.failures:
        print(f"failed: {failure}", file=sys.stderr)
    if not outcome.deleted and not outcome.failures and not outcome.refused:
        print("no stale profiles to delete", file=sys.stderr)
    return status


def cmd_groups(args: argparse.Namespace) -> int:
    """Each group's members and where they came from; exit 1 when a group is unknown."""
    loaded = _read_pmr(args)
    members = group_members(loaded.result.pmr, loaded.resolution)
    if args.group is not None:
        if args.group not in members:
            raise UsageError(f"no group {args.group!r} in the PMR; groups: {', '.join(members)}")
        members = {args.group: members[args.group]}
    unknown = {
        group: [
            str(loaded.resolution.unknown[s]) for s in sources if s in loaded.resolution.unknown
        ]
        for group, sources in loaded.result.pmr.group_sources.items()
    }
    if args.output == "json":
        document = {
            "groups": {
                name: {
                    "members": [{"user": u, "sources": src} for u, src in users.items()],
                    "complete": not unknown.get(name),
                    "errors": unknown.get(name, []),
                }
                for name, users in members.items()
            },
            **loaded.resolution.to_json(),
        }
        print(json.dumps(document, indent=2))
    else:
        for name, users in members.items():
            state = " (INCOMPLETE: " + "; ".join(unknown[name]) + ")" if unknown.get(name) else ""
            print(f"{name}: {_count(len(users), 'member')}{state}")
            for user, sources in users.items():
                print(f"  {user}  ({', '.join(sources)})")
        if loaded.resolution.resolved:
            print(
                f"Resolved {loaded.resolution.summary()} with "
                f"{_count(loaded.resolution.requests, 'request')} in "
                f"{loaded.resolution.seconds:.1f} s.",
                file=sys.stderr,
            )
    shown_unknown = any(unknown.get(name) for name in members)
    return EXIT_ERROR if shown_unknown else EXIT_OK


_DIFF_RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}


def _diff_side(
    spec: str, side: str, args: argparse.Namespace
) -> tuple[PMR, tuple[str, ...]] | None:
    """One side of `pmr diff`, expanded, and its groups left unresolved; None if unusable.

    Provider groups are resolved only when `--idp-credentials` are given (a pull request's
    CI usually has none): without them, only their static members are counted, and the
    review says so.
    """
    try:
        if Path(spec).exists() or ":" not in spec:
            documents: Sequence[DocumentLike] = read_paths([spec])
        else:
            documents = read_revision(spec)
        pmr = load_pmr_cached(
            documents,
            _model_cache(args),
            protected_namespaces=args.protected_namespaces,
            max_bytes=args.max_file_bytes,
        )[0].pmr
    except PMRInvalidError as exc:
        print(f"{side} ({spec}) is not a valid PMR:", file=sys.stderr)
        for line in exc.lines():
            print(line, file=sys.stderr)
        return None
    except FetchError as exc:
        print(f"{side}: {exc}", file=sys.stderr)
        return None
    if not pmr.group_sources:
        return pmr, ()
    credentials = _idp_credentials(args)
    resolution = (
        resolve(pmr, credentials, deadline_seconds=args.idp_deadline)
        if credentials
        else Resolution()
    )
    expansion = expand(
        pmr, resolution.member_sets(), protected_namespaces=args.protected_namespaces
    )
    unresolved = tuple(
        group
        for group, sources in pmr.group_sources.items()
        if any(source not in resolution.resolved for source in sources)
    )
    return expansion.pmr, unresolved


def cmd_diff(args: argparse.Namespace) -> int:
    """Review a PMR change in people's terms; exit 2 when anything changes."""
    base = _diff_side(args.base, "BASE", args)
    head = _diff_side(args.head, "HEAD", args)
    if base is None or head is None:
        return EXIT_ERROR
    diff = access_diff(
        base[0],
        head[0],
        cluster_name=args.cluster_name,
        unresolved_groups=(*base[1], *head[1]),
    )
    sys.stdout.write(_DIFF_RENDERERS[args.output](diff, args.base, args.head))
    return EXIT_CHANGES if diff.has_changes else EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema, e.g. to save it next to the PMR for editors."""
    sys.stdout.write(schema_text())
    return EXIT_OK


def _common_pmr_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("PMR source (instead of local PATHs)")
    source.add_argument(
        "--repository", default="", help="org/repo on GitHub, or any git clone URL (https, ssh)"
    )
    source.add_argument("--branch", default="main", help="branch, tag or commit SHA")
    source.add_argument("--pmr-path", default="pmr.yaml", help="file or folder in the repository")
    source.add_argument("--pmr-url", default="", help="https URL of one raw PMR file")
    source.add_argument("--github-api-url", default="", help="API base (derived if empty)")
    source.add_argument("--token-file", help="file holding a token (default: $GITHUB_TOKEN)")
    source.add_argument(
        "--token-username", help="user name sent with the token over git HTTPS (host default)"
    )
    source.add_argument("--ssh-key-file", help="private deploy key for an SSH repository URL")
    source.add_argument(
        "--known-hosts-file",
        help=f"the SSH server's host keys (default with --ssh-key-file: {DEFAULT_KNOWN_HOSTS})",
    )
    source.add_argument("--github-app-id", help="a GitHub App's ID, instead of a token")
    source.add_argument("--github-app-installation-id", help="the App's installation ID")
    source.add_argument("--github-app-key-file", help="the App's private key (.pem)")
    source.add_argument("--ca-file", help="PEM bundle of a private CA to trust")
    source.add_argument(
        "--cache-dir",
        help="keep ETags, bodies, git objects and the last validated PMR here between runs",
    )
    parser.add_argument(
        "--protected-namespaces",
        type=_split,
        default=[],
        metavar="A,B",
        help="more namespaces (or globs) that may never be profiles",
    )
    parser.add_argument(
        "--cluster-name",
        default=None,
        help="this cluster's name, matched against each profile's `clusters`",
    )
    parser.add_argument(
        "--max-file-bytes",
        type=int,
        default=DEFAULT_MAX_BYTES,
        metavar="N",
        help=f"refuse PMR files larger than this (default {DEFAULT_MAX_BYTES})",
    )


def _identity_options(parser: argparse.ArgumentParser) -> None:
    identity = parser.add_argument_group("identity providers (groups with `from:`)")
    identity.add_argument(
        "--idp-credentials",
        action="extend",
        type=_split,
        default=[],
        metavar="NAME=FILE",
        help="a YAML file with the provider's keys (Entra: client-id, client-secret; LDAP: "
        "bind-dn, password, ca-cert); repeat or comma-separate for several providers",
    )
    identity.add_argument(
        "--idp-deadline",
        type=float,
        default=DEFAULT_DEADLINE,
        metavar="SECONDS",
        help=f"give up on unresolved groups after this long (default {DEFAULT_DEADLINE:g})",
    )


def _cluster_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: in-cluster, KUBECONFIG, ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context to use")
    parser.add_argument("--output", choices=["text", "markdown", "json"], default="text")
    follow = "(default: what each namespace's ns-owner-access-istio has)"
    parser.add_argument(
        "--istio-ingressgateway-principal", default="", help=f"override the gateway {follow}"
    )
    parser.add_argument("--kfp-ui-principal", default="", help=f"override the KFP UI {follow}")
    parser.add_argument("--additional-principals", type=_split, default=[], metavar="A,B")
    parser.add_argument("--userid-header", default="", help=f"override the header {follow}")
    parser.add_argument("--userid-prefix", default="", help=f"override the prefix {follow}")
    parser.add_argument(
        "--adopt-namespaces",
        action="store_true",
        help="let a profile take over an existing namespace that no Profile owns "
        "(never a Juju model's)",
    )
    parser.add_argument(
        "--namespace-wait",
        type=_non_negative_seconds,
        default=DEFAULT_NAMESPACE_WAIT,
        metavar="SECONDS",
        help="how long a sync waits for the profile controller to set up new namespaces "
        f"(default {DEFAULT_NAMESPACE_WAIT:g})",
    )
    parser.add_argument(
        "--ignored-profiles",
        type=_split,
        default=[],
        metavar="A,B*",
        help="profile names or globs never treated as stale",
    )
    parser.add_argument(
        "--no-revoke-stale-access",
        dest="revoke_stale_access",
        action="store_false",
        help="keep contributors' access to stale profiles",
    )
    parser.add_argument("--max-revocations", type=int, default=DEFAULT_MAX_REVOCATIONS)
    parser.add_argument("--workers", type=int, default=8, help="concurrent API writes")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, separate so tests and docs can inspect it."""
    parser = argparse.ArgumentParser(
        prog="pmr", description="Validate, plan and sync a Kubeflow Profiles PMR."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check PMR files or folders")
    validate.add_argument("paths", nargs="*", metavar="PATH")
    _common_pmr_options(validate)
    validate.set_defaults(usage_parser=validate, func=cmd_validate)

    groups = commands.add_parser("groups", help="resolve groups and show their members")
    groups.add_argument("paths", nargs="*", metavar="PATH")
    _common_pmr_options(groups)
    _identity_options(groups)
    groups.add_argument("--group", help="only this group")
    groups.add_argument("--output", choices=["text", "json"], default="text")
    groups.set_defaults(usage_parser=groups, func=cmd_groups)

    plan = commands.add_parser("plan", help="show what a sync would change (exit 2: changes)")
    plan.add_argument("paths", nargs="*", metavar="PATH")
    _common_pmr_options(plan)
    _identity_options(plan)
    _cluster_options(plan)
    plan.set_defaults(usage_parser=plan, func=cmd_plan)

    sync_cmd = commands.add_parser("sync", help="make the cluster match the PMR")
    sync_cmd.add_argument("paths", nargs="*", metavar="PATH")
    _common_pmr_options(sync_cmd)
    _identity_options(sync_cmd)
    _cluster_options(sync_cmd)
    sync_cmd.add_argument("--dry-run", action="store_true", help="plan and report only")
    sync_cmd.add_argument(
        "--force", action="store_true", help="lift the safety guard for this run"
    )
    sync_cmd.set_defaults(usage_parser=sync_cmd, func=cmd_sync)

    stale = commands.add_parser("stale", help="list (or delete) profiles not in the PMR")
    stale.add_argument("paths", nargs="*", metavar="PATH")
    _common_pmr_options(stale)
    _identity_options(stale)
    _cluster_options(stale)
    which = stale.add_mutually_exclusive_group()
    which.add_argument(
        "--delete", type=_split, metavar="NAME[,NAME]", help="delete these stale Profiles"
    )
    which.add_argument("--all", action="store_true", help="delete every stale Profile")
    stale.add_argument(
        "--yes", action="store_true", help="confirm deletion (it destroys user data)"
    )
    stale.set_defaults(usage_parser=stale, func=cmd_stale)

    diff = commands.add_parser(
        "diff", help="who gains and loses access between two PMRs (exit 2: changes)"
    )
    diff.add_argument("base", metavar="BASE", help="PMR path, or REV:PATH of the git checkout")
    diff.add_argument("head", metavar="HEAD", help="PMR path, or REV:PATH of the git checkout")
    diff.add_argument("--output", choices=sorted(_DIFF_RENDERERS), default="text")
    diff.add_argument(
        "--cluster-name", default=None, help="only the profiles this cluster would have"
    )
    diff.add_argument(
        "--protected-namespaces", type=_split, default=[], metavar="A,B", help="as for validate"
    )
    diff.add_argument("--max-file-bytes", type=int, default=DEFAULT_MAX_BYTES, metavar="N")
    _identity_options(diff)
    diff.set_defaults(usage_parser=diff, func=cmd_diff)

    schema = commands.add_parser("schema", help="print the PMR JSON Schema")
    schema.set_defaults(usage_parser=schema, func=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    try:
        return args.func(args)
    except PMRInvalidError as exc:
        for line in [*map(str, exc.warnings), *exc.lines()]:
            print(line, file=sys.stderr)
        print("PMR is invalid: nothing was changed", file=sys.stderr)
        return EXIT_INVALID
    except ClusterError as exc:
        fix = RBAC_FIX if exc.missing_permissions else LOGIN_FIX if exc.unauthenticated else ""
        print(f"error: {exc.with_fix(fix)}", file=sys.stderr)
        return EXIT_ERROR
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except UsageError as exc:
        args.usage_parser.print_usage(sys.stderr)
        print(f"pmr {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
