#!/usr/bin/env python3
"""Findings per second through the incident manager into the store, against Alertmanager.

    /work/main/.venv/bin/python bench/pipeline.py            # full run (a few minutes)
    /work/main/.venv/bin/python bench/pipeline.py --quick    # smoke run (< 30 s)
    /work/main/.venv/bin/python bench/pipeline.py --profile  # also cProfile the SQLite runs

Scenarios, each on SQLite (WAL, synchronous=FULL, a file in a temp dir) and on PostgreSQL
(a fresh database per scenario, dropped at the end), each on a fresh store:

  1. sustained new incidents (distinct dedup keys): IncidentManager.apply in batches of
     incidents.batch_max, and the baseline of one transaction per finding (batch size 1);
  2. sustained dedup updates (a few hundred open keys repeated): the same two ways;
  3. alert storm: N findings (a few hundred distinct problems, repeated) submitted within one
     second through the daemon's real Pipeline.submit (each call returns after the commit);
     the time until every finding is acknowledged, checked against the store afterwards.

The peer, Prometheus Alertmanager (Debian package prometheus-alertmanager), is started on a
free loopback port and gets the same storm as POST /api/v2/alerts in batches (as Prometheus'
notifier sends them); its time is until /api/v2/alerts shows every distinct alert.

The process is pinned to CPU 0 (os.sched_setaffinity), and so is Alertmanager (it inherits the
pin, GOMAXPROCS=1): the "one core" figures. The PostgreSQL server is a separate, unpinned
process. The last line printed is the storm ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import cProfile
import ctypes
import http.client
import io
import json
import os
import platform
import pstats
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

AM_BIN = "/usr/bin/prometheus-alertmanager"
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
TARGET = 2000.0  # findings/s, SQLite, one core, every acknowledged write durable
PROMETHEUS_BATCH = 256  # prometheus/notifier DefaultMaxBatchSize (64 in older releases)


@dataclass(frozen=True)
class Sizes:
    batched_s: float  # seconds of work per batched sustained measurement
    single_s: float  # seconds of work per batch-size-1 baseline measurement
    dedup_keys: int
    storm_findings: int
    storm_keys: int
    storm_waves: int = 10  # the storm is submitted in this many waves spread over one second


FULL = Sizes(batched_s=8.0, single_s=3.0, dedup_keys=300, storm_findings=10_000, storm_keys=500)
QUICK = Sizes(batched_s=0.5, single_s=0.4, dedup_keys=300, storm_findings=2_000, storm_keys=100)


def say(text: str = "") -> None:
    print(text, flush=True)


# -- findings ----------------------------------------------------------------------------------

def _finding_class():
    from monitord.records import Finding
    return Finding


def make_finding(prefix: str, index: int, now: datetime):
    """An interface_down finding; `index` picks the problem (device + interface)."""
    Finding = _finding_class()
    device, port = f"sw-{index // 48:05d}", f"ge-0/0/{index % 48}"
    return Finding(kind="interface_down", category="network", severity="high", state="firing",
                   dedup_key=f"{prefix}:interface_down:{device}:{port}",
                   summary=f"{device} {port} is down", first_seen=now, last_seen=now,
                   device=device, subject=port,
                   evidence={"if_index": index % 48 + 1, "oper_status": "down",
                             "admin_status": "up"})


# -- backends ----------------------------------------------------------------------------------

CONFIG_TEMPLATE = """\
storage:
  url: "{url}"
incidents:
  batch_max: {batch_max}
notifications:
  channels:
    - {{name: noc-log, type: log}}
"""


class Backend:
    name = ""

    def __init__(self, batch_max: int) -> None:
        self.batch_max = batch_max
        self.stores: list = []

    def url(self, label: str) -> str:
        raise NotImplementedError

    def open(self, label: str):
        """A fresh, migrated store and the config pointing at it."""
        from monitord.config_loader import parse_config_text
        from monitord.incidents.store import open_store
        config = parse_config_text(CONFIG_TEMPLATE.format(url=self.url(label),
                                                          batch_max=self.batch_max))
        store = open_store(config.storage)
        self.stores.append(store)
        store.migrate()
        return store, config

    def close(self) -> None:
        for store in self.stores:
            store.close()
        self.stores.clear()


class SqliteBackend(Backend):
    name = "sqlite"

    def __init__(self, batch_max: int) -> None:
        super().__init__(batch_max)
        self.dir = tempfile.mkdtemp(prefix="monitord-bench-")

    def url(self, label: str) -> str:
        self.files = getattr(self, "files", 0) + 1
        return f"sqlite:///{self.dir}/{self.files:02d}_{label}.db"

    def open(self, label: str):
        store, config = super().open(label)
        with store.engine.connect() as connection:
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = connection.exec_driver_sql("PRAGMA synchronous").scalar()
        if mode != "wal" or sync != 2:
            raise SystemExit(f"sqlite store is not durable as configured: journal_mode={mode} "
                             f"synchronous={sync} (want wal / 2=FULL)")
        return store, config

    def describe(self) -> str:
        fs = "?"
        try:
            out = subprocess.run(["df", "-T", self.dir], capture_output=True, text=True,
                                 timeout=5).stdout.splitlines()
            fs = out[-1].split()[1]
        except Exception:
            pass
        return (f"sqlite {sqlite3.sqlite_version}, file in {self.dir} ({fs}), "
                "journal_mode=WAL synchronous=FULL (checked on every store)")

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.dir, ignore_errors=True)


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, batch_max: int) -> None:
        super().__init__(batch_max)
        self.databases: list[str] = []
        self._admin("SELECT 1")
        atexit.register(self.close)

    def _admin(self, sql: str):
        import psycopg
        with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres",
                             autocommit=True, connect_timeout=5) as connection:
            return connection.execute(sql).fetchall() if sql.startswith("S") else \
                connection.execute(sql)

    def url(self, label: str) -> str:
        name = f"monitord_bench_{os.getpid()}_{len(self.databases)}_{label}"
        self._admin(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"

    def describe(self) -> str:
        (version,), = self._admin("SELECT version()")
        (fsync,), = self._admin("SELECT current_setting('fsync')")
        (commit,), = self._admin("SELECT current_setting('synchronous_commit')")
        return (f"{version.split(',')[0]} on {PG_HOST}:{PG_PORT} (server not pinned), "
                f"fsync={fsync} synchronous_commit={commit}, a fresh database per scenario")

    def close(self) -> None:
        super().close()
        while self.databases:
            name = self.databases.pop()
            try:
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:  # report, keep dropping the others
                say(f"  warning: could not drop database {name}: {exc}")


# -- store checks ------------------------------------------------------------------------------

def store_counts(store, prefix: str) -> dict[str, int]:
    from sqlalchemy import text
    like = {"p": prefix + ":%"}
    with store.engine.connect() as connection:
        incidents, keys, occurrences = connection.execute(text(
            "SELECT count(*), count(DISTINCT dedup_key), coalesce(sum(occurrences), 0) "
            "FROM incidents WHERE dedup_key LIKE :p"), like).one()
        outbox = connection.execute(text(
            "SELECT count(*) FROM notification_outbox o JOIN incidents i "
            "ON i.id = o.incident_id WHERE i.dedup_key LIKE :p"), like).scalar()
    return {"incidents": incidents, "keys": keys, "occurrences": int(occurrences),
            "outbox": outbox}


def require(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"CHECK FAILED: {message}")


# -- sustained scenarios -----------------------------------------------------------------------

@dataclass
class Rate:
    findings: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.findings / self.seconds if self.seconds else 0.0


def sustained(manager, batch_for: Callable[[int], list], batch_size: int, seconds: float,
              expect: str, profiler: cProfile.Profile | None = None) -> Rate:
    """Apply batches until `seconds` of apply time; only the time inside apply counts."""
    done, busy, batches = 0, 0.0, 0
    while busy < seconds or batches < 2:
        batch = batch_for(batch_size)
        if profiler:
            profiler.enable()
        started = time.perf_counter()
        outcomes = manager.apply(batch)
        busy += time.perf_counter() - started
        if profiler:
            profiler.disable()
        bad = [o for o in outcomes if o.action != expect]
        require(not bad, f"expected every outcome {expect!r}, got {bad[:3]}")
        done += len(batch)
        batches += 1
    return Rate(done, busy)


def _manager(store, config):
    from monitord.clock import SystemClock
    from monitord.incidents.manager import IncidentManager
    manager = IncidentManager(store, config, SystemClock())
    # Warm the engine's statement cache and the pool, outside the measurement.
    manager.apply([make_finding("warmup", i, datetime.now(timezone.utc)) for i in range(3)])
    return manager


def scenario_new(backend: Backend, batch_size: int, seconds: float,
                 profiler: cProfile.Profile | None = None) -> Rate:
    store, config = backend.open(f"new_b{batch_size}")
    manager = _manager(store, config)
    counter = iter(range(10**9))

    def batch_for(size: int) -> list:
        now = datetime.now(timezone.utc)
        return [make_finding("new", next(counter), now) for _ in range(size)]

    rate = sustained(manager, batch_for, batch_size, seconds, "opened", profiler)
    counts = store_counts(store, "new")
    require(counts["incidents"] == rate.findings == counts["keys"],
            f"new incidents: {counts} after {rate.findings} findings")
    require(counts["outbox"] == rate.findings, f"outbox rows: {counts}")
    store.close()
    return rate


def scenario_dedup(backend: Backend, batch_size: int, seconds: float, keys: int,
                   profiler: cProfile.Profile | None = None) -> Rate:
    store, config = backend.open(f"dedup_b{batch_size}")
    manager = _manager(store, config)
    now = datetime.now(timezone.utc)
    manager.apply([make_finding("dedup", i, now) for i in range(keys)])  # open them, untimed
    counter = iter(range(10**9))

    def batch_for(size: int) -> list:
        now = datetime.now(timezone.utc)
        return [make_finding("dedup", next(counter) % keys, now) for _ in range(size)]

    rate = sustained(manager, batch_for, batch_size, seconds, "updated", profiler)
    counts = store_counts(store, "dedup")
    require(counts["incidents"] == keys == counts["keys"], f"dedup incidents: {counts}")
    require(counts["occurrences"] == keys + rate.findings,
            f"occurrences {counts['occurrences']} != {keys} + {rate.findings}")
    require(counts["outbox"] == keys, f"outbox rows: {counts}")
    store.close()
    return rate


# -- the storm through the real Pipeline -------------------------------------------------------

@dataclass
class StormResult:
    seconds: float  # storm start -> last acknowledgement (or last alert visible)
    submitted: float  # storm start -> last submission made
    distinct: int
    detail: str = ""
    extra: dict = field(default_factory=dict)


def storm_findings(sizes: Sizes) -> list:
    now = datetime.now(timezone.utc)
    return [make_finding("storm", i % sizes.storm_keys, now) for i in range(sizes.storm_findings)]


async def _storm_monitord(store, config, findings: list, waves: int) -> StormResult:
    from monitord.metrics import Metrics
    from monitord.pipeline import Pipeline
    manager = _manager(store, config)
    metrics = Metrics()
    pipeline = Pipeline(manager, [], metrics, config.queues.samples, config.queues.findings,
                        config.incidents.batch_max)
    batch_sizes: list[int] = []
    apply = manager.apply

    def counting_apply(batch):  # only observes the batch sizes the pipeline forms
        batch_sizes.append(len(batch))
        return apply(batch)

    manager.apply = counting_apply
    pipeline.start()
    per_wave = -(-len(findings) // waves)
    tasks: list[asyncio.Task] = []
    start = time.perf_counter()
    for wave in range(waves):
        delay = start + wave / waves - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        for finding in findings[wave * per_wave:(wave + 1) * per_wave]:
            tasks.append(asyncio.ensure_future(pipeline.submit(finding)))
    await asyncio.sleep(0)  # let the last wave's submit() calls run up to their queue put
    submitted = time.perf_counter() - start
    outcomes = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    await pipeline.stop()
    actions: dict[str, int] = {}
    for outcome in outcomes:
        actions[outcome.action] = actions.get(outcome.action, 0) + 1
    full = metrics.registry.get_sample_value("monitord_queue_full_total",
                                          {"queue": "findings"}) or 0
    return StormResult(elapsed, submitted, 0, extra={
        "actions": actions, "batches": batch_sizes, "queue_full": full})


def scenario_storm(backend: Backend, sizes: Sizes) -> StormResult:
    store, config = backend.open("storm")
    findings = storm_findings(sizes)
    result = asyncio.run(_storm_monitord(store, config, findings, sizes.storm_waves))
    counts = store_counts(store, "storm")
    actions = result.extra["actions"]
    require(actions.get("opened", 0) == sizes.storm_keys
            and actions.get("updated", 0) == sizes.storm_findings - sizes.storm_keys,
            f"storm outcomes {actions}")
    require(counts["incidents"] == counts["keys"] == sizes.storm_keys,
            f"storm incidents {counts['incidents']} (distinct keys {counts['keys']}) != "
            f"{sizes.storm_keys} distinct problems")
    require(counts["occurrences"] == sizes.storm_findings,
            f"storm occurrences {counts['occurrences']} != {sizes.storm_findings}")
    require(counts["outbox"] == sizes.storm_keys, f"storm outbox rows {counts['outbox']}")
    batches = result.extra["batches"]
    result.distinct = counts["incidents"]
    result.detail = (f"{len(batches)} transactions, batch sizes min/avg/max "
                     f"{min(batches)}/{sum(batches) / len(batches):.0f}/{max(batches)}, "
                     f"queue-full waits {int(result.extra['queue_full'])}; store: "
                     f"{counts['incidents']} incidents = {sizes.storm_keys} distinct keys, "
                     f"occurrences {counts['occurrences']}, outbox rows {counts['outbox']}")
    store.close()
    return result


# -- Alertmanager ------------------------------------------------------------------------------

AM_CONFIG = """\
route:
  receiver: "null"
receivers:
  - name: "null"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child before exec: SIGKILL it if we die
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Alertmanager:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="monitord-bench-am-")
        self.port = _free_port()
        config = os.path.join(self.dir, "alertmanager.yml")
        with open(config, "w") as f:
            f.write(AM_CONFIG)
        self.log = open(os.path.join(self.dir, "alertmanager.log"), "wb")
        self.proc = subprocess.Popen(
            [AM_BIN, f"--config.file={config}", f"--storage.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
             "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "GOMAXPROCS": "1"}, preexec_fn=_die_with_parent)
        atexit.register(self.stop)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise SystemExit("alertmanager exited at start:\n" + self._log_tail())
            try:
                status, _body = self.request("GET", "/-/ready")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit("alertmanager not ready after 20 s:\n" + self._log_tail())
            time.sleep(0.05)
        _status, body = self.request("GET", "/api/v2/status")
        self.version = json.loads(body).get("versionInfo", {}).get("version", "?")

    def _log_tail(self) -> str:
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read()[-2000:].decode(errors="replace")

    def request(self, method: str, path: str, body: bytes | None = None,
                connection: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
        conn = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body,
                         {"Content-Type": "application/json"} if body is not None else {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            if connection is None:
                conn.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self.log.closed:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _am_alert(finding, run: str, ends_at: str) -> dict:
    return {"labels": {"alertname": finding.kind, "key": finding.dedup_key, "run": run,
                       "device": finding.device, "subject": finding.subject,
                       "severity": finding.severity.value},
            "annotations": {"summary": finding.summary},
            "startsAt": finding.first_seen.isoformat().replace("+00:00", "Z"),
            "endsAt": ends_at, "generatorURL": "http://monitord.local/bench"}


def storm_alertmanager(am: Alertmanager, sizes: Sizes) -> StormResult:
    run = f"bench-{os.getpid()}-{time.time_ns()}"
    findings = storm_findings(sizes)
    ends_at = (datetime.now(timezone.utc) + timedelta(minutes=10)).isoformat().replace(
        "+00:00", "Z")
    per_wave = -(-len(findings) // sizes.storm_waves)
    waves: list[list[bytes]] = []  # bodies encoded before the clock starts, like the findings
    for wave in range(sizes.storm_waves):
        chunk = findings[wave * per_wave:(wave + 1) * per_wave]
        waves.append([json.dumps([_am_alert(f, run, ends_at)
                                  for f in chunk[i:i + PROMETHEUS_BATCH]]).encode()
                      for i in range(0, len(chunk), PROMETHEUS_BATCH)])
    keys = {f.dedup_key for f in findings}
    connection = http.client.HTTPConnection("127.0.0.1", am.port, timeout=30)
    warm = json.dumps([_am_alert(make_finding("warmup", 0, datetime.now(timezone.utc)),
                                 "warmup", ends_at)]).encode()
    require(am.request("POST", "/api/v2/alerts", warm, connection)[0] == 200, "warm-up POST")
    posts = 0
    start = time.perf_counter()
    for index, bodies in enumerate(waves):
        delay = start + index / len(waves) - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        for body in bodies:  # one sender, one batch after the other, as Prometheus does
            status, text = am.request("POST", "/api/v2/alerts", body, connection)
            require(status == 200, f"alertmanager POST answered {status}: {text[:200]!r}")
            posts += 1
    submitted = time.perf_counter() - start
    polls = 0
    while True:
        status, text = am.request("GET", "/api/v2/alerts?active=true&silenced=true"
                                  "&inhibited=true&unprocessed=true", None, connection)
        polls += 1
        require(status == 200, f"alertmanager GET answered {status}")
        seen = {a["labels"].get("key") for a in json.loads(text)
                if a["labels"].get("run") == run}
        if seen >= keys:
            break
        require(time.perf_counter() - start < 60, f"alertmanager shows {len(seen)} of "
                f"{len(keys)} alerts after 60 s")
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    connection.close()
    require(len(seen) == len(keys), f"alertmanager shows {len(seen)} alerts, want {len(keys)}")
    return StormResult(elapsed, submitted, len(seen),
                       f"{posts} POSTs of <= {PROMETHEUS_BATCH} alerts, {polls} GET poll(s); "
                       f"/api/v2/alerts shows {len(seen)} alerts = {len(keys)} distinct keys")


# -- profile -----------------------------------------------------------------------------------

def print_profile(title: str, profiler: cProfile.Profile, findings: int) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs()
    say(f"--- cProfile: {title} ({findings} findings; times inflated by the profiler) ---")
    out.truncate(0)
    stats.sort_stats("cumulative").print_stats(r"manager\.py|repository\.py|session\.py:.*"
                                                r"(flush|execute|scalars|begin_nested|commit)",
                                                18)
    say("\n".join(line for line in out.getvalue().splitlines()
                  if line.strip() and not line.startswith(("   Ordered", "   List"))))
    out.seek(0)
    out.truncate(0)
    stats.sort_stats("tottime").print_stats(12)
    say("\n".join(line for line in out.getvalue().splitlines()
                  if line.strip() and not line.startswith(("   Ordered", "   List"))))


# -- main --------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, smaller counts (< 30 s)")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile the batched SQLite sustained scenarios")
    parser.add_argument("--batch-max", type=int, default=500,
                        help="incidents.batch_max (default 500, the daemon's default)")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL runs")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL

    if not os.access(AM_BIN, os.X_OK):
        print(f"{AM_BIN} not found: the peer of this benchmark is Prometheus Alertmanager.\n"
              "Install it with:  apt-get update && apt-get install -y prometheus-alertmanager",
              file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanups

    os.sched_setaffinity(0, {0})
    # Started first, before any thread exists (preexec_fn), pinned to CPU 0 by inheritance.
    am = Alertmanager()
    try:
        import sqlalchemy
        say(f"monitord pipeline benchmark ({'quick' if args.quick else 'full'} run)")
        say(f"host: {platform.node()}, {os.cpu_count()} CPUs; this process pinned to CPU "
            f"{sorted(os.sched_getaffinity(0))} with os.sched_setaffinity (one core); "
            f"Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}")
        say(f"peer: Prometheus Alertmanager {am.version} on 127.0.0.1:{am.port}, pinned to CPU "
            f"{sorted(os.sched_getaffinity(am.proc.pid))}, GOMAXPROCS=1")
        say(f"incidents.batch_max={args.batch_max}; one 'log' notification channel, so every "
            "opened incident also writes an outbox row")

        backends: list[Callable[[], Backend]] = [lambda: SqliteBackend(args.batch_max)]
        if not args.no_postgres:
            backends.append(lambda: PostgresBackend(args.batch_max))
        results: dict[str, dict[str, object]] = {}
        for make_backend in backends:
            try:
                backend = make_backend()
            except Exception as exc:
                raise SystemExit(f"PostgreSQL at {PG_HOST}:{PG_PORT} unavailable ({exc}); "
                                 "start it or pass --no-postgres")
            try:
                say()
                say(f"== {backend.name}: {backend.describe()}")
                r: dict[str, object] = {}
                profile_new = cProfile.Profile() if args.profile and backend.name == "sqlite" \
                    else None
                profile_dedup = cProfile.Profile() if profile_new else None
                r["new"] = scenario_new(backend, args.batch_max, sizes.batched_s)
                say(f"1. sustained new incidents, batch {args.batch_max}:   "
                    f"{r['new'].per_s:8.0f} findings/s  ({r['new'].findings} findings in "
                    f"{r['new'].seconds:.2f} s)")
                r["new1"] = scenario_new(backend, 1, sizes.single_s)
                say(f"   baseline, 1 transaction per finding: {r['new1'].per_s:8.0f} findings/s"
                    f"  ({r['new1'].findings} in {r['new1'].seconds:.2f} s); batching buys "
                    f"{r['new'].per_s / r['new1'].per_s:.1f}x")
                r["dedup"] = scenario_dedup(backend, args.batch_max, sizes.batched_s,
                                            sizes.dedup_keys)
                say(f"2. sustained dedup updates ({sizes.dedup_keys} keys), batch "
                    f"{args.batch_max}: {r['dedup'].per_s:8.0f} findings/s  "
                    f"({r['dedup'].findings} findings in {r['dedup'].seconds:.2f} s)")
                r["dedup1"] = scenario_dedup(backend, 1, sizes.single_s, sizes.dedup_keys)
                say(f"   baseline, 1 transaction per finding: {r['dedup1'].per_s:8.0f} "
                    f"findings/s  ({r['dedup1'].findings} in {r['dedup1'].seconds:.2f} s); "
                    f"batching buys {r['dedup'].per_s / r['dedup1'].per_s:.1f}x")
                storm = scenario_storm(backend, sizes)
                r["storm"] = storm
                say(f"3. storm: {sizes.storm_findings} findings ({sizes.storm_keys} distinct "
                    f"problems) submitted within {storm.submitted:.2f} s through "
                    f"Pipeline.submit:")
                say(f"   every finding acknowledged after {storm.seconds:.2f} s "
                    f"({storm.seconds - storm.submitted:.2f} s after the last submission; "
                    f"{sizes.storm_findings / storm.seconds:.0f} findings/s); "
                    f"{storm.distinct} incidents")
                say(f"   {storm.detail}")
                if profile_new:
                    rate = scenario_new(backend, args.batch_max, min(sizes.batched_s, 2.0),
                                        profile_new)
                    print_profile("sqlite new incidents, batched", profile_new, rate.findings)
                    rate = scenario_dedup(backend, args.batch_max, min(sizes.batched_s, 2.0),
                                          sizes.dedup_keys, profile_dedup)
                    print_profile("sqlite dedup updates, batched", profile_dedup,
                                  rate.findings)
                results[backend.name] = r
            finally:
                backend.close()

        say()
        say(f"== peer: Prometheus Alertmanager {am.version}, same storm")
        am_storm = storm_alertmanager(am, sizes)
        say(f"3. storm: {sizes.storm_findings} alerts posted within {am_storm.submitted:.2f} s;"
            f" all {am_storm.distinct} distinct alerts visible after {am_storm.seconds:.2f} s "
            f"({am_storm.seconds - am_storm.submitted:.2f} s after the last POST was answered)")
        say(f"   {am_storm.detail}")
        say("   note: Alertmanager keeps alerts in memory only (its --storage.path holds "
            "silences and the notification log, snapshotted periodically); monitord "
            "acknowledges only after an fsync'd commit.")
    finally:
        am.stop()

    say()
    say("== summary (findings/s, one core)")
    say(f"{'backend':10s} {'new b' + str(args.batch_max):>10s} {'new b1':>8s} "
        f"{'dedup b' + str(args.batch_max):>11s} {'dedup b1':>9s} {'storm s':>8s}")
    for name, r in results.items():
        say(f"{name:10s} {r['new'].per_s:10.0f} {r['new1'].per_s:8.0f} {r['dedup'].per_s:11.0f} "
            f"{r['dedup1'].per_s:9.0f} {r['storm'].seconds:8.2f}")
    say(f"{'alertmgr':10s} {'':10s} {'':8s} {'':11s} {'':9s} {am_storm.seconds:8.2f}")
    sq = results["sqlite"]
    for label, rate in (("new incidents", sq["new"]), ("dedup updates", sq["dedup"])):
        verdict = "MET" if rate.per_s >= TARGET else "MISSED"
        say(f"target >= {TARGET:.0f} findings/s sustained on SQLite, one core, durable: "
            f"{label} {rate.per_s:.0f}/s -> {verdict}")
    if not args.quick:  # the quick storm is too small to say anything about the target
        storm_rate = sizes.storm_findings / sq["storm"].seconds
        say(f"storm on SQLite: {storm_rate:.0f} findings/s end to end -> "
            f"{'MET' if storm_rate >= TARGET else 'MISSED'}")
    ratio = am_storm.seconds / sq["storm"].seconds
    if ratio >= 1:
        verdict = f"monitord is {ratio:.1f}x faster"
    else:
        verdict = f"monitord is {1 / ratio:.1f}x SLOWER than Alertmanager"
    say(f"storm ratio (alertmanager time / monitord sqlite time): {ratio:.2f}x ({verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
