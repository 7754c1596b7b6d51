"""The daemon's traffic capture: `collectors.capture` and `detectors.traffic` of the
configuration turned into a capture thread whose findings enter the same pipeline (and so the
same incidents and SOP workflows) as every other finding, with its metrics on /metrics.

Packets never cross the asyncio queues one by one (a queue hop per packet would cost more than
the detectors): the capture thread runs the detectors itself and hands only findings to the
event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from monitord.collectors.packets.analyze import settings_from_config
from monitord.collectors.packets.engine import Counters, TrafficEngine
from monitord.collectors.packets.live import (CaptureError, CaptureThread, KernelStats,
                                              LiveCapture)
from monitord.collectors.packets.pcapfile import ReadStats, read_packets
from monitord.i18n import _
from monitord.records import Finding

log = logging.getLogger("monitord.capture")


class CaptureMetrics:
    """Created once per daemon. Labels are bounded: the configured interface, a fixed set of
    protocols and reasons, detector names from code, finding kinds from code, and a top-N of
    talkers that is cleared and refilled every interval (so at most N address series)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.packets = Counter("monitord_capture_packets_total",
                               "Packets captured, by protocol.", ["interface", "protocol"],
                               registry=r)
        self.bytes = Counter("monitord_capture_bytes_total",
                             "Bytes captured (wire length), by protocol.",
                             ["interface", "protocol"], registry=r)
        self.kernel_packets = Counter("monitord_capture_kernel_packets_total",
                                      "Packets the kernel passed through the capture filter.",
                                      ["interface"], registry=r)
        self.kernel_drops = Counter("monitord_capture_kernel_drops_total",
                                    "Packets the kernel dropped because the capture socket's "
                                    "buffer was full (PACKET_STATISTICS).", ["interface"],
                                    registry=r)
        self.decode_errors = Counter("monitord_capture_decode_errors_total",
                                     "Frames the decoder counted and skipped, by reason.",
                                     ["interface", "reason"], registry=r)
        self.traffic_findings = Counter("monitord_traffic_findings_total",
                                        "Findings the traffic detectors emitted, by kind.",
                                        ["kind"], registry=r)
        self.top_talkers = Gauge("monitord_capture_top_talker_bytes",
                                 "Bytes sent in the last stats interval by the top sources.",
                                 ["interface", "rank", "address"], registry=r)
        self.state_entries = Gauge("monitord_traffic_detector_state_entries",
                                   "Entries held in a traffic detector's bounded table.",
                                   ["detector", "table"], registry=r)
        self.state_capacity = Gauge("monitord_traffic_detector_state_capacity",
                                    "The cap of a traffic detector's bounded table.",
                                    ["detector", "table"], registry=r)
        self._kernel = KernelStats()

    def publish(self, interface: str, counters: Counters, kernel: KernelStats,
                engine: TrafficEngine) -> None:
        for proto, n in counters.packets.items():
            if n:
                self.packets.labels(interface, proto).inc(n)
                self.bytes.labels(interface, proto).inc(counters.bytes[proto])
        for reason in ("malformed", "app_errors", "unsupported"):
            n = counters.decode.get(reason, 0)
            if n:
                self.decode_errors.labels(interface, reason).inc(n)
        for kind, n in counters.findings.items():
            self.traffic_findings.labels(kind).inc(n)
        if kernel.packets >= self._kernel.packets:
            self.kernel_packets.labels(interface).inc(kernel.packets - self._kernel.packets)
            self.kernel_drops.labels(interface).inc(max(0, kernel.drops - self._kernel.drops))
        self._kernel = kernel
        self.top_talkers.clear()
        for rank, (address, size) in enumerate(counters.top_talkers, 1):
            self.top_talkers.labels(interface, str(rank), address).set(size)
        for detector, tables in engine.state_sizes().items():
            for table, st in tables.items():
                self.state_entries.labels(detector, table).set(st.get("size", 0))
                self.state_capacity.labels(detector, table).set(st.get("cap", 0))

    def restart(self) -> None:
        """A new socket counts from zero again."""
        self._kernel = KernelStats()


class TrafficCaptureService:
    """Start/stop of the live capture for the daemon; `submit` is the pipeline's."""

    def __init__(self, metrics: CaptureMetrics,
                 submit: Callable[[Finding], Awaitable[object]]) -> None:
        self.metrics = metrics
        self.submit = submit
        self.thread: CaptureThread | None = None
        self.settings = None  # (capture, traffic) sections the running thread was built from

    def start(self, config, loop: asyncio.AbstractEventLoop) -> None:
        """Open the socket (a CaptureError names the setting) and start reading."""
        capture = config.collectors.capture
        if not capture.enabled:
            return
        engine_settings = settings_from_config(config.detectors.traffic)
        self.settings = (capture, config.detectors.traffic)
        if capture.replay:
            self._start_replay(Path(capture.replay), engine_settings,
                               self._submitter(capture, loop))
        if not capture.interface:
            return
        live = LiveCapture(capture.interface, capture.bpf, capture.promiscuous, capture.snaplen,
                           capture.buffer_mb << 20)
        engine = TrafficEngine(engine_settings, live.linktype, capture.top_talkers,
                               capture.max_talkers)
        interface = capture.interface

        on_findings = self._submitter(capture, loop)

        def on_interval(counters: Counters, kernel: KernelStats, eng: TrafficEngine) -> None:
            self.metrics.publish(interface, counters, kernel, eng)

        self.metrics.restart()
        self.thread = CaptureThread(live, engine, on_findings, on_interval,
                                    capture.stats_interval.total_seconds())
        self.thread.start()
        log.info("capture started interface=%s linktype=%d filter=%s promiscuous=%s",
                 interface, live.linktype, "yes" if capture.bpf.strip() else "none",
                 capture.promiscuous)

    def _submitter(self, capture, loop: asyncio.AbstractEventLoop
                   ) -> Callable[[list[Finding]], None]:
        """Findings from the capture thread to the pipeline on the event loop, those below
        `min_severity` left out (they are still counted in the metrics)."""
        floor = capture.min_severity.rank

        def submit(findings: list[Finding]) -> None:
            for finding in findings:
                if finding.severity.rank >= floor:
                    asyncio.run_coroutine_threadsafe(self.submit(finding), loop)
        return submit

    def _start_replay(self, path: Path, settings,
                      submit: Callable[[list[Finding]], None]) -> None:
        """Replay a capture file once, in its own thread, through a fresh engine; its packet
        times are moved so that the last one is now, so incidents carry today's times."""
        if not path.is_file():
            raise CaptureError(_("collectors.capture.replay: no such file {path}")
                               .format(path=path))

        def run() -> None:
            stats = ReadStats()
            packets = list(read_packets(path, stats))
            if not packets:
                log.error("capture replay: no packets in %s (%s)", path.name,
                          stats.error or "empty")
                return
            shift = time.time() - max(ts for ts, _lt, _fr in packets)
            engine = TrafficEngine(settings, packets[0][1])
            found: list[Finding] = []
            for ts, _lt, frame in packets:
                found.extend(engine.feed(ts + shift, frame))
            found.extend(engine.flush(engine.last_ts, final=True))  # the file is complete
            submit(found)
            log.info("capture replay: %d packets from %s, %d findings", len(packets),
                     path.name, len(found))

        self.replay_thread = threading.Thread(target=run, name="capture-replay", daemon=True)
        self.replay_thread.start()

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
            self.thread = None
            log.info("capture stopped")

    def changed(self, config) -> bool:
        return self.settings != (config.collectors.capture, config.detectors.traffic)
