"""Topology folding on a real store, SQLite and PostgreSQL: a parent down with children behind
it is ONE incident whatever order the findings arrive in; a child down on its own still opens
its own incident once the hold runs out; holds survive a restart; numbers have no gaps."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

import pytest

from monitord.clock import ManualClock
from monitord.config_loader import parse_config_text
from monitord.incidents.manager import IncidentManager
from monitord.incidents.store import open_store
from monitord.incidents.store import repository as repo
from monitord.records import Finding

# core-rtr <- dist-sw <- (acc-sw1, acc-sw2); ups-dc hangs off core-rtr; lone-ap has no parent
DEVICES = """
devices:
  - {name: core-rtr, address: 10.0.0.1, site: hq, kind: router}
  - {name: dist-sw, address: 10.0.0.2, site: hq, kind: switch, parent: core-rtr}
  - {name: acc-sw1, address: 10.0.0.3, site: hq, kind: switch, parent: dist-sw}
  - {name: acc-sw2, address: 10.0.0.4, site: hq, kind: switch, parent: dist-sw}
  - {name: ups-dc, address: 10.0.0.5, site: hq, kind: ups, parent: core-rtr}
  - {name: lone-ap, address: 10.0.0.6, site: hq, kind: other}
"""


def make(db_url: str, hold: str = "90s"):
    config = parse_config_text(f"""
sites: [{{name: hq}}]
{DEVICES}
storage: {{url: "{db_url}"}}
incidents: {{resolve_hold: 60s, topology_hold: {hold}}}
""")
    store = open_store(config.storage)
    store.migrate()
    clock = ManualClock(datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc))
    return store, config, clock


@pytest.fixture
def env(db_url):
    store, config, clock = make(db_url)
    yield store, IncidentManager(store, config, clock), clock, config
    store.close()


def down(clock, device, state="firing"):
    return Finding(kind="device_unreachable", category="network", severity="high", state=state,
                   dedup_key=f"device_unreachable:{device}",
                   summary=f"{device} does not answer SNMP", first_seen=clock.now(),
                   last_seen=clock.now(), device=device, evidence={"failed_polls": 3})


def open_incidents(store):
    with store.sessions() as session:
        return sorted((r.dedup_key, r.number, sorted((r.evidence or {}).get("folded_devices", [])))
                      for r in repo.list_incidents(session) if r.status == "open")


def all_incidents(store):
    with store.sessions() as session:
        return list(repo.list_incidents(session))


def test_parent_first_children_fold_at_once(env):
    store, manager, clock, _config = env
    outcomes = manager.apply([down(clock, "core-rtr")])
    assert [o.action for o in outcomes] == ["opened"]
    clock.advance(5)
    outcomes = manager.apply([down(clock, d) for d in ("dist-sw", "acc-sw1", "ups-dc")])
    assert [o.action for o in outcomes] == ["folded"] * 3
    assert {o.number for o in outcomes} == {"2026-000001"}
    assert open_incidents(store) == [("device_unreachable:core-rtr", "2026-000001",
                                      ["acc-sw1", "dist-sw", "ups-dc"])]
    with store.sessions() as session:
        [row] = repo.list_incidents(session)
        assert [t.action for t in row.timeline].count("folded") == 3


@pytest.mark.parametrize("order", [(*p, "acc-sw2") for p in itertools.permutations(
    ["core-rtr", "dist-sw", "acc-sw1"])])
def test_any_order_gives_one_incident(db_url, order):
    """Every order of a three-level chain, each finding in its own batch a few seconds apart
    (as polls would be), then the fourth device: always one incident, the parent's."""
    store, config, clock = make(db_url)
    try:
        manager = IncidentManager(store, config, clock)
        for device in order:
            manager.apply([down(clock, device)])
            clock.advance(7)
        manager.tick()
        clock.advance(200)  # well past the hold: nothing held may open on its own now
        manager.tick()
        assert open_incidents(store) == [("device_unreachable:core-rtr", "2026-000001",
                                          ["acc-sw1", "acc-sw2", "dist-sw"])]
        assert len(all_incidents(store)) == 1
    finally:
        store.close()


def test_children_and_parent_in_one_batch_child_first(env):
    store, manager, clock, _config = env
    outcomes = manager.apply([down(clock, "acc-sw2"), down(clock, "dist-sw"),
                              down(clock, "core-rtr")])
    assert [o.action for o in outcomes] == ["held", "held", "opened"]
    assert open_incidents(store) == [("device_unreachable:core-rtr", "2026-000001",
                                      ["acc-sw2", "dist-sw"])]
    clock.advance(300)
    assert manager.tick() == []  # the holds were used up by the fold


def test_child_alone_opens_its_own_incident_after_the_hold(env):
    store, manager, clock, _config = env
    [held] = manager.apply([down(clock, "acc-sw1")])
    assert held.action == "held" and open_incidents(store) == []
    clock.advance(30)
    assert [o.action for o in manager.apply([down(clock, "acc-sw1")])] == ["held"]
    clock.advance(30)
    assert manager.tick() == []  # 60 s < 90 s
    clock.advance(31)
    [opened] = manager.tick()
    assert opened.action == "opened" and opened.number == "2026-000001"  # no gap in numbers
    assert open_incidents(store) == [("device_unreachable:acc-sw1", "2026-000001", [])]
    # later polls update the child's own incident as usual
    clock.advance(10)
    assert [o.action for o in manager.apply([down(clock, "acc-sw1")])] == ["updated"]


def test_child_that_recovers_while_held_leaves_no_trace(env):
    store, manager, clock, _config = env
    manager.apply([down(clock, "ups-dc")])
    clock.advance(20)
    [outcome] = manager.apply([down(clock, "ups-dc", state="cleared")])
    assert outcome.action == "ignored"
    clock.advance(300)
    assert manager.tick() == []
    assert all_incidents(store) == []
    # the next real incident still gets number 1
    [opened] = manager.apply([down(clock, "lone-ap")])
    assert opened.number == "2026-000001"


def test_a_device_without_parent_is_never_held(env):
    store, manager, clock, _config = env
    [outcome] = manager.apply([down(clock, "lone-ap")])
    assert outcome.action == "opened"


def test_holds_survive_a_restart(db_url):
    store, config, clock = make(db_url)
    try:
        IncidentManager(store, config, clock).apply([down(clock, "acc-sw1")])
        clock.advance(10)
        restarted = IncidentManager(store, config, clock)  # a new process, same store
        [outcome] = restarted.apply([down(clock, "core-rtr")])
        assert outcome.action == "opened"
        assert open_incidents(store) == [("device_unreachable:core-rtr", "2026-000001",
                                          ["acc-sw1"])]
    finally:
        store.close()


def test_hold_zero_only_folds_into_an_already_open_parent(db_url):
    store, config, clock = make(db_url, hold="0s")
    try:
        manager = IncidentManager(store, config, clock)
        assert manager.apply([down(clock, "dist-sw")])[0].action == "opened"
        assert manager.apply([down(clock, "acc-sw1")])[0].action == "folded"
    finally:
        store.close()


def test_parent_repeat_keeps_the_folded_devices(env):
    store, manager, clock, _config = env
    manager.apply([down(clock, "core-rtr"), down(clock, "dist-sw")])
    clock.advance(60)
    assert manager.apply([down(clock, "core-rtr")])[0].action == "updated"
    assert open_incidents(store)[0][2] == ["dist-sw"]


def test_other_kinds_of_a_child_are_not_folded(env):
    store, manager, clock, _config = env
    manager.apply([down(clock, "core-rtr")])
    other = Finding(kind="interface_down", category="network", severity="high",
                    state="firing", dedup_key="interface_down:dist-sw:3", summary="if 3 down",
                    first_seen=clock.now(), last_seen=clock.now(), device="dist-sw")
    assert manager.apply([other])[0].action == "opened"


def test_a_chain_whose_root_stays_up_opens_one_incident_at_the_highest_down_device(env):
    """acc-sw1 is seen first, then its parent dist-sw; core-rtr answers. acc-sw1's hold runs out
    first, but dist-sw is still held: acc-sw1 waits for it and then folds into it."""
    store, manager, clock, _config = env
    manager.apply([down(clock, "acc-sw1")])
    clock.advance(20)
    manager.apply([down(clock, "dist-sw")])
    for _ in range(30):
        clock.advance(5)
        manager.tick()
    assert open_incidents(store) == [("device_unreachable:dist-sw", "2026-000001",
                                      ["acc-sw1"])]
    assert len(all_incidents(store)) == 1
