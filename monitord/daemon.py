"""The daemon's lifecycle: start, run, reload on SIGHUP, stop on SIGTERM within 10 seconds
without losing a finding that was in flight."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from monitord import __version__
from monitord.clock import Clock, SystemClock
from monitord.collectors.snmp.trap_service import reconfigure_traps, start_traps
from monitord.collectors.host import HostCollector
from monitord.collectors.netconfig.collector import NetconfigSetupError, build_collector
from monitord.collectors.packets.live import CaptureError
from monitord.collectors.packets.service import CaptureMetrics, TrafficCaptureService
from monitord.collectors.services import ServiceCheckCollector
from monitord.collectors.snmp.collector import SnmpMetrics, build_collectors as snmp_collectors
from monitord.config import Config
from monitord.config_loader import ConfigError, load_config
from monitord.detectors.host import HostThresholdDetector
from monitord.detectors.netconfig import NetconfigDetector
from monitord.detectors.services import ServiceDetector
from monitord.detectors.traps import TrapDetector
from monitord.detectors.network import NetworkDetector
from monitord.detectors.ups import UpsDetector
from monitord.http import build_app, make_server
from monitord.i18n import set_language
from monitord.incidents.manager import IncidentManager
from monitord.incidents.notify.worker import NotifyWorker
from monitord.incidents.store import Store, open_store
from monitord.incidents.store import repository as repo
from monitord.incidents.workflow.engine import load_engine
from monitord.logs import setup_logging
from monitord.metrics import Metrics
from monitord.pipeline import Pipeline
from monitord.process import configure_process
from monitord.scheduler import RunningCollector, Scheduler
from monitord.sdnotify import SystemdNotifier
from monitord.secrets import Secret, SecretSourceError

log = logging.getLogger("monitord.daemon")
STOP_BUDGET_S = 9.0
TICK_SECONDS = 5.0


class StartupError(Exception):
    """The daemon cannot start; the message says why and what to change."""


@dataclass(frozen=True, slots=True)
class Secrets:
    storage_password: Secret | None
    ingest_token: Secret | None


def resolve_secrets(config: Config) -> Secrets:
    """Resolve every secret reference now, so a missing one stops the start (or the reload)
    with its key path named and its value never shown."""
    resolved: dict[str, Secret] = {}
    problems = []
    for path, ref in config.secret_refs():
        try:
            resolved[path] = ref.resolve()
        except SecretSourceError as exc:
            problems.append(f"{path}: {exc}")
    if problems:
        raise StartupError("secrets cannot be resolved: " + "; ".join(problems))
    return Secrets(resolved.get("storage.password"), resolved.get("http.ingest_token"))


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"http.listen {host}:{port}: cannot listen ({exc.strerror})") from None
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


class Daemon:
    def __init__(self, config_path: str | Path, config: Config, clock: Clock | None = None,
                 duration: float | None = None) -> None:
        self.config_path = Path(config_path)
        self.config = config
        self.clock = clock or SystemClock()
        self.duration = duration
        self.metrics = Metrics()
        self.notifier = SystemdNotifier()
        self._stop = asyncio.Event()
        self.store: Store | None = None
        self.traps = None
        self.snmp_metrics: SnmpMetrics | None = None

    # -- building blocks --------------------------------------------------------------------

    def _collectors(self, config: Config) -> list[RunningCollector]:
        jobs = []
        host = config.collectors.host
        if host.enabled:
            jobs.append(RunningCollector(HostCollector(host.device, host.processes, host.ports,
                                                       ntp_server=host.ntp_server),
                                         host, self.pipeline, self.metrics, self.clock,
                                         config.collectors.backoff_max))
        for check in config.checks:
            if check.enabled:
                jobs.append(RunningCollector(
                    ServiceCheckCollector(check.name, check.target, check.kind,
                                          check.check_options(), device=check.device),
                    check.collector_settings(), self.pipeline, self.metrics, self.clock,
                    config.collectors.backoff_max))
        for entry in config.netconfig:
            if not entry.enabled:
                continue
            try:
                collector = build_collector(config, entry, self.store)
            except NetconfigSetupError as exc:
                log.error("netconfig job not started: %s", exc)
                continue
            jobs.append(RunningCollector(collector, entry.collector_settings(), self.pipeline,
                                         self.metrics, self.clock,
                                         config.collectors.backoff_max))
        if self.snmp_metrics is None:  # SNMP devices (issue 5): one job per device
            self.snmp_metrics = SnmpMetrics(self.metrics.registry)
            self.metrics.text_sources.append(self.snmp_metrics.render_text)
        for collector in snmp_collectors(config, self.snmp_metrics):
            jobs.append(RunningCollector(collector, config.snmp.collector_settings(),
                                         self.pipeline, self.metrics, self.clock,
                                         config.collectors.backoff_max))
        return jobs

    def _detectors(self, config: Config) -> list:
        services = ServiceDetector()
        services.reconfigure(config)
        return [HostThresholdDetector(config.detectors.host), services, TrapDetector(),
                NetconfigDetector(), NetworkDetector(config.snmp.thresholds),
                UpsDetector(config.snmp.thresholds)]

    def _open_counts(self):
        with self.store.sessions() as session:
            return [(c.category, c.severity, c.count) for c in repo.open_counts(session)]

    def _workflow_counts(self):
        with self.store.sessions() as session:
            return repo.workflow_counts(session, self.engine, self.clock.now())

    def _web(self):
        """The web desk (and the JSON API it mounts) on http.listen, unless web.enabled is
        false."""
        if not self.config.web.enabled:
            return None
        from monitord.web.app import WebContext, build_web
        self.web = WebContext(config=lambda: self.config, store=self.store, clock=self.clock,
                              metrics=self.metrics, engine=lambda: self.engine,
                              kick=lambda: self.notify.kick())
        return build_web(self.web)

    def _health(self) -> dict:
        return {"status": "stopping" if self._stop.is_set() else "ok", "version": __version__,
                "queues": {name: size for name, size, _max in self.pipeline.depths()}}

    # -- lifecycle --------------------------------------------------------------------------

    async def run(self) -> int:
        secrets = resolve_secrets(self.config)
        self.secrets = secrets
        http_socket = bind_socket(self.config.http.host, self.config.http.port)
        self.store = open_store(self.config.storage, secrets.storage_password)
        await asyncio.to_thread(self.store.migrate)
        await asyncio.to_thread(self._sync_devices, self.config)
        self.engine = load_engine(self.config)
        self.notify = NotifyWorker(self.store, self.config, self.clock,
                                   registry=self.metrics.registry)
        self.manager = IncidentManager(self.store, self.config, self.clock, workflow=self.engine,
                                       on_outcome=lambda _finding, _outcome: self.notify.kick())
        self.pipeline = Pipeline(self.manager, self._detectors(self.config), self.metrics,
                                 self.config.queues.samples, self.config.queues.findings,
                                 self.config.incidents.batch_max)
        self.capture = TrafficCaptureService(CaptureMetrics(self.metrics.registry),
                                             lambda f: self.pipeline.submit(f, wait=False))
        try:
            self.capture.start(self.config, asyncio.get_running_loop())
        except CaptureError as exc:
            self.store.close()
            raise StartupError(str(exc)) from None
        self.metrics.watch_store(self._open_counts)
        self.metrics.watch_workflows(self._workflow_counts)
        self.pipeline.start()
        self.traps = await start_traps(self.config, self.pipeline.emit, self.metrics.registry,
                                       self.clock.now)
        self._install_signals()
        web = self._web()
        app = build_app(self.metrics, self.pipeline.submit, self.clock.now,
                        lambda: self.secrets.ingest_token, self._health,
                        accepting=lambda: not self._stop.is_set(),
                        extra_routes=web.routes if web else (),
                        middleware=web.middleware if web else ())
        self.server = make_server(app, self.config.http.host, self.config.http.port)
        server_task = asyncio.create_task(self.server.serve(sockets=[http_socket]), name="http")
        self.scheduler = Scheduler(self.metrics)
        for job in self._collectors(self.config):
            self.scheduler.add(job)
        self.scheduler.add_internal("incident-tick", self._tick, min(
            TICK_SECONDS, self.config.workflows.tick_interval.total_seconds()))
        self.scheduler.start()
        await self._tick()  # overdue resolutions and SLA timers after a restart
        self._notify_task = asyncio.create_task(self.notify.run(self._stop), name="notify")
        watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
        if self.duration:
            asyncio.get_running_loop().call_later(self.duration, self._stop.set)
        self.notifier.ready(f"monitoring, /metrics on {self.config.http.listen}")
        log.info("monitord started version=%s listen=%s store=%s config=%s", __version__,
                 self.config.http.listen, self.store.dialect, self.config_path)
        await self._stop.wait()
        await self._shutdown(server_task, watchdog)
        return 0

    async def _shutdown(self, server_task: asyncio.Task, watchdog: asyncio.Task) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_BUDGET_S
        self.notifier.stopping()
        log.info("stopping: finishing collector runs and committing findings in flight")
        await asyncio.to_thread(self.capture.stop)
        await self.scheduler.stop(timeout=3.0)
        if self.traps is not None:
            self.traps.close()
        try:
            await asyncio.wait_for(self.pipeline.drain(), max(0.5, deadline - loop.time() - 1))
        except asyncio.TimeoutError:
            log.error("stop budget ran out with findings=%d still queued (not acknowledged)",
                      self.pipeline.findings.qsize())
        await self._tick()
        try:  # the pass in flight ends after its current send (bounded by the channel timeout)
            await asyncio.wait_for(self._notify_task, max(0.5, deadline - loop.time() - 0.5))
        except asyncio.TimeoutError:
            log.warning("stop budget ran out with a ticket send in flight; it is retried at "
                        "the next start with the same idempotency key")
        self.notify.close(wait=False)
        self.server.should_exit = True
        try:
            await asyncio.wait_for(server_task, max(0.2, deadline - loop.time()))
        except (asyncio.TimeoutError, SystemExit):
            server_task.cancel()
        watchdog.cancel()
        await self.pipeline.stop()
        self.store.close()
        log.info("monitord stopped")

    async def _tick(self) -> None:
        try:
            await asyncio.to_thread(self.manager.tick)
            await asyncio.to_thread(self._workflow_tick)
        except Exception as exc:
            log.error("incident tick failed error=%s", type(exc).__name__)

    def _workflow_tick(self) -> None:
        """SLA timers: overdue steps escalate or notify, as their workflow file says."""
        with self.store.sessions() as session, session.begin():
            handled = self.engine.tick(session, self.clock.now())
        if handled:
            self.notify.kick()
        for event in handled:
            log.info("workflow timer incident=%s event=%s step=%s", event.number, event.event,
                     event.step)
            if event.event == "sla_breach":
                self.metrics.sla_breaches.labels(event.workflow, event.step).inc()

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval
        if not interval:
            return
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))

    def request_stop(self) -> None:
        self._stop.set()

    def _sync_devices(self, config: Config) -> None:
        with self.store.sessions() as session, session.begin():
            repo.sync_devices(session, config.devices, self.clock.now())

    # -- reload -----------------------------------------------------------------------------

    async def reload(self) -> bool:
        """SIGHUP: a bad file is rejected and the running configuration stays."""
        self.notifier.reloading()
        try:
            config = await asyncio.to_thread(load_config, self.config_path)
            secrets = resolve_secrets(config)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload rejected: %s", problem)
            return self._reloaded(False)
        except StartupError as exc:
            log.error("reload rejected: %s", exc)
            return self._reloaded(False)
        except Exception as exc:  # whatever it was, the running configuration stays
            log.error("reload rejected: %s", type(exc).__name__)
            return self._reloaded(False)
        if config.http != self.config.http or config.storage != self.config.storage:
            log.warning("http and storage changes take effect at the next restart")
        setup_logging(config.logging.level, config.logging.format)
        set_language(config.language)
        self.secrets = Secrets(self.secrets.storage_password, secrets.ingest_token)
        self.engine = load_engine(config)
        self.manager.reconfigure(config)
        self.notify.reconfigure(config)
        self.manager.workflow = self.engine
        for detector in self.pipeline.detectors:  # keep their state (what is firing)
            detector.reconfigure(config)
        self.scheduler.remove_collectors()
        for job in self._collectors(config):
            self.scheduler.add(job)
        if self.capture.changed(config):  # detectors' learnt state restarts with the capture
            await asyncio.to_thread(self.capture.stop)
            try:
                self.capture.start(config, asyncio.get_running_loop())
            except CaptureError as exc:
                log.error("capture not restarted: %s", exc)
        await asyncio.to_thread(self._sync_devices, config)
        reconfigure_traps(self.traps, config, self.config)
        self.config = config
        log.info("configuration reloaded config=%s", self.config_path)
        return self._reloaded(True)

    def _reloaded(self, ok: bool) -> bool:
        if not ok:  # reading the rejected file may have switched the language
            set_language(self.config.language)
        self.metrics.reloads.labels("ok" if ok else "rejected").inc()
        self.notifier.ready("reloaded" if ok else "reload rejected; running config kept")
        return ok


def run_daemon(config_path: str | Path, duration: float | None = None) -> int:
    """Load, validate and run. A bad configuration stops the start with every problem listed."""
    config = configure_process(config_path)
    if config is None:
        return 2
    daemon = Daemon(config_path, config, duration=duration)
    try:
        return asyncio.run(daemon.run())
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except ConfigError as exc:  # workflow files and routing are checked at start too
        for problem in exc.problems:
            log.error("configuration: %s", problem)
        return 2
