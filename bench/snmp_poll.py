#!/usr/bin/env python3
"""CPU per device of a full SNMP poll: monitord's poller against prometheus-snmp-exporter,
both polling the same N devices (default 200) served by real net-snmp snmpd agents in network
namespaces, in the same run.

    sudo /work/main/.venv/bin/python bench/snmp_poll.py             # 200 devices, ~1-2 minutes
    sudo /work/main/.venv/bin/python bench/snmp_poll.py --quick     # 40 devices, smoke run
    sudo /work/main/.venv/bin/python bench/snmp_poll.py --profile   # + a cProfiled extra round

Devices: `--namespaces` (4) namespaces from tests/snmpd_ns.py, each with one snmpd answering on
N/namespaces addresses (each address is one device to both pollers) and exposing 50
interfaces (48 veth + lo + uplink): one walk of ifTable + ifXTable is 2,000 varbinds, the size
the issue's reference figures are for. Running 200 snmpd would measure the agents' memory, not
the pollers; the pollers cannot tell one snmpd on 50 addresses from 50 snmpd.

What is measured (CPU time, user + system, of the poller process only; agents excluded):
- exporter: `/proc/PID/stat` of prometheus-snmp-exporter (started here on loopback with a
  hand-written IF-MIB module, see `exporter_config`) before and after scraping
  `/snmp?module=if_mib&target=ADDR` for every device, `--concurrency` (50) scrapes at a time,
  including the exposition it renders. The HTTP client is this script and is not counted.
- monitord: `time.process_time()` of this process around one full poll of every device through
  the daemon's own path (`SnmpCollector.poll`: the walks, BER decoding, counter rates, the
  records, the metrics update, and every network detector on the records), `--concurrency`
  devices in flight. The first round only primes the rates (it has no previous sample) and is
  not counted for either poller.

The last line printed is the ratio monitord / exporter of CPU ms per device (lower is better;
the issue's target is <= 1.0).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import cProfile
import io
import os
import pstats
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.snmpd_ns import SnmpdNamespace, cleanup_stale, snmpd_ns_skip_reason  # noqa: E402

EXPORTER = "/usr/bin/prometheus-snmp-exporter"
COMMUNITY = "bench-public"
IF_TABLE = "1.3.6.1.2.1.2.2.1"
IF_X_TABLE = "1.3.6.1.2.1.31.1.1.1"

# (column, name, snmp_exporter type) for every column snmpd serves in ifTable and ifXTable.
IF_COLUMNS = [
    (1, "ifIndex", "gauge"), (2, "ifDescr", "DisplayString"), (3, "ifType", "gauge"),
    (4, "ifMtu", "gauge"), (5, "ifSpeed", "gauge"), (6, "ifPhysAddress", "PhysAddress48"),
    (7, "ifAdminStatus", "gauge"), (8, "ifOperStatus", "gauge"), (9, "ifLastChange", "gauge"),
    (10, "ifInOctets", "counter"), (11, "ifInUcastPkts", "counter"),
    (12, "ifInNUcastPkts", "counter"), (13, "ifInDiscards", "counter"),
    (14, "ifInErrors", "counter"), (15, "ifInUnknownProtos", "counter"),
    (16, "ifOutOctets", "counter"), (17, "ifOutUcastPkts", "counter"),
    (18, "ifOutNUcastPkts", "counter"), (19, "ifOutDiscards", "counter"),
    (20, "ifOutErrors", "counter"), (21, "ifOutQLen", "gauge"),
]
IFX_COLUMNS = [
    (1, "ifName", "DisplayString"), (2, "ifInMulticastPkts", "counter"),
    (3, "ifInBroadcastPkts", "counter"), (4, "ifOutMulticastPkts", "counter"),
    (5, "ifOutBroadcastPkts", "counter"), (6, "ifHCInOctets", "counter"),
    (7, "ifHCInUcastPkts", "counter"), (8, "ifHCInMulticastPkts", "counter"),
    (9, "ifHCInBroadcastPkts", "counter"), (10, "ifHCOutOctets", "counter"),
    (11, "ifHCOutUcastPkts", "counter"), (12, "ifHCOutMulticastPkts", "counter"),
    (13, "ifHCOutBroadcastPkts", "counter"), (14, "ifLinkUpDownTrapEnable", "gauge"),
    (15, "ifHighSpeed", "gauge"), (16, "ifPromiscuousMode", "gauge"),
    (17, "ifConnectorPresent", "gauge"), (18, "ifAlias", "DisplayString"),
    (19, "ifCounterDiscontinuityTime", "gauge"),
]


# The columns monitord's poller walks for every device (collectors/snmp/poller.py IF_COLUMNS).
MONITORD_COLUMNS = {(IF_TABLE, c) for c in (2, 5, 7, 8, 10, 13, 14, 16, 19, 20)} | \
    {(IF_X_TABLE, c) for c in (1, 6, 10, 15, 18)}


def exporter_config(lookups: str, columns: str = "monitord", max_repetitions: int = 25) -> str:
    """A hand-written snmp.yml (0.21 format: auth inside the module) for IF-MIB, numeric OIDs.

    `columns="monitord"` walks the 15 columns monitord polls (names, alias, status, speed,
    32- and 64-bit octets, errors, discards) and GETs sysDescr, sysUpTime and sysName, the
    same data monitord's poll fetches; `"all"` walks every ifTable and ifXTable column
    (2,000 varbinds for 50 interfaces). `lookups="name"` labels each metric with ifName looked
    up by ifIndex (like monitord's labels); `"all"` adds ifAlias and ifDescr like the upstream
    generator's if_mib module; `"none"` only ifIndex.
    """
    names = {"all": [(18, "ifAlias", IF_X_TABLE), (2, "ifDescr", IF_TABLE),
                     (1, "ifName", IF_X_TABLE)],
             "name": [(1, "ifName", IF_X_TABLE)], "none": []}[lookups]
    chosen = [(table, col, name, typ)
              for table, cols in ((IF_TABLE, IF_COLUMNS), (IF_X_TABLE, IFX_COLUMNS))
              for col, name, typ in cols
              if columns == "all" or (table, col) in MONITORD_COLUMNS]
    if columns == "all":
        walk = [IF_TABLE, IF_X_TABLE]
        gets: list[tuple[str, str, str]] = []
    else:
        walk = [f"{table}.{col}" for table, col, _n, _t in chosen]
        gets = [("1.3.6.1.2.1.1.1.0", "sysDescr", "DisplayString"),
                ("1.3.6.1.2.1.1.3.0", "sysUpTime", "gauge"),
                ("1.3.6.1.2.1.1.5.0", "sysName", "DisplayString")]
    out = ["if_mib:", "  walk:", *[f"  - {w}" for w in walk]]
    if gets:
        out += ["  get:", *[f"  - {oid}" for oid, _n, _t in gets]]
    out.append("  metrics:")
    for oid, name, typ in gets:
        out += [f"  - name: {name}", f"    oid: {oid.rsplit('.', 1)[0]}", f"    type: {typ}"]
    for table, col, name, typ in chosen:
        out += [f"  - name: {name}", f"    oid: {table}.{col}", f"    type: {typ}",
                "    indexes:", "    - labelname: ifIndex", "      type: gauge"]
        if names:
            out.append("    lookups:")
            for lcol, lname, ltable in names:
                out += ["    - labels: [ifIndex]", f"      labelname: {lname}",
                        f"      oid: {ltable}.{lcol}", "      type: DisplayString"]
    out += ["  version: 2", f"  max_repetitions: {max_repetitions}", "  retries: 2",
            "  timeout: 5s", "  auth:", f"    community: {COMMUNITY}"]
    return "\n".join(out) + "\n"


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc/PID/stat, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pdeathsig() -> None:
    """The exporter dies with this script even if the script is killed."""
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class Exporter:
    def __init__(self, workdir: Path, lookups: str, columns: str, max_repetitions: int) -> None:
        self.config = workdir / "snmp.yml"
        self.config.write_text(exporter_config(lookups, columns, max_repetitions))
        self.port = free_port()
        self.log = open(workdir / "exporter.log", "wb")
        self.proc = subprocess.Popen(
            [EXPORTER, f"--config.file={self.config}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=_pdeathsig)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"exporter exited: {(workdir / 'exporter.log').read_text()}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("exporter did not start")

    def scrape(self, target: str) -> str:
        url = f"http://127.0.0.1:{self.port}/snmp?module=if_mib&target={target}"
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.read().decode()

    def poll_all(self, targets: list[str], concurrency: int) -> tuple[float, list[int]]:
        """CPU seconds the exporter spent scraping every target once, and the number of
        interface samples (ifHCInOctets lines) each scrape returned."""
        before = proc_cpu_seconds(self.proc.pid)
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            bodies = list(pool.map(self.scrape, targets))
        after = proc_cpu_seconds(self.proc.pid)
        counts = [sum(1 for line in b.splitlines() if line.startswith("ifHCInOctets{"))
                  for b in bodies]
        return after - before, counts

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# ---- monitord's side ----------------------------------------------------------------------
class MonitordWalk:
    """`--monitord-stage walk`: only monitord's transport + BER codec (V2Session.walk of the 15
    IF-MIB columns the poller uses, one shared socket, max-repetitions 25). A lower bound of the
    full poll, for finding where the time goes; the ratio the issue asks for is the `full`
    stage."""

    def __init__(self, targets: list[str], concurrency: int) -> None:
        from monitord.collectors.snmp import ber
        from monitord.collectors.snmp.poller import IF_COLUMNS as POLLER_COLUMNS
        from monitord.collectors.snmp.transport import SnmpTransport, Target, V2Session

        self.columns = list(POLLER_COLUMNS.values())
        self.if_hc_in = ber.oid_to_bytes(f"{IF_X_TABLE}.6")
        self.targets = targets
        self.concurrency = concurrency
        self.loop = asyncio.new_event_loop()
        self.transport = SnmpTransport()
        self.sessions = [V2Session(self.transport, Target(host=t, community=COMMUNITY.encode(),
                                                          version=ber.VERSION_2C, timeout=5.0,
                                                          retries=2)) for t in targets]

    async def _all(self) -> list[int]:
        sem = asyncio.Semaphore(self.concurrency)

        async def one(session) -> int:
            async with sem:
                return len((await session.walk(self.columns))[self.if_hc_in])
        return await asyncio.gather(*(one(s) for s in self.sessions))

    def poll_all(self) -> tuple[float, list[int]]:
        before = time.process_time()
        counts = self.loop.run_until_complete(self._all())
        return time.process_time() - before, counts


class MonitordFull:
    """`--monitord-stage full` (default): the daemon's own path for every device. One
    `SnmpCollector` per device built like `build_collectors` does (v2c on the shared socket,
    the config's default timeout/retries/max-repetitions, profiles `system` + `if-mib`, i.e.
    what a plain switch gets), `poll(now)` for each (walks, decode, rates, records, metrics
    snapshot), every record through `NetworkDetector` and `UpsDetector`, and once per round
    the body /metrics serves (`Metrics.exposition()`), i.e. one scrape per poll interval (the
    exporter's figure includes its exposition too). `now` advances 60 s per round, as the
    scheduler would.
    """

    def __init__(self, targets: list[str], concurrency: int) -> None:
        from monitord.collectors.snmp import ber
        from monitord.collectors.snmp.collector import (POLL_EVENT, SnmpCollector, SnmpMetrics,
                                                        v2_factory)
        from monitord.collectors.snmp.profiles import load_profiles
        from monitord.config import SnmpSettings
        from monitord.detectors.network import NetworkDetector
        from monitord.detectors.ups import UpsDetector
        from monitord.metrics import Metrics

        settings = SnmpSettings()
        self.settings = settings
        self.poll_event = POLL_EVENT
        self.daemon_metrics = Metrics()  # wired as the daemon does; /metrics = exposition()
        metrics = SnmpMetrics(self.daemon_metrics.registry)
        self.daemon_metrics.text_sources.append(metrics.render_text)
        profiles = load_profiles()
        self.collectors = [
            SnmpCollector(f"bench-{i:03d}", v2_factory(
                t, 161, COMMUNITY, ber.VERSION_2C, settings.timeout.total_seconds(),
                settings.retries, settings.max_repetitions), ["system", "if-mib"], profiles,
                metrics)
            for i, t in enumerate(targets)]
        self.detectors = [NetworkDetector(settings.thresholds), UpsDetector(settings.thresholds)]
        self.concurrency = concurrency
        self.loop = asyncio.new_event_loop()
        self.now = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)
        self.findings = 0
        self.exposition_bytes = 0

    async def _all(self) -> list[int]:
        sem = asyncio.Semaphore(self.concurrency)
        now = self.now
        detectors = self.detectors

        async def one(collector) -> int:
            async with sem:
                records = await collector.poll(now)
            interfaces = -1
            for record in records:
                for detector in detectors:
                    self.findings += len(detector.observe(record))
                if getattr(record, "kind", None) == self.poll_event:
                    result = record.fields["result"]
                    interfaces = len(result.interfaces) if result.ok else 0
            return interfaces
        return await asyncio.gather(*(one(c) for c in self.collectors))

    def poll_all(self) -> tuple[float, list[int]]:
        before = time.process_time()
        counts = self.loop.run_until_complete(self._all())
        middle = time.process_time()
        self.exposition_bytes = len(self.daemon_metrics.exposition())
        cpu = time.process_time() - before
        n = len(self.collectors)
        self.detail = (f"poll+detectors {(middle - before) * 1000 / n:.2f} ms, exposition "
                       f"{(cpu - (middle - before)) * 1000 / n:.2f} ms "
                       f"({self.exposition_bytes // n} bytes/device), findings {self.findings}")
        self.now += timedelta(seconds=60)
        return cpu, counts


def _fmt(ms: float) -> str:
    return f"{ms:8.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--namespaces", type=int, default=4)
    parser.add_argument("--interfaces", type=int, default=48,
                        help="veth interfaces per agent (+ lo + uplink = 50 by default)")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (after 1 warm-up)")
    parser.add_argument("--exporter-lookups", choices=["all", "name", "none"], default="name",
                        help="labels looked up per metric: name = ifName (like monitord's)")
    parser.add_argument("--quick", action="store_true", help="40 devices, 2 namespaces, 2 rounds")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile one extra monitord round (not counted)")
    parser.add_argument("--exporter-columns", choices=["monitord", "all"], default="monitord",
                        help="monitord = the 15 columns monitord polls; all = all 41 (2,000 "
                             "varbinds)")
    parser.add_argument("--exporter-max-repetitions", type=int, default=25,
                        help="the generator's default is 25")
    parser.add_argument("--monitord-stage", choices=["full", "walk"], default="full",
                        help="full = the daemon's whole poll; walk = transport + codec only")
    parser.add_argument("--no-monitord", action="store_true", help="measure only the exporter")
    args = parser.parse_args()
    if args.quick:
        args.devices, args.namespaces, args.rounds = 40, 2, 2
    reason = snmpd_ns_skip_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    if not os.path.exists(EXPORTER):
        print(f"{EXPORTER} is missing: apt-get install -y prometheus-snmp-exporter",
              file=sys.stderr)
        return 2
    per_ns = -(-args.devices // args.namespaces)
    cleanup_stale()
    workdir = Path(tempfile.mkdtemp(prefix="snmp-bench-"))
    agents: list[SnmpdNamespace] = []
    exporter = None
    try:
        t0 = time.monotonic()
        for _ in range(args.namespaces):
            agent = SnmpdNamespace(interfaces=args.interfaces, community=COMMUNITY,
                                   extra_addresses=per_ns - 1)
            agents.append(agent)
            agent.__enter__()
        targets = [a for agent in agents for a in agent.addresses][: args.devices]
        ifaces = args.interfaces + 2
        varbinds = len(agents[0].walk(IF_TABLE)) + len(agents[0].walk(IF_X_TABLE))
        print(f"{len(targets)} devices on {len(agents)} snmpd agents "
              f"({per_ns} addresses each), {varbinds} varbinds per ifTable+ifXTable walk; "
              f"set up in {time.monotonic() - t0:.1f}s")

        exporter = Exporter(workdir, args.exporter_lookups, args.exporter_columns,
                            args.exporter_max_repetitions)
        print(f"exporter module: {args.exporter_columns} columns, labels "
              f"{args.exporter_lookups}, max_repetitions {args.exporter_max_repetitions}")
        exporter.poll_all(targets, args.concurrency)  # warm-up
        poller = None
        if not args.no_monitord:
            poller = (MonitordFull if args.monitord_stage == "full" else MonitordWalk)(
                targets, args.concurrency)
            poller.poll_all()  # warm-up: primes the rates
        # Rounds alternate between the two pollers so that load from anything else on the
        # machine falls on both alike; each figure is the median over the rounds.
        exp_ms: list[float] = []
        mon_ms: list[float] = []
        profiler = cProfile.Profile() if args.profile else None
        for r in range(args.rounds):
            t = time.monotonic()
            cpu, counts = exporter.poll_all(targets, args.concurrency)
            if set(counts) != {ifaces}:
                raise SystemExit(f"exporter scrapes incomplete: {sorted(set(counts))}")
            exp_ms.append(cpu * 1000 / len(targets))
            print(f"round {r + 1} exporter: {_fmt(exp_ms[-1])} CPU/device, "
                  f"{counts[0]} interfaces/device, wall {time.monotonic() - t:.1f}s")
            if poller is None:
                continue
            t = time.monotonic()
            cpu, counts = poller.poll_all()
            if set(counts) != {ifaces}:
                raise SystemExit(f"monitord polls incomplete: {sorted(set(counts))}")
            mon_ms.append(cpu * 1000 / len(targets))
            print(f"round {r + 1} monitord: {_fmt(mon_ms[-1])} CPU/device, "
                  f"{counts[0]} interfaces/device, wall {time.monotonic() - t:.1f}s"
                  + (f"; {poller.detail}" if getattr(poller, "detail", None) else ""))
        exporter.stop()
        exporter = None
        exp = statistics.median(exp_ms)
        print(f"prometheus-snmp-exporter: {exp:.2f} ms CPU per device (median of {args.rounds})")
        if poller is None:
            return 0
        mon = statistics.median(mon_ms)
        print(f"monitord ({args.monitord_stage}): {mon:.2f} ms CPU per device "
              f"(median of {args.rounds})")
        if profiler:  # an extra round: the profiler's overhead stays out of the figures
            profiler.enable()
            poller.poll_all()
            profiler.disable()
            buf = io.StringIO()
            pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(25)
            print(buf.getvalue())
        print(f"ratio monitord/exporter CPU per device: {mon / exp:.2f}x")
        return 0
    finally:
        if exporter:
            exporter.stop()
        for agent in agents:
            agent.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
