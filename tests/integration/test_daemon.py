"""The real daemon process: SIGTERM with findings in flight, kill -9 durability, SIGHUP reload,
two daemons numbering incidents on one PostgreSQL."""

from __future__ import annotations

import concurrent.futures
import http.client
import itertools
import random
import signal
import threading
import time
import urllib.error
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support import DaemonProcess, finding, run_cli, write_config


def store_rows(db_url: str):
    """{dedup_key: (number, status, timeline actions, outbox events)} read straight from SQL."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            incidents = connection.execute(text(
                "SELECT id, number, dedup_key, status FROM incidents")).all()
            timeline = connection.execute(text(
                "SELECT incident_id, action FROM incident_timeline ORDER BY id")).all()
            outbox = connection.execute(text(
                "SELECT incident_id, event FROM notification_outbox ORDER BY id")).all()
    finally:
        engine.dispose()
    result = {}
    for incident_id, number, key, status in incidents:
        assert key not in result or result[key][1] != "open", f"two open incidents for {key}"
        result[key] = (number, status, [a for i, a in timeline if i == incident_id],
                       [e for i, e in outbox if i == incident_id])
    return result


class Poster:
    """Threads posting findings with unique keys; remembers which were acknowledged (200)."""

    def __init__(self, daemon: DaemonProcess, threads: int = 4, prefix: str = "k") -> None:
        self.daemon = daemon
        self.acked: set[str] = set()
        self.errors = 0
        self._stop = threading.Event()
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._prefix = prefix
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        rng = random.Random()
        while not self._stop.is_set():
            with self._lock:
                keys = [f"{self._prefix}{next(self._counter)}" for _ in range(rng.randint(1, 20))]
            try:
                result = self.daemon.post_findings([finding(k) for k in keys], timeout=20)
            except (OSError, urllib.error.URLError, ValueError, http.client.HTTPException):
                self.errors += 1
                time.sleep(0.02)
                continue
            assert len(result["results"]) == len(keys)
            assert all(r["action"] in ("opened", "updated") for r in result["results"])
            with self._lock:
                self.acked.update(keys)

    def start(self) -> "Poster":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


@pytest.mark.slow
def test_sigterm_with_findings_in_flight_loses_none(db_url, tmp_path: Path):
    config, port = write_config(tmp_path, db_url)
    daemon = DaemonProcess(config, port, tmp_path / "daemon.log").start()
    poster = Poster(daemon, threads=6).start()
    time.sleep(1.5)
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    code = daemon.proc.wait(15)
    elapsed = time.monotonic() - started
    poster.stop()
    assert code == 0, daemon.log()
    assert elapsed < 10, f"stop took {elapsed:.1f}s"
    assert len(poster.acked) > 50
    rows = store_rows(db_url)
    missing = poster.acked - rows.keys()
    assert not missing, f"{len(missing)} acknowledged findings lost"
    assert "monitord stopped" in daemon.log()


@pytest.mark.slow
def test_kill_9_never_loses_an_acknowledged_incident(db_url, tmp_path: Path):
    config, port = write_config(tmp_path, db_url)
    acked: set[str] = set()
    rng = random.Random(20261125)
    for round_ in range(6):
        daemon = DaemonProcess(config, port, tmp_path / "daemon.log").start()
        poster = Poster(daemon, threads=4, prefix=f"r{round_}-").start()
        time.sleep(rng.uniform(0.3, 2.0))
        daemon.kill()  # SIGKILL at a random moment while findings pour in
        poster.stop()
        acked |= poster.acked
    assert len(acked) > 200
    rows = store_rows(db_url)
    missing = acked - rows.keys()
    assert not missing, f"{len(missing)} acknowledged incidents lost, e.g. {sorted(missing)[:5]}"
    for key in acked:
        number, status, timeline, outbox = rows[key]
        assert timeline[:1] == ["opened"], (key, timeline)
        # the NOC feed's row and the first step's ticket, written with the incident
        assert sorted(outbox[:2]) == ["incident_opened", "ticket"], (key, outbox)
    numbers = [number for number, *_ in rows.values()]
    assert len(numbers) == len(set(numbers))
    # and the daemon still starts on what the kills left behind
    daemon = DaemonProcess(config, port, tmp_path / "daemon.log").start()
    assert daemon.post_findings([finding("after-kills")])["results"][0]["action"] == "opened"
    assert daemon.stop() == 0


@pytest.mark.slow
@pytest.mark.postgres
def test_two_daemons_number_incidents_uniquely_on_one_postgresql(pg_url, tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    daemons = []
    for name in ("a", "b"):
        config, port = write_config(tmp_path / name, pg_url)
        daemons.append(DaemonProcess(config, port, tmp_path / name / "daemon.log").start())
    try:
        def post(args):
            daemon, keys = args
            return daemon.post_findings([finding(k) for k in keys])["results"]

        jobs = []
        for i in range(200):
            keys = [f"n{i}-{j}" for j in range(3)] + [f"shared-{i % 7}"]
            jobs.append((daemons[i % 2], keys))
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(post, jobs))
    finally:
        for daemon in daemons:
            assert daemon.stop() == 0
    assert all(r["action"] in ("opened", "updated") for batch in results for r in batch)
    rows = store_rows(pg_url)
    assert len(rows) == 600 + 7  # shared problems folded into one incident each
    seqs = sorted(int(number.split("-")[1]) for number, *_ in rows.values())
    assert seqs == list(range(1, len(rows) + 1))  # unique, no gaps


@pytest.mark.slow
def test_sighup_reload_accepts_a_good_file_and_keeps_running_on_a_bad_one(sqlite_url,
                                                                         tmp_path: Path):
    config, port = write_config(tmp_path, sqlite_url)
    daemon = DaemonProcess(config, port, tmp_path / "daemon.log").start()
    try:
        original = config.read_text()
        config.write_text(original.replace("listen: \"127.0.0.1", "listn: \"127.0.0.1"))
        daemon.signal(signal.SIGHUP)
        _wait_for(lambda: "reload rejected" in daemon.log())
        assert f"{config}:" in daemon.log() and "did you mean 'listen'?" in daemon.log()
        assert daemon.post_findings([finding("still-up")])["results"][0]["action"] == "opened"
        config.write_text(original.replace("resolve_hold", "resolve_hold") +
                          "incidents: {resolve_hold: 1s}\n")
        daemon.signal(signal.SIGHUP)
        _wait_for(lambda: "configuration reloaded" in daemon.log())
        metrics = daemon.get("/metrics")
        assert 'monitord_config_reloads_total{outcome="rejected"} 1.0' in metrics
        assert 'monitord_config_reloads_total{outcome="ok"} 1.0' in metrics
        # the new hold time is in force: a cleared finding resolves within a few seconds
        daemon.post_findings([finding("still-up", state="cleared")])
        _wait_for(lambda: store_rows(sqlite_url)["still-up"][1] == "resolved", timeout=15)
    finally:
        assert daemon.stop() == 0


def test_daemon_refuses_to_start_on_a_bad_config(sqlite_url, tmp_path: Path):
    config, _port = write_config(tmp_path, sqlite_url, extra="bogus_section: 1\n")
    result = run_cli("run", "--config", str(config), timeout=30)
    assert result.returncode == 2
    assert f"{config}:" in result.stderr and "bogus_section" in result.stderr


def test_daemon_refuses_to_start_when_the_port_is_taken(sqlite_url, tmp_path: Path):
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config, _port = write_config(tmp_path, sqlite_url, port=busy.getsockname()[1])
        result = run_cli("run", "--config", str(config), timeout=30)
    assert result.returncode == 1
    assert "http.listen" in result.stderr and "cannot listen" in result.stderr


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")
