"""The `monitord` command. Every command takes --config; every string people read is translated."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from monitord import __version__
from monitord.config import DEFAULT_CONFIG_PATH, Config
from monitord.config_loader import ConfigError, load_config
from monitord.i18n import _, set_language


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


def cmd_incidents(args: argparse.Namespace) -> int:
    from monitord import render
    from monitord.incidents.store import repository as repo
    config = _load(args)
    store = _store(config)
    try:
        store.migrate()
        with store.sessions() as session:
            if args.incidents_command == "list":
                rows = repo.list_incidents(session, args.status, args.limit)
                if args.json:
                    print(json.dumps([render.incident_summary(r) for r in rows],
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
                print(json.dumps(render.incident_detail(row, outbox), ensure_ascii=False,
                                 indent=2))
            else:
                print(render.detail_text(row, outbox, config.tz))
            return 0
    finally:
        store.close()


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
    listing = inc_sub.add_parser("list", parents=[common], help=_("list incidents"))
    listing.add_argument("--status", choices=["open", "resolved", "closed", "all"], default="all",
                         help=_("only incidents with this status (default all)"))
    listing.add_argument("--limit", type=int, default=100, help=_("at most this many (default 100)"))
    listing.add_argument("--json", action="store_true", help=_("print JSON for scripts"))
    show = inc_sub.add_parser("show", parents=[common], help=_("show one incident"))
    show.add_argument("number", metavar="N", help=_("incident number, e.g. 2026-000123"))
    show.add_argument("--json", action="store_true", help=_("print JSON for scripts"))
    incidents.set_defaults(func=cmd_incidents)

    demo = sub.add_parser("demo", parents=[common],
                          help=_("run a demo that monitors this host with a low threshold"))
    demo.add_argument("--data-dir", default="monitord-demo", metavar="DIR",
                      help=_("where the demo config and database go (default ./monitord-demo)"))
    demo.add_argument("--duration", type=float, metavar="SECONDS",
                      help=_("stop after this many seconds"))
    demo.set_defaults(func=cmd_demo)

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
    except KeyboardInterrupt:
        return 130
