"""The README's promise: a newcomer runs the demo, opens the desk, logs in as a demo person with
the password the banner prints, and walks a report through the DKI ladder with the buttons'
form posts (the browser itself is exercised in tests/test_web_browser.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.support import MONITORD


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_demo_banner_passwords_open_the_desk_and_the_ladder_walks(tmp_path: Path):
    proc = subprocess.Popen([*MONITORD, "demo", "--data-dir", str(tmp_path / "demo"),
                             "--duration", "60"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "LANG": "C.UTF-8", "LANGUAGE": ""})
    try:
        banner = []
        while not any("walk it:" in line for line in banner):
            line = proc.stdout.readline()
            assert line, "".join(banner)
            banner.append(line)
        text = "".join(banner)
        base = re.search(r"(http://127\.0\.0\.1:\d+)/login", text).group(1)
        passwords = dict(re.findall(r"^\s+(\w+)\s+\S+(?: \w+)?\s+password (\S+)$", text, re.M))
        assert set(passwords) == {"sari", "joko", "rina", "agus", "dewi"}, text
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.2)

        def session(name: str) -> httpx.Client:
            c = httpx.Client(base_url=base, follow_redirects=True, timeout=10)
            page = c.get("/login")
            answer = c.post("/login", data={"name": name, "password": passwords[name],
                                            "csrf": csrf_of(page.text)})
            assert answer.status_code == 200 and answer.url.path == "/incidents", name
            return c

        def act(c: httpx.Client, number: str, action: str, **extra: str) -> None:
            page = c.get(f"/incidents/{number}")
            answer = c.post(f"/incidents/{number}/act",
                            data={"csrf": csrf_of(page.text), "action": action, **extra})
            assert answer.status_code == 200 and 'id="error"' not in answer.text, answer.text

        sari = session("sari")
        receipt = sari.post("/report", data={
            "csrf": csrf_of(sari.get("/report").text), "category": "pc_client",
            "place": "Ruang rapat", "reporter_name": "Pak Anton", "agency": "Bappeda",
            "description": "Proyektor tidak terdeteksi"})
        number = re.search(r'id="receipt-number">([^<]+)<', receipt.text).group(1)
        act(sari, number, "forward")
        joko, rina = session("joko"), session("rina")
        assert number in joko.get("/incidents").text
        act(joko, number, "accept")
        act(rina, number, "direct", note="Ganti kabel HDMI")
        act(joko, number, "report", note="Kabel diganti")
        act(rina, number, "verify", outcome="not_resolved")
        agus = session("agus")
        assert number in agus.get("/incidents").text
        assert "(KS)" in agus.get(f"/incidents/{number}").text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
