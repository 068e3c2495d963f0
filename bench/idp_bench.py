"""Benchmark: resolving 200 Entra groups x 500 members for 100 profiles.

The Microsoft Graph imitation (tests/fakes/graph_api.py, HTTPS) runs in a child process so
its threads do not share our interpreter. Prints the requests Graph received and the wall
time of resolution (and of folding the members into the PMR); asserts nothing. Run with
``tox -e bench`` or ``PYTHONPATH=src:. python bench/idp_bench.py``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
from collections import Counter
from multiprocessing.connection import Connection

from profiles_automator.identity.resolver import resolve
from profiles_automator.pmr.loader import Document, load_pmr
from profiles_automator.pmr.membership import expand

GROUPS = 200
MEMBERS = 500
PROFILES = 100
USERS = 20_000  # each user is in 5 groups
RUNS = 3


def serve(conn: Connection, page: int) -> None:
    """Child process: the Graph imitation with the tenant; answers stats/clear/stop."""
    import trustme

    from tests.fakes.graph_api import FakeGraph

    ca = trustme.CA()
    with FakeGraph(tls=ca.issue_cert("127.0.0.1"), max_page=page) as graph:
        users = [graph.add_user(f"user{u:05d}@corp.example") for u in range(USERS)]
        groups = [
            graph.add_group(
                [users[(g * MEMBERS + m) % USERS] for m in range(MEMBERS)],
                oid=f"00000000-0000-4000-8000-{g:012d}",
            )
            for g in range(GROUPS)
        ]
        conn.send((graph.url, ca.cert_pem.bytes().decode(), groups))
        while True:
            command = conn.recv()
            if command == "stats":
                conn.send(Counter(_kind(r.path) for r in graph.log))
            elif command == "clear":
                graph.log.clear()
                conn.send("ok")
            else:
                conn.send("bye")
                return


def _kind(path: str) -> str:
    if path.endswith("/token"):
        return "token"
    if "openid-configuration" in path:
        return "discovery"
    return "members"


def make_pmr(url: str, groups: list[str]) -> str:
    """100 profiles, each with 2 of the 200 groups as contributors (every group used)."""
    lines = [
        "identityProviders:",
        "  corp-entra:",
        f'    entra: {{tenantId: 0c2b5d3e-1f4a-4b6c-9d8e-7f6a5b4c3d2e, authorityHost: "{url}",'
        f' graphUrl: "{url}"}}',
        "groups:",
    ]
    lines += [
        f"  g{i:03d}: {{from: [{{provider: corp-entra, group: {gid}}}]}}"
        for i, gid in enumerate(groups)
    ]
    lines.append("profiles:")
    for p in range(PROFILES):
        lines += [
            f"- name: team-{p:03d}",
            f"  owner: {{kind: User, name: lead{p}@corp.example}}",
            f"  contributors: [{{group: g{2 * p:03d}, role: edit}}, "
            f"{{group: g{2 * p + 1:03d}, role: view}}]",
        ]
    return "\n".join(lines) + "\n"


def run(page: int) -> None:
    """Resolve RUNS times against a Graph that returns `page` members per page."""
    from tests.fakes.graph_api import CLIENT_ID, CLIENT_SECRET

    parent, child = mp.Pipe()
    server = mp.Process(target=serve, args=(child, page), daemon=True)
    server.start()
    url, ca_pem, groups = parent.recv()
    pmr = load_pmr([Document("bench.yaml", make_pmr(url, groups).encode())]).pmr
    credentials = {
        "corp-entra": {"client-id": CLIENT_ID, "client-secret": CLIENT_SECRET, "ca-cert": ca_pem}
    }
    times, expand_times = [], []
    stats: Counter[str] = Counter()
    members = contributors = 0
    for _ in range(RUNS):
        parent.send("clear")
        parent.recv()
        started = time.perf_counter()
        resolution = resolve(pmr, credentials)
        times.append(time.perf_counter() - started)
        started = time.perf_counter()
        expanded = expand(pmr, resolution.member_sets()).pmr
        expand_times.append(time.perf_counter() - started)
        parent.send("stats")
        stats = parent.recv()
        members = sum(len(r.members.user_ids) for r in resolution.resolved.values())
        contributors = sum(len(p.contributors) for p in expanded.profiles)
        assert not resolution.unknown, list(resolution.unknown.values())[:1]
    parent.send("stop")
    parent.recv()
    server.join(5)
    requests = ", ".join(f"{n} {kind}" for kind, n in sorted(stats.items()))
    print(
        f"| {GROUPS} x {MEMBERS} ({page}/page) | {requests} | {members} | "
        f"{statistics.median(times):.2f} s | {statistics.median(expand_times):.2f} s | "
        f"{contributors} |"
    )


def main() -> None:
    """Print the README's identity-provider table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", default="999,100", help="Graph page sizes to try")
    args = parser.parse_args()
    print(
        f"\nGroup resolution: {GROUPS} Entra groups x {MEMBERS} members over {PROFILES} "
        f"profiles, 8 concurrent requests, median of {RUNS} runs (each run a fresh client: "
        "discovery + token + member pages)\n"
    )
    print(
        "| groups x members | Graph requests per run | members resolved | resolve | "
        "fold into PMR | contributors |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for page in (int(p) for p in args.pages.split(",")):
        run(page)


if __name__ == "__main__":
    main()
