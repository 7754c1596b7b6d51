"""The notify worker: delivers tickets from the transactional outbox.

The guarantee: a channel that is down delays a ticket, never loses it, never sends it twice;
after a crash (SIGKILL included) only a send that was in flight at that moment may be repeated,
and it is repeated with the same idempotency key (and the same Message-ID / body / signature).

How, per outbox row:

1. **Claim** (one short transaction). Take the oldest due row of a channel
   (`status = 'pending' AND next_attempt_at <= now`) with `SELECT ... FOR UPDATE SKIP LOCKED`
   (PostgreSQL: two workers never take the same row; SQLite: `BEGIN IMMEDIATE` makes the
   claim the only writer), count the attempt (`attempts + 1`) and move `next_attempt_at` to
   now + a *lease* (twice the channel's timeout plus 5 s). Committed before any I/O, so no
   transaction, and on SQLite no write lock, is held while a peer is slow.
2. **Send**, outside any transaction.
3. **Record** (one short transaction): `sent` + `sent_at`; or, on a recoverable failure, a
   retry at now + backoff (exponential from `retry_initial` to `retry_max`, jittered) with a
   short `last_error`; or `failed` with `last_error`.

A crash between 1 and 3 leaves the row pending with its lease: when the lease runs out it is
due again and is sent again with the same key; that is exactly the in-flight send, and nothing
else can be repeated because a row is only claimed once per lease and is sent only after its
claim committed. Rows never claimed are simply still pending. If recording fails (the database
went away after the send) the result is kept in memory and recorded at the next pass.

Channels run side by side (one thread each per pass), so a slow or dead peer delays only its
own tickets; after a recoverable failure a channel's pass stops (its other tickets wait for the
next pass), so a dead peer costs one timeout per pass, not one per ticket.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from sqlalchemy import func, or_, select, update

from monitord.clock import Clock, SystemClock
from monitord.config import DEFAULT_CONFIG_PATH, Config
from monitord.incidents.notify.channels import (
    Message,
    NotifyError,
    Transport,
    build_transport,
    header_safe,
    scrub,
)
from monitord.incidents.notify.metrics import NotifyMetrics, pending_by_channel
from monitord.incidents.notify.render import TicketRenderer, one_line
from monitord.incidents.store import Store
from monitord.incidents.store.models import OutboxRow
from monitord.secrets import SecretSourceError

log = logging.getLogger("monitord.notify")
SENT, RETRY, FAILED = "sent", "retry", "failed"
JITTER = 0.2  # up to a fifth of a retry delay is taken off at random
MAX_PARALLEL_CHANNELS = 8
LEASE_MARGIN = timedelta(seconds=5)
DEFAULT_LIMIT = 100


def retry_delay(attempt: int, initial: timedelta, maximum: timedelta,
                rand: Callable[[], float] = random.random, jitter: float = JITTER) -> timedelta:
    """The wait after failed attempt number `attempt` (1, 2, ...): `initial`, doubling each
    time, never above `maximum`; then up to `jitter` of it taken off at random so tickets that
    failed together do not all come back together."""
    base = min(maximum.total_seconds(),
               initial.total_seconds() * 2.0 ** min(max(attempt - 1, 0), 62))
    return timedelta(seconds=base * (1.0 - jitter * min(max(rand(), 0.0), 1.0)))


@dataclass(frozen=True, slots=True)
class Claim:
    id: int
    idempotency_key: str
    channel: str
    event: str
    payload: Mapping[str, Any]
    attempts: int  # including this one


@dataclass(slots=True)
class Result:
    claim: Claim
    outcome: str  # sent | retry | failed
    reason: str = ""
    retry_after: float | None = None
    values: dict[str, Any] = field(default_factory=dict)  # what is written to the row


class NotifyWorker:
    """Delivers due outbox rows. `registry`: a prometheus CollectorRegistry to count on.
    `transports` replaces the transports built from the configuration (tests: a fake seam)."""

    def __init__(self, store: Store, config: Config, clock: Clock, registry: Any = None, *,
                 transports: Mapping[str, Transport] | None = None,
                 rand: Callable[[], float] = random.random,
                 lease: timedelta | None = None) -> None:
        self.store = store
        self.clock = clock
        self.rand = rand
        self._lease = lease
        self._fixed_transports = dict(transports or {})
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._pool = ThreadPoolExecutor(MAX_PARALLEL_CHANNELS, thread_name_prefix="notify")
        self._unrecorded: list[Result] = []
        self._more_due = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self.metrics = NotifyMetrics(registry, lambda: pending_by_channel(store), clock.now) \
            if registry is not None else None
        self.reconfigure(config)

    # -- configuration ------------------------------------------------------------------------

    def reconfigure(self, config: Config) -> None:
        """A new configuration (SIGHUP): channels, retry settings, time zone; secrets are
        resolved again at the next send."""
        renderer = TicketRenderer(config.tz)
        with self._lock:
            self.config = config
            self.channels = {channel.name: channel for channel in config.notifications.channels}
            self.renderer = renderer
            self._transports: dict[str, Transport] = {}

    def transport(self, name: str) -> Transport:
        with self._lock:
            if name in self._fixed_transports:
                return self._fixed_transports[name]
            found = self._transports.get(name)
            if found is None:
                try:
                    found = build_transport(self.channels[name])
                except SecretSourceError as exc:  # names the variable or file, not the value
                    raise NotifyError(True, scrub(f"channel secret unavailable: {exc}")) from None
                self._transports[name] = found
            return found

    def lease_for(self, name: str) -> timedelta:
        if self._lease is not None:
            return self._lease
        timeout = getattr(self.channels.get(name), "timeout", None) or timedelta(seconds=5)
        return 2 * timeout + LEASE_MARGIN

    # -- one pass -----------------------------------------------------------------------------

    def run_once(self, limit: int = DEFAULT_LIMIT) -> int:
        """Deliver the rows due now: at most `limit` per channel, channels side by side.
        Returns how many rows were handled (sent, rescheduled or failed)."""
        self._more_due = False  # first: a pass that raises must not make run() spin
        self._record_leftovers()
        handled, channels = self._sweep(self.clock.now())
        if not channels:
            return handled
        if len(channels) == 1:
            counts = [self._pass(channels[0], limit)]
        else:
            futures = [self._pool.submit(self._pass, name, limit) for name in channels]
            counts = [future.result() for future in futures]
        return handled + sum(counts)

    def deliver_due(self, limit: int = DEFAULT_LIMIT) -> int:
        """Passes until nothing more is due now (a channel that failed waits for its retry).
        Returns the rows handled."""
        total = self.run_once(limit)
        while self._more_due and not self._halt.is_set():
            total += self.run_once(limit)
        return total

    def drain(self, timeout: float) -> int:
        """Deliver until the outbox has nothing pending, waiting for retries, for at most
        `timeout` seconds (wall clock). Returns how many rows are still pending."""
        deadline = time.monotonic() + timeout
        while True:
            self.deliver_due()
            pending, next_at = self.pending()
            left = deadline - time.monotonic()
            if pending == 0 or left <= 0 or self._halt.is_set():
                return pending
            wait = self.config.notifications.worker_interval.total_seconds()
            if next_at is not None:
                wait = min(wait, max(0.0, (next_at - self.clock.now()).total_seconds()))
            time.sleep(min(max(wait, 0.05), left))

    def pending(self) -> tuple[int, datetime | None]:
        """(rows pending, the earliest next attempt among them)."""
        with self.store.sessions() as session:
            count, first = session.execute(
                select(func.count(), func.min(OutboxRow.next_attempt_at))
                .where(OutboxRow.status == "pending")).one()
        return count, first

    def _sweep(self, now: datetime) -> tuple[int, list[str]]:
        """The configured channels that have due rows; due rows of channels that are no longer
        configured are marked failed (nothing could ever deliver them)."""
        with self._lock:
            configured = set(self.channels)
        failed: list[tuple[str, int]] = []
        with self.store.sessions() as session, session.begin():
            names = session.scalars(select(OutboxRow.channel).distinct().where(
                OutboxRow.status == "pending", _due(now))).all()
            for name in names:
                if name in configured:
                    continue
                result = session.execute(
                    update(OutboxRow).where(OutboxRow.status == "pending",
                                            OutboxRow.channel == name, _due(now))
                    .values(status=FAILED, next_attempt_at=None,
                            last_error=f"channel {one_line(name, 64)!r} is not in the "
                                       "configuration (removed or renamed?); not delivered"))
                failed.append((name, result.rowcount or 0))
        for name, count in failed:
            log.error("tickets for an unknown channel marked failed channel=%s count=%d",
                      one_line(name, 64), count)
            if self.metrics:
                self.metrics.deliveries.labels(name, FAILED).inc(count)
        return sum(count for _name, count in failed), \
            sorted(name for name in names if name in configured)

    def _pass(self, name: str, limit: int) -> int:
        handled = 0
        while not self._halt.is_set():
            if handled >= limit:
                self._more_due = True
                break
            claim = self._claim(name)
            if claim is None:
                break
            handled += 1
            result = self._deliver(claim)
            self._record(result)
            if result.outcome == RETRY:
                break  # down or busy: its other tickets wait for the next pass
        return handled

    # -- the three steps ----------------------------------------------------------------------

    def _claim(self, name: str) -> Claim | None:
        now = self.clock.now()
        lease = self.lease_for(name)
        with self.store.sessions() as session, session.begin():
            row = session.scalars(
                select(OutboxRow)
                .where(OutboxRow.status == "pending", OutboxRow.channel == name, _due(now))
                .order_by(OutboxRow.next_attempt_at, OutboxRow.id).limit(1)
                .with_for_update(skip_locked=True)).first()
            if row is None:
                return None
            row.attempts = (row.attempts or 0) + 1
            row.next_attempt_at = now + lease
            return Claim(row.id, row.idempotency_key, row.channel, row.event,
                         dict(row.payload) if isinstance(row.payload, dict) else {},
                         row.attempts)

    def message_for(self, claim: Claim) -> Message:
        payload = dict(claim.payload)
        payload.setdefault("event", claim.event)
        recipient = payload.get("recipient")
        recipient = recipient if isinstance(recipient, dict) else {}
        language = recipient.get("language") or self.config.language or "en"
        try:
            ticket = self.renderer.render(payload, language)
        except Exception as exc:  # a template or code bug: keep the ticket for a fixed version
            raise NotifyError(True, f"ticket cannot be rendered ({type(exc).__name__})") from None
        address = recipient.get("address")
        return Message(idempotency_key=claim.idempotency_key, channel=claim.channel,
                       event=claim.event, subject=ticket.subject, text=ticket.text,
                       html=ticket.html,
                       address=str(address) if address not in (None, "") else None,
                       recipient_name=str(recipient.get("full_name") or recipient.get("name")
                                          or ""),
                       payload=payload)

    def _deliver(self, claim: Claim) -> Result:
        try:
            self.transport(claim.channel).send(self.message_for(claim))
            return Result(claim, SENT)
        except NotifyError as exc:
            return Result(claim, RETRY if exc.recoverable else FAILED, scrub(exc.reason),
                          exc.retry_after)
        except Exception as exc:  # a bug in a transport: never lose the ticket over it
            return Result(claim, RETRY, f"unexpected error during delivery "
                                        f"({type(exc).__name__})")

    def _record(self, result: Result) -> None:
        if not result.values:
            now = self.clock.now()
            if result.outcome == SENT:
                result.values = {"status": SENT, "sent_at": now, "next_attempt_at": None}
            elif result.outcome == FAILED:
                result.values = {"status": FAILED, "next_attempt_at": None,
                                 "last_error": result.reason}
            else:
                settings = self.config.notifications
                delay = retry_delay(result.claim.attempts, settings.retry_initial,
                                    settings.retry_max, self.rand)
                if result.retry_after:
                    delay = max(delay, timedelta(seconds=min(result.retry_after,
                                                             settings.retry_max.total_seconds())))
                result.values = {"next_attempt_at": now + delay, "last_error": result.reason}
            if result.outcome in (SENT, FAILED):
                result.values.update(_forget(result.claim.payload))
        try:
            with self.store.sessions() as session, session.begin():
                session.execute(update(OutboxRow).where(OutboxRow.id == result.claim.id,
                                                        OutboxRow.status == "pending")
                                .values(**result.values))
        except Exception as exc:
            log.error("ticket outcome not recorded, kept for the next pass channel=%s key=%s "
                      "outcome=%s error=%s", result.claim.channel,
                      header_safe(result.claim.idempotency_key), result.outcome,
                      type(exc).__name__)
            with self._lock:
                self._unrecorded.append(result)
            return
        self._report(result)

    def _record_leftovers(self) -> None:
        with self._lock:
            leftovers, self._unrecorded = self._unrecorded, []
        for result in leftovers:
            self._record(result)

    def _report(self, result: Result) -> None:
        claim = result.claim
        key = header_safe(claim.idempotency_key)
        if self.metrics:
            self.metrics.delivered(claim.channel, result.outcome)
        if result.outcome == SENT:
            log.info("ticket sent channel=%s event=%s key=%s attempt=%d", claim.channel,
                     header_safe(claim.event), key, claim.attempts)
        elif result.outcome == RETRY:
            wait = (result.values["next_attempt_at"] - self.clock.now()).total_seconds()
            log.warning("ticket not delivered, will retry channel=%s key=%s attempt=%d "
                        "retry_in=%.0fs reason=%s", claim.channel, key, claim.attempts, wait,
                        result.reason)
        else:
            log.error("ticket not delivered, given up channel=%s key=%s attempt=%d reason=%s",
                      claim.channel, key, claim.attempts, result.reason)

    # -- running in the daemon ----------------------------------------------------------------

    def kick(self) -> None:
        """New tickets were written: run a pass now instead of at the next interval. Safe from
        any thread."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop is closed
                pass

    async def run(self, stop_event: asyncio.Event) -> None:
        """Deliver every `worker_interval` (or at once after `kick()`) until `stop_event`. A
        send in flight at the stop is finished (bounded by the channel's timeout)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._halt.clear()

        async def halt_on_stop() -> None:
            await stop_event.wait()
            self._halt.set()
            self._wake.set()

        watcher = asyncio.create_task(halt_on_stop(), name="notify-stop")
        try:
            while not stop_event.is_set():
                self._wake.clear()
                try:
                    await asyncio.to_thread(self.run_once)
                    if self._more_due:
                        continue
                except Exception as exc:  # a store outage: try again next interval
                    log.error("notify pass failed error=%s", type(exc).__name__)
                interval = self.config.notifications.worker_interval.total_seconds()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=interval)
                except asyncio.TimeoutError:
                    pass
        except asyncio.CancelledError:
            self._halt.set()  # the pass still running in its thread stops after its send
            raise
        else:
            self._halt.clear()  # the last pass has returned: run_once/drain work again
        finally:
            watcher.cancel()

    def close(self, wait: bool = True) -> None:
        """Stop: no new sends start. `wait=False` returns at once (from an event loop, with a
        send still in flight: it finishes in its thread, bounded by the channel's timeout)."""
        self._halt.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)


def _forget(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload may list fields meant for the recipient only (`forget_after_delivery`, e.g.
    the reporter's status link, whose token the store otherwise keeps only as a hash): once
    the ticket is sent or given up, they are blanked in the stored row."""
    forget = payload.get("forget_after_delivery")
    if not isinstance(forget, list) or not forget:
        return {}
    return {"payload": {**payload, **{str(k): "" for k in forget if k in payload},
                        "forget_after_delivery": []}}


def _due(now: datetime):
    return or_(OutboxRow.next_attempt_at.is_(None), OutboxRow.next_attempt_at <= now)


# -- standalone process: python -m monitord.incidents.notify.worker --------------------------


def main(argv: Sequence[str] | None = None) -> int:
    from monitord.incidents.store import open_store
    from monitord.process import configure_process

    parser = argparse.ArgumentParser(
        prog="python -m monitord.incidents.notify.worker",
        description="Deliver tickets from monitord's outbox (e-mail, Telegram, webhook, log).")
    parser.add_argument("--config", default=DEFAULT_CONFIG_PATH, help="monitord.yaml")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true",
                      help="deliver what is due now, then exit")
    mode.add_argument("--drain", type=float, metavar="SECONDS",
                      help="deliver until nothing is pending (waiting for retries) or SECONDS "
                           "passed; exit 0 if the outbox is empty, 3 if not")
    args = parser.parse_args(argv)
    config_path = Path(args.config)
    config = configure_process(config_path)
    if config is None:
        return 2
    try:
        password = config.storage.password.resolve() if config.storage.password else None
    except SecretSourceError as exc:
        log.error("cannot start: storage.password: %s", exc)
        return 1
    store = open_store(config.storage, password)
    worker = NotifyWorker(store, config, SystemClock())
    try:
        if args.once:
            worker.deliver_due()
            return 0
        if args.drain is not None:
            return 0 if worker.drain(args.drain) == 0 else 3
        return asyncio.run(_serve(worker, config_path))
    finally:
        worker.close()
        store.close()


async def _serve(worker: NotifyWorker, config_path: Path) -> int:
    from monitord.config_loader import ConfigError, load_config

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def reload() -> None:
        try:
            worker.reconfigure(load_config(config_path))
            log.info("configuration reloaded config=%s", config_path)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload rejected: %s", problem)
        worker.kick()

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    log.info("notify worker started channels=%s", ",".join(worker.channels) or "-")
    await worker.run(stop)
    log.info("notify worker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
