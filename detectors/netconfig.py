"""Device configuration results -> findings. Pure: reads the `netconfig_result` Events that
`collectors/netconfig/collector.py` emits (the masked diff, whether a maintenance window
covered the change, or why the fetch failed), never SSH, the store or the clock.

- `config_changed`: a new configuration version, with the unified diff as evidence. Outside a
  maintenance window it is a *network security* finding (someone changed a device when nobody
  planned to); inside one it is a *network* finding the window's owner can check off. Each
  change is its own incident (the dedup key holds the version), closed by people.
- `netconfig_auth_failed`, `netconfig_timeout`, `netconfig_unreachable`, `netconfig_ssh_error`,
  `netconfig_unknown_command`: the fetch failed, with the reason in words; the next
  successful fetch clears it.
- `netconfig_host_key_changed` (network security): the device presented another SSH host key
  than the one pinned at its first fetch, so monitord did not log in; cleared once a person
  accepts the new key (`monitord config-backup DEVICE --accept-host-key`). A `show` command the device does not know is
  `netconfig_unknown_command` for that command, cleared when it works again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from monitord.i18n import N_, _
from monitord.records import Category, Event, Finding, FindingState, Level, Sample, Severity

CHANGED = N_("Configuration of {device} changed outside a maintenance window "
             "(+{added} -{removed} lines, version {version})")
CHANGED_IN_WINDOW = N_("Configuration of {device} changed during maintenance "
                       "(+{added} -{removed} lines, version {version})")
FAILURES = {
    "auth_failed": ("netconfig_auth_failed", Severity.HIGH,
                    N_("Configuration backup of {device} failed: login refused ({error})")),
    "timeout": ("netconfig_timeout", Severity.MEDIUM,
                N_("Configuration backup of {device} failed: timed out ({error})")),
    "unreachable": ("netconfig_unreachable", Severity.MEDIUM,
                    N_("Configuration backup of {device} failed: unreachable ({error})")),
    "ssh_error": ("netconfig_ssh_error", Severity.MEDIUM,
                  N_("Configuration backup of {device} failed: SSH error ({error})")),
    "unknown_command": ("netconfig_unknown_command", Severity.MEDIUM,
                        N_("Configuration backup of {device} failed: the device does not "
                           "know the command ({error})")),
    "host_key_changed": ("netconfig_host_key_changed", Severity.HIGH,
                         N_("SSH host key of {device} changed; monitord did not log in "
                            "({error})")),
}
# A device that suddenly presents another host key may be a man in the middle.
SECURITY_REASONS = ("host_key_changed",)
UNKNOWN_SHOW = N_("{device} does not know the command {command!r}: {error}")
KINDS = ("config_changed",) + tuple(kind for kind, _s, _t in FAILURES.values())


@dataclass(slots=True)
class _State:
    failing: str | None = None  # the failure reason firing now
    failing_since: datetime | None = None
    last_error: str | None = None
    unknown: dict[str, datetime] = field(default_factory=dict)  # show command -> since


class NetconfigDetector:
    name = "netconfig"

    def __init__(self) -> None:
        self._state: dict[str, _State] = {}

    def reconfigure(self, config: object) -> None:
        """Nothing to take: what a change means depends only on the maintenance windows,
        which the collector looks up with the store."""

    def observe(self, record: Sample | Event) -> list[Finding]:
        if not isinstance(record, Event) or record.kind != "netconfig_result":
            return []
        fields = record.fields
        state = self._state.setdefault(record.device, _State())
        if not fields.get("ok"):
            return self._failure(record, state)
        findings = self._recovered(record, state)
        findings += self._unknown_shows(record, state)
        if fields.get("changed"):
            findings.append(changed_finding(record))
        return findings

    # -- failures ---------------------------------------------------------------------------

    def _failure(self, record: Event, state: _State) -> list[Finding]:
        reason = str(record.fields.get("reason") or "ssh_error")
        findings = []
        if state.failing is not None and state.failing != reason:
            findings += self._recovered(record, state)  # a different problem now
        if state.failing is None:
            state.failing, state.failing_since = reason, record.at
        state.last_error = record.fields.get("error")
        findings.append(self._failure_finding(record, state, FindingState.FIRING))
        return findings

    def _recovered(self, record: Event, state: _State) -> list[Finding]:
        if state.failing is None:
            return []
        finding = self._failure_finding(record, state, FindingState.CLEARED)
        state.failing, state.failing_since = None, None
        return [finding]

    def _failure_finding(self, record: Event, state: _State,
                         finding_state: FindingState) -> Finding:
        kind, severity, summary = FAILURES.get(state.failing or "", FAILURES["ssh_error"])
        error = state.last_error or "-"
        category = Category.NETWORK_SECURITY if state.failing in SECURITY_REASONS \
            else Category.NETWORK
        return Finding(
            kind=kind, category=category, severity=severity, state=finding_state,
            dedup_key=f"{kind}:{record.device}",
            summary=_(summary).format(device=record.device, error=error),
            first_seen=state.failing_since or record.at, last_seen=record.at,
            device=record.device, subject=str(record.fields.get("command") or ""),
            impact=Level.LOW, urgency=Level.MEDIUM,
            evidence={"reason": state.failing, "error": error,
                      "device_type": record.fields.get("device_type"),
                      "command": record.fields.get("command"),
                      "host_key": record.fields.get("host_key"),
                      "pinned_host_key": record.fields.get("pinned_host_key")})

    def _unknown_shows(self, record: Event, state: _State) -> list[Finding]:
        failed: Mapping[str, str] = record.fields.get("failed_commands") or {}
        findings = []
        for command, error in failed.items():
            since = state.unknown.setdefault(command, record.at)
            findings.append(self._show_finding(record, command, error, since,
                                               FindingState.FIRING))
        for command in [c for c in state.unknown if c not in failed]:
            since = state.unknown.pop(command)
            findings.append(self._show_finding(record, command, "-", since,
                                               FindingState.CLEARED))
        return findings

    def _show_finding(self, record: Event, command: str, error: str, since: datetime,
                      finding_state: FindingState) -> Finding:
        summary = UNKNOWN_SHOW
        return Finding(
            kind="netconfig_unknown_command", category=Category.NETWORK,
            severity=Severity.LOW, state=finding_state,
            dedup_key=f"netconfig_unknown_command:{record.device}:{command}",
            summary=_(summary).format(device=record.device, command=command, error=error),
            first_seen=since, last_seen=record.at, device=record.device, subject=command,
            impact=Level.LOW, urgency=Level.LOW,
            evidence={"reason": "unknown_command", "command": command, "error": error,
                      "device_type": record.fields.get("device_type")})


def changed_finding(record: Event) -> Finding:
    fields = record.fields
    planned = bool(fields.get("in_maintenance"))
    evidence: dict[str, Any] = {name: fields.get(name) for name in (
        "version", "sha256", "previous_version", "previous_sha256", "previous_fetched_at",
        "added", "removed", "diff", "diff_truncated", "in_maintenance", "maintenance_reason",
        "device_type", "command")}
    summary = CHANGED_IN_WINDOW if planned else CHANGED
    return Finding(
        kind="config_changed",
        category=Category.NETWORK if planned else Category.NETWORK_SECURITY,
        severity=Severity.LOW if planned else Severity.HIGH, state=FindingState.FIRING,
        dedup_key=f"config_changed:{record.device}:v{fields.get('version')}",
        summary=_(summary).format(device=record.device, added=fields.get("added", 0),
                                  removed=fields.get("removed", 0),
                                  version=fields.get("version")),
        first_seen=record.at, last_seen=record.at, device=record.device,
        subject=str(fields.get("command") or ""),
        impact=Level.MEDIUM, urgency=Level.LOW if planned else Level.HIGH, evidence=evidence)
