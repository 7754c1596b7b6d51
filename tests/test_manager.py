"""The incident manager on a real store: SQLite and PostgreSQL, the same tests."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from monitord.clock import ManualClock
from monitord.config_loader import parse_config_text
from monitord.incidents.manager import IncidentManager
from monitord.incidents.store import open_store
from monitord.incidents.store import repository as repo
from monitord.records import Finding


def make(db_url: str, extra: str = ""):
    config = parse_config_text(f"""
sites: [{{name: hq, description: "Kantor Kominfo lt. 3"}}]
devices: [{{name: core-rtr, address: 10.0.0.1, site: hq, kind: router}}]
storage: {{url: "{db_url}"}}
incidents: {{resolve_hold: 60s, flap_window: 10m, flap_threshold: 3}}
notifications:
  channels:
    - {{name: noc-log, type: log}}
    - {{name: boss-mail, type: email, smtp_host: m, sender: a@b, to: [k@b], min_severity: critical}}
{extra}""")
    store = open_store(config.storage)
    store.migrate()
    clock = ManualClock(datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc))
    return store, IncidentManager(store, config, clock), clock


@pytest.fixture
def env(db_url):
    store, manager, clock = make(db_url)
    yield store, manager, clock
    store.close()


def finding(clock, key="if:core-rtr:Gi0/1", state="firing", severity="high", **over):
    data = dict(kind="interface_down", category="network", severity=severity, state=state,
                dedup_key=key, summary=f"Gi0/1 down <script>{key}</script>",
                first_seen=clock.now(), last_seen=clock.now(), device="core-rtr",
                subject="Gi0/1", evidence={"ifIndex": 1})
    data.update(over)
    return Finding(**data)


def incidents(store):
    with store.sessions() as session:
        rows = list(reversed(repo.list_incidents(session)))
        return [(r, [t.action for t in r.timeline], [(o.channel, o.event)
                                                       for o in repo.outbox_for(session, r.id)])
                for r in rows]


def test_open_fills_form_hd01_and_writes_timeline_and_outbox(env):
    store, manager, clock = env
    [outcome] = manager.apply([finding(clock)])
    assert outcome.action == "opened" and outcome.number == "2026-000001"
    [(row, timeline, outbox)] = incidents(store)
    assert row.status == "open" and row.source == "monitor"
    assert row.location == "Kantor Kominfo lt. 3"  # the device's site
    assert row.reporter_name == "monitord" and row.helpdesk_officer == "monitord"
    assert row.classification == 4  # data-communication network
    assert row.recorded_at == clock.now() and row.reported_at == clock.now()
    assert row.summary == "Gi0/1 down <script>if:core-rtr:Gi0/1</script>"  # stored as data
    assert timeline == ["opened"]
    assert outbox == [("noc-log", "incident_opened")]  # the e-mail wants critical only


def test_repeats_fold_into_one_incident_and_raise_severity(env):
    store, manager, clock = env
    manager.apply([finding(clock)])
    clock.advance(30)
    outcomes = manager.apply([finding(clock), finding(clock, severity="critical"),
                              finding(clock, key="other")])
    assert [o.action for o in outcomes] == ["updated", "updated", "opened"]
    (row, timeline, outbox), (other, _t, _o) = incidents(store)
    assert row.occurrences == 3 and row.last_seen == clock.now()
    assert row.severity == "critical"
    assert timeline == ["opened", "severity_raised"]
    assert other.number == "2026-000002"


def test_cleared_finding_resolves_after_the_hold_time(env):
    store, manager, clock = env
    manager.apply([finding(clock)])
    clock.advance(10)
    assert manager.apply([finding(clock, state="cleared")])[0].action == "clearing"
    clearing_at = clock.now()
    clock.advance(59)
    assert manager.tick() == []
    clock.advance(120)  # a late tick (after a restart) still records the true moment
    [resolved] = manager.tick()
    assert resolved.action == "resolved"
    [(row, timeline, outbox)] = incidents(store)
    assert row.status == "resolved" and row.open_key is None
    assert (row.resolved_at - clearing_at).total_seconds() == 60
    assert timeline == ["opened", "clearing", "resolved"]
    assert outbox == [("noc-log", "incident_opened"), ("noc-log", "incident_resolved")]
    assert manager.tick() == []  # nothing resolves twice


def test_refire_within_the_hold_keeps_the_incident_open(env):
    store, manager, clock = env
    manager.apply([finding(clock)])
    clock.advance(10)
    manager.apply([finding(clock, state="cleared")])
    clock.advance(30)
    assert manager.apply([finding(clock)])[0].action == "updated"
    clock.advance(600)
    assert manager.tick() == []
    [(row, timeline, _o)] = incidents(store)
    assert row.status == "open" and row.clearing_since is None
    assert timeline == ["opened", "clearing", "refired"]


def test_cleared_without_an_incident_is_ignored(env):
    store, manager, clock = env
    assert manager.apply([finding(clock, state="cleared")])[0].action == "ignored"
    assert incidents(store) == []


def test_flapping_marks_one_incident_instead_of_opening_many(env):
    store, manager, clock = env
    actions = []
    for _cycle in range(6):  # fire, clear, wait out the hold: six times within 10 minutes
        actions.append(manager.apply([finding(clock)])[0].action)
        clock.advance(5)
        manager.apply([finding(clock, state="cleared")])
        clock.advance(61)
        manager.tick()
    assert actions[0] == "opened" and "opened" not in actions[1:]
    [(row, timeline, outbox)] = incidents(store)
    assert row.flapping is True
    assert timeline.count("flapping") == 1
    assert ("noc-log", "incident_flapping") in outbox
    # while flapping, resolving needs quiet for the whole flap window (10 minutes)
    assert row.status == "open"
    clock.advance(600)
    manager.tick()
    [(row, _t, _o)] = incidents(store)
    assert row.status == "resolved"


def test_refire_after_the_flap_window_opens_a_new_incident(env):
    store, manager, clock = env
    manager.apply([finding(clock)])
    manager.apply([finding(clock, state="cleared")])
    clock.advance(61)
    manager.tick()
    clock.advance(11 * 60)
    assert manager.apply([finding(clock)])[0].action == "opened"
    assert [r.number for r, _t, _o in incidents(store)] == ["2026-000001", "2026-000002"]


def test_numbers_follow_the_office_year_and_restart_each_year(db_url):
    store, manager, clock = make(db_url)
    clock.set(datetime(2026, 12, 31, 16, 30, tzinfo=timezone.utc))  # 23:30 in Jakarta
    assert manager.apply([finding(clock, key="a")])[0].number == "2026-000001"
    clock.set(datetime(2026, 12, 31, 17, 30, tzinfo=timezone.utc))  # 00:30 on 1 January
    assert manager.apply([finding(clock, key="b")])[0].number == "2027-000001"
    assert manager.apply([finding(clock, key="c")])[0].number == "2027-000002"
    store.close()


def test_one_bad_finding_fails_alone_and_the_batch_commits(env):
    store, manager, clock = env
    too_long = finding(clock, key="k2", device="x" * 500)  # longer than the column
    outcomes = manager.apply([finding(clock, key="k1"), too_long, finding(clock, key="k3")])
    actions = [o.action for o in outcomes]
    if store.dialect == "sqlite":  # SQLite does not enforce VARCHAR lengths
        assert actions == ["opened", "opened", "opened"]
    else:
        assert actions == ["opened", "failed", "opened"]
        assert [r.dedup_key for r, _t, _o in incidents(store)] == ["k1", "k3"]


def test_timeline_is_append_only_in_the_database(env):
    store, manager, clock = env
    manager.apply([finding(clock)])
    with pytest.raises(DBAPIError, match="append-only"):
        with store.engine.begin() as connection:
            connection.execute(text("UPDATE incident_timeline SET note = 'rewritten'"))
    with pytest.raises(DBAPIError, match="append-only"):
        with store.engine.begin() as connection:
            connection.execute(text("DELETE FROM incident_timeline"))
    assert incidents(store)[0][1] == ["opened"]


def test_migration_is_idempotent_and_matches_the_models(env):
    store, _manager, _clock = env
    store.migrate()
    assert store.current_revision() == store.head_revisions() != ""
    assert "0004" <= store.current_revision().split(",")[0]
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from monitord.incidents.store.models import Base
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diff if d[0] not in ("add_index", "remove_index")] == []


def test_devices_are_synchronised_from_the_config(env):
    store, manager, clock = env
    with store.sessions() as session, session.begin():
        repo.sync_devices(session, manager.config.devices, clock.now())
    with store.sessions() as session, session.begin():
        repo.sync_devices(session, manager.config.devices, clock.now())
    with store.engine.connect() as connection:
        rows = connection.execute(text("SELECT name, site, kind FROM devices")).all()
    assert rows == [("core-rtr", "hq", "router")]
