"""`monitord people set-password NAME`: the desk's passwords, read from stdin (never from the
command line, where `ps` and shell history would show them), stored as argon2 hashes."""

from __future__ import annotations

import argparse
import getpass
import sys


def register(people_sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from monitord.i18n import _
    setpw = people_sub.add_parser(
        "set-password", parents=[common],
        help=_("set a person's desk password (read from stdin; one line)"))
    setpw.add_argument("name", metavar="NAME", help=_("a name from people"))
    setpw.set_defaults(func=cmd_set_password)


def _read_password() -> str:
    if sys.stdin.isatty():
        from monitord.i18n import _
        first = getpass.getpass(_("New password: "))
        if getpass.getpass(_("Again: ")) != first:
            return ""
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_set_password(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from monitord.cli import _in_transaction, _load
    from monitord.i18n import _
    from monitord.web import auth
    config = _load(args)
    if auth.principal_for(config, args.name) is None:
        print(_("error: {message}").format(message=_(
            "no person named {name} in the configuration's people").format(name=args.name)),
            file=sys.stderr)
        return 2
    password = _read_password()
    if len(password) < 8 or len(password) > auth.MAX_PASSWORD_LENGTH:
        print(_("error: {message}").format(message=_(
            "a password of 8 to 1024 characters on one line of stdin")), file=sys.stderr)
        return 2
    with _in_transaction(args) as (_config, _engine, session):
        auth.set_password(session, args.name, password, datetime.now(timezone.utc))
    print(_("password set for {name}; their open desk sessions have ended").format(
        name=args.name))
    return 0


def status_link(session, config, incident) -> str:
    """The reporter's status link for a report recorded at the terminal, as the desk's
    receipt gives it (token hash stored, link e-mailed to the reporter in the same
    transaction)."""
    from datetime import datetime, timezone

    from monitord.web import status
    session.flush()
    public_url = config.web.public_url or f"http://{config.http.listen}"
    token = status.issue(session, config, incident, datetime.now(timezone.utc), public_url)
    return status.link(public_url, incident.number, token)
