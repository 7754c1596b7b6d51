"""The netconfig collector: one job per configured device (`netconfig:` in the config).

Each run fetches over SSH (collectors/netconfig/fetch.py), records a new version when the
masked configuration changed, and emits one `netconfig_result` Event for the detector (with
the unified diff and whether a maintenance window covered the change) plus `netconfig_*`
samples for the metrics. Store I/O happens here, in one transaction per run, so the detector
stays pure."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from monitord.collectors.netconfig.fetch import FetchResult, SshTarget, fetch
from monitord.collectors.netconfig.versions import (
    CONFIG,
    HOSTKEY,
    SHOW,
    latest,
    record,
    unified_diff,
)
from monitord.records import Event, Sample

log = logging.getLogger("monitord.collectors.netconfig")
RESULT_EVENT = "netconfig_result"


@dataclass(frozen=True, slots=True)
class Backup:
    """What one run did: the fetch, and the version it stored or confirmed."""

    result: FetchResult
    fields: dict[str, Any]


class NetconfigCollector:
    """`store` is the incident store; `calendar` answers "is this device in maintenance?"
    (incidents.maintenance.MaintenanceCalendar), None for no windows."""

    def __init__(self, target: SshTarget, store, calendar=None,
                 fetcher: Callable[[SshTarget, str | None], FetchResult] = fetch) -> None:
        self.target = target
        self.store = store
        self.calendar = calendar
        self.fetcher = fetcher
        self.name = f"netconfig:{target.device}"

    def pinned_host_key(self) -> str | None:
        """The host key the device presented at its first successful fetch (trust on first
        use, kept in the store), or None before that."""
        if self.store is None:
            return None
        with self.store.sessions() as session:
            row = next(iter(latest(session, self.target.device, HOSTKEY)), None)
            return row.content if row is not None else None

    def backup(self, now: datetime, accept_host_key: bool = False) -> Backup:
        """Fetch and record once (the daemon's run and `monitord config-backup`).
        `accept_host_key`: a person checked that the device's new host key is legitimate."""
        target = self.target
        pinned = None if accept_host_key else self.pinned_host_key()
        result = self.fetcher(target, pinned)
        fields: dict[str, Any] = {"device": target.device, "device_type": target.device_type,
                                  "ok": result.ok, "reason": result.reason,
                                  "error": result.error, "seconds": round(result.seconds, 3),
                                  "failed_commands": dict(result.failed_commands),
                                  "command": target.config_command,
                                  "host_key": result.host_key, "pinned_host_key": pinned}
        if not result.ok:
            log.warning("netconfig fetch failed device=%s reason=%s", target.device,
                        result.reason)
            return Backup(result, fields)
        with self.store.sessions() as session, session.begin():
            recorded = record(session, target.device, CONFIG, target.config_command,
                              result.config or "", now)
            for command, output in result.outputs.items():
                record(session, target.device, SHOW, command, output, now)
            if result.host_key is not None:  # pinned at the first fetch (or a person's accept)
                record(session, target.device, HOSTKEY, "ssh-host-key", result.host_key, now)
            version = recorded.version
            fields.update(version=version.id, sha256=version.sha256, lines=version.lines,
                          changed=recorded.changed, baseline=recorded.previous is None
                          and version.fetched_at == now,
                          version_since=version.fetched_at.isoformat())
            if recorded.changed:
                previous = recorded.previous
                diff = unified_diff(target.device, previous, version)
                fields.update(previous_version=previous.id, previous_sha256=previous.sha256,
                              previous_fetched_at=previous.fetched_at.isoformat(),
                              diff=diff.text, added=diff.added, removed=diff.removed,
                              diff_truncated=diff.truncated)
                fields.update(self._maintenance(session, now))
        if fields.get("changed"):
            log.info("netconfig changed device=%s version=%s added=%s removed=%s",
                     target.device, fields["version"], fields["added"], fields["removed"])
        return Backup(result, fields)

    def _maintenance(self, session, now: datetime) -> dict[str, Any]:
        if self.calendar is None:
            return {"in_maintenance": False}
        windows = self.calendar.windows(session, now)
        for category in ("network", "network_security"):
            window = self.calendar.covering(windows, self.target.device, category, now)
            if window is not None:
                return {"in_maintenance": True, "maintenance_reason": window.reason,
                        "maintenance_window": window.origin}
        return {"in_maintenance": False}

    def poll(self, now: datetime) -> list[Sample | Event]:
        backup = self.backup(now)
        return records_for(backup, self.target.device, now)


def records_for(backup: Backup, device: str, now: datetime) -> list[Sample | Event]:
    fields = backup.fields
    records: list[Sample | Event] = [
        Sample(device, "netconfig_up", 1.0 if backup.result.ok else 0.0, now),
        Sample(device, "netconfig_fetch_seconds", float(backup.result.seconds), now),
        Sample(device, "netconfig_failed_commands", float(len(fields["failed_commands"])), now),
    ]
    if backup.result.ok:
        records += [Sample(device, "netconfig_config_lines", float(fields["lines"]), now),
                    Sample(device, "netconfig_config_changed", 1.0 if fields["changed"] else 0.0,
                           now)]
    records.append(Event(device, RESULT_EVENT, now, fields))
    return records


class NetconfigSetupError(Exception):
    """A netconfig entry that cannot run (no such device, no SSH credential, no secret)."""


def build_target(config, entry) -> SshTarget:
    """The SSH target of one `netconfig:` entry: the device's address and its ssh_credential,
    whose password/private key are resolved now from the credential store."""
    from monitord.i18n import _
    from monitord.secrets import SecretSourceError

    device = config.device(entry.device)
    if device is None:
        raise NetconfigSetupError(_("netconfig: no device named {device}").format(
            device=entry.device))
    credential = config.credentials.get(device.ssh_credential or "")
    if credential is None or getattr(credential, "type", None) != "ssh":
        raise NetconfigSetupError(_("netconfig: device {device} has no ssh_credential").format(
            device=entry.device))
    try:
        password = credential.password.resolve() if credential.password else None
        private_key = credential.private_key.resolve() if credential.private_key else None
    except SecretSourceError as exc:
        raise NetconfigSetupError(f"netconfig {entry.device}: {exc}") from None
    return SshTarget(device=device.name, device_type=entry.device_type, host=device.address,
                     port=credential.port, username=credential.username, password=password,
                     private_key=private_key, config_command=entry.command,
                     commands=tuple(entry.commands), timeout=entry.timeout.total_seconds(),
                     mask=tuple(entry.mask))


def build_collector(config, entry, store) -> NetconfigCollector:
    from monitord.incidents.maintenance import MaintenanceCalendar
    return NetconfigCollector(build_target(config, entry), store, MaintenanceCalendar(config))
