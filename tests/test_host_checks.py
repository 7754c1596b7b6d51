"""Host health: psutil on this machine with thresholds set so that they trip and so that they
don't; expected processes and ports against the test's own process and sockets; and the pure
detector on synthetic series (time-to-full, NIC errors, a remote device's samples)."""

from __future__ import annotations

import os
import socket
import sys
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import psutil
import pytest

from monitord.collectors.host import HostCollector, run_host_check
from monitord.config import HostThresholds
from monitord.detectors.host import DEFAULTS, HostThresholdDetector, host_report, time_to_full
from monitord.records import FindingState, Sample, Severity

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


def thresholds(**over) -> SimpleNamespace:
    """All thresholds, including those HostThresholds may not have yet (read with getattr)."""
    return SimpleNamespace(**{**DEFAULTS, **over})


def poll_findings(detector: HostThresholdDetector, collector: HostCollector, at=None):
    samples = collector.poll(at or datetime.now(timezone.utc))
    return samples, [f for s in samples for f in detector.observe(s)]


def kinds(findings) -> set[str]:
    return {f.kind for f in findings}


# -- psutil on this machine ---------------------------------------------------------------------

def test_samples_are_host_metrics_with_a_device_name_never_psutil_objects():
    samples = HostCollector(device="srv-test").poll(datetime.now(timezone.utc))
    metrics = {s.metric for s in samples}
    for metric in ("host_cpu_percent", "host_memory_percent", "host_swap_percent",
                   "host_load_per_cpu", "host_load1", "host_disk_used_percent",
                   "host_disk_free_bytes", "host_inodes_used_percent"):
        assert metric in metrics, metric
    assert all(s.device == "srv-test" and isinstance(s.value, float | int) for s in samples)
    root = [s for s in samples if s.metric == "host_disk_used_percent" and
            s.labels["mount"] == "/"]
    assert root and 0 < root[0].value < 100
    inodes = [s for s in samples if s.metric == "host_inodes_used_percent"
              and s.labels["mount"] == "/"]
    vfs = os.statvfs("/")
    if vfs.f_files:
        assert inodes and inodes[0].value == pytest.approx(
            100 * (vfs.f_files - vfs.f_ffree) / vfs.f_files, abs=1)


def test_disk_threshold_of_1_percent_fires_and_100_percent_does_not():
    collector = HostCollector(device="srv-test")
    low = HostThresholdDetector(HostThresholds(disk_used_percent=1, consecutive=1))
    _samples, findings = poll_findings(low, collector)
    disk = [f for f in findings if f.kind == "disk_full"]
    assert disk and disk[0].state is FindingState.FIRING
    assert disk[0].category.value == "server" and disk[0].severity is Severity.HIGH
    assert disk[0].dedup_key == f"disk_full:srv-test:{disk[0].subject}"
    assert "hours_to_full" in disk[0].evidence

    high = HostThresholdDetector(HostThresholds(disk_used_percent=100, consecutive=1))
    _samples, findings = poll_findings(high, collector)
    assert "disk_full" not in kinds(findings)


def test_inodes_memory_and_swap_trip_at_tiny_thresholds_and_not_at_100():
    collector = HostCollector(device="srv-test")
    tripping = HostThresholdDetector(thresholds(inodes_used_percent=0.0001, memory_percent=0.01,
                                                consecutive=1))
    _samples, findings = poll_findings(tripping, collector)
    assert {"inodes_full", "memory_high"} <= kinds(findings)
    quiet = HostThresholdDetector(thresholds(inodes_used_percent=100, memory_percent=100,
                                             swap_percent=100, cpu_percent=100,
                                             load_per_cpu=10_000, consecutive=1))
    _samples, findings = poll_findings(quiet, collector)
    assert not kinds(findings) & {"inodes_full", "memory_high", "swap_high", "cpu_high",
                                  "load_high", "disk_full"}


def test_consecutive_samples_before_firing_and_the_first_good_one_clears():
    collector = HostCollector(device="srv-test")
    detector = HostThresholdDetector(thresholds(memory_percent=0.01, consecutive=3))
    results = [kinds(poll_findings(detector, collector)[1]) for _ in range(3)]
    assert "memory_high" not in results[0] and "memory_high" not in results[1]
    assert "memory_high" in results[2]
    detector.thresholds = thresholds(memory_percent=100, consecutive=3)
    _samples, findings = poll_findings(detector, collector)
    cleared = [f for f in findings if f.kind == "memory_high"]
    assert cleared and cleared[0].state is FindingState.CLEARED


def test_expected_process_present_by_name_and_cmdline_and_a_made_up_one_is_down():
    me = psutil.Process()
    collector = HostCollector(device="srv-test", processes=[
        {"label": "this-python", "name": me.name()},
        {"label": "this-test", "cmdline": " ".join(me.cmdline()[1:2]) or sys.executable},
        {"label": "ghost", "name": "monitord-no-such-process-xyz"},
    ])
    detector = HostThresholdDetector(thresholds(consecutive=1))
    samples, findings = poll_findings(detector, collector)
    counts = {s.labels["process"]: s.value for s in samples if s.metric == "host_process_count"}
    assert counts["this-python"] >= 1 and counts["this-test"] >= 1 and counts["ghost"] == 0
    down = [f for f in findings if f.kind == "process_down"]
    assert [f.subject for f in down] == ["ghost"]
    assert down[0].dedup_key == "process_down:srv-test:ghost"


def test_a_port_the_test_listens_on_is_seen_and_a_closed_one_fires():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    open_port = listener.getsockname()[1]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    try:
        collector = HostCollector(device="srv-test", ports=[open_port, f"{closed_port}/tcp"])
        detector = HostThresholdDetector(thresholds(consecutive=1))
        samples, findings = poll_findings(detector, collector)
        listening = {s.labels["port"]: s.value for s in samples
                     if s.metric == "host_port_listening"}
        assert listening == {f"{open_port}/tcp": 1.0, f"{closed_port}/tcp": 0.0}
        assert [f.subject for f in findings if f.kind == "port_not_listening"] == \
            [f"{closed_port}/tcp"]
    finally:
        listener.close()
    # the port closes: the next poll fires for it too
    samples, findings = poll_findings(detector, collector)
    assert f"{open_port}/tcp" in {f.subject for f in findings if f.kind == "port_not_listening"}


def test_nic_error_rates_are_per_second_between_polls():
    clock = iter([0.0, 10.0, 20.0])
    collector = HostCollector(device="srv-test", clock=lambda: next(clock))
    samples = collector.poll(datetime.now(timezone.utc))
    rates = [s for s in samples if s.metric == "host_nic_errors_per_second"]
    assert rates and all(s.value >= 0 and "nic" in s.labels for s in rates)


def test_run_host_check_is_the_json_of_check_host():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        settings = SimpleNamespace(processes=["monitord-no-such-process-xyz"], ports=[port])
        report = run_host_check(settings, HostThresholds(disk_used_percent=1),
                                sample_seconds=0.1)
    finally:
        listener.close()
    assert report["cpu"]["percent"] is not None and report["memory"]["percent"] > 0
    root = next(d for d in report["disks"] if d["mount"] == "/")
    assert 0 < root["used_percent"] < 100 and "inodes_used_percent" in root
    assert report["ports"] == [{"port": f"{port}/tcp", "proto": "tcp", "listening": True}]
    assert report["processes"][0]["ok"] is False
    assert {"disk_full", "process_down"} <= {f["kind"] for f in report["findings"]}
    assert report["ok"] is False


# -- the pure detector on synthetic series ------------------------------------------------------

def disk_series(start: float, per_hour: float, count: int, step=timedelta(minutes=10),
                device="srv-remote", mount="/var"):
    return [Sample(device, "host_disk_used_percent",
                   start + per_hour * (i * step.total_seconds() / 3600), T0 + i * step,
                   {"mount": mount}) for i in range(count)]


def test_time_to_full_from_a_linear_regression():
    points = [(i * 3600.0, 50.0 + 2.0 * i) for i in range(10)]  # 2 %/h, last 68 %
    hours, slope = time_to_full(points)
    assert slope == pytest.approx(2.0)
    assert hours == pytest.approx(16.0)
    assert time_to_full([(0, 50.0), (3600, 50.0)])[0] is None      # flat
    assert time_to_full([(0, 60.0), (3600, 55.0)])[0] is None      # shrinking
    assert time_to_full([(0, 99.0), (3600, 100.0)])[0] == 0.0      # already full
    noisy = [(i * 600.0, 40 + i * 0.5 + (0.3 if i % 2 else -0.3)) for i in range(30)]
    hours, slope = time_to_full(noisy)
    assert slope == pytest.approx(3.0, rel=0.05) and hours == pytest.approx(
        (100 - noisy[-1][1]) / slope, rel=0.01)


def test_a_filling_disk_fires_before_the_threshold_with_hours_to_full_as_evidence():
    detector = HostThresholdDetector(thresholds(disk_used_percent=90, disk_hours_to_full=24,
                                                consecutive=2))
    # 60 % rising 3 %/h, a sample every 10 minutes: full in ~13 h after 2 hours of samples
    findings = [f for s in disk_series(60, 3.0, 13) for f in detector.observe(s)]
    firing = [f for f in findings if f.state is FindingState.FIRING]
    assert firing and all(f.kind == "disk_full" for f in firing)
    last = firing[-1]
    assert last.evidence["hours_to_full"] == pytest.approx((100 - 66) / 3.0, rel=0.02)
    assert last.evidence["filling"] is True and last.severity is Severity.MEDIUM
    assert last.dedup_key == "disk_full:srv-remote:/var" and last.device == "srv-remote"
    # the growth stops (files cleaned up): the trend flattens and the finding clears
    cleaned = [Sample("srv-remote", "host_disk_used_percent", 40.0,
                      T0 + timedelta(hours=3, minutes=i * 10), {"mount": "/var"})
               for i in range(1, 40)]
    after = [f for s in cleaned for f in detector.observe(s)]
    assert any(f.state is FindingState.CLEARED for f in after)


def test_a_flat_disk_under_the_threshold_never_fires_and_over_it_has_no_hours():
    detector = HostThresholdDetector(thresholds(disk_used_percent=90, consecutive=1))
    flat = disk_series(70, 0.0, 20)
    assert [f for s in flat for f in detector.observe(s)] == []
    full = [f for s in disk_series(95, 0.0, 6, mount="/data") for f in detector.observe(s)]
    assert full and full[-1].severity is Severity.HIGH
    assert full[-1].evidence["hours_to_full"] is None


def test_a_remote_server_polled_over_snmp_speaks_the_same_vocabulary():
    """No psutil here: an SNMP poller emitting host_* samples gets the same kinds."""
    detector = HostThresholdDetector(thresholds(consecutive=1))
    at = T0
    records = [
        Sample("db-01", "host_cpu_percent", 97.0, at),
        Sample("db-01", "host_load_per_cpu", 3.5, at),
        Sample("db-01", "host_memory_percent", 95.0, at),
        Sample("db-01", "host_swap_percent", 85.0, at),
        Sample("db-01", "host_inodes_used_percent", 99.0, at, {"mount": "/"}),
        Sample("db-01", "host_nic_errors_per_second", 12.5, at, {"nic": "eth1"}),
        Sample("db-01", "host_process_count", 0.0, at, {"process": "postgres"}),
        Sample("db-01", "host_port_listening", 0.0, at, {"port": "5432/tcp"}),
    ]
    found = {f.kind: f for r in records for f in detector.observe(r)}
    assert set(found) == {"cpu_high", "load_high", "memory_high", "swap_high", "inodes_full",
                          "nic_errors", "process_down", "port_not_listening"}
    assert all(f.device == "db-01" and f.category.value == "server" for f in found.values())
    assert found["nic_errors"].subject == "eth1"
    # back to normal: everything clears
    later = T0 + timedelta(minutes=1)
    healthy = [Sample("db-01", "host_cpu_percent", 10.0, later),
               Sample("db-01", "host_process_count", 2.0, later, {"process": "postgres"}),
               Sample("db-01", "host_port_listening", 1.0, later, {"port": "5432/tcp"}),
               Sample("db-01", "host_nic_errors_per_second", 0.0, later, {"nic": "eth1"})]
    cleared = [f for r in healthy for f in detector.observe(r)]
    assert {f.kind for f in cleared} == {"cpu_high", "process_down", "port_not_listening",
                                         "nic_errors"}
    assert all(f.state is FindingState.CLEARED for f in cleared)


def test_host_report_is_pure_on_samples():
    samples = [Sample("srv", "host_cpu_percent", 12.0, T0),
               Sample("srv", "host_disk_used_percent", 95.0, T0, {"mount": "/", "fstype": "ext4"}),
               Sample("srv", "host_inodes_used_percent", 3.0, T0,
                      {"mount": "/", "fstype": "ext4"})]
    report = host_report(samples, HostThresholds())
    assert report["disks"] == [{"mount": "/", "fstype": "ext4", "used_percent": 95.0,
                                "inodes_used_percent": 3.0}]
    assert [f["kind"] for f in report["findings"]] == ["disk_full"]


def test_disk_io_error_counters_where_the_kernel_shows_them(tmp_path):
    """This VM's disks (virtio) have no `ioerr_cnt`, and a real I/O error cannot be made on
    purpose, so the collector reads a directory shaped like /sys/block (the only stand-in in
    these tests): a SCSI disk with 0x1f errors, one with an unreadable counter, one without."""
    from monitord.collectors.host import HostCollector
    for disk, text in (("sda", "0x1f\n"), ("sdb", "garbage"), ("vda", None)):
        device = tmp_path / disk / "device"
        device.mkdir(parents=True)
        if text is not None:
            (device / "ioerr_cnt").write_text(text)
    collector = HostCollector("io-host")
    collector.sys_block = tmp_path
    samples = [s for s in collector.poll(datetime.now(timezone.utc))
               if s.metric == "host_disk_io_errors_total"]
    assert [(s.labels["disk"], s.value) for s in samples] == [("sda", 31.0)]
