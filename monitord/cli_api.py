"""`monitord api-token create|list|revoke`: the JSON API's tokens.

A token acts as one person of the config's directory (an integration gets its own entry in
`people:` with the role it needs). `create` prints the token once, on stdout, for the
administrator to hand over; the database keeps only its SHA-256, so it cannot be shown again."""

from __future__ import annotations

import argparse
import re
import sys

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
             with_json: argparse.ArgumentParser) -> None:
    from monitord.i18n import _
    tokens = sub.add_parser("api-token", parents=[common], help=_("the JSON API's tokens"))
    tokens_sub = tokens.add_subparsers(dest="api_token_command", required=True,
                                       metavar="ACTION")
    create = tokens_sub.add_parser("create", parents=[common, with_json],
                                   help=_("create a token (printed once)"))
    create.add_argument("name", metavar="NAME",
                        help=_("the token's name, e.g. glpi or sari-laptop"))
    create.add_argument("--person", metavar="P",
                        help=_("the person from people the token acts as (default NAME)"))
    tokens_sub.add_parser("list", parents=[common, with_json],
                          help=_("list tokens (never their values)"))
    revoke = tokens_sub.add_parser("revoke", parents=[common, with_json],
                                   help=_("revoke a token; it stops working at once"))
    revoke.add_argument("name", metavar="NAME", help=_("the token's name"))
    tokens.set_defaults(func=cmd_api_token)


def cmd_api_token(args: argparse.Namespace) -> int:
    import json
    from datetime import datetime, timezone

    from monitord.cli import UsageError, _emit, _in_transaction
    from monitord.i18n import _
    from monitord.web import tokens
    from monitord.web.auth import principal_for

    now = datetime.now(timezone.utc)
    with _in_transaction(args) as (config, _engine, session):
        if args.api_token_command == "list":
            listing = [t.to_json() for t in tokens.list_tokens(session)]
            return _emit(args, listing, lambda t: (
                f"{t['name']:<24} {t['person']:<16} "
                f"{_('active') if t['active'] else _('revoked')}  "
                f"{_('created')} {t['created_at']}  {_('last used')} {t['last_used_at'] or '-'}"))
        if not NAME.match(args.name):
            raise UsageError(_("{name}: a token name is 1 to 64 letters, digits, '.', '_' or "
                               "'-', starting with a letter or digit").format(name=args.name))
        if args.api_token_command == "revoke":
            count = tokens.revoke(session, args.name, now)
            if not count:
                raise UsageError(_("no active API token named {name}").format(name=args.name))
            if args.json:
                print(json.dumps({"name": args.name, "revoked": count}))
            else:
                print(_("API token {name} revoked").format(name=args.name))
            return 0
        person = args.person or args.name
        if principal_for(config, person) is None:
            raise UsageError(_("no person named {name} in the configuration's people; an "
                               "integration needs its own entry there, with its role").format(
                name=person))
        try:
            token = tokens.create(session, args.name, person, now)
        except tokens.TokenError:
            raise UsageError(_("an active API token named {name} exists; revoke it first or "
                               "choose another name").format(name=args.name)) from None
    if args.json:
        print(json.dumps({"name": args.name, "person": person, "token": token}))
    else:
        print(token)
        print(_("API token {name} for {person} created. It is shown only now: keep it in a "
                "secret store. Use it as: Authorization: Bearer TOKEN").format(
            name=args.name, person=person), file=sys.stderr)
    return 0
