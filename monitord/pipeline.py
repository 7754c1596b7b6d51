"""Collectors -> detectors -> incident manager, through bounded asyncio queues.

A full queue makes the producer wait (back-pressure) and is counted; nothing is dropped. A
finding is acknowledged (its future resolved) only after the manager's transaction commits.
If the store is down the batch is retried with backoff and stays unacknowledged meanwhile."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Sequence

from monitord.collectors.base import Record
from monitord.detectors.base import Detector
from monitord.incidents.manager import IncidentManager, Outcome
from monitord.metrics import Metrics
from monitord.records import Finding

log = logging.getLogger("monitord.pipeline")


@dataclass(slots=True)
class _Pending:
    finding: Finding
    future: asyncio.Future[Outcome] | None = field(default=None)


class Pipeline:
    def __init__(self, manager: IncidentManager, detectors: Sequence[Detector], metrics: Metrics,
                 records_max: int, findings_max: int, batch_max: int = 500) -> None:
        self.manager = manager
        self.detectors = list(detectors)
        self.metrics = metrics
        self.batch_max = batch_max
        self.records: asyncio.Queue[Record] = asyncio.Queue(records_max)
        self.findings: asyncio.Queue[_Pending] = asyncio.Queue(findings_max)
        self._tasks: list[asyncio.Task[None]] = []
        metrics.watch_queues(self.depths)

    def depths(self) -> list[tuple[str, int, int]]:
        return [("records", self.records.qsize(), self.records.maxsize),
                ("findings", self.findings.qsize(), self.findings.maxsize)]

    # -- producers --------------------------------------------------------------------------

    async def emit(self, records: Sequence[Record]) -> None:
        for record in records:
            await _put(self.records, record, "records", self.metrics)

    async def submit(self, finding: Finding, wait: bool = True) -> Outcome | None:
        """Queue a finding; with `wait`, return its outcome once it is durably stored."""
        future = asyncio.get_running_loop().create_future() if wait else None
        await _put(self.findings, _Pending(finding, future), "findings", self.metrics)
        return await future if future is not None else None

    # -- workers ----------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._detect_loop(), name="detectors"),
                       asyncio.create_task(self._manage_loop(), name="manager")]

    async def drain(self) -> None:
        """Wait until every queued record has been detected and every finding committed."""
        await self.records.join()
        await self.findings.join()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _detect_loop(self) -> None:
        while True:
            record = await self.records.get()
            try:
                for detector in self.detectors:
                    try:
                        found = detector.observe(record)
                    except Exception:  # a detector bug costs one record, not the daemon
                        self.metrics.detector_errors.labels(detector.name).inc()
                        log.exception("detector failed detector=%s", detector.name)
                        continue
                    for finding in found:
                        await self.submit(finding, wait=False)
            finally:
                self.records.task_done()

    async def _manage_loop(self) -> None:
        while True:
            batch = [await self.findings.get()]
            while len(batch) < self.batch_max and not self.findings.empty():
                batch.append(self.findings.get_nowait())
            try:
                outcomes = await self._commit(batch)
                for pending, outcome in zip(batch, outcomes):
                    self.metrics.findings.labels(self.metrics.kind_label(pending.finding.kind),
                                                 pending.finding.state.value).inc()
                    self.metrics.finding_outcomes.labels(outcome.action).inc()
                    if pending.future is not None and not pending.future.done():
                        pending.future.set_result(outcome)
            finally:
                for _ in batch:
                    self.findings.task_done()

    async def _commit(self, batch: list[_Pending]) -> list[Outcome]:
        delay = 0.5
        while True:
            try:
                outcomes = await asyncio.to_thread(self.manager.apply,
                                                   [p.finding for p in batch])
                self.metrics.store_commits.labels("ok").inc()
                return outcomes
            except Exception as exc:
                self.metrics.store_commits.labels("error").inc()
                log.error("incident store write failed; retrying in %.1fs findings=%d error=%s",
                          delay, len(batch), type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)


async def _put(queue: asyncio.Queue, item: object, name: str, metrics: Metrics) -> None:
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        metrics.queue_full.labels(name).inc()
        await queue.put(item)
