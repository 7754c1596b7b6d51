"""Live traffic between network namespaces this test creates (trafns-*, tests/traffic_ns.py),
captured by the real daemon on a mirror port: nmap -sS -> a port_scan incident within 5 s,
hping3 -S (bounded count and rate) -> a syn_flood incident, forged ARP replies (scapy) -> an
arp_spoof incident, each in the SOP workflow of the store (SQLite, and PostgreSQL for the scan).
And tcpreplay of a shared capture at a fixed rate into a veth -> the same findings as the
offline `analyze-pcap`. Every generator is bounded by count and by `timeout`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests import traffic_ns as lan
from tests.support import DaemonProcess, run_cli, shared_dir, write_config

pytestmark = pytest.mark.skipif(lan.available() is not None, reason=str(lan.available()))

CAPTURE = f"""\
collectors:
  host: {{enabled: false, interval: 1s, jitter: 0s}}
  capture:
    enabled: true
    interface: {lan.MONITOR}
    stats_interval: 1s
"""


@pytest.fixture(scope="module")
def segment():
    lan.setup_lan()
    yield
    lan.teardown()


def _incidents(db_url: str, kind: str) -> list[dict]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as c:
            rows = c.execute(text("SELECT number, kind, category, severity, status, workflow, "
                                  "step, evidence, recorded_at FROM incidents WHERE kind = :k"),
                             {"k": kind}).mappings().all()
    finally:
        engine.dispose()
    return [dict(r) for r in rows]


def _wait_for(db_url: str, kind: str, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _incidents(db_url, kind)
        if rows:
            return rows
        time.sleep(0.1)
    return []


def _evidence(row: dict) -> dict:
    ev = row["evidence"]
    return json.loads(ev) if isinstance(ev, str) else ev


def _daemon(tmp_path: Path, db_url: str) -> DaemonProcess:
    path, port = write_config(tmp_path, db_url)
    base = path.read_text()
    line = "collectors:\n  host: {enabled: false, interval: 1s, jitter: 0s}\n"
    assert line in base
    path.write_text(base.replace(line, CAPTURE))
    return DaemonProcess(path, port, tmp_path / "daemon.log").start()


def _run_ns(ns: str, *argv: str, limit: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(lan.ns_exec(ns, "timeout", str(int(limit)), *argv),
                          capture_output=True, text=True, timeout=limit + 10)


def test_live_scan_flood_and_arp_spoof_open_incidents(segment, sqlite_url, tmp_path):
    daemon = _daemon(tmp_path, sqlite_url)
    try:
        time.sleep(0.5)
        started = time.monotonic()
        scan = _run_ns("a", "nmap", "-sS", "-n", "-Pn", "-p", "1-1000", "-T4",
                       "--max-retries", "0", lan.HOSTS["v"])
        assert scan.returncode == 0, scan.stderr
        rows = _wait_for(sqlite_url, "port_scan", 5.0)
        elapsed = time.monotonic() - started
        assert rows, f"no port_scan incident within 5 s:\n{daemon.log()[-3000:]}"
        print(f"\nport_scan incident {rows[0]['number']} {elapsed:.2f}s after nmap started")
        assert elapsed < 5.0
        scan_row = rows[0]
        ev = _evidence(scan_row)
        assert ev["attacker"] == lan.HOSTS["a"] and ev["victim"] == lan.HOSTS["v"]
        assert ev["scan_type"] == "SYN"
        assert scan_row["category"] == "network_security" and scan_row["status"] == "open"
        assert scan_row["workflow"] and scan_row["step"], "the incident entered no SOP workflow"

        # SYN flood: 3000 SYNs at 1000/s to one port of x (x is only a victim here)
        flood = _run_ns("a", "hping3", "-S", "-p", "80", "-c", "3000", "-i", "u1000", "-q",
                        lan.HOSTS["x"])
        assert flood.returncode == 0, flood.stderr
        rows = _wait_for(sqlite_url, "syn_flood", 5.0)
        assert rows, f"no syn_flood incident:\n{daemon.log()[-3000:]}"
        ev = _evidence(rows[0])
        assert ev["victim"] == lan.HOSTS["x"] and ev["attacker"] == lan.HOSTS["a"]
        assert rows[0]["severity"] == "high" and rows[0]["workflow"]

        # ARP spoofing: a asks for v and v answers (the true binding), then x claims v's
        # address in unsolicited replies to a
        asked = _run_ns("a", sys.executable, "-c", _ASK_ARP.format(
            iface="trafh-a", a_mac=lan.mac_of("a", "trafh-a"), a_ip=lan.HOSTS["a"],
            v_ip=lan.HOSTS["v"]))
        assert asked.returncode == 0, asked.stderr
        time.sleep(0.3)
        forged = _run_ns("x", sys.executable, "-c", _FORGE_ARP.format(
            iface="trafh-x", x_mac=lan.mac_of("x", "trafh-x"),
            a_mac=lan.mac_of("a", "trafh-a"), a_ip=lan.HOSTS["a"], v_ip=lan.HOSTS["v"]))
        assert forged.returncode == 0, forged.stderr
        rows = _wait_for(sqlite_url, "arp_spoof", 5.0)
        assert rows, f"no arp_spoof incident:\n{daemon.log()[-3000:]}"
        ev = _evidence(rows[0])
        assert ev["attacker"] == lan.mac_of("x", "trafh-x")
        assert ev["impersonated_ip"] == lan.HOSTS["v"]
        assert "binding_changed" in ev["reasons"]

        # first-seen stations are info findings: counted, but below capture.min_severity
        assert not _incidents(sqlite_url, "new_device")
        metrics = daemon.get("/metrics")
        assert 'monitord_traffic_findings_total{kind="new_device"}' in metrics
        assert 'monitord_capture_packets_total{interface="trafmon0",protocol="tcp"}' in metrics
        assert "monitord_capture_kernel_drops_total" in metrics
        assert 'monitord_traffic_findings_total{kind="port_scan"}' in metrics
        # top talkers are the last interval's: scrape while a (bounded) stream is running
        stream = subprocess.Popen(lan.ns_exec("a", "timeout", "10", "hping3", "-S", "-p", "9",
                                              "-d", "200", "-c", "40", "-i", "u100000", "-q",
                                              lan.HOSTS["v"]),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        talker = f'address="{lan.HOSTS["a"]}",interface="{lan.MONITOR}",rank="1"'
        deadline = time.monotonic() + 4.0
        while talker not in metrics and time.monotonic() < deadline:
            time.sleep(0.3)
            metrics = daemon.get("/metrics")
        stream.wait(15)
        assert talker in metrics, "\n".join(line for line in metrics.splitlines()
                                             if "talker" in line or "packets_total" in line)
        assert metrics.count("monitord_capture_top_talker_bytes{") <= 10
    finally:
        assert daemon.stop() == 0


_ASK_ARP = """
from scapy.all import ARP, Ether, sendp
sendp(Ether(src="{a_mac}", dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc="{a_mac}", psrc="{a_ip}",
                                                          pdst="{v_ip}"),
      iface="{iface}", count=2, inter=0.1, verbose=False)
"""

_FORGE_ARP = """
from scapy.all import ARP, Ether, sendp
p = Ether(src="{x_mac}", dst="{a_mac}") / ARP(op=2, hwsrc="{x_mac}", psrc="{v_ip}",
                                             hwdst="{a_mac}", pdst="{a_ip}")
sendp(p, iface="{iface}", count=5, inter=0.1, verbose=False)
"""


def test_live_scan_incident_on_postgresql(segment, pg_url, tmp_path):
    daemon = _daemon(tmp_path, pg_url)
    try:
        time.sleep(0.5)
        started = time.monotonic()
        scan = _run_ns("v", "nmap", "-sS", "-n", "-Pn", "-p", "1-500", "-T4",
                       "--max-retries", "0", lan.HOSTS["a"])
        assert scan.returncode == 0, scan.stderr
        rows = _wait_for(pg_url, "port_scan", 5.0)
        assert rows and time.monotonic() - started < 5.0, daemon.log()[-3000:]
        assert _evidence(rows[0])["attacker"] == lan.HOSTS["v"]
    finally:
        assert daemon.stop() == 0


REPLAYED = ["scan_vertical_syn__chrissanders_synscan.pcapng",
            "bruteforce_ssh__zeek_sshguess.pcap",
            "dns_tunnel_iodine__dmachard_iodine.pcap"]


@pytest.mark.parametrize("name", REPLAYED)
def test_tcpreplay_at_fixed_rate_gives_the_offline_findings(name, tmp_path):
    pcap = shared_dir() / "pcaps" / name
    if not pcap.exists():
        pytest.skip(f"{pcap} not found")
    offline = run_cli("analyze-pcap", str(pcap), "--json")
    assert offline.returncode == 0, offline.stderr
    want = {(f["kind"], f["attacker"], f["victim"]) for f in json.loads(offline.stdout)
            if f["severity"] != "info"}
    assert want, "the offline run found nothing to compare"
    # the write end and the capture end are both inside trafns-rp
    write_end, capture_end = lan.replay_pair()
    try:
        packets = sum(1 for _ in __import__(
            "monitord.collectors.packets.pcapfile", fromlist=["read_packets"]).read_packets(pcap))
        cap = subprocess.Popen(lan.ns_exec("rp", sys.executable, "-m", "monitord", "capture",
                                           "-i", capture_end, "--duration", "60", "--count",
                                           str(packets), "--json"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = cap.stderr.readline()  # printed once the capture socket is open
        assert "capturing on" in ready, ready + cap.stderr.read()
        replay = subprocess.run(lan.ns_exec("rp", "timeout", "60", "tcpreplay", "-q",
                                            "--pps", "2000", "-i", write_end, str(pcap)),
                                capture_output=True, text=True, timeout=90)
        assert replay.returncode == 0, replay.stderr
        out, err = cap.communicate(timeout=70)
        assert cap.returncode == 0, err
        live = json.loads(out)
        got = {(f["kind"], f["attacker"], f["victim"]) for f in live["findings"]
               if f["severity"] != "info"}
        print(f"\n{name}: {live['stats']['packets']}/{packets} packets, offline {sorted(want)}, "
              f"live {sorted(got)}")
        assert live["stats"]["kernel_drops"] == 0
        assert got == want
    finally:
        subprocess.run(["ip", "netns", "del", f"{lan.PREFIX}rp"], check=False)


def test_kernel_filter_and_promiscuous_mode_on_the_mirror_port(segment):
    """The BPF filter runs in the kernel (only ARP reaches the socket while TCP flows), and
    promiscuous mode is on while the socket is open and off after."""
    from monitord.collectors.packets.decode import decode
    from monitord.collectors.packets.live import LiveCapture

    flags = Path(f"/sys/class/net/{lan.MONITOR}/flags")
    before = int(flags.read_text(), 16)
    with LiveCapture(lan.MONITOR, bpf="arp", promiscuous=True, timeout=0.2) as cap:
        assert int(flags.read_text(), 16) & 0x100, "IFF_PROMISC is not set"
        sent = _run_ns("a", "hping3", "-S", "-p", "22", "-c", "50", "-i", "u2000", "-q",
                       lan.HOSTS["v"], limit=10)
        assert sent.returncode == 0, sent.stderr
        asked = _run_ns("a", sys.executable, "-c", _ASK_ARP.format(
            iface="trafh-a", a_mac=lan.mac_of("a", "trafh-a"), a_ip=lan.HOSTS["a"],
            v_ip=lan.HOSTS["v"]))
        assert asked.returncode == 0, asked.stderr
        got = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            item = cap.recv()
            if item is not None:
                got.append(decode(item[0], item[1]))
        kernel = cap.kernel_stats()
    assert int(flags.read_text(), 16) & 0x100 == before & 0x100
    assert got and all(p is not None and p.arp is not None for p in got), got[:3]
    assert kernel.packets == len(got) and kernel.drops == 0
