"""The desk in a real browser (Debian's Chromium driven by Playwright; no browser download)
against a real `monitord run` started by this module: the help desk records Form HD-01, the
PO finds it in the queue and acts, the KD verifies "not resolved", the KS sees it escalated,
the reporter's status link shows progress without internal notes, and the language switch
changes the page. Hostile text sits in a finding's device evidence (sysDescr, ifAlias) and in
every HD-01 field; a dialog opening on any page fails the test. Screenshots of each page go
to test-output/desk/."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from monitord.config_loader import load_config
from monitord.incidents.store import open_store
from monitord.web.auth import set_password
from tests.support import MONITORD, DaemonProcess, finding, write_config

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "test-output" / "desk"
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "desk-test-passphrase"
HOSTILE = ("<script>alert(1)</script>", "\"><img src=x onerror=alert(2)>", "{{7*7}}")
HOSTILE_IFNAMES = ("{{7*7}}", "\"><b>x")
PEOPLE = """
people:
  - {name: sari, full_name: Sari Help Desk, roles: [HD]}
  - {name: budi, full_name: Budi Teknisi, roles: [PO], division: IPL}
  - {name: rina, full_name: Rina Koordinator, roles: [KD], division: IPL}
  - {name: agus, full_name: Agus Kasi, roles: [KS], division: IPL}
  - {name: dewi, full_name: Dewi Kabid, roles: [KB]}
"""

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")


@pytest.fixture(scope="module")
def snmp_agent():
    """A real snmpd in a namespace whose interface is named by hostile text (Linux allows
    `{{7*7}}` and `"><b>` as interface names; snmpd reports them as ifName/ifDescr)."""
    from tests.snmpd_ns import SnmpdNamespace, snmpd_ns_skip_reason
    if snmpd_ns_skip_reason() is not None:
        yield None
        return
    agent = SnmpdNamespace(interfaces=4, community="desk-c0mmunity")
    agent.create()
    try:  # renamed before snmpd starts, so its interface table has the new names
        for old, new in (("p1", HOSTILE_IFNAMES[0]), ("p2", HOSTILE_IFNAMES[1])):
            agent.exec("ip", "link", "set", "dev", old, "down")
            agent.exec("ip", "link", "set", "dev", old, "name", new)
            agent.exec("ip", "link", "set", "dev", new, "up")
        agent.start()
        yield agent
    finally:
        agent.destroy()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, snmp_agent):
    directory = tmp_path_factory.mktemp("desk-browser")
    config, port = write_config(directory, f"sqlite:///{directory}/monitord.db", PEOPLE)
    env = {}
    if snmp_agent is not None:
        text = config.read_text().replace("devices:\n", (
            "devices:\n"
            f"  - {{name: snmp-sw, address: {snmp_agent.address}, site: hq, kind: switch,"
            " credential: desk-v2}\n"), 1)
        text += ("credentials:\n  desk-v2: {type: snmp_v2c, community: {env: DESK_COMMUNITY}}\n"
                 "snmp: {interval: 1s, jitter: 0s, timeout: 0.5s, retries: 0}\n")
        config.write_text(text)
        env["DESK_COMMUNITY"] = snmp_agent.community
    # one password through the real command (it migrates the store), the others directly
    result = subprocess.run([*MONITORD, "people", "set-password", "sari", "--config",
                             str(config)], input=PASSWORD + "\n", capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    store = open_store(load_config(config).storage)
    with store.sessions() as session, session.begin():
        for name in ("budi", "rina", "agus", "dewi"):
            set_password(session, name, PASSWORD, datetime.now(timezone.utc))
    store.close()
    process = DaemonProcess(config, port, directory / "daemon.log", env=env).start()
    process.post_findings([finding(
        "if:core-rtr:Gi0/9", summary=f"Gi0/9 down {HOSTILE[0]}", subject=HOSTILE[1],
        evidence={"sysDescr": f"RouterOS {HOSTILE[0]}", "ifAlias": HOSTILE[1],
                  "ifDescr": HOSTILE[2]})])
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"],
                                              headless=True)
        yield chromium
        chromium.close()


class Desk:
    """One person's browser context; any dialog (alert, confirm, prompt) is recorded."""

    def __init__(self, browser, daemon, dialogs: list[str]) -> None:
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.page.on("dialog", lambda dialog: (dialogs.append(dialog.message),
                                               dialog.dismiss()))
        self.base = daemon.url("")

    def goto(self, path: str):
        response = self.page.goto(self.base + path)
        assert response is not None
        return response

    def login(self, name: str) -> "Desk":
        self.goto("/login")
        self.page.fill("#name", name)
        self.page.fill("#password", PASSWORD)
        self.page.click("#login")
        self.page.wait_for_url("**/incidents")
        return self

    def shot(self, name: str) -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)

    def act(self, number: str, button: str, note: str = "") -> None:
        self.goto(f"/incidents/{number}")
        form = self.page.locator("form.action", has=self.page.locator(f"#{button}"))
        if note:
            form.locator("textarea").fill(note)
        form.locator(f"#{button}").click()
        self.page.wait_for_url(f"**/incidents/{number}")
        assert self.page.locator("#error").count() == 0, self.page.locator("#error").inner_text()


def test_an_hd01_report_walks_the_dki_ladder_in_the_browser(daemon, browser):
    dialogs: list[str] = []
    # the help desk records Form HD-01 with hostile text in every field
    sari = Desk(browser, daemon, dialogs)
    sari.goto("/login")
    sari.shot("00-login")
    sari.login("sari")
    assert sari.goto("/recap").status == 403  # the help desk does not read the recap
    sari.shot("00-forbidden")
    sari.goto("/report")
    sari.page.select_option("#category", "network")
    for field, text in (("#place", HOSTILE[0]), ("#reporter_name", HOSTILE[1]),
                        ("#agency", HOSTILE[2]), ("#phone", HOSTILE[2]),
                        ("#email", HOSTILE[1][:40]),
                        ("#description", " ".join(HOSTILE))):
        sari.page.fill(field, text)
    sari.shot("01-report-form")
    sari.page.click("#submit-report")
    number = sari.page.locator("#receipt-number").inner_text()
    status_link = sari.page.locator("#status-link").inner_text()
    sari.shot("02-receipt")
    sari.act(number, "act-forward")
    assert "{{7*7}}" in sari.page.locator("#hd01").inner_text()  # literally, not 49
    assert HOSTILE[0] in sari.page.locator("#hd01").inner_text()
    sari.shot("03-incident-hd")

    # the PO finds it in the queue and accepts it
    budi = Desk(browser, daemon, dialogs).login("budi")
    assert budi.page.locator(f"#queue a:text-is('{number}')").count() == 1
    budi.shot("04-queue-po")
    budi.page.click(f"#queue a:text-is('{number}')")
    budi.page.wait_for_url(f"**/incidents/{number}")
    budi.act(number, "act-accept", note="INTERNAL: patch panel B3 suspected")

    # the KD gives direction, the PO reports, the KD verifies "not resolved"
    rina = Desk(browser, daemon, dialogs).login("rina")
    rina.act(number, "act-direct", note="INTERNAL: swap the uplink")
    budi.act(number, "act-report", note="INTERNAL: swapped, still flapping")
    rina.act(number, "act-verify-not_resolved", note="INTERNAL: not fixed")
    assert "ks_direct" not in rina.page.locator("#step").inner_text()  # titles, not codes
    rina.shot("05-incident-kd-not-resolved")

    # the KS sees it escalated to him
    agus = Desk(browser, daemon, dialogs).login("agus")
    assert agus.page.locator(f"#queue a:text-is('{number}')").count() == 1
    agus.shot("06-queue-ks")
    agus.goto(f"/incidents/{number}")
    assert agus.page.locator("#act-direct").count() == 1
    assert "(KS)" in agus.page.locator("#step").inner_text()
    assert "not resolved" in agus.page.locator("#timeline").inner_text()
    agus.shot("07-incident-ks")

    # the reporter's status page: progress, no internal notes, no names of staff
    reporter = Desk(browser, daemon, dialogs)
    reporter.page.goto(status_link)
    progress = reporter.page.locator("#progress").inner_text()
    assert "verified" in progress and "not resolved" in progress
    body = reporter.page.locator("body").inner_text()
    assert "INTERNAL" not in body and "Budi" not in body and "budi" not in body
    reporter.shot("08-status-reporter")
    reporter.page.goto(status_link.replace("?t=", "?t=x"))
    assert "not valid" in reporter.page.locator("#error").inner_text()

    # the language switch changes the page, and stays with the person
    agus.goto("/incidents")
    assert "My queue" in agus.page.locator("h1").inner_text()
    agus.page.click("#lang-switch")
    agus.page.wait_for_url("**/incidents")
    assert "Antrean saya" in agus.page.locator("h1").inner_text()
    agus.shot("09-queue-ks-indonesian")
    again = Desk(browser, daemon, dialogs).login("agus")
    assert "Antrean saya" in again.page.locator("h1").inner_text()
    assert dialogs == []


def test_hostile_device_text_opens_no_dialog_on_any_page(daemon, browser):
    dialogs: list[str] = []
    dewi = Desk(browser, daemon, dialogs).login("dewi")
    dewi.goto("/incidents?scope=office&status=all")
    dewi.shot("10-office-kb")
    links = dewi.page.locator("#queue tbody a").all_inner_texts()
    assert links, "the finding's incident is listed"
    seen_hostile = False
    for number in links:
        assert dewi.goto(f"/incidents/{number}").status == 200
        evidence = dewi.page.locator("body").inner_text()
        if "RouterOS" in evidence:
            seen_hostile = True
            assert "{{7*7}}" in dewi.page.locator("#evidence").inner_text()
            assert HOSTILE[0] in dewi.page.locator("#evidence").inner_text()
            assert HOSTILE[1] in dewi.page.locator("#device").inner_text()
            dewi.shot("11-incident-hostile-evidence")
    assert seen_hostile
    dewi.goto("/recap")
    dewi.page.wait_for_url("**/recap/*")
    assert dewi.page.locator("svg.chart").count() >= 1
    dewi.shot("12-recap")
    for path in ("/incidents?q=%3Cscript%3Ealert(1)%3C/script%3E&scope=office",
                 "/incidents?sort=%22%3E%3Cimg%20src=x%20onerror=alert(2)%3E"):
        dewi.goto(path)
    dewi.page.wait_for_timeout(300)  # give any injected handler its chance to fire
    assert dialogs == []


def test_hostile_interface_names_from_a_real_snmpd_show_literally(daemon, browser, snmp_agent):
    """A real agent, a real poll: the interface named `{{7*7}}` loses carrier, its
    interface_down incident reaches the desk and the name shows as written."""
    if snmp_agent is None:
        pytest.skip("the snmpd namespace harness cannot run here")
    import time
    dialogs: list[str] = []
    snmp_agent.exec("ip", "link", "set", "dev", "q1", "down")  # {{7*7}} loses carrier
    snmp_agent.exec("ip", "link", "set", "dev", "q2", "down")
    dewi = Desk(browser, daemon, dialogs).login("dewi")
    deadline = time.monotonic() + 30
    while True:
        dewi.goto("/incidents?scope=office&status=all&q=snmp-sw")
        rows = dewi.page.locator("#queue tr", has_text="snmp-sw")
        if rows.count() >= 2:
            break
        assert time.monotonic() < deadline, daemon.log()[-3000:]
        dewi.page.wait_for_timeout(500)
    text = dewi.page.locator("#queue").inner_text()
    assert "Interface {{7*7}} on snmp-sw is down" in text
    assert 'Interface "><b>x on snmp-sw is down' in text
    assert dewi.page.locator("#queue b").count() == 0  # not markup
    dewi.shot("13-queue-snmp-hostile-ifnames")
    dewi.page.locator("#queue tbody a").first.click()
    dewi.page.wait_for_url("**/incidents/*")
    assert dialogs == []
