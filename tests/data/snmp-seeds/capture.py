#!/usr/bin/env python3
"""Capture the SNMP seed messages for tests/test_snmp_fuzz.py from a real net-snmp agent.

    sudo .venv/bin/python tests/data/snmp-seeds/capture.py     # rewrites seeds.pcap

Starts snmpd in a namespace (tests/snmpd_ns.py, 4 interfaces) and snmptrapd in the root
namespace on the uplink address, runs tcpdump on the uplink veth (UDP only, bounded by
packet count and time), and drives real traffic through it with net-snmp's clients:
v1 GET/GETNEXT walk, v2c GETBULK walks (system, ifTable, ifXTable), v3 authPriv
(SHA-256/AES) and authNoPriv walks incl. engine discovery and REPORTs, a wrong community and a
wrong v3 key; then traps sent from inside the namespace to snmptrapd: v1 traps (linkDown,
enterprise-specific), v2c traps and informs (linkDown/linkUp, coldStart, UPS on battery), v3
authPriv trap and inform, and snmpd's own coldStart and linkDown notifications.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from tests.snmpd_ns import SnmpdNamespace  # noqa: E402

TRAP_PORT = 16162
ENGINE = "0x8000000001020304aabbccdd"


def run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    print(f"{proc.returncode:3d} {' '.join(cmd)[:110]}")


def main() -> None:
    out = HERE / "seeds.pcap"
    work = Path(tempfile.mkdtemp(prefix="snmp-seeds-"))
    agent = SnmpdNamespace(interfaces=4, community="public", link_traps=True)
    agent.create()
    trapd = dump = None
    try:
        agent.trap_sink = f"{agent.host_address}:{TRAP_PORT}"
        (work / "snmptrapd.conf").write_text(
            "authCommunity log,execute,net public\n"
            f"createUser -e {ENGINE} trapuser SHA-256 trapauth-0123456 AES trappriv-0123456\n"
            "createUser informuser SHA-256 trapauth-0123456 AES trappriv-0123456\n"
            "authUser log trapuser\nauthUser log informuser\n")
        trapd = subprocess.Popen(
            ["/usr/sbin/snmptrapd", "-f", "-C", "-c", str(work / "snmptrapd.conf"),
             "-Lf", str(work / "snmptrapd.log"), f"udp:{agent.host_address}:{TRAP_PORT}"],
            env={"SNMP_PERSISTENT_DIR": str(work), "MIBS": "", "PATH": "/usr/bin:/bin"})
        dump = subprocess.Popen(["tcpdump", "-i", f"snh{agent.index}", "-U", "-s", "0", "-c",
                                 "2000", "-w", str(out), "udp"], stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        agent.start()  # snmpd's own coldStart goes to the sink
        t = agent.target
        v2 = ["-v2c", "-c", "public", "-t", "1", "-r", "0"]
        v3 = agent.auth_args(v3=True) + ["-t", "1", "-r", "0"]
        run(["snmpwalk", "-v1", "-c", "public", t, "1.3.6.1.2.1.1"])
        run(["snmpget", "-v1", "-c", "public", t, "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.99.0"])
        run(["snmpbulkwalk", *v2, t, "1.3.6.1.2.1.1"])
        run(["snmpbulkwalk", *v2, "-Cr10", t, "1.3.6.1.2.1.2.2"])
        run(["snmpbulkwalk", *v2, "-Cr10", t, "1.3.6.1.2.1.31.1.1"])
        run(["snmpget", *v2, t, "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.99.1.0"])
        run(["snmpget", "-v2c", "-c", "wrong", "-t", "0.3", "-r", "0", t, "1.3.6.1.2.1.1.3.0"])
        run(["snmpbulkwalk", *v3, t, "1.3.6.1.2.1.1"])
        run(["snmpwalk", *v3, t, "1.3.6.1.2.1.2.2.1.2"])
        bad = list(v3)
        bad[bad.index("-A") + 1] = "wrong-auth-key-000"
        run(["snmpget", *bad, t, "1.3.6.1.2.1.1.3.0"])
        unknown = list(v3)
        unknown[unknown.index("-u") + 1] = "nobody"
        run(["snmpget", *unknown, t, "1.3.6.1.2.1.1.3.0"])
        sink = f"{agent.host_address}:{TRAP_PORT}"
        ns = ["ip", "netns", "exec", agent.name]
        run([*ns, "snmptrap", "-v1", "-c", "public", sink, "1.3.6.1.4.1.8072.2.3", agent.address,
             "2", "0", "", "1.3.6.1.2.1.2.2.1.1.3", "i", "3"])
        run([*ns, "snmptrap", "-v1", "-c", "public", sink, "1.3.6.1.4.1.318", agent.address,
             "6", "5", "1234", "1.3.6.1.4.1.318.2.3.3.0", "s", "UPS: On battery power"])
        run([*ns, "snmptrap", "-v2c", "-c", "public", sink, "", "1.3.6.1.6.3.1.1.5.3",
             "1.3.6.1.2.1.2.2.1.1.3", "i", "3", "1.3.6.1.2.1.2.2.1.7.3", "i", "1",
             "1.3.6.1.2.1.2.2.1.8.3", "i", "2", "1.3.6.1.2.1.31.1.1.1.18.3", "s",
             "uplink <script>alert(1)</script>; rm -rf /"])
        run([*ns, "snmptrap", "-v2c", "-c", "public", sink, "", "1.3.6.1.2.1.33.2.0.1",
             "1.3.6.1.2.1.33.1.2.2.0", "i", "300", "1.3.6.1.2.1.33.1.2.3.0", "i", "7"])
        run([*ns, "snmptrap", "-v2c", "-c", "wrong-community", sink, "", "1.3.6.1.6.3.1.1.5.1"])
        run([*ns, "snmpinform", "-v2c", "-c", "public", "-t", "1", "-r", "0", sink, "",
             "1.3.6.1.6.3.1.1.5.4", "1.3.6.1.2.1.2.2.1.1.3", "i", "3"])
        run([*ns, "snmptrap", "-v3", "-e", ENGINE, "-l", "authPriv", "-u", "trapuser", "-a",
             "SHA-256", "-A", "trapauth-0123456", "-x", "AES", "-X", "trappriv-0123456", sink,
             "", "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.2", "i", "2"])
        run([*ns, "snmpinform", "-v3", "-l", "authPriv", "-u", "informuser", "-a", "SHA-256",
             "-A", "trapauth-0123456", "-x", "AES", "-X", "trappriv-0123456", "-t", "1", "-r",
             "0", sink, "", "1.3.6.1.6.3.1.1.5.2"])
        agent.carrier_down("p1")  # snmpd's own linkDown notification
        time.sleep(4)
        agent.carrier_up("p1")
        time.sleep(3)
    finally:
        if dump:
            time.sleep(0.5)
            dump.send_signal(signal.SIGINT)
            dump.wait(10)
        if trapd:
            trapd.terminate()
            trapd.wait(5)
        agent.destroy()
    print((work / "snmptrapd.log").read_text()[-3000:])
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
