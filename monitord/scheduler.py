"""One wrapper around every collector (Telegraf's RunningInput): interval with jitter, never two
runs of one job at once (overruns counted), a timeout, duration and error metrics, and
exponential backoff after failures while the daemon stays up."""

from __future__ import annotations

import asyncio
import inspect
import logging
from datetime import datetime, timedelta, timezone

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitord.clock import Clock
from monitord.collectors.base import Collector, CollectorTimeout
from monitord.config import CollectorSettings
from monitord.metrics import Metrics
from monitord.pipeline import Pipeline

log = logging.getLogger("monitord.scheduler")


class RunningCollector:
    def __init__(self, collector: Collector, settings: CollectorSettings, pipeline: Pipeline,
                 metrics: Metrics, clock: Clock, backoff_max: timedelta) -> None:
        self.collector = collector
        self.settings = settings
        self.pipeline = pipeline
        self.metrics = metrics
        self.clock = clock
        self.backoff_max = backoff_max.total_seconds()
        self.failures = 0
        self._skip_until = 0.0
        self.active: asyncio.Task | None = None

    @property
    def name(self) -> str:
        return self.collector.name

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < self._skip_until:
            return
        started = loop.time()
        outcome = "ok"
        self.active = asyncio.current_task()
        try:
            records = await asyncio.wait_for(self._poll(), self.settings.timeout.total_seconds())
            await self.pipeline.emit(records)
            self.metrics.samples.labels(self.name).inc(len(records))
            self.metrics.values.observe(records)
            if self.failures:
                log.info("collector recovered collector=%s after_failures=%d", self.name,
                         self.failures)
            self.failures = 0
        except Exception as exc:
            outcome = "error"
            self.failures += 1
            backoff = min(self.settings.interval.total_seconds() * 2 ** (self.failures - 1),
                          self.backoff_max)
            self._skip_until = loop.time() + backoff
            reason = "timeout" if isinstance(exc, (asyncio.TimeoutError, CollectorTimeout)) \
                else type(exc).__name__
            log.error("collector failed collector=%s reason=%s failures=%d backoff_s=%.0f",
                      self.name, reason, self.failures, backoff,
                      exc_info=not isinstance(exc, asyncio.TimeoutError))
        finally:
            self.active = None
            self.metrics.collector_runs.labels(self.name, outcome).inc()
            self.metrics.collector_duration.labels(self.name).observe(loop.time() - started)

    async def _poll(self):
        now = self.clock.now()
        if inspect.iscoroutinefunction(self.collector.poll):
            return await self.collector.poll(now)
        return await asyncio.to_thread(self.collector.poll, now)


class Scheduler:
    """APScheduler 3 (AsyncIOScheduler) with one job per running collector."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.scheduler = AsyncIOScheduler(job_defaults={"coalesce": True, "max_instances": 1,
                                                        "misfire_grace_time": 30})
        self.scheduler.add_listener(self._on_max_instances, EVENT_JOB_MAX_INSTANCES)
        self._running: dict[str, RunningCollector] = {}

    def _on_max_instances(self, event: JobExecutionEvent) -> None:
        job = self._running.get(event.job_id)
        if job is not None:
            self.metrics.collector_overruns.labels(job.name).inc()
            log.warning("collector overrun: previous run still going collector=%s", job.name)

    def add(self, job: RunningCollector, run_now: bool = True) -> None:
        self._running[job.name] = job
        interval = job.settings.interval.total_seconds()
        self.scheduler.add_job(job.run, "interval", seconds=interval, id=job.name,
                               name=job.name, replace_existing=True,
                               jitter=min(job.settings.jitter.total_seconds(), interval / 2),
                               next_run_time=_soon() if run_now else None)

    def add_internal(self, name: str, func, seconds: float) -> None:
        self.scheduler.add_job(func, "interval", seconds=seconds, id=name, name=name,
                               replace_existing=True)

    def remove_collectors(self) -> None:
        for name in list(self._running):
            self.scheduler.remove_job(name)
            del self._running[name]

    def start(self) -> None:
        self.scheduler.start()

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop scheduling, then give running collector jobs `timeout` seconds to finish."""
        self.scheduler.shutdown(wait=False)
        running = [job.active for job in self._running.values() if job.active is not None]
        if running:
            await asyncio.wait(running, timeout=timeout)


def _soon() -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=0.2)
