"""The SOP engine on a real store (SQLite and PostgreSQL): the DKI ladder to KB and closure,
role checks, SLA timers on a controllable clock, restarts, condition cleared."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from monitord.clock import ManualClock
from monitord.config_loader import parse_config_text
from monitord.incidents.manager import IncidentManager
from monitord.incidents.store import open_store
from monitord.incidents.store import repository as repo
from monitord.incidents.store.models import OutboxRow
from monitord.incidents.workflow.engine import Report, WorkflowError, load_engine
from monitord.records import Category, Finding

PEOPLE = """
people:
  - {name: sari, roles: [HD], email: sari@kominfo.test, language: id}
  - {name: budi, roles: [PO], division: IPL, email: budi@kominfo.test}
  - {name: rina, roles: [KD], division: IPL, email: rina@kominfo.test}
  - {name: agus, roles: [KS], division: IPL, email: agus@kominfo.test}
  - {name: dewi, roles: [KB], division: IPL, email: dewi@kominfo.test}
  - {name: joko, roles: [PO], division: IPK, email: joko@kominfo.test}
"""


def setup(db_url: str, extra: str = ""):
    config = parse_config_text(f"""
sites: [{{name: hq, description: "Gedung A lt. 3"}}]
devices: [{{name: core-rtr, address: 10.0.0.1, site: hq, kind: router}}]
storage: {{url: "{db_url}"}}
incidents: {{resolve_hold: 60s}}
notifications:
  channels:
    - {{name: mail, type: email, smtp_host: localhost, sender: monitord@kominfo.test}}
{PEOPLE}
{extra}""")
    store = open_store(config.storage)
    store.migrate()
    # Monday 5 January 2026, 09:00 WIB: office hours
    clock = ManualClock(datetime(2026, 1, 5, 2, 0, tzinfo=timezone.utc))
    engine = load_engine(config)
    manager = IncidentManager(store, config, clock, workflow=engine)
    return config, store, clock, engine, manager


@pytest.fixture
def env(db_url):
    config, store, clock, engine, manager = setup(db_url)
    yield config, store, clock, engine, manager
    store.close()


def fire(manager, clock, key="if:core-rtr:Gi0/1", state="firing"):
    return manager.apply([Finding(
        kind="interface_down", category="network", severity="high", state=state,
        dedup_key=key, summary="Gi0/1 down", first_seen=clock.now(), last_seen=clock.now(),
        device="core-rtr", subject="Gi0/1", impact="high", urgency="high")])[0]


def act(store, engine, clock, number, person, action, **kw):
    with store.sessions() as session, session.begin():
        incident = repo.get_incident(session, number)
        return engine.act(session, incident, person, action, clock.now(), **kw)


def show(store, number):
    with store.sessions() as session:
        incident = repo.get_incident(session, number)
        tickets = [(o.event, o.payload["recipient"]["name"], o.payload["step"]["name"]
                    if o.payload.get("step") else None)
                   for o in session.scalars(select(OutboxRow).where(
                       OutboxRow.incident_id == incident.id).order_by(OutboxRow.id))]
        return incident, [(t.action, t.actor, t.role) for t in incident.timeline], tickets


def test_dki_ladder_two_not_resolved_checks_reach_kb_with_an_outside_party(env):
    config, store, clock, engine, manager = env
    number = fire(manager, clock).number
    incident, timeline, tickets = show(store, number)
    assert (incident.workflow, incident.division, incident.step) == \
        ("dki-jakarta-2013", "IPL", "po_receive")
    assert incident.priority == "P1"  # high impact x high urgency
    assert timeline[:2] == [("opened", "monitord", "system"), ("recorded", "monitord", "HD")]
    assert ("ticket", "budi", "po_receive") in tickets
    assert not any(name == "joko" for _e, name, _s in tickets)  # other division
    steps = [
        ("budi", "accept", {}, "kd_direct"),
        ("rina", "direct", {"note": "restart the uplink"}, "po_fix"),
        ("budi", "report", {"note": "restarted"}, "kd_check"),
        ("rina", "verify", {"outcome": "not_resolved"}, "ks_direct"),
        ("agus", "direct", {"note": "replace the SFP"}, "kd_po_fix"),
        ("rina", "report", {}, "ks_check"),
        ("agus", "verify", {"outcome": "not_resolved"}, "kb_resolve"),
        ("dewi", "involve", {"note": "ISP Telkom, ticket 4711"}, "kb_resolve"),
        ("dewi", "resolve", {"note": "fibre spliced by the ISP"}, "inform_hd"),
        ("sari", "inform", {"note": "reporter told"}, "closed"),
    ]
    for person, action, kw, expected in steps:
        clock.advance(600)
        assert act(store, engine, clock, number, person, action, **kw) == expected
    incident, timeline, tickets = show(store, number)
    assert incident.status == "closed" and incident.closed_at == clock.now()
    assert [a for a, _p, _r in timeline if a not in ("opened", "recorded")] == \
        [a for _p, a, _k, _e in steps]
    assert ("involve", "dewi", "KB") in timeline
    for step, people in (("kb_resolve", {"dewi", "agus", "rina", "budi"}),
                         ("ks_direct", {"agus"}), ("inform_hd", {"sari"})):
        assert {name for event, name, s in tickets if event == "ticket" and s == step} == people


def test_wrong_role_and_wrong_division_are_refused_clearly(env):
    config, store, clock, engine, manager = env
    number = fire(manager, clock).number
    with pytest.raises(WorkflowError, match=r"step po_receive .* is for role PO or a higher "
                                            r"tier \(KD, KS, KB\); sari holds HD"):
        act(store, engine, clock, number, "sari", "accept")
    with pytest.raises(WorkflowError, match="belongs to division IPL; joko works in IPK"):
        act(store, engine, clock, number, "joko", "accept")
    with pytest.raises(WorkflowError, match="has no action verify"):
        act(store, engine, clock, number, "budi", "verify")
    assert act(store, engine, clock, number, "rina", "accept") == "kd_direct"  # higher tier
    act(store, engine, clock, number, "rina", "direct")
    act(store, engine, clock, number, "budi", "report")
    with pytest.raises(WorkflowError, match="needs --outcome"):
        act(store, engine, clock, number, "rina", "verify")


def test_sla_timeout_escalates_once_and_survives_a_restart(db_url):
    config, store, clock, engine, manager = setup(db_url)
    number = fire(manager, clock).number
    incident, _t, _k = show(store, number)
    due = incident.step_due_at  # po_receive: 1 h of working time
    assert (due - clock.now()).total_seconds() == 3600
    clock.advance(3599)
    with store.sessions() as session, session.begin():
        early = engine.tick(session, clock.now())
    # only P1's 15-minute respond target has passed, not the step's hour
    assert [(e.step, e.event) for e in early] == [("respond_target", "sla_breach")]
    clock.advance(7200)
    # a restart: a new engine on the same store handles the overdue step at once ...
    _c, store2, _clock, engine2, _m = setup(db_url)
    with store2.sessions() as session, session.begin():
        assert [(e.number, e.step) for e in engine2.tick(session, clock.now())] == \
            [(number, "po_receive")]
    # ... and never twice
    with store2.sessions() as session, session.begin():
        assert engine2.tick(session, clock.now()) == []
    incident, timeline, tickets = show(store2, number)
    assert incident.step == "kd_direct"
    breach = [t for t in incident.timeline if t.action == "sla_breach" and
              "target" not in t.data]
    assert len(breach) == 1 and breach[0].at == due  # the true breach time, not the tick's
    # P1's respond target (15 min, round the clock) passed too, recorded once at its moment
    respond = [t for t in incident.timeline if t.data.get("target") == "respond"]
    assert len(respond) == 1 and respond[0].at == incident.respond_due_at
    assert (incident.respond_due_at - incident.recorded_at).total_seconds() == 900
    assert ("sla_breach", "budi", "po_receive") in tickets
    assert ("ticket", "rina", "kd_direct") in tickets
    store2.close()
    store.close()


def test_condition_cleared_before_anyone_acted_resolves_itself(env):
    config, store, clock, engine, manager = env
    number = fire(manager, clock).number
    clock.advance(10)
    fire(manager, clock, state="cleared")
    clock.advance(61)
    manager.tick()
    incident, timeline, _k = show(store, number)
    assert incident.status == "resolved" and incident.step is None
    assert ("auto_resolved", "monitord", "system") in timeline


def test_condition_cleared_while_people_work_waits_for_their_verification(env):
    config, store, clock, engine, manager = env
    number = fire(manager, clock).number
    act(store, engine, clock, number, "budi", "accept")
    clock.advance(10)
    fire(manager, clock, state="cleared")
    clock.advance(61)
    manager.tick()
    manager.tick()
    incident, timeline, tickets = show(store, number)
    assert incident.status == "open" and incident.step == "kd_direct"
    assert incident.condition_cleared_at is not None
    assert [a for a, _p, _r in timeline].count("condition_cleared") == 1
    assert ("condition_cleared", "rina", "kd_direct") in tickets


def test_a_persons_report_enters_at_the_help_desk(env):
    config, store, clock, engine, manager = env
    with store.sessions() as session, session.begin():
        incident = engine.open_report(session, Report(
            category=Category.APPLICATION, place="Kantor Kelurahan Gambir",
            reporter_name="Pak Slamet", agency="Kelurahan Gambir", phone="021-555",
            email="slamet@gambir.test", description="SIMPEG <script>x</script> error 500",
            officer="Sari"), clock.now())
        number = incident.number
    incident, timeline, tickets = show(store, number)
    assert (incident.step, incident.division, incident.source) == ("hd_record", "SIM", "report")
    assert incident.reporter_agency == "Kelurahan Gambir" and incident.classification == 1
    assert ("ticket", "sari", "hd_record") in tickets
    assert act(store, engine, clock, number, "sari", "forward") == "po_receive"


def test_set_priority_is_recorded_and_reopen_after_close(env):
    config, store, clock, engine, manager = env
    number = fire(manager, clock).number
    act(store, engine, clock, number, "budi", "set_priority", impact="low", urgency="low")
    incident, timeline, _k = show(store, number)
    assert incident.priority == "P4"
    entry = [t for t in incident.timeline if t.action == "set_priority"][0]
    assert entry.data["from"]["priority"] == "P1" and entry.data["to"]["priority"] == "P4"
    for person, action, kw in (("budi", "accept", {}), ("rina", "direct", {}),
                               ("budi", "report", {}), ("rina", "verify", {"outcome": "resolved"}),
                               ("sari", "inform", {})):
        act(store, engine, clock, number, person, action, **kw)
    assert show(store, number)[0].status == "closed"
    assert act(store, engine, clock, number, "rina", "reopen", note="again") == "po_receive"
    assert show(store, number)[0].status == "open"


def test_maintenance_window_suppresses_tickets_then_opens_when_the_fault_remains(db_url):
    config, store, clock, engine, manager = setup(db_url, extra="""
maintenance:
  - {device: core-rtr, start_at: "2026-01-05T08:30:00+07:00", end_at: "2026-01-05T10:00:00+07:00",
     reason: "ganti SFP"}
""")
    number = fire(manager, clock).number  # 09:00 WIB: inside the window
    incident, timeline, tickets = show(store, number)
    assert incident.status == "maintenance" and incident.step is None
    assert [a for a, _p, _r in timeline] == ["opened", "maintenance"]
    assert tickets == []  # recorded and shown, no ticket, no NOC feed
    clock.advance(1800)
    fire(manager, clock)  # still down during the window: folded, still no ticket
    with store.sessions() as session, session.begin():
        assert engine.tick(session, clock.now()) == []  # no SLA runs in maintenance
    clock.set(datetime(2026, 1, 5, 3, 1, tzinfo=timezone.utc))  # 10:01 WIB: window over
    with store.sessions() as session, session.begin():
        events = engine.tick(session, clock.now())
    assert [(e.number, e.event) for e in events] == [(number, "maintenance_ended")]
    incident, timeline, tickets = show(store, number)
    assert incident.status == "open" and incident.step == "po_receive"
    assert "maintenance_ended" in [a for a, _p, _r in timeline]
    assert ("ticket", "budi", "po_receive") in tickets
    store.close()


def test_a_fault_that_clears_inside_the_window_never_tickets(db_url):
    config, store, clock, engine, manager = setup(db_url, extra="""
maintenance:
  - {category: network, weekly: {days: [mon], start: "08:00", duration: 4h}}
""")
    number = fire(manager, clock).number
    clock.advance(30)
    fire(manager, clock, state="cleared")
    clock.advance(61)
    manager.tick()
    clock.advance(4 * 3600)
    with store.sessions() as session, session.begin():
        engine.tick(session, clock.now())
    incident, timeline, tickets = show(store, number)
    assert incident.status == "resolved"
    assert tickets == [] and "maintenance_ended" not in [a for a, _p, _r in timeline]


WORKFLOWS = ("dki-jakarta-2013", "kaltim-keamanan-jaringan", "bekasi-gangguan-jaringan",
             "katingan-helpdesk-2024", "pengadilan-layanan-ti")


@pytest.mark.parametrize("name", WORKFLOWS)
def test_each_bundled_sop_runs_a_report_to_closure(name, sqlite_url):
    from monitord.incidents.workflow.schema import load_workflows
    workflow = load_workflows()[name]
    people = "\n".join(f"  - {{name: p_{role.lower()}, roles: [{role}], email: {role.lower()}@x.test}}"
                       for role in workflow.roles)
    config, store, clock, engine, manager = setup(sqlite_url.replace("monitord.db", f"{name}.db"),
                                                  extra="")
    config = parse_config_text(f"""
storage: {{url: "{sqlite_url.replace('monitord.db', name + '.db')}"}}
notifications:
  channels: [{{name: mail, type: email, smtp_host: localhost, sender: m@x.test}}]
people:
{people}
workflows:
  routing: {{application: {{division: SIM, workflow: {name}}}}}
""")
    engine = load_engine(config)
    with store.sessions() as session, session.begin():
        number = engine.open_report(session, Report(
            category=Category.APPLICATION, place="OPD", reporter_name="Bu Rini", agency="OPD",
            phone="1", email="r@x.test", description="aplikasi tidak bisa diakses"),
            clock.now()).number
    path = []
    for _hop in range(40):
        with store.sessions() as session, session.begin():
            incident = repo.get_incident(session, number)
            if incident.status == "closed":
                break
            step = workflow.step(incident.step)
            action, transition = next(iter(step.actions.items()))
            outcome = "resolved" if transition.outcomes else None
            path.append((incident.step, action))
            clock.advance(60)
            engine.act(session, incident, f"p_{step.role.lower()}", action, clock.now(),
                       outcome=outcome, note="solusi: restart layanan")
    incident, timeline, tickets = show(store, number)
    assert incident.status == "closed", path
    assert len(path) >= 3
    assert {e for e, _n, _s in tickets} >= {"ticket", "incident_closed"}
    store.close()


def test_tickets_go_to_the_people_on_duty_or_to_all_when_nobody_is(sqlite_url):
    from monitord.incidents.workflow.tickets import people_for
    config = parse_config_text("""
people:
  - {name: pagi, roles: [PO], division: IPL, working_hours: {mon: "07:00-15:00"}}
  - {name: malam, roles: [PO], division: IPL, working_hours: {mon: "15:00-23:00"}}
  - {name: kd, roles: [KD], division: IPL}
""")
    monday_9 = datetime(2026, 1, 5, 2, 0, tzinfo=timezone.utc)  # 09:00 WIB
    monday_20 = datetime(2026, 1, 5, 13, 0, tzinfo=timezone.utc)  # 20:00 WIB
    sunday = datetime(2026, 1, 4, 2, 0, tzinfo=timezone.utc)
    names = lambda at: [p.name for p, _r in people_for(config, ["PO", "KD"], "IPL", at)]
    assert names(monday_9) == ["pagi", "kd"]
    assert names(monday_20) == ["malam", "kd"]
    assert names(sunday) == ["pagi", "malam", "kd"]  # nobody on duty: everyone hears it
