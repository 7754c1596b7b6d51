"""A collector that raises is logged, counted and retried with backoff; the daemon stays up and
the other collectors go on. Runs the real Daemon in this process so a test collector can be
plugged in beside the real host collector."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from pathlib import Path

from prometheus_client import generate_latest

from monitord.config_loader import load_config
from monitord.daemon import Daemon
from monitord.records import Sample
from monitord.scheduler import RunningCollector
from tests.support import write_config


class ExplodingCollector:
    name = "exploding"

    def __init__(self) -> None:
        self.calls = 0

    def poll(self, now):
        self.calls += 1
        raise RuntimeError("device answered garbage")


class SlowCollector:
    """Takes longer than its interval: the next run is skipped and counted as an overrun."""

    name = "slow"

    async def poll(self, now):
        await asyncio.sleep(2.5)
        return [Sample("slow-dev", "slow_value", 1.0, now)]


def test_raising_collector_is_counted_and_backs_off_while_the_daemon_stays_up(
        sqlite_url, tmp_path: Path, caplog):
    path, port = write_config(tmp_path, sqlite_url, host_collector=True)
    config = load_config(path)
    exploding = ExplodingCollector()

    class TestDaemon(Daemon):
        def _collectors(self, config):
            jobs = super()._collectors(config)
            for collector in (exploding, SlowCollector()):
                jobs.append(RunningCollector(collector, config.collectors.host, self.pipeline,
                                             self.metrics, self.clock,
                                             config.collectors.backoff_max))
            return jobs

    daemon = TestDaemon(path, config, duration=7)

    async def scrape_while_running() -> str:
        await asyncio.sleep(6)
        return await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
            .read().decode())

    async def main():
        scrape = asyncio.create_task(scrape_while_running())
        code = await daemon.run()
        return code, await scrape

    with caplog.at_level(logging.ERROR, logger="monitord"):
        code, metrics = asyncio.run(main())
    assert code == 0
    errors = _value(metrics, 'monitord_collector_runs_total{collector="exploding",outcome="error"}')
    host_ok = _value(metrics, 'monitord_collector_runs_total{collector="host",outcome="ok"}')
    # interval 1 s for 6 s: without backoff it would have failed ~6 times; 1+2 s waits -> 3
    assert 2 <= errors <= 4, metrics
    # The scrape at 6 s may fall between a call and its count: compare calls with the final count.
    final = generate_latest(daemon.metrics.registry).decode()
    assert exploding.calls == _value(
        final, 'monitord_collector_runs_total{collector="exploding",outcome="error"}')
    assert host_ok >= 4
    assert _value(metrics, 'monitord_collector_overruns_total{collector="slow"}') >= 1
    assert any("collector failed collector=exploding reason=RuntimeError" in r.getMessage()
               for r in caplog.records)


def _value(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
