"""`pip install .` (a wheel, not the checkout) gives a working daemon and demo, data included;
and the demo opens a real incident that `incidents list --json` shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work),
                    str(REPO)], check=True, capture_output=True, timeout=300)
    [wheel] = work.glob("monitord-*.whl")
    site = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, capture_output=True, timeout=300)
    return site


def run_installed(site: Path, cwd: Path, *args: str, timeout: float = 120):
    env = {**os.environ, "PYTHONPATH": str(site), "LANG": "C.UTF-8", "LANGUAGE": ""}
    return subprocess.run([sys.executable, "-m", "monitord", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_wheel_carries_the_data_files(installed: Path):
    bundled = installed / "monitord" / "bundled"
    for name in ("demo.yaml", "demo-fast-ladder.yaml", "example.yaml", "locale/id.po",
                 "workflows/dki-jakarta-2013.yaml"):
        assert (bundled / name).is_file(), name
    for name in ("noc-overview.json", "network.json", "security.json", "health.json",
                 "provisioning/dashboards/monitord.yaml",
                 "provisioning/datasources/monitord-prometheus.yaml"):  # Grafana (issue 8)
        assert (bundled / "grafana" / name).is_file(), name
    templates = installed / "monitord" / "incidents"
    assert (templates / "templates" / "recap.html").is_file()
    assert list((templates / "notify" / "templates").glob("ticket.*"))
    assert (installed / "monitord" / "incidents" / "store" / "migrations" / "env.py").is_file()
    assert list((installed / "monitord" / "incidents" / "store" / "migrations" / "versions")
                .glob("0001_*.py"))


@pytest.mark.slow
def test_installed_demo_opens_a_real_incident(installed: Path, tmp_path: Path):
    where = run_installed(installed, tmp_path, "version")
    assert where.returncode == 0, where.stderr
    probe = subprocess.run([sys.executable, "-c", "import monitord; print(monitord.__file__)"],
                           cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(installed)},
                           capture_output=True, text=True)
    assert probe.stdout.startswith(str(installed)), probe.stdout  # not the checkout
    # 55 s: the incident opens, then the demo's fast SOP escalates it PO -> KD -> KS
    demo = run_installed(installed, tmp_path, "demo", "--data-dir", "demo", "--duration", "55")
    assert demo.returncode == 0, demo.stderr
    assert "demo/monitord.yaml" in demo.stdout and "/metrics" in demo.stdout
    config = tmp_path / "demo" / "monitord.yaml"
    listing = run_installed(installed, tmp_path, "incidents", "list", "--json", "--config",
                            str(config))
    assert listing.returncode == 0, listing.stderr
    incidents = json.loads(listing.stdout)
    disk = [i for i in incidents if i["kind"] == "disk_full"]
    assert disk and disk[0]["status"] == "open" and disk[0]["category"] == "server"
    shown = run_installed(installed, tmp_path, "incidents", "show", disk[0]["number"],
                          "--config", str(config))
    assert "Form HD-01" in shown.stdout and "opened" in shown.stdout
    detail = json.loads(run_installed(installed, tmp_path, "incidents", "show",
                                      disk[0]["number"], "--json", "--config",
                                      str(config)).stdout)
    assert detail["step"] == "ks_check" and detail["role"] == "KS"
    escalations = [t["note"] for t in detail["timeline"] if t["action"] == "escalate"]
    assert escalations == ["po_receive -> kd_direct", "kd_direct -> ks_check"]
    assert [b["step"] for b in detail["sla_breaches"]] == ["po_receive", "kd_direct"]
    mails = sorted((tmp_path / "demo" / "mailbox").glob("*.eml"))
    recipients = " ".join(m.read_text(errors="replace").split("\n\n")[0] for m in mails)
    for person in ("joko@localhost", "rina@localhost", "agus@localhost"):  # PO, KD, KS
        assert person in recipients, recipients
