"""The notify worker's metrics, registered on a registry passed in (monitord creates its
registry in one place at start; tests use a private one).

- `monitord_outbox_deliveries_total{channel,outcome}`: outcome `sent`, `retry` (recoverable
  failure, the ticket waits), `failed` (given up: not recoverable, or the channel is gone).
- `monitord_outbox_pending{channel}` and `monitord_outbox_oldest_pending_seconds{channel}`:
  computed at scrape time from the store, so they are right after a restart and with several
  workers. Channel labels are configured channel names (bounded), never payload text.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from monitord.incidents.store.models import OutboxRow

log = logging.getLogger("monitord.notify")

OUTCOMES = ("sent", "retry", "failed")


def pending_by_channel(store) -> list[tuple[str, int, datetime | None]]:
    """(channel, pending count, oldest created_at) from the outbox, one query."""
    with store.sessions() as session:
        rows = session.execute(
            select(OutboxRow.channel, func.count(), func.min(OutboxRow.created_at))
            .where(OutboxRow.status == "pending").group_by(OutboxRow.channel)).all()
    # min() keeps the column's type, so `oldest` comes back as an aware UTC datetime.
    return [(channel, count, oldest if isinstance(oldest, datetime) else None)
            for channel, count, oldest in rows]


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry,
                 pending: Callable[[], Iterable[tuple[str, int, datetime | None]]],
                 now: Callable[[], datetime]) -> None:
        self.deliveries = Counter("monitord_outbox_deliveries_total",
                                  "Ticket delivery attempts by channel and outcome.",
                                  ["channel", "outcome"], registry=registry)
        self._collector = _PendingCollector(pending, now)
        registry.register(self._collector)

    def delivered(self, channel: str, outcome: str) -> None:
        self.deliveries.labels(channel, outcome).inc()


class _PendingCollector(Collector):
    def __init__(self, pending: Callable[[], Iterable[tuple[str, int, datetime | None]]],
                 now: Callable[[], datetime]) -> None:
        self._pending = pending
        self._now = now

    def collect(self):
        count = GaugeMetricFamily("monitord_outbox_pending",
                                  "Tickets waiting in the outbox (first try or retry).",
                                  labels=["channel"])
        age = GaugeMetricFamily("monitord_outbox_oldest_pending_seconds",
                                "Age of the oldest ticket still waiting, per channel.",
                                labels=["channel"])
        try:
            now = self._now()
            for channel, pending, oldest in self._pending():
                count.add_metric([channel], pending)
                if oldest is not None:
                    age.add_metric([channel], max(0.0, (now - oldest).total_seconds()))
        except Exception as exc:  # a store outage must not break /metrics
            log.warning("store unavailable for outbox metrics error=%s", type(exc).__name__)
        yield count
        yield age
