"""Benchmark: requests, wall time and peak memory of a first and a no-op sync.

The in-memory API server runs in a child process so the figures are the
engine's own (the server's threads would otherwise share our heap). Prints
figures; asserts nothing. Run with ``tox -e bench`` or
``PYTHONPATH=src:. python bench/sync_bench.py [--sizes 10,100,1000]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path

from lightkube import Client, KubeConfig

from profiles_automator.pmr.loader import Document, load_pmr
from profiles_automator.sync.engine import SyncSettings, sync
from profiles_automator.sync.kfam import MANAGER_NAME

CONTRIBUTORS_PER_PROFILE = 10
NOOP_RUNS = 5
ROLES = ("admin", "edit", "view")


def make_pmr(profiles: int) -> str:
    """A PMR of N profiles x 10 contributors, as YAML text."""
    lines = ["profiles:"]
    for p in range(profiles):
        lines += [
            f"- name: team-{p:05d}",
            f"  owner: {{kind: User, name: lead{p}@example.com}}",
            '  resources: {hard: {limits.cpu: "8", limits.memory: 32Gi}}',
            "  contributors:",
        ]
        for c in range(CONTRIBUTORS_PER_PROFILE):
            role = ROLES[(p + c) % len(ROLES)]
            lines.append(f"  - {{name: user{(p * 7 + c) % 5000}@example.com, role: {role}}}")
    return "\n".join(lines) + "\n"


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
                conn.send((dict(calls), pages))
            elif command == "clear":
                api.clear_requests()
                conn.send("ok")
            else:
                conn.send("bye")
                return


def _request_counts(conn: Connection) -> str:
    conn.send("counts")
    calls, pages = conn.recv()
    text = ", ".join(f"{n} {verb}" for verb, n in sorted(calls.items()))
    return f"{text} ({pages} list pages)"


def _clear(conn: Connection) -> None:
    conn.send("clear")
    conn.recv()


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_sync(client: Client, text: str, conn: Connection) -> list[str]:
    """Load the PMR and sync once; wall times, requests, objects written."""
    _clear(conn)
    rss_before = _rss_mib()
    started = time.perf_counter()
    pmr = load_pmr([Document("bench.yaml", text.encode())]).pmr
    loaded = time.perf_counter()
    report = sync(client, pmr, SyncSettings())
    finished = time.perf_counter()
    assert not report.failures, report.failures
    return [
        _request_counts(conn),
        str(sum(report.counts().values())),
        f"{loaded - started:.2f} s",
        f"{finished - loaded:.2f} s",
        f"{finished - started:.2f} s",
        f"+{_rss_mib() - rss_before:.0f} MiB RSS",
    ]


def traced_peak(client: Client, text: str) -> str:
    """Peak Python heap of a load + sync, measured on a separate (no-op) run."""
    tracemalloc.start()
    sync(client, load_pmr([Document("bench.yaml", text.encode())]).pmr, SyncSettings())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return f"{peak / 2**20:.0f} MiB heap"


def bench(size: int) -> list[str]:
    """First and no-op sync of one PMR size against a fresh server."""
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = str(Path(tmp) / "kubeconfig")
        parent, child = mp.Pipe()
        server = mp.Process(target=serve, args=(child, kubeconfig), daemon=True)
        server.start()
        parent.recv()
        client = Client(KubeConfig.from_file(kubeconfig), field_manager=MANAGER_NAME)
        text = make_pmr(size)
        label = f"{size} x {CONTRIBUTORS_PER_PROFILE}"
        first = timed_sync(client, text, parent)
        # No-op runs vary with the VM's mood: report the median of several.
        runs = sorted(
            (timed_sync(client, text, parent) for _ in range(NOOP_RUNS)),
            key=lambda row: float(row[4].removesuffix(" s")),
        )
        noop = runs[len(runs) // 2]
        noop[-1] = f"{traced_peak(client, text)}"
        parent.send("stop")
        parent.recv()
        server.join(5)
        return [
            f"| {label} | first sync | {' | '.join(first)} |",
            f"| {label} | no-op sync | {' | '.join(noop)} |",
        ]


def main(argv: list[str] | None = None) -> int:
    """Print a Markdown table, one row per size and sync."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,100,1000", help="profile counts, comma-separated")
    sizes = [int(s) for s in parser.parse_args(argv).sizes.split(",")]
    print(
        "| profiles x contributors | run | API calls | objects written | PMR load + validate "
        "| observe, plan, apply | total | memory |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for size in sizes:
        for row in bench(size):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
