"""Shared pieces of the benchmarks: a PostgreSQL database of their own, timing, reporting.

Every benchmark runs against ``BENCH_DATABASE_URL`` (default: a ``hotlist_bench``
database on the local PostgreSQL), never the development database, and records
its figures in ``docs/PERFORMANCE.md`` between markers named after it.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PERFORMANCE = ROOT / "docs" / "PERFORMANCE.md"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/hotlist_bench"


def setup_django(url: str | None = None) -> str:
    """Point Django at the benchmark database (created if missing) and set it up."""
    url = url or os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("HOTLIST_VAR_DIR", str(ROOT / "var" / "bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    sys.path.insert(0, str(ROOT))
    _create_database(url)
    import django

    django.setup()
    return url


def _create_database(url: str) -> None:
    import psycopg2
    from psycopg2 import sql

    name = url.rsplit("/", 1)[1]
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    admin.close()


def drop_database(url: str) -> None:
    import psycopg2
    from psycopg2 import sql

    name = url.rsplit("/", 1)[1]
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    admin.close()


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    box: list[float] = []
    start = time.perf_counter()
    yield box
    box.append(time.perf_counter() - start)


def median_of(runs: int, action: Callable[[], object]) -> tuple[float, list[float]]:
    """Run ``action`` ``runs`` times; the median wall time and every time."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (``nan`` when there are none)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server = cursor.fetchone()[0].split()[0]
    return (
        f"{os.cpu_count()} cores ({cpu}){memory}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; PostgreSQL {server}; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {_commit()}"
    )


# The server settings that shape a bulk benchmark, recorded with its figures.
SERVER_SETTINGS = [
    "shared_buffers",
    "max_wal_size",
    "work_mem",
    "maintenance_work_mem",
    "max_parallel_workers_per_gather",
    "max_parallel_workers",
    "max_worker_processes",
    "autovacuum",
    "synchronous_commit",
    "checkpoint_timeout",
    "effective_cache_size",
    "jit",
]


def server_settings() -> dict[str, str]:
    """``SHOW`` of each of ``SERVER_SETTINGS`` on the benchmark database."""
    from django.db import connection

    shown = {}
    with connection.cursor() as cursor:
        for name in SERVER_SETTINGS:
            cursor.execute(f"SHOW {name}")
            shown[name] = cursor.fetchone()[0]
    return shown


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``/proc/loadavg`` gives them."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def vacuum_analyze() -> float:
    """``VACUUM (ANALYZE)`` of the whole benchmark database; its seconds."""
    from django.db import connection

    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
    return time.perf_counter() - start


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def record(section: str, body: str) -> None:
    """Replace the text between ``<!-- section -->`` markers in docs/PERFORMANCE.md."""
    start, end = f"<!-- {section} -->", f"<!-- /{section} -->"
    text = PERFORMANCE.read_text() if PERFORMANCE.exists() else "# Performance\n"
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    PERFORMANCE.write_text(text)


def command() -> str:
    """The command line this benchmark was run with, as a reader would type it again."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return " ".join(["python", shlex.quote(str(shown)), *map(shlex.quote, sys.argv[1:])])


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


class Worker:
    """A production Celery worker as a subprocess; stopped with SIGTERM, then SIGKILL."""

    def __init__(
        self,
        args: list[str],
        env: Mapping[str, str],
        logfile: Path,
        log: Callable[[str], None] = print,
    ) -> None:
        self.args, self.env, self.logfile, self.say = args, dict(env), logfile, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        celery = Path(sys.executable).with_name("celery")
        command = [str(celery) if celery.exists() else "celery", *self.args]
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        self.log = self.logfile.open("w")
        self.say("worker: " + " ".join(["celery", *self.args]))
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.process is None:
            return
        stop_session(self.process, timeout, self.say)
        self.log.close()
        self.say(f"worker stopped (exit {self.process.returncode})")


def stop_session(
    process: subprocess.Popen, timeout: float = 20, say: Callable[[str], None] = print
) -> None:
    """SIGTERM a process started in a session of its own, SIGKILL it if it lingers, and
    SIGKILL what is left of its session: its children must not outlive the run."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            say(f"process {process.pid} did not stop in time: SIGKILL")
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
