"""The `monitord` command. Every command takes --config; every string people read is translated."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from monitord import __version__, cli_api, cli_traffic, cli_web
from monitord.config import DEFAULT_CONFIG_PATH, Config
from monitord.config_loader import ConfigError, load_config
from monitord.i18n import _, set_language
from monitord.records import Category


def _config_path(args: argparse.Namespace) -> str:
    return (getattr(args, "config", None) or getattr(args, "config_global", None)
            or os.environ.get("MONITORD_CONFIG") or DEFAULT_CONFIG_PATH)


def _load(args: argparse.Namespace) -> Config:
    config = load_config(_config_path(args))
    set_language(config.language)
    return config


def _store(config: Config):
    from monitord.incidents.store import open_store
    password = config.storage.password.resolve() if config.storage.password else None
    return open_store(config.storage, password)


def cmd_run(args: argparse.Namespace) -> int:
    from monitord.daemon import run_daemon
    return run_daemon(_config_path(args), duration=args.duration)


def cmd_check_config(args: argparse.Namespace) -> int:
    path = args.file or _config_path(args)
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(_("{count} problem(s) found in {file}").format(count=len(exc.problems), file=path),
              file=sys.stderr)
        return 2
    set_language(config.language)
    try:
        engine = _engine(config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    print(_("{file}: {workflows} workflows loaded").format(file=path,
                                                          workflows=len(engine.workflows)))
    print(_("{file}: configuration is valid ({devices} devices, {sites} sites, "
            "{credentials} credentials)").format(file=path, devices=len(config.devices),
                                                 sites=len(config.sites),
                                                 credentials=len(config.credentials)))
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    config = _load(args)
    store = _store(config)
    try:
        if args.db_command == "upgrade":
            store.migrate()
        print(_("database schema revision: {revision}").format(
            revision=store.current_revision() or _("none")))
    finally:
        store.close()
    return 0


class UsageError(Exception):
    """One clear line for the person at the terminal; exit 2."""


@contextlib.contextmanager
def _in_transaction(args: argparse.Namespace):
    """The configuration, the SOP engine and one transaction on the migrated store: every
    change a command makes commits together or not at all."""
    config = _load(args)
    engine = _engine(config)
    store = _store(config)
    try:
        store.migrate()
        with store.sessions() as session, session.begin():
            yield config, engine, session
    finally:
        store.close()


def _engine(config: Config):
    from monitord.incidents.workflow.engine import load_engine
    return load_engine(config)


def _now(text: str | None):
    from datetime import datetime, timezone
    if not text:
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(_("--at {value}: expected an ISO 8601 time such as "
                           "2026-11-27T17:00:00+07:00").format(value=text)) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def cmd_incidents(args: argparse.Namespace) -> int:
    if args.incidents_command in ("report", "act", "tick"):
        return cmd_incident_change(args)
    from monitord import incident_json, render
    from monitord.incidents.store import repository as repo
    config = _load(args)
    store = _store(config)
    engine = _engine(config)
    try:
        store.migrate()
        with store.sessions() as session:
            if args.incidents_command == "list":
                rows = repo.list_incidents(session, args.status, args.limit)
                if args.json:
                    print(json.dumps([incident_json.incident_summary(r) for r in rows],
                                     ensure_ascii=False, indent=2))
                else:
                    print(render.table(rows, config.tz))
                return 0
            row = repo.get_incident(session, args.number)
            if row is None:
                print(_("No incident numbered {number}.").format(number=args.number),
                      file=sys.stderr)
                return 1
            outbox = repo.outbox_for(session, row.id)
            if args.json:
                print(json.dumps(incident_json.incident_detail(row, outbox, engine),
                                 ensure_ascii=False, indent=2))
            else:
                print(render.detail_text(row, outbox, config.tz, engine))
            return 0
    finally:
        store.close()


def cmd_incident_change(args: argparse.Namespace) -> int:
    """report, act and tick: one transaction each, the same engine calls as the daemon."""
    from monitord.incident_json import act_result, report_result
    from monitord.incidents.store import repository as repo
    from monitord.incidents.workflow.engine import Report, WorkflowError
    from monitord.records import Category, Level
    try:
        with _in_transaction(args) as (config, engine, session):
            if args.incidents_command == "report":
                officer = engine.person(args.as_person).full_name or args.as_person \
                    if args.as_person else ""
                incident = engine.open_report(session, Report(
                    category=Category(args.category), place=args.place,
                    reporter_name=args.reporter_name, agency=args.agency, phone=args.phone,
                    email=args.email, description=args.description,
                    impact=Level(args.impact), urgency=Level(args.urgency), officer=officer),
                    _now(None))
                result = report_result(incident)
                result["status_url"] = cli_web.status_link(session, config, incident)
            elif args.incidents_command == "act":
                incident = repo.get_incident(session, args.number)
                if incident is None:
                    raise UsageError(_("No incident numbered {number}.").format(
                        number=args.number))
                step = engine.act(session, incident, args.as_person, args.action,
                                  _now(None), outcome=args.outcome, note=args.note,
                                  impact=args.impact, urgency=args.urgency)
                result = act_result(incident, step)
            else:
                handled = engine.tick(session, _now(args.at))
                result = {"at": _now(args.at).isoformat(),
                          "handled": [{"number": h.number, "event": h.event, "step": h.step}
                                      for h in handled]}
    except (WorkflowError, UsageError, ValueError) as exc:
        print(_("error: {message}").format(message=exc), file=sys.stderr)
        return 2
    if getattr(args, "json", False):
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print(" ".join(f"{k}={v}" for k, v in result.items()))
    return 0


def cmd_maintenance(args: argparse.Namespace) -> int:
    """Windows set by a KD, KS or KB: findings are recorded but open no ticket."""
    from datetime import timedelta
    from monitord.config import parse_duration
    from monitord.incidents import maintenance
    now = _now(None)
    try:
        with _in_transaction(args) as (config, engine, session):
            if args.maintenance_command == "list":
                rows = maintenance.list_windows(session, now)
                listing = [{"id": r.id, "scope": r.scope, "value": r.value,
                            "starts_at": r.starts_at.isoformat(), "ends_at": r.ends_at.isoformat(),
                            "reason": r.reason, "created_by": r.created_by} for r in rows]
                listing += [{"id": "config", "scope": w.scope()[0], "value": w.scope()[1],
                             "starts_at": w.start_at.isoformat() if w.start_at else None,
                             "ends_at": w.end_at.isoformat() if w.end_at else None,
                             "weekly": w.weekly.model_dump(mode="json") if w.weekly else None,
                             "reason": w.reason} for w in config.maintenance]
                return _emit(args, listing, lambda w: (
                    f"{w['id']!s:<7} {w['scope']}={w['value']:<20} "
                    f"{w.get('starts_at') or '-'} .. {w.get('ends_at') or '-'}  {w['reason']}"))
            person = engine.person(args.as_person)
            if not set(person.roles) & set(maintenance.MAY_SET_WINDOWS):
                raise UsageError(_("{name} holds {roles}; maintenance windows are set by "
                                   "KD, KS or KB").format(name=person.name,
                                                          roles=", ".join(person.roles)))
            if args.maintenance_command == "end":
                row = maintenance.end_window(session, int(args.id), now)
                if row is None:
                    raise UsageError(_("no maintenance window {id}").format(id=args.id))
                print(_("maintenance window {id} ended").format(id=row.id))
                return 0
            scopes = [(k, v) for k, v in (("device", args.device), ("site", args.site),
                                          ("category", args.category)) if v]
            if len(scopes) != 1:
                raise UsageError(_("give exactly one of --device, --site or --category"))
            starts = _now(args.start) if args.start else now
            length = parse_duration(args.duration)
            if not isinstance(length, timedelta):
                raise UsageError(_("--duration: expected a duration such as 2h"))
            row = maintenance.add_window(session, scopes[0][0], scopes[0][1], starts,
                                         starts + length, args.reason or "", person.name, now)
            print(json.dumps({"id": row.id, "scope": row.scope, "value": row.value,
                              "starts_at": row.starts_at.isoformat(),
                              "ends_at": row.ends_at.isoformat()}) if args.json else
                  _("maintenance window {id} set: {scope}={value} until {end}").format(
                      id=row.id, scope=row.scope, value=row.value, end=row.ends_at.isoformat()))
            return 0
    except (UsageError, ValueError) as exc:
        print(_("error: {message}").format(message=exc), file=sys.stderr)
        return 2


def cmd_report(args: argparse.Namespace) -> int:
    """The monthly recap: HTML with charts and CSV, as the SOPs require every month."""
    import re
    from monitord.i18n import active_language
    from monitord.incidents.report import monthly_recap, write_recap
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", args.month):
        raise UsageError(_("{month}: expected a month as YYYY-MM").format(month=args.month))
    config = _load(args)
    engine = _engine(config)
    store = _store(config)
    try:
        store.migrate()
        with store.sessions() as session:
            recap = monthly_recap(session, engine, args.month)
    finally:
        store.close()
    html, csv_path = write_recap(recap, Path(args.output), active_language())
    print(_("recap written: {html} and {csv}").format(html=html, csv=csv_path))
    return 0


def _emit(args: argparse.Namespace, items: list[dict], line) -> int:
    """JSON for scripts (--json), one readable line per item for people."""
    if getattr(args, "json", False):
        print(json.dumps(items, ensure_ascii=False, indent=2))
    else:
        for item in items:
            print(line(item))
    return 0


def cmd_people(args: argparse.Namespace) -> int:
    config = _load(args)
    people = [{"name": p.name, "full_name": p.full_name, "role": ",".join(p.roles),
               "roles": list(p.roles), "division": p.division} for p in config.people]
    return _emit(args, people, lambda p: f"{p['name']:<16} {p['role']:<10} "
                                         f"{p['division'] or '-':<6} {p['full_name']}")


def cmd_workflows(args: argparse.Namespace) -> int:
    from monitord.i18n import active_language
    config = _load(args)
    engine = _engine(config)
    language = active_language()
    listing = [{"name": w.name, "title": w.title.get(language), "steps": len(w.steps),
                "roles": list(w.roles), "tiers": list(w.tiers), "start": w.start,
                "auto_start": w.auto_start} for w in engine.workflows.values()]
    return _emit(args, listing,
                 lambda w: f"{w['name']:<28} {w['steps']:>3} {_('steps')}  {w['title']}")


def cmd_analyze_pcap(args: argparse.Namespace) -> int:
    """The traffic detectors over a capture file, offline (the same detectors as the daemon)."""
    from monitord import render
    from monitord.collectors.packets.analyze import (analyze_pcap, finding_to_json,
                                                     settings_from_config)
    settings = None
    if args.config or args.config_global:  # the language and detectors.traffic, as the daemon
        settings = settings_from_config(_load(args).detectors.traffic)
    result = analyze_pcap(args.file, settings)
    if result.stats.get("read", {}).get("error") and not result.stats["read"].get("packets"):
        raise UsageError(_("{file}: not a readable pcap or pcapng capture").format(file=args.file))
    findings = [finding_to_json(f) for f in result.findings]
    return _emit(args, findings, lambda f: (
        f"{f['severity']:<8} {f['kind']:<16} {render.safe_text(f['attacker'] or '-', 40):<40} "
        f"{render.safe_text(f['victim'] or '-', 40):<40} {f['count']:>6}"))


def _config_or_default(args: argparse.Namespace) -> Config:
    """The configuration if there is one; the defaults for a quick check on a bare host."""
    explicit = getattr(args, "config", None) or getattr(args, "config_global", None)
    return _load(args) if explicit or os.path.exists(_config_path(args)) else Config()


def cmd_check(args: argparse.Namespace) -> int:
    """One run of a check now, the same code as the daemon's collectors and detectors."""
    config = _config_or_default(args)
    if args.check_command == "host":
        from monitord.collectors.host import run_host_check
        report = run_host_check(config.collectors.host, config.detectors.host)
    else:
        from monitord.collectors.services import run_service_check
        from monitord.detectors.services import ServicePolicy
        options = {k: v for k, v in (("timeout", args.timeout), ("match", args.match),
                                     ("server", args.server),
                                     ("expected", tuple(args.expect) if args.expect else None))
                   if v is not None}
        try:
            report = run_service_check(args.target, args.kind, options,
                                       policy=ServicePolicy.from_settings(config.detectors.services))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    else:
        from monitord import render
        for finding in report.get("findings", []):
            print(f"{finding['severity']:<8} {finding['kind']:<20} "
                  f"{render.safe_text(finding.get('summary', ''))}")
        print("OK" if report.get("ok") else "FAIL")
    return 0 if report.get("ok") else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from monitord.demo import run_demo
    return run_demo(Path(args.data_dir), args.duration)


def cmd_version(args: argparse.Namespace) -> int:
    print(f"monitord {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE",
                        help=_("configuration file (default {path}, or $MONITORD_CONFIG)")
                        .format(path=DEFAULT_CONFIG_PATH))
    with_json = argparse.ArgumentParser(add_help=False)
    with_json.add_argument("--json", action="store_true", help=_("print JSON for scripts"))
    parser = argparse.ArgumentParser(
        prog="monitord",
        description=_("Network and security monitoring whose incidents follow the office's SOP."))
    parser.add_argument("--config", dest="config_global", metavar="FILE",
                        help=_("configuration file (default {path}, or $MONITORD_CONFIG)")
                        .format(path=DEFAULT_CONFIG_PATH))
    parser.add_argument("--version", action="version", version=f"monitord {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", parents=[common], help=_("run the daemon"))
    run.add_argument("--duration", type=float, metavar="SECONDS",
                     help=_("stop after this many seconds"))
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", parents=[common],
                           help=_("validate a configuration file; exit 2 if it has problems"))
    check.add_argument("file", nargs="?", metavar="FILE", help=_("the file to check"))
    check.set_defaults(func=cmd_check_config)

    db = sub.add_parser("db", parents=[common], help=_("incident store schema"))
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("upgrade", parents=[common], help=_("apply database migrations"))
    db_sub.add_parser("current", parents=[common], help=_("show the schema revision"))
    db.set_defaults(func=cmd_db)

    incidents = sub.add_parser("incidents", parents=[common], help=_("list and show incidents"))
    inc_sub = incidents.add_subparsers(dest="incidents_command", required=True, metavar="ACTION")
    listing = inc_sub.add_parser("list", parents=[common, with_json], help=_("list incidents"))
    listing.add_argument("--status", choices=["open", "resolved", "closed", "all"], default="all",
                         help=_("only incidents with this status (default all)"))
    listing.add_argument("--limit", type=int, default=100, help=_("at most this many (default 100)"))
    show = inc_sub.add_parser("show", parents=[common, with_json], help=_("show one incident"))
    show.add_argument("number", metavar="N", help=_("incident number, e.g. 2026-000123"))
    report = inc_sub.add_parser("report", parents=[common, with_json],
                                help=_("record a person's report (Form HD-01)"))
    report.add_argument("--category", required=True,
                        choices=[c.value for c in Category], help=_("the SOP section"))
    report.add_argument("--place", required=True, help=_("place / location of the fault"))
    report.add_argument("--reporter-name", required=True, help=_("who reported it"))
    report.add_argument("--agency", default="", help=_("reporting agency (SKPD/UKPD)"))
    report.add_argument("--phone", default="", help=_("reporter's phone"))
    report.add_argument("--email", default="", help=_("reporter's e-mail"))
    report.add_argument("--description", required=True, help=_("what is wrong"))
    report.add_argument("--impact", choices=["low", "medium", "high"], default="medium",
                        help=_("impact (default medium)"))
    report.add_argument("--urgency", choices=["low", "medium", "high"], default="medium",
                        help=_("urgency (default medium)"))
    report.add_argument("--as", dest="as_person", metavar="PERSON",
                        help=_("the help-desk officer recording it"))
    act = inc_sub.add_parser("act", parents=[common, with_json], help=_("act on an incident"))
    act.add_argument("number", metavar="N", help=_("incident number, e.g. 2026-000123"))
    act.add_argument("action", metavar="ACTION", help=_("accept, direct, report, verify, ..."))
    act.add_argument("--as", dest="as_person", metavar="PERSON", required=True,
                     help=_("who acts (a name from people)"))
    act.add_argument("--outcome", choices=["resolved", "not_resolved"],
                     help=_("the outcome of a check"))
    act.add_argument("--note", help=_("a note for the timeline"))
    act.add_argument("--impact", choices=["low", "medium", "high"], help=_("new impact"))
    act.add_argument("--urgency", choices=["low", "medium", "high"], help=_("new urgency"))
    tick = inc_sub.add_parser("tick", parents=[common, with_json],
                              help=_("process SLA timers as of a moment"))
    tick.add_argument("--at", metavar="ISO8601", help=_("the moment (default now)"))
    incidents.set_defaults(func=cmd_incidents)

    report_cmd = sub.add_parser("report", parents=[common], help=_("reports"))
    report_sub = report_cmd.add_subparsers(dest="report_command", required=True, metavar="KIND")
    monthly = report_sub.add_parser("monthly", parents=[common], help=_("the monthly recap"))
    monthly.add_argument("month", metavar="YYYY-MM", help=_("the month"))
    monthly.add_argument("--output", default=".", metavar="DIR",
                         help=_("where to write the HTML and CSV (default .)"))
    report_cmd.set_defaults(func=cmd_report)

    maint = sub.add_parser("maintenance", parents=[common], help=_("maintenance windows"))
    maint_sub = maint.add_subparsers(dest="maintenance_command", required=True, metavar="ACTION")
    maint_add = maint_sub.add_parser("add", parents=[common, with_json], help=_("start a window"))
    maint_add.add_argument("--device", help=_("a device name"))
    maint_add.add_argument("--site", help=_("a site name"))
    maint_add.add_argument("--category", choices=[c.value for c in Category],
                           help=_("an SOP category"))
    maint_add.add_argument("--start", metavar="ISO8601", help=_("when it starts (default now)"))
    maint_add.add_argument("--duration", required=True, help=_("how long, e.g. 2h"))
    maint_add.add_argument("--reason", help=_("why (shown on incidents)"))
    maint_add.add_argument("--as", dest="as_person", required=True, metavar="PERSON",
                           help=_("a KD, KS or KB from people"))
    maint_sub.add_parser("list", parents=[common, with_json],
                         help=_("current and planned windows"))
    maint_end = maint_sub.add_parser("end", parents=[common], help=_("end a window now"))
    maint_end.add_argument("id", help=_("the window's id"))
    maint_end.add_argument("--as", dest="as_person", required=True, metavar="PERSON",
                           help=_("a KD, KS or KB from people"))
    maint.set_defaults(func=cmd_maintenance)

    people = sub.add_parser("people", parents=[common], help=_("the people directory"))
    people_sub = people.add_subparsers(dest="people_command", required=True, metavar="ACTION")
    people_sub.add_parser("list", parents=[common, with_json], help=_("list people"))
    people.set_defaults(func=cmd_people)
    cli_web.register(people_sub, common)
    cli_api.register(sub, common, with_json)

    workflows = sub.add_parser("workflows", parents=[common], help=_("the loaded SOP workflows"))
    wf_sub = workflows.add_subparsers(dest="workflows_command", required=True, metavar="ACTION")
    wf_sub.add_parser("list", parents=[common, with_json], help=_("list workflows"))
    workflows.set_defaults(func=cmd_workflows)

    check = sub.add_parser("check", parents=[common], help=_("run one check now"))
    check_sub = check.add_subparsers(dest="check_command", required=True, metavar="WHAT")
    check_sub.add_parser("host", parents=[common, with_json], help=_("this host's health"))
    check_service = check_sub.add_parser("service", parents=[common, with_json],
                                         help=_("one service check"))
    check_service.add_argument("target", metavar="URL|HOST:PORT",
                               help=_("what to check"))
    check_service.add_argument("--kind", choices=("http", "tcp", "tls", "dns", "icmp",
                                                  "database"), help=_("the kind of check"))
    check_service.add_argument("--timeout", type=float, help=_("seconds to wait"))
    check_service.add_argument("--match", help=_("http: text the page must contain"))
    check_service.add_argument("--server", help=_("dns: the server to ask, HOST[:PORT]"))
    check_service.add_argument("--expect", action="append", help=_("dns: an expected answer"))
    check.set_defaults(func=cmd_check)

    pcap = sub.add_parser("analyze-pcap", parents=[common, with_json],
                          help=_("run the traffic detectors over a capture file"))
    pcap.add_argument("file", metavar="FILE", help=_("a pcap or pcapng file"))
    pcap.set_defaults(func=cmd_analyze_pcap)
    cli_traffic.register(sub, common, with_json)

    demo = sub.add_parser("demo", parents=[common],
                          help=_("run a demo that monitors this host with a low threshold"))
    demo.add_argument("--data-dir", default="monitord-demo", metavar="DIR",
                      help=_("where the demo config and database go (default ./monitord-demo)"))
    demo.add_argument("--duration", type=float, metavar="SECONDS",
                      help=_("stop after this many seconds"))
    demo.set_defaults(func=cmd_demo)

    from monitord import cli_netconfig
    cli_netconfig.register(sub, common, with_json)
    from monitord import cli_snmp
    cli_snmp.register(sub, common, with_json)

    version = sub.add_parser("version", parents=[common], help=_("print the version"))
    version.set_defaults(func=cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    set_language(None)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except UsageError as exc:
        print(_("error: {message}").format(message=exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
