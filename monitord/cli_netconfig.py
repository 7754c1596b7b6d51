"""`monitord config-backup DEVICE` and `monitord config-diff DEVICE`: the netconfig
collector's code run once from the command line, against the same store as the daemon.

config-backup fetches the device's configuration over SSH now and stores a version if it
changed (exit 1 if the fetch failed, with the reason); config-diff prints the unified diff
between two stored versions (default: the latest and the one before it). Device text is
printed with control characters escaped: a configuration is hostile input."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone

from monitord.i18n import _


def register(sub, common: argparse.ArgumentParser, with_json: argparse.ArgumentParser) -> None:
    backup = sub.add_parser("config-backup", parents=[common, with_json],
                            help=_("fetch a device's configuration over SSH and store it"))
    backup.add_argument("device", metavar="DEVICE", help=_("a device listed under netconfig"))
    backup.add_argument("--accept-host-key", action="store_true",
                        help=_("trust the SSH host key the device presents now (after checking "
                               "that it changed on purpose)"))
    backup.set_defaults(func=cmd_config_backup)
    diff = sub.add_parser("config-diff", parents=[common, with_json],
                          help=_("show what changed between stored configuration versions"))
    diff.add_argument("device", metavar="DEVICE", help=_("a device listed under netconfig"))
    diff.add_argument("--from", dest="from_version", type=int, metavar="VERSION",
                      help=_("the older version (default: the one before --to)"))
    diff.add_argument("--to", dest="to_version", type=int, metavar="VERSION",
                      help=_("the newer version (default: the latest)"))
    diff.add_argument("--command", dest="show_command", metavar="COMMAND",
                      help=_("compare the stored outputs of this show command instead"))
    diff.set_defaults(func=cmd_config_diff)


def _entry(config, device: str):
    from monitord.cli import UsageError
    entry = next((e for e in config.netconfig if e.device == device), None)
    if entry is None:
        listed = ", ".join(e.device for e in config.netconfig) or _("none are configured")
        raise UsageError(_("{device} is not listed under netconfig ({listed})").format(
            device=device, listed=listed))
    return entry


def cmd_config_backup(args: argparse.Namespace) -> int:
    from monitord import render
    from monitord.cli import UsageError, _load, _store
    from monitord.collectors.netconfig.collector import NetconfigSetupError, build_collector
    from monitord.detectors.host import finding_json
    from monitord.detectors.netconfig import NetconfigDetector

    config = _load(args)
    entry = _entry(config, args.device)
    store = _store(config)
    try:
        store.migrate()
        try:
            collector = build_collector(config, entry, store)
        except NetconfigSetupError as exc:
            raise UsageError(str(exc)) from None
        now = datetime.now(timezone.utc)
        backup = collector.backup(now, accept_host_key=args.accept_host_key)
    finally:
        store.close()
    from monitord.collectors.netconfig.collector import records_for
    detector = NetconfigDetector()
    findings = [f for record in records_for(backup, entry.device, now)
                for f in detector.observe(record)]
    report = {key: value for key, value in backup.fields.items()}
    report["findings"] = [finding_json(f) for f in findings]
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    elif not backup.result.ok:
        print(_("{device}: backup failed ({reason}): {error}").format(
            device=entry.device, reason=report["reason"],
            error=render.safe_text(report["error"])))
    elif report.get("changed"):
        print(_("{device}: configuration changed, version {version} stored "
                "(+{added} -{removed} lines)").format(device=entry.device, **report))
    else:
        print(_("{device}: configuration version {version} ({lines} lines), unchanged since "
                "{since}").format(device=entry.device, version=report["version"],
                                  lines=report["lines"], since=report["version_since"]))
    if backup.result.ok:
        for command, error in report["failed_commands"].items():
            print(_("{device}: {command!r} failed: {error}").format(
                device=entry.device, command=render.safe_text(command),
                error=render.safe_text(error)))
    return 0 if backup.result.ok else 1


def cmd_config_diff(args: argparse.Namespace) -> int:
    from monitord import render
    from monitord.cli import UsageError, _load, _store
    from monitord.collectors.netconfig.versions import CONFIG, SHOW, latest, unified_diff
    from monitord.incidents.store.models import NetconfigVersionRow

    config = _load(args)
    entry = _entry(config, args.device)
    kind, command = (SHOW, args.show_command) if args.show_command else (CONFIG, None)
    store = _store(config)
    try:
        store.migrate()
        with store.sessions() as session:
            def version(number: int) -> NetconfigVersionRow:
                row = session.get(NetconfigVersionRow, number)
                if row is None or row.device != entry.device or row.kind != kind or \
                        (command is not None and row.command != command):
                    raise UsageError(_("{device} has no configuration version {version}")
                                     .format(device=entry.device, version=number))
                return row
            rows = list(latest(session, entry.device, kind, command, limit=1000))
            if not rows:
                raise UsageError(_("{device} has no stored configuration; run "
                                   "monitord config-backup {device}").format(
                                       device=entry.device))
            new = version(args.to_version) if args.to_version else rows[0]
            if args.from_version:
                old = version(args.from_version)
            else:
                old = next((r for r in rows if r.id < new.id), None)
            diff = unified_diff(entry.device, old, new, max_lines=None)
            report = {"device": entry.device, "command": new.command,
                      "from_version": old.id if old else None,
                      "to_version": new.id,
                      "from_fetched_at": old.fetched_at.isoformat() if old else None,
                      "to_fetched_at": new.fetched_at.isoformat(), "added": diff.added,
                      "removed": diff.removed, "diff": diff.text}
    finally:
        store.close()
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    elif not diff.text:
        print(_("{device}: no differences between version {old} and version {new}").format(
            device=entry.device, old=report["from_version"], new=report["to_version"]))
    else:
        for line in diff.text.splitlines():
            print(render.safe_text(line))
    return 0
