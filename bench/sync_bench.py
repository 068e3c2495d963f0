"""Benchmark: requests, CPU, peak memory and wall time of a first and a no-op sync.

The in-memory API server runs in a child process, and every sync runs in a fresh
process of its own, so the figures are the syncing process's alone: its peak RSS
(``ru_maxrss``) and its CPU time (user + system, which does not depend on how fast
the test server answers). Prints a Markdown table; asserts nothing. Run with
``tox -e bench`` or ``PYTHONPATH=src:. python bench/sync_bench.py [--sizes 10,1000]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

CONTRIBUTORS_PER_PROFILE = 10
PROFILES_PER_FILE = 1000
NOOP_RUNS = 3
ROLES = ("admin", "edit", "view")
DEFAULT_SIZES = "10,100,1000,10000"


def make_pmr(profiles: int) -> dict[str, str]:
    """A PMR of N profiles x 10 contributors: YAML files of up to 1000 profiles each.

    A 10,000-profile PMR is a folder (one file would pass the 1 MiB per-file limit).
    """
    files: dict[str, str] = {}
    for start in range(0, profiles, PROFILES_PER_FILE):
        lines = ["profiles:"]
        for p in range(start, min(profiles, start + PROFILES_PER_FILE)):
            lines += [
                f"- name: team-{p:05d}",
                f"  owner: {{kind: User, name: lead{p}@example.com}}",
                '  resources: {hard: {limits.cpu: "8", limits.memory: 32Gi}}',
                "  contributors:",
            ]
            for c in range(CONTRIBUTORS_PER_PROFILE):
                role = ROLES[(p + c) % len(ROLES)]
                lines.append(f"  - {{name: user{(p * 7 + c) % 5000}@example.com, role: {role}}}")
        files[f"pmr/teams-{start // PROFILES_PER_FILE:02d}.yaml"] = "\n".join(lines) + "\n"
    return files


def serve(conn: Connection, kubeconfig: str) -> None:
    """Child process: run the fake API server and answer count/clear/stop commands."""
    from tests.fakes.kube_api import FakeKubeAPI

    with FakeKubeAPI(profile_controller="sync") as api:
        api.write_kubeconfig(kubeconfig)
        conn.send("ready")
        while True:
            command = conn.recv()
            if command == "counts":
                # A paginated list is one call however many pages it takes.
                calls = Counter(
                    r.verb
                    for r in api.requests
                    if not (r.verb == "list" and "continue" in r.query)
                )
                pages = sum(1 for r in api.requests if r.verb == "list")
                refused = Counter(r.status for r in api.requests if not 200 <= r.status < 300)
                conn.send((dict(calls), pages, dict(refused)))
            elif command == "clear":
                api.clear_requests()
                conn.send("ok")
            else:
                conn.send("bye")
                return


def run_sync(conn: Connection, kubeconfig: str, pmr_dir: str, cache_dir: str) -> None:
    """Child process: load the PMR (through the validated-model cache) and sync once."""
    from lightkube import Client, KubeConfig

    from profiles_automator.pmr.cache import CLI_CACHE_FILE, ValidatedModelCache, load_pmr_cached
    from profiles_automator.pmr.loader import Document
    from profiles_automator.sync.engine import SyncSettings, sync
    from profiles_automator.sync.kfam import MANAGER_NAME

    client = Client(KubeConfig.from_file(kubeconfig), field_manager=MANAGER_NAME)
    root = Path(pmr_dir)
    documents = [
        Document(str(path.relative_to(root)), path.read_bytes())
        for path in sorted(root.rglob("*.yaml"))
    ]
    cache = ValidatedModelCache(Path(cache_dir) / CLI_CACHE_FILE)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    pmr = load_pmr_cached(documents, cache)[0].pmr
    cpu1, wall1 = time.process_time(), time.perf_counter()
    report = sync(client, pmr, SyncSettings())
    wall2 = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    conn.send(
        {
            "failures": [str(f) for f in report.failures],
            "written": sum(report.counts().values()),
            "load_cpu": cpu1 - cpu0,
            "load_wall": wall1 - wall0,
            "sync_wall": wall2 - wall1,
            "cpu": usage.ru_utime + usage.ru_stime,
            "rss_mib": usage.ru_maxrss / 1024,
        }
    )


def _ask(conn: Connection, command: str) -> Any:
    conn.send(command)
    return conn.recv()


def one_sync(server: Connection, kubeconfig: str, pmr_dir: str, cache_dir: str) -> dict:
    """Run one sync in a fresh process; its figures plus the server's request counts."""
    _ask(server, "clear")
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=run_sync, args=(child, kubeconfig, pmr_dir, cache_dir))
    proc.start()
    result = parent.recv()
    proc.join()
    if result["failures"]:
        raise SystemExit(f"sync failed: {result['failures'][:5]}")
    result["calls"], result["pages"], result["refused"] = _ask(server, "counts")
    return result


def _row(label: str, run: str, r: dict, cold_load_cpu: float, hit_load_cpu: float) -> str:
    calls = dict(r["calls"])
    lists = calls.pop("list", 0)
    writes = sum(calls.values())
    refused = ", ".join(f"{n} x HTTP {code}" for code, n in sorted(r["refused"].items()))
    per_second = f"{writes / r['sync_wall']:.0f}" if writes else "-"
    cells = [
        label,
        run,
        f"{lists} ({r['pages']} pages)",
        ", ".join(f"{n} {verb}" for verb, n in sorted(calls.items())) or "0",
        refused or "none",
        per_second,
        f"{cold_load_cpu:.2f} s",
        f"{hit_load_cpu:.2f} s",
        f"{r['sync_wall']:.2f} s",
        f"{r['cpu']:.2f} s",
        f"{r['rss_mib']:.0f} MiB",
    ]
    return f"| {' | '.join(cells)} |"


def bench(size: int, noop_runs: int) -> list[str]:
    """First and no-op syncs of one PMR size against a fresh server."""
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig, cache_dir = str(Path(tmp) / "kubeconfig"), str(Path(tmp) / "cache")
        for name, text in make_pmr(size).items():
            (Path(tmp) / name).parent.mkdir(exist_ok=True)
            (Path(tmp) / name).write_text(text)
        pmr_dir = str(Path(tmp) / "pmr")
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        server = ctx.Process(target=serve, args=(child, kubeconfig), daemon=True)
        server.start()
        parent.recv()
        label = f"{size} x {CONTRIBUTORS_PER_PROFILE}"
        first = one_sync(parent, kubeconfig, pmr_dir, cache_dir)  # validates, fills the cache
        # No-op runs vary with the VM's mood: report the median run by CPU time.
        runs = sorted(
            (one_sync(parent, kubeconfig, pmr_dir, cache_dir) for _ in range(noop_runs)),
            key=lambda r: r["cpu"],
        )
        noop = runs[len(runs) // 2]
        if noop["calls"].get("list") != 4 or len(noop["calls"]) != 1:
            raise SystemExit(f"a no-op sync made other calls: {noop['calls']}")
        hit = statistics.median(r["load_cpu"] for r in runs)
        _ask(parent, "stop")
        server.join(5)
        return [
            _row(label, "first sync", first, first["load_cpu"], hit),
            _row(label, "no-op sync", noop, first["load_cpu"], hit),
        ]


def machine() -> str:
    """nproc, CPU model and Python version, for the README's table caption."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    """Print a Markdown table, one row per size and sync."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="profile counts, comma-separated")
    parser.add_argument("--noop-runs", type=int, default=NOOP_RUNS, help="no-op runs per size")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"Measured on {machine()}")
    print(
        "| profiles x contributors | run | logical lists (pages) | writes | refused | writes/s "
        "| PMR load + validate (CPU) | cache-hit load (CPU) | observe, plan, apply (wall) "
        "| client CPU | peak RSS |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for size in sizes:
        for row in bench(size, max(1, args.noop_runs)):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
