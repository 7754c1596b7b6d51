"""Health of the host monitord runs on, read with psutil (blocking: runs in a worker thread).

A first cut for the daemon's pipeline and the demo: CPU, memory, swap, load per CPU and disk
space per mount. The server-health issue extends it (inodes, processes, ports, NICs)."""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime

import psutil

from monitord.records import Sample

log = logging.getLogger("monitord.collectors.host")
_SKIP_FS = {"squashfs", "tmpfs", "devtmpfs", "overlay", "proc", "sysfs", "nsfs", "tracefs",
            "cgroup", "cgroup2", "autofs", "ramfs", "fuse.lxcfs"}


class HostCollector:
    name = "host"

    def __init__(self, device: str | None = None) -> None:
        self.device = device or socket.gethostname()
        psutil.cpu_percent(interval=None)  # prime: the first reading is since this call

    def poll(self, now: datetime) -> list[Sample]:
        d = self.device
        samples = [
            Sample(d, "host_cpu_percent", psutil.cpu_percent(interval=None), now),
            Sample(d, "host_memory_percent", psutil.virtual_memory().percent, now),
            Sample(d, "host_swap_percent", psutil.swap_memory().percent, now),
            Sample(d, "host_load_per_cpu", os.getloadavg()[0] / (psutil.cpu_count() or 1), now),
        ]
        for part in psutil.disk_partitions(all=False):
            if part.fstype in _SKIP_FS:
                continue
            try:
                usage = psutil.disk_usage(part.mountpoint)
            except OSError as exc:  # one unreadable mount must not spoil the rest
                log.debug("disk usage unavailable mount=%s error=%s", part.mountpoint, exc)
                continue
            samples.append(Sample(d, "host_disk_used_percent", usage.percent, now,
                                  {"mount": part.mountpoint}))
        return samples
