"""SNMP notifications -> findings, at once. Pure: reads the `snmp_trap` Events that
`collectors/snmp/traps.py` emits (fields: trap, trap_oid, version, source, varbinds) and
nothing else.

Kinds and dedup keys are shared with the polling detectors, so a trap and a poll that see the
same problem fold into one incident:
- linkDown -> `interface_down` (`interface_down:{device}:{ifIndex}`); linkUp clears it. A
  linkDown whose ifAdminStatus says down(2) was someone's `shutdown`: it clears, not fires.
- coldStart/warmStart -> `device_rebooted` (`device_rebooted:{device}`), fired and cleared in
  one go: a reboot is a moment, the incident resolves after the hold time unless it repeats.
- authenticationFailure -> `snmp_auth_failure` (network security; someone used a wrong
  community or key against the device), fired and cleared the same way.
- RFC 1628 upsTrapOnBattery / alarm entries and APC PowerNet traps -> `ups_on_battery`,
  `ups_battery_low` (`{kind}:{device}`); power restored / alarm removed clears them.
Varbind text is hostile data: it goes into evidence (escaped where shown), never a summary
format string.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from monitord.i18n import N_, _
from monitord.records import Category, Event, Finding, FindingState, Level, Sample, Severity

IF_INDEX = "1.3.6.1.2.1.2.2.1.1."
IF_DESCR = "1.3.6.1.2.1.2.2.1.2."
IF_ADMIN_STATUS = "1.3.6.1.2.1.2.2.1.7."
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8."
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1."
IF_ALIAS = "1.3.6.1.2.1.31.1.1.1.18."
UPS_ALARM_ON_BATTERY = "1.3.6.1.2.1.33.1.6.3.2"
UPS_ALARM_LOW_BATTERY = "1.3.6.1.2.1.33.1.6.3.3"
UPS_ALARM_DEPLETED_BATTERY = "1.3.6.1.2.1.33.1.6.3.4"

INTERFACE_DOWN = N_("Interface {interface} on {device} went down (linkDown trap)")
DEVICE_REBOOTED = N_("{device} restarted ({trap} trap)")
AUTH_FAILURE = N_("{device} refused an SNMP request with wrong credentials "
                  "(authenticationFailure trap)")
UPS_ON_BATTERY = N_("UPS {device} is running on battery ({trap} trap)")
UPS_BATTERY_LOW = N_("UPS {device} battery is low ({trap} trap)")
KINDS = ("interface_down", "device_rebooted", "snmp_auth_failure", "ups_on_battery",
         "ups_battery_low")

# (kind, category, severity, impact, urgency, summary)
_POLICY: Mapping[str, tuple[Category, Severity, Level, Level, str]] = {
    "interface_down": (Category.NETWORK, Severity.HIGH, Level.MEDIUM, Level.HIGH,
                       INTERFACE_DOWN),
    "device_rebooted": (Category.NETWORK, Severity.MEDIUM, Level.LOW, Level.MEDIUM,
                        DEVICE_REBOOTED),
    "snmp_auth_failure": (Category.NETWORK_SECURITY, Severity.MEDIUM, Level.LOW, Level.MEDIUM,
                          AUTH_FAILURE),
    # the UPS kinds in the category the polling detector (detectors/ups.py) gives them
    "ups_on_battery": (Category.SERVER, Severity.HIGH, Level.HIGH, Level.HIGH,
                       UPS_ON_BATTERY),
    "ups_battery_low": (Category.SERVER, Severity.CRITICAL, Level.HIGH, Level.HIGH,
                        UPS_BATTERY_LOW),
}


def _varbinds(event: Event) -> list[Mapping[str, Any]]:
    value = event.fields.get("varbinds")
    return [vb for vb in value if isinstance(vb, Mapping)] if isinstance(value, list) else []


def _by_prefix(varbinds: Iterable[Mapping[str, Any]], prefix: str) -> tuple[str, Any] | None:
    """(instance suffix, value) of the first varbind under `prefix`."""
    for vb in varbinds:
        oid = str(vb.get("oid", ""))
        if oid.startswith(prefix):
            return oid[len(prefix):], vb.get("value")
    return None


def interface_of(varbinds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """ifIndex and the names a link trap carries (RFC 2863 linkDown: ifIndex, ifAdminStatus,
    ifOperStatus; vendors add ifDescr, ifName, ifAlias)."""
    found: dict[str, Any] = {"ifIndex": None}
    index = _by_prefix(varbinds, IF_INDEX)
    if index and isinstance(index[1], int):
        found["ifIndex"] = index[1]
    for key, prefix in (("adminStatus", IF_ADMIN_STATUS), ("operStatus", IF_OPER_STATUS),
                        ("ifDescr", IF_DESCR), ("ifName", IF_NAME), ("ifAlias", IF_ALIAS)):
        hit = _by_prefix(varbinds, prefix)
        if hit is None:
            continue
        found[key] = hit[1]
        if found["ifIndex"] is None and hit[0].isdigit():
            found["ifIndex"] = int(hit[0])
    return found


class TrapDetector:
    """One finding (or a fire-and-clear pair) per notification; no state is needed because
    every trap says exactly what happened."""

    name = "traps"

    def reconfigure(self, config: object) -> None:
        return None  # nothing to tune: the receiver already decided what is trusted

    def observe(self, record: Sample | Event) -> Sequence[Finding]:
        if not isinstance(record, Event) or record.kind != "snmp_trap":
            return []
        trap = record.fields.get("trap")
        varbinds = _varbinds(record)
        device = record.device
        evidence = {"trap": trap, "trap_oid": record.fields.get("trap_oid"),
                    "version": record.fields.get("version"), "source": record.fields.get("source"),
                    "varbinds": varbinds}
        if trap in ("linkDown", "linkUp"):
            iface = interface_of(varbinds)
            index = iface["ifIndex"]
            key = f"interface_down:{device}:{index if index is not None else 'unknown'}"
            admin_down = iface.get("adminStatus") == 2
            state = FindingState.FIRING if trap == "linkDown" and not admin_down \
                else FindingState.CLEARED
            shown = str(iface.get("ifName") or iface.get("ifDescr") or
                        f"ifIndex {index if index is not None else '?'}")[:64]
            return [self._finding("interface_down", key, state, record, evidence,
                                  subject=shown, interface=shown,
                                  trap=trap, extra={"interface": iface})]
        if trap in ("coldStart", "warmStart"):
            return self._moment("device_rebooted", record, evidence, trap)
        if trap == "authenticationFailure":
            return self._moment("snmp_auth_failure", record, evidence, trap)
        ups = self._ups(trap, varbinds)
        return [self._finding(kind, f"{kind}:{device}", state, record, evidence, trap=trap)
                for kind, state in ups]

    @staticmethod
    def _ups(trap: Any, varbinds: Sequence[Mapping[str, Any]]
             ) -> list[tuple[str, FindingState]]:
        firing, cleared = FindingState.FIRING, FindingState.CLEARED
        if trap in ("upsTrapOnBattery", "apcUpsOnBattery"):
            return [("ups_on_battery", firing)]
        if trap == "apcPowerRestored":
            return [("ups_on_battery", cleared), ("ups_battery_low", cleared)]
        if trap == "apcLowBattery":
            return [("ups_battery_low", firing)]
        if trap == "apcReturnFromLowBattery":
            return [("ups_battery_low", cleared)]
        if trap in ("upsTrapAlarmEntryAdded", "upsTrapAlarmEntryRemoved"):
            state = firing if trap == "upsTrapAlarmEntryAdded" else cleared
            alarms = {str(vb.get("value")) for vb in varbinds if vb.get("type") == "oid"}
            out = []
            if UPS_ALARM_ON_BATTERY in alarms:
                out.append(("ups_on_battery", state))
            if alarms & {UPS_ALARM_LOW_BATTERY, UPS_ALARM_DEPLETED_BATTERY}:
                out.append(("ups_battery_low", state))
            return out
        return []

    def _moment(self, kind: str, record: Event, evidence: dict, trap: str) -> list[Finding]:
        key = f"{kind}:{record.device}"
        return [self._finding(kind, key, FindingState.FIRING, record, evidence, trap=trap),
                self._finding(kind, key, FindingState.CLEARED, record, evidence, trap=trap)]

    @staticmethod
    def _finding(kind: str, key: str, state: FindingState, record: Event, evidence: dict,
                 subject: str | None = None, extra: dict | None = None,
                 **words: str) -> Finding:
        category, severity, impact, urgency, summary = _POLICY[kind]
        return Finding(kind=kind, category=category, severity=severity, state=state,
                       dedup_key=key, summary=_(summary).format(device=record.device, **words),
                       first_seen=record.at, last_seen=record.at, device=record.device,
                       subject=subject, impact=impact, urgency=urgency,
                       evidence={**evidence, **(extra or {})})
