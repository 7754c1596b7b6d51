"""`monitord snmp poll`: poll one device now, through the same sessions, profiles and
`poll_device` the daemon's `SnmpCollector` uses, and print what it found.

    monitord snmp poll --host HOST[:PORT] (--community C | --v3-user U --auth-key-env VAR
        [--priv-key-env VAR]) [--snmp-version 1|2c|3] [--profile P] [--json]

Every argument is validated with a full match before anything is sent (hosts, communities and
user names with shell metacharacters, newlines, a leading '-' or NUL are refused; ports are
integers); nothing here ever reaches a shell. v3 keys are read from environment variables so
they never appear in `ps` or shell history.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import re
import sys

HOST_NAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*")
COMMUNITY = re.compile(r"[A-Za-z0-9_.@%+=:,/][A-Za-z0-9_.@%+=:,/-]{0,127}")
USER = re.compile(r"[A-Za-z0-9_.@][A-Za-z0-9_.@-]{0,63}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
PROFILE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
OID = re.compile(r"\.?(0|1|2)(\.(0|[1-9][0-9]{0,9})){1,127}")


class SnmpUsageError(ValueError):
    """A command-line value was refused (the message names it, never echoes a secret)."""


def parse_host(value: str) -> tuple[str, int]:
    """HOST, HOST:PORT, IPv6 or [IPv6]:PORT -> (host, port); full-match validation."""
    from monitord.i18n import _
    if not isinstance(value, str) or not value or "\x00" in value or value != value.strip():
        raise SnmpUsageError(_("--host: a host name or IP address, optionally :PORT"))
    host, port = value, 161
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::([0-9]{1,5}))?", value)
    if match:
        host, port = match.group(1), int(match.group(2) or 161)
    elif value.count(":") == 1:
        host, _sep, port_text = value.partition(":")
        if not re.fullmatch(r"[0-9]{1,5}", port_text):
            raise SnmpUsageError(_("--host: the port must be a number from 1 to 65535"))
        port = int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not HOST_NAME.fullmatch(host):
            raise SnmpUsageError(_("--host: a host name or IP address, optionally :PORT")) \
                from None
    if not 1 <= port <= 65535:
        raise SnmpUsageError(_("--host: the port must be a number from 1 to 65535"))
    return host, port


def check(pattern: re.Pattern, value: str, flag: str) -> str:
    from monitord.i18n import _
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise SnmpUsageError(_("{flag}: not an accepted value (letters, digits and . _ @ "
                               "only; no spaces, newlines, shell characters or leading -)"
                               ).format(flag=flag))
    return value


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
             with_json: argparse.ArgumentParser) -> None:
    from monitord.i18n import _
    snmp = sub.add_parser("snmp", parents=[common], help=_("SNMP devices"))
    snmp_sub = snmp.add_subparsers(dest="snmp_command", required=True, metavar="WHAT")
    poll = snmp_sub.add_parser("poll", parents=[common, with_json],
                               help=_("poll one device now, as the daemon does"))
    poll.add_argument("--host", required=True, metavar="HOST[:PORT]",
                      help=_("the device's address (port 161 unless given)"))
    poll.add_argument("--community", help=_("v1/v2c community"))
    poll.add_argument("--v3-user", metavar="U", help=_("SNMPv3 user name"))
    poll.add_argument("--auth-key-env", metavar="VAR",
                      help=_("environment variable holding the v3 authentication key"))
    poll.add_argument("--priv-key-env", metavar="VAR",
                      help=_("environment variable holding the v3 privacy key "
                             "(none: authNoPriv)"))
    poll.add_argument("--auth-protocol", default="sha",
                      choices=("md5", "sha", "sha224", "sha256", "sha384", "sha512"),
                      help=_("v3 authentication protocol (default sha)"))
    poll.add_argument("--priv-protocol", default="aes",
                      choices=("des", "aes", "aes192", "aes256"),
                      help=_("v3 privacy protocol (default aes)"))
    poll.add_argument("--snmp-version", choices=("1", "2c", "3"),
                      help=_("SNMP version (default 2c, or 3 with --v3-user)"))
    poll.add_argument("--profile", action="append", metavar="P",
                      help=_("profile to use (repeatable); default: chosen from sysObjectID"))
    poll.add_argument("--timeout", type=float, default=2.0, metavar="SECONDS",
                      help=_("seconds to wait for each answer"))
    poll.add_argument("--retries", type=int, default=1, choices=range(0, 11), metavar="N",
                      help=_("resend an unanswered request N times"))
    poll.set_defaults(func=cmd_snmp_poll)


def build_client(args: argparse.Namespace):
    """The session the daemon would use for these arguments (via the same factories)."""
    from monitord.collectors.snmp import ber
    from monitord.collectors.snmp.collector import v2_factory, v3_factory
    from monitord.collectors.snmp.v3 import V3Target
    from monitord.i18n import _
    host, port = parse_host(args.host)
    version = args.snmp_version or ("3" if args.v3_user else "2c")
    if not 0.05 <= args.timeout <= 60:
        raise SnmpUsageError(_("--timeout: between 0.05 and 60 seconds"))
    if version == "3":
        if not args.v3_user or not args.auth_key_env or args.community:
            raise SnmpUsageError(_("SNMPv3 needs --v3-user and --auth-key-env "
                                   "(and no --community)"))
        user = check(USER, args.v3_user, "--v3-user")
        auth_var = check(ENV_NAME, args.auth_key_env, "--auth-key-env")
        auth_key = os.environ.get(auth_var)
        if not auth_key:
            raise SnmpUsageError(_("environment variable {name} is not set").format(
                name=auth_var))
        priv_key = None
        if args.priv_key_env:
            priv_var = check(ENV_NAME, args.priv_key_env, "--priv-key-env")
            priv_key = os.environ.get(priv_var)
            if not priv_key:
                raise SnmpUsageError(_("environment variable {name} is not set").format(
                    name=priv_var))
        from monitord.secrets import Secret
        Secret(auth_key)  # registered with the redactor: never shown in a log line
        if priv_key:
            Secret(priv_key)
        target = V3Target(host, port, user, args.auth_protocol, auth_key,
                          args.priv_protocol if priv_key else "none", priv_key,
                          timeout=args.timeout, retries=args.retries)
        return v3_factory(target)(None)
    if not args.community or args.v3_user:
        raise SnmpUsageError(_("SNMP v1/v2c needs --community (and no --v3-user)"))
    community = check(COMMUNITY, args.community, "--community")
    return v2_factory(host, port, community, ber.VERSION_1 if version == "1" else ber.VERSION_2C,
                      args.timeout, args.retries, 200)(None)


def cmd_snmp_poll(args: argparse.Namespace) -> int:
    from monitord.collectors.snmp.poller import poll_device
    from monitord.collectors.snmp.profiles import ProfileError, load_profiles
    from monitord.i18n import _
    try:
        profiles = [check(PROFILE, p, "--profile") for p in (args.profile or [])]
        known = load_profiles()
        unknown = [p for p in profiles if p not in known]
        if unknown:
            raise SnmpUsageError(_("--profile: unknown profile {name} (known: {known})").format(
                name=unknown[0], known=", ".join(sorted(known))))

        async def run():
            client = build_client(args)
            return await poll_device(client, parse_host(args.host)[0], profiles or None, known)

        snapshot = asyncio.run(run())
    except (SnmpUsageError, ProfileError) as exc:
        print(_("error: {message}").format(message=exc), file=sys.stderr)
        return 2
    result = snapshot.as_json()
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        _print_text(result)
    if snapshot.error:
        reason = {"timeout": _("no answer (timeout)"),
                  "auth": _("the agent refused the credentials"),
                  "error": _("the agent answered with an error")}[snapshot.error]
        print(_("error: {message}").format(message=reason), file=sys.stderr)
        return 1
    return 0


def _print_text(result: dict) -> None:
    from monitord.i18n import _
    system = result["system"]
    print(_("System: {name} ({oid}), up {uptime} s").format(
        name=_safe(system["sysName"]), oid=system["sysObjectID"], uptime=system["sysUpTime_s"]))
    print(_("Description: {text}").format(text=_safe(system["sysDescr"])))
    print(_("Profiles: {names}").format(names=", ".join(result["profiles"])))
    for iface in result["interfaces"]:
        print(f"  {iface['ifIndex']:>6} {_safe(iface['ifName'] or iface['ifDescr']):<24} "
              f"{iface['adminStatus'] or '-'}/{iface['operStatus'] or '-'} "
              f"{iface['speed_bps'] or '-'}")
    if result["ups"]:
        print("UPS: " + ", ".join(f"{k}={v}" for k, v in result["ups"].items()))
    for key in ("cpu_percent", "memory_percent"):
        if result[key] is not None:
            print(f"{key}: {result[key]}")


def _safe(text: object) -> str:
    """Device text is hostile: control characters (terminal escapes) are shown escaped."""
    if text is None:
        return "-"
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
