"""Where a workspace page spends its server time: the median of N requests, the time in
SQL beside it, the CPU time of this process (Python: what load from other processes
changes least), and optionally a cProfile of the requests.

    python bench/page_profile.py /next/ --who rep [--runs 50] [--profile 40]

Runs against the world ``bench/pages.py`` built (``BENCH_DATABASE_URL``; build a small
one with ``python bench/pages.py --leads 20000 --build-only``), with the same settings
(DEBUG off, templates cached), through Django's test ``Client`` in this process.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import pages


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--who", default="rep", choices=("rep", "manager", "admin"))
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--profile", type=int, default=0, help="Profile this many requests.")
    parser.add_argument("--top", type=int, default=40)
    return parser.parse_args()


def main() -> None:
    args = parse()
    os.environ.update(pages.ENVIRONMENT)
    harness.setup_django(os.environ.get("BENCH_DATABASE_URL", pages.DEFAULT_URL))
    import generate
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from crm.models import User

    cast = generate.people()
    pk = {"rep": cast.reps[0], "manager": cast.managers[0], "admin": cast.admin}[args.who]
    client = Client()
    client.force_login(User.objects.get(pk=pk))
    for path in args.paths:
        for _ in range(args.warmup):
            pages.get(client, path)
        server, cpu, sql, queries = [], [], [], 0
        for _ in range(args.runs):
            start, started = time.perf_counter(), time.process_time()
            pages.get(client, path)
            server.append(time.perf_counter() - start)
            cpu.append(time.process_time() - started)
        # The queries apart: capturing them slows each a little.
        for _ in range(10):
            with CaptureQueriesContext(connection) as captured:
                pages.get(client, path)
            sql.append(sum(float(query["time"]) for query in captured.captured_queries))
            queries = len(captured.captured_queries)
        print(
            f"{path} ({args.who}): {queries} queries; server median "
            f"{statistics.median(server) * 1000:.1f} ms (min {min(server) * 1000:.1f}), "
            f"of which SQL median {statistics.median(sql) * 1000:.1f} ms; this process's "
            f"CPU median {statistics.median(cpu) * 1000:.1f} ms",
            flush=True,
        )
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.profile):
                pages.get(client, path)
            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(args.top)
            stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
