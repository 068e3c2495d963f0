"""The ``pmr`` command: the charm's engine for a terminal or a PMR repository's CI."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .loader import LoadResult, load_pmr, read_paths
from .problems import PMRInvalidError
from .schema import schema_text

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _load(args: argparse.Namespace) -> LoadResult:
    return load_pmr(read_paths(args.paths), protected_namespaces=args.protected_namespaces)


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
    here = result.pmr.for_cluster(args.cluster_name)
    scope = ""
    if args.cluster_name is not None:
        scope = f", {len(here)} for cluster {args.cluster_name!r}"
    print(
        f"PMR is valid: {len(profiles)} profiles{scope}, "
        f"{sum(len(p.contributors) for p in here)} contributors, "
        f"{len(result.warnings)} warnings",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema, e.g. to save it next to the PMR for editors."""
    sys.stdout.write(schema_text())
    return EXIT_OK


def _common_pmr_options(parser: argparse.ArgumentParser) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, separate so tests and docs can inspect it."""
    parser = argparse.ArgumentParser(
        prog="pmr", description="Validate, plan and sync a Kubeflow Profiles PMR."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check PMR files or folders")
    validate.add_argument("paths", nargs="+", metavar="PATH")
    _common_pmr_options(validate)
    validate.set_defaults(func=cmd_validate)

    schema = commands.add_parser("schema", help="print the PMR JSON Schema")
    schema.set_defaults(func=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    return args.func(args)
