"""Health of the host monitord runs on, read with psutil (blocking: runs in a worker thread).

Everything becomes a `Sample` named `host_*` with a device name and labels, never a psutil
object, so that the detector (`detectors/host.py`) reads the same vocabulary from this collector
and, later, from remote servers polled over SNMP (HOST-RESOURCES / UCD):

| metric | labels | value |
| --- | --- | --- |
| host_cpu_percent, host_memory_percent, host_swap_percent | | percent |
| host_load1, host_load5, host_load15, host_load_per_cpu | | load average (per CPU) |
| host_memory_available_bytes, host_cpu_count | | |
| host_disk_used_percent, host_disk_free_bytes, host_disk_total_bytes | mount, fstype | |
| host_inodes_used_percent, host_inodes_free | mount, fstype | statvfs |
| host_nic_errors_per_second | nic | errin+errout+dropin+dropout per second since last poll |
| host_nic_errors_total, host_nic_drops_total | nic | raw counters |
| host_process_count | process | running processes matching an expected process |
| host_port_listening | port, proto, address | 1 when something listens, else 0 |
| host_disk_io_errors_total | disk | I/O errors the kernel counted (SCSI/SATA `ioerr_cnt`, where visible) |
| host_clock_offset_seconds | | this clock minus the NTP server's (SNTP, when `ntp_server` is set) |
| host_ntp_reachable | | 1 when the NTP server gave a usable answer, else 0 |

One unreadable resource is logged and skipped; the rest of the poll goes on."""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import psutil

from monitord.records import Sample

log = logging.getLogger("monitord.collectors.host")
_SKIP_FS = {"squashfs", "tmpfs", "devtmpfs", "overlay", "proc", "sysfs", "nsfs", "tracefs",
            "cgroup", "cgroup2", "autofs", "ramfs", "fuse.lxcfs"}
_SKIP_NICS = ("lo",)


@dataclass(frozen=True, slots=True)
class ExpectedProcess:
    """A process that must be running: `name` matches the process name exactly, `cmdline` is a
    substring of its command line; with both, both must match. `label` names it in findings."""

    label: str
    name: str | None = None
    cmdline: str | None = None
    min_count: int = 1

    def matches(self, proc_name: str, cmdline: str) -> bool:
        """`name` is the kernel's process name (comm, at most 15 characters) or the base name
        of argv[0], so `python3` finds `/usr/bin/python3 app.py` whichever the kernel shows."""
        if self.name is not None and proc_name != self.name and \
                os.path.basename(cmdline.split(" ", 1)[0]) != self.name:
            return False
        if self.cmdline is not None and self.cmdline not in cmdline:
            return False
        return self.name is not None or self.cmdline is not None


@dataclass(frozen=True, slots=True)
class ExpectedPort:
    """A port something must listen on (TCP LISTEN, or a bound UDP socket). `address` narrows
    it to one local address; none means any (0.0.0.0, ::, or a specific one)."""

    port: int
    proto: str = "tcp"
    address: str | None = None

    @property
    def label(self) -> str:
        where = f"{self.address}:" if self.address else ""
        return f"{where}{self.port}/{self.proto}"


def _coerce_processes(items: Iterable[object]) -> tuple[ExpectedProcess, ...]:
    """Accept ExpectedProcess, plain names, dicts or config models with the same fields."""
    out = []
    for item in items or ():
        if isinstance(item, ExpectedProcess):
            out.append(item)
        elif isinstance(item, str):
            out.append(ExpectedProcess(label=item, name=item))
        else:
            get = item.get if isinstance(item, dict) else lambda k, d=None: getattr(item, k, d)
            name, cmdline = get("name"), get("cmdline")
            out.append(ExpectedProcess(label=get("label") or name or cmdline, name=name,
                                       cmdline=cmdline, min_count=int(get("min_count", 1) or 1)))
    return tuple(out)


def _coerce_ports(items: Iterable[object]) -> tuple[ExpectedPort, ...]:
    out = []
    for item in items or ():
        if isinstance(item, ExpectedPort):
            out.append(item)
        elif isinstance(item, int):
            out.append(ExpectedPort(item))
        elif isinstance(item, str):  # "5432", "5432/tcp", "127.0.0.1:53/udp"
            spec, _sep, proto = item.partition("/")
            address, _c, port = spec.rpartition(":")
            out.append(ExpectedPort(int(port), proto or "tcp", address.strip("[]") or None))
        else:
            get = item.get if isinstance(item, dict) else lambda k, d=None: getattr(item, k, d)
            out.append(ExpectedPort(int(get("port")), get("proto", "tcp") or "tcp",
                                    get("address")))
    return tuple(out)


class HostCollector:
    name = "host"

    def __init__(self, device: str | None = None, processes: Sequence[object] = (),
                 ports: Sequence[object] = (), clock=time.monotonic,
                 ntp_server: str | None = None, ntp_timeout: float = 2.0) -> None:
        self.device = device or socket.gethostname()
        self.processes = _coerce_processes(processes)
        self.ports = _coerce_ports(ports)
        self.ntp_server = ntp_server
        self.ntp_timeout = ntp_timeout
        self.sys_block = Path("/sys/block")
        self._clock = clock
        self._nic_last: tuple[float, dict[str, tuple[int, int]]] | None = None
        psutil.cpu_percent(interval=None)  # prime: the first reading is since this call
        self._nic_rates()  # prime the NIC counters likewise

    def poll(self, now: datetime) -> list[Sample]:
        samples: list[Sample] = []
        for part in (self._cpu_memory, self._disks, self._nics, self._process_samples,
                     self._port_samples, self._clock_samples, self._disk_error_samples):
            try:
                samples.extend(part(now))
            except Exception as exc:  # one failing resource must not spoil the rest
                log.warning("host check failed part=%s error=%s", part.__name__,
                            type(exc).__name__, exc_info=True)
        return samples

    # -- parts ------------------------------------------------------------------------------

    def _cpu_memory(self, now: datetime) -> list[Sample]:
        d = self.device
        cpus = psutil.cpu_count() or 1
        memory = psutil.virtual_memory()
        load1, load5, load15 = os.getloadavg()
        return [
            Sample(d, "host_cpu_percent", psutil.cpu_percent(interval=None), now),
            Sample(d, "host_cpu_count", float(cpus), now),
            Sample(d, "host_memory_percent", memory.percent, now),
            Sample(d, "host_memory_available_bytes", float(memory.available), now),
            Sample(d, "host_swap_percent", psutil.swap_memory().percent, now),
            Sample(d, "host_load1", load1, now),
            Sample(d, "host_load5", load5, now),
            Sample(d, "host_load15", load15, now),
            Sample(d, "host_load_per_cpu", load1 / cpus, now),
        ]

    def _disks(self, now: datetime) -> list[Sample]:
        samples = []
        seen: set[str] = set()
        for part in psutil.disk_partitions(all=False):
            if part.fstype in _SKIP_FS or part.mountpoint in seen:
                continue
            seen.add(part.mountpoint)
            labels = {"mount": part.mountpoint, "fstype": part.fstype}
            try:
                usage = psutil.disk_usage(part.mountpoint)
                vfs = os.statvfs(part.mountpoint)
            except OSError as exc:  # one unreadable mount must not spoil the rest
                log.debug("disk usage unavailable mount=%s error=%s", part.mountpoint, exc)
                continue
            samples += [
                Sample(self.device, "host_disk_used_percent", usage.percent, now, labels),
                Sample(self.device, "host_disk_free_bytes", float(usage.free), now, labels),
                Sample(self.device, "host_disk_total_bytes", float(usage.total), now, labels),
            ]
            if vfs.f_files > 0:  # some filesystems (btrfs, vfat) have no inode table
                used = vfs.f_files - vfs.f_ffree
                samples += [
                    Sample(self.device, "host_inodes_used_percent",
                           round(100.0 * used / vfs.f_files, 2), now, labels),
                    Sample(self.device, "host_inodes_free", float(vfs.f_favail), now, labels),
                ]
        return samples

    def _nic_rates(self) -> dict[str, tuple[float, int, int]]:
        """nic -> (errors+drops per second since the last call, errors total, drops total)."""
        counters = psutil.net_io_counters(pernic=True)
        at = self._clock()
        current = {nic: (c.errin + c.errout, c.dropin + c.dropout)
                   for nic, c in counters.items() if nic not in _SKIP_NICS}
        previous, self._nic_last = self._nic_last, (at, current)
        if previous is None:
            return {}
        elapsed = at - previous[0]
        rates = {}
        for nic, (errors, drops) in current.items():
            before = previous[1].get(nic)
            if before is None or elapsed <= 0:
                continue
            delta = (errors - before[0]) + (drops - before[1])
            if delta < 0:  # counters reset (driver reload): skip one interval
                continue
            rates[nic] = (delta / elapsed, errors, drops)
        return rates

    def _nics(self, now: datetime) -> list[Sample]:
        samples = []
        for nic, (rate, errors, drops) in sorted(self._nic_rates().items()):
            labels = {"nic": nic}
            samples += [Sample(self.device, "host_nic_errors_per_second", rate, now, labels),
                        Sample(self.device, "host_nic_errors_total", float(errors), now, labels),
                        Sample(self.device, "host_nic_drops_total", float(drops), now, labels)]
        return samples

    def _process_samples(self, now: datetime) -> list[Sample]:
        if not self.processes:
            return []
        counts = dict.fromkeys(self.processes, 0)
        for proc in psutil.process_iter(["name", "cmdline"]):
            try:
                name = proc.info.get("name") or ""
                cmdline = " ".join(proc.info.get("cmdline") or ())
            except (psutil.Error, OSError):
                continue
            for expected in self.processes:
                if expected.matches(name, cmdline):
                    counts[expected] += 1
        return [Sample(self.device, "host_process_count", float(count), now,
                       {"process": expected.label, "min_count": str(expected.min_count)})
                for expected, count in counts.items()]

    def _port_samples(self, now: datetime) -> list[Sample]:
        if not self.ports:
            return []
        listening = listening_sockets()
        samples = []
        for expected in self.ports:
            up = any(port == expected.port and proto == expected.proto and
                     (expected.address is None or address == expected.address
                      or address in ("0.0.0.0", "::"))
                     for proto, address, port in listening)
            samples.append(Sample(self.device, "host_port_listening", 1.0 if up else 0.0, now,
                                  {"port": expected.label, "proto": expected.proto}))
        return samples


    def _disk_error_samples(self, now: datetime) -> list[Sample]:
        """The kernel's I/O error count per SCSI/SATA disk (`device/ioerr_cnt`, hexadecimal).
        Virtual disks (virtio, NVMe) do not expose one: nothing is emitted for them."""
        samples = []
        for counter in sorted(self.sys_block.glob("*/device/ioerr_cnt")):
            disk = counter.parent.parent.name
            try:
                value = int(counter.read_text().strip(), 0)
            except (OSError, ValueError) as exc:  # unreadable or not a number: skip that disk
                log.debug("ioerr_cnt unreadable disk=%s error=%s", disk, type(exc).__name__)
                continue
            samples.append(Sample(self.device, "host_disk_io_errors_total", float(value), now,
                                  {"disk": disk}))
        return samples

    def _clock_samples(self, now: datetime) -> list[Sample]:
        if not self.ntp_server:
            return []
        host, port = _ntp_host_port(self.ntp_server)
        try:
            offset = sntp_offset(host, port, self.ntp_timeout)
        except (OSError, NtpError) as exc:  # unreachable or nonsense: no offset this time
            log.warning("NTP query failed server=%s error=%s", self.ntp_server,
                        exc if isinstance(exc, NtpError) else type(exc).__name__)
            return [Sample(self.device, "host_ntp_reachable", 0.0, now)]
        return [Sample(self.device, "host_ntp_reachable", 1.0, now),
                Sample(self.device, "host_clock_offset_seconds", round(offset, 6), now)]


# -- clock offset (SNTP, RFC 4330) ----------------------------------------------------------

NTP_EPOCH = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


class NtpError(Exception):
    """The server's answer is not a usable NTP reply (wrong size, mode, origin, stratum 0)."""


def _ntp_host_port(server: str) -> tuple[str, int]:
    if server.startswith("["):  # [v6]:port
        host, _sep, port = server[1:].partition("]")
        return host, int(port.lstrip(":") or 123)
    if server.count(":") == 1:
        host, port = server.split(":")
        return host, int(port)
    return server, 123


def _to_ntp(seconds: float) -> bytes:
    value = seconds + NTP_EPOCH
    return int(value).to_bytes(4, "big") + int((value % 1) * 2**32).to_bytes(4, "big")


def _from_ntp(raw: bytes) -> float:
    return int.from_bytes(raw[:4], "big") - NTP_EPOCH + int.from_bytes(raw[4:8], "big") / 2**32


def sntp_offset(host: str, port: int = 123, timeout: float = 2.0,
                wall=time.time) -> float:
    """Seconds this clock is AHEAD of the server's (negative: behind): one SNTP exchange,
    offset = ((t2 - t1) + (t3 - t4)) / 2, sign flipped to read "ours minus theirs"."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    infos = socket.getaddrinfo(host, port, family if ":" in host else 0, socket.SOCK_DGRAM)
    family, _type, _proto, _name, address = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        t1 = wall()
        transmit = _to_ntp(t1)
        request = bytes([0x23]) + bytes(39) + transmit  # LI 0, version 4, mode 3 (client)
        sock.sendto(request, address)
        deadline = time.monotonic() + timeout
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            reply, _peer = sock.recvfrom(512)
            t4 = wall()
            if len(reply) < 48:
                raise NtpError(f"a reply of {len(reply)} bytes (48 expected)")
            if reply[24:32] == transmit:
                break  # a reply to another request (stray or spoofed) is ignored
            if time.monotonic() >= deadline:
                raise NtpError("no reply to our request")
    mode, stratum = reply[0] & 0x07, reply[1]
    if mode not in (4, 5):
        raise NtpError(f"not a server reply (mode {mode})")
    if stratum == 0 or stratum > 15:
        raise NtpError(f"unsynchronised or kiss-of-death reply (stratum {stratum})")
    t2, t3 = _from_ntp(reply[32:40]), _from_ntp(reply[40:48])
    theirs_minus_ours = ((t2 - t1) + (t3 - t4)) / 2
    return -theirs_minus_ours


def listening_sockets() -> set[tuple[str, str, int]]:
    """(proto, local address, port) of every TCP LISTEN and bound UDP socket on this host."""
    found = set()
    for conn in psutil.net_connections(kind="inet"):
        if not conn.laddr:
            continue
        if conn.type == socket.SOCK_STREAM and conn.status == psutil.CONN_LISTEN:
            found.add(("tcp", conn.laddr.ip, conn.laddr.port))
        elif conn.type == socket.SOCK_DGRAM:
            found.add(("udp", conn.laddr.ip, conn.laddr.port))
    return found


def run_host_check(settings: object | None = None, thresholds: object | None = None, *,
                   device: str | None = None, sample_seconds: float = 1.0) -> dict:
    """One run of the host checks, as `monitord check host --json` prints it.

    `settings` is the host collector's settings (anything with optional `processes`, `ports`
    and `device` attributes, or None); `thresholds` the detector's (HostThresholds or None for
    the defaults). CPU percent and NIC rates need two readings, `sample_seconds` apart."""
    from monitord.detectors.host import host_report  # the report is the detector's, pure

    collector = HostCollector(device or getattr(settings, "device", None),
                              getattr(settings, "processes", ()) or (),
                              getattr(settings, "ports", ()) or (),
                              ntp_server=getattr(settings, "ntp_server", None))
    time.sleep(max(sample_seconds, 0.0))
    return host_report(collector.poll(datetime.now(timezone.utc)), thresholds)
