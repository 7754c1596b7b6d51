"""A database outage never loses an acknowledged finding: while PostgreSQL refuses the
daemon's connections the intake holds its reply (nothing acknowledged), and once the database
is back every held finding is committed and acknowledged."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import psycopg
import pytest

from tests.integration.test_daemon import store_rows
from tests.support import PG_ADMIN_URL, DaemonProcess, finding, write_config


def _cut(database: str, allow: bool) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (database,))


@pytest.mark.slow
@pytest.mark.postgres
def test_findings_wait_out_a_database_outage_and_are_then_committed(pg_url, tmp_path: Path):
    database = pg_url.rsplit("/", 1)[1]
    config, port = write_config(tmp_path, pg_url)
    daemon = DaemonProcess(config, port, tmp_path / "daemon.log").start()
    try:
        assert daemon.post_findings([finding("before")])["results"][0]["action"] == "opened"
        _cut(database, allow=False)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            held = pool.submit(daemon.post_findings, [finding("during-1"), finding("during-2")],
                               60)
            time.sleep(3)
            assert not held.done(), "acknowledged while the database was down"
            assert daemon.get("/healthz")  # the daemon itself stays up
            metrics = daemon.get("/metrics")
            assert 'monitord_store_commits_total{outcome="error"}' in metrics
            assert "monitord_store_up 0.0" in metrics
            _cut(database, allow=True)
            results = held.result(60)["results"]
        assert [r["action"] for r in results] == ["opened", "opened"]
    finally:
        _cut(database, allow=True)
        assert daemon.stop() == 0
    assert {"before", "during-1", "during-2"} <= store_rows(pg_url).keys()
    assert "incident store write failed; retrying" in daemon.log()
