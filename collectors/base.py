"""The collector contract: one method, `poll(now)`, returning records. Interval, jitter,
timeout, overrun, error counting, backoff and logging live once in
`monitord.scheduler.RunningCollector`, never in a collector."""

from __future__ import annotations

from datetime import datetime
from typing import Awaitable, Protocol, Sequence, Union

from monitord.records import Event, Sample

Record = Union[Sample, Event]


class Collector(Protocol):
    name: str

    def poll(self, now: datetime) -> Sequence[Record] | Awaitable[Sequence[Record]]:
        """Measure once. Blocking collectors are run in a worker thread; async ones on the loop."""
        ...


class CollectorTimeout(Exception):
    """The source did not answer within the collector's timeout."""


class AuthFailed(Exception):
    """The source answered but refused the credentials."""
