"""Fetch a device's running configuration and `show` commands over SSH with netmiko.

Blocking (netmiko and paramiko are synchronous): the scheduler runs it in a worker thread.
Every failure becomes a `FetchResult` with one of a few reasons a technician can act on
(auth_failed, timeout, unreachable, unknown_command, ssh_error), never an exception, and every
text that leaves this module (configuration, outputs, error messages) is masked first."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Mapping

from monitord.collectors.netconfig.mask import mask_config
from monitord.secrets import REDACTOR, Secret

log = logging.getLogger("monitord.collectors.netconfig")
# netmiko debug-logs every byte the device sends (the configuration and its secrets) and
# paramiko its auth exchange: never below WARNING, whatever the daemon's level.
for _noisy in ("netmiko", "paramiko"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)

AUTH_FAILED, TIMEOUT, UNREACHABLE, UNKNOWN_COMMAND, SSH_ERROR, HOST_KEY_CHANGED = (
    "auth_failed", "timeout", "unreachable", "unknown_command", "ssh_error", "host_key_changed")
REASONS = (AUTH_FAILED, TIMEOUT, UNREACHABLE, UNKNOWN_COMMAND, SSH_ERROR, HOST_KEY_CHANGED)

# What devices answer to a command they do not know (IOS/EOS %, JunOS, RouterOS, ProCurve,
# Comware, a Unix shell) or to a file that is not there. Only the first lines are read, so a
# banner or description further down cannot fake it.
_UNKNOWN = re.compile(
    r"(?i)(%\s*invalid input|%\s*incomplete command|%\s*ambiguous command|unknown command|"
    r"invalid command|unrecognized command|bad command name|syntax error|command not found|"
    r"no such file or directory|expected an? .* but found|invalid input detected)")
_HEAD_LINES = 3
ERROR_TEXT_MAX = 200


@dataclass(frozen=True, slots=True)
class SshTarget:
    """Everything needed to log in and run the commands; secrets stay typed."""

    device: str
    device_type: str
    host: str
    port: int
    username: str
    password: Secret | None
    private_key: Secret | None
    config_command: str
    commands: tuple[str, ...] = ()
    timeout: float = 60.0
    mask: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FetchResult:
    ok: bool
    reason: str | None = None
    error: str | None = None
    config: str | None = None  # masked
    outputs: Mapping[str, str] = field(default_factory=dict)  # command -> masked output
    failed_commands: Mapping[str, str] = field(default_factory=dict)  # command -> what it said
    seconds: float = 0.0
    host_key: str | None = None  # "ssh-ed25519 SHA256:..." the device presented


def unknown_command(output: str) -> str | None:
    """The line saying the command is unknown (or failed), if the output starts with one."""
    head = [line for line in output.splitlines() if line.strip()][:_HEAD_LINES]
    for line in head:
        if _UNKNOWN.search(line):
            return line.strip()[:ERROR_TEXT_MAX]
    return None


def _clean(output: str) -> str:
    """Unix line ends, no blank lines around (a prompt's echo leaves one)."""
    return output.replace("\r\n", "\n").replace("\r", "\n").strip("\n")


def _short(text: str, target: SshTarget) -> str:
    return mask_config(REDACTOR.redact(" ".join(str(text).split())), target.mask)[:ERROR_TEXT_MAX]


def _pkey(secret: Secret):
    """A paramiko key from the key text the credential store holds (never a file we write)."""
    import paramiko

    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(secret.reveal()))
        except (paramiko.SSHException, ValueError):  # not this type: try the next
            continue
    raise ValueError("the private key is not an OpenSSH/PEM RSA, ECDSA or Ed25519 key")


def connect_params(target: SshTarget) -> dict:
    params = {
        "device_type": target.device_type, "host": target.host, "port": target.port,
        "username": target.username, "password": target.password.reveal() if target.password
        else "", "allow_agent": False, "use_keys": False, "conn_timeout": target.timeout,
        "auth_timeout": target.timeout, "banner_timeout": target.timeout,
        "timeout": target.timeout, "session_log": None, "ssh_config_file": None,
        "system_host_keys": False, "alt_host_keys": False, "fast_cli": True,
    }
    if target.private_key is not None:  # a key object: netmiko's use_keys wants a key file
        params.update(pkey=_pkey(target.private_key))
    return params


def host_key_fingerprint(target: SshTarget) -> str:
    """The device's SSH host key as "TYPE SHA256:base64", read in a handshake that stops
    before any authentication: nothing secret is sent to a device that is not the one pinned."""
    import paramiko

    sock = socket.create_connection((target.host, target.port), timeout=target.timeout)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=target.timeout)
        key = transport.get_remote_server_key()
        digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
        return f"{key.get_name()} SHA256:{digest}"
    finally:
        transport.close()
        sock.close()


def fetch(target: SshTarget, pinned_host_key: str | None = None) -> FetchResult:
    """Log in, run the configuration command and every `show` command, log out. With
    `pinned_host_key` (what the device presented before), a different key stops the fetch
    before the login: the password is not offered to what may be a man in the middle."""
    from netmiko import ConnectHandler
    from netmiko.exceptions import (
        NetmikoAuthenticationException,
        NetmikoTimeoutException,
        ReadTimeout,
    )
    import paramiko

    started = time.monotonic()

    def failed(reason: str, error: str) -> FetchResult:
        return FetchResult(False, reason, _short(error, target),
                           seconds=time.monotonic() - started)

    try:
        params = connect_params(target)
    except ValueError as exc:
        return failed(AUTH_FAILED, str(exc))
    # netmiko reports a refused port and a silent one alike; one TCP probe tells them apart
    try:
        with socket.create_connection((target.host, target.port), timeout=target.timeout):
            pass
    except ConnectionRefusedError:
        return failed(UNREACHABLE, f"{target.host}:{target.port} refused the SSH connection")
    except (socket.timeout, TimeoutError):
        return failed(TIMEOUT, f"no answer from {target.host}:{target.port} within "
                               f"{target.timeout:g} s")
    except OSError as exc:
        return failed(UNREACHABLE, f"{target.host}:{target.port}: "
                                   f"{exc.strerror or type(exc).__name__}")
    try:
        presented = host_key_fingerprint(target)
    except (socket.timeout, TimeoutError):
        return failed(TIMEOUT, f"no SSH handshake with {target.host}:{target.port} within "
                               f"{target.timeout:g} s")
    except (OSError, EOFError, paramiko.SSHException) as exc:
        text = str(exc).lower()
        # paramiko ends a handshake that ran out of time with "No existing session"
        if "banner" in text or "timed out" in text or \
                time.monotonic() - started >= target.timeout * 0.9:
            return failed(TIMEOUT, f"no SSH handshake with {target.host}:{target.port} "
                                   f"within {target.timeout:g} s")
        return failed(SSH_ERROR, f"SSH handshake failed: {type(exc).__name__}")
    if pinned_host_key is not None and presented != pinned_host_key:
        return FetchResult(False, HOST_KEY_CHANGED, f"the device presented {presented}; "
                           f"{pinned_host_key} was pinned", seconds=time.monotonic() - started,
                           host_key=presented)
    try:
        connection = ConnectHandler(**params)
    except NetmikoAuthenticationException:
        return failed(AUTH_FAILED, f"the device refused the login of {target.username!r}")
    except NetmikoTimeoutException as exc:
        text = str(exc)
        reason = UNREACHABLE if "refused" in text.lower() or "unreachable" in text.lower() \
            else TIMEOUT
        return failed(reason, f"no SSH session to {target.host}:{target.port} "
                              f"within {target.timeout:g} s" if reason == TIMEOUT else
                      f"{target.host}:{target.port} refused the SSH connection")
    except (socket.timeout, TimeoutError):
        return failed(TIMEOUT, f"no SSH session to {target.host}:{target.port} within "
                               f"{target.timeout:g} s")
    except (ConnectionError, OSError) as exc:
        return failed(UNREACHABLE, f"{target.host}:{target.port}: "
                                   f"{getattr(exc, 'strerror', None) or type(exc).__name__}")
    except (paramiko.SSHException, EOFError, ValueError) as exc:
        return failed(SSH_ERROR, f"SSH error: {type(exc).__name__} {exc}")
    try:
        try:
            raw = _clean(connection.send_command(target.config_command,
                                                 read_timeout=target.timeout))
        except ReadTimeout:
            return failed(TIMEOUT, f"{target.config_command!r} did not finish within "
                                   f"{target.timeout:g} s")
        said = unknown_command(raw)
        if said is not None:
            return failed(UNKNOWN_COMMAND, f"{target.config_command!r}: {said}")
        outputs, failed_commands = {}, {}
        for command in target.commands:
            try:
                output = _clean(connection.send_command(command, read_timeout=target.timeout))
            except ReadTimeout:
                failed_commands[command] = f"did not finish within {target.timeout:g} s"
                continue
            said = unknown_command(output)
            if said is not None:
                failed_commands[command] = _short(said, target)
            else:
                outputs[command] = mask_config(output, target.mask)
        return FetchResult(True, config=mask_config(raw, target.mask), outputs=outputs,
                           failed_commands=failed_commands, seconds=time.monotonic() - started,
                           host_key=presented)
    except (OSError, EOFError, paramiko.SSHException) as exc:
        return failed(SSH_ERROR, f"SSH session broke: {type(exc).__name__}")
    finally:
        try:
            connection.disconnect()
        except Exception:  # the session may already be gone; nothing to clean up then
            log.debug("netconfig disconnect failed device=%s", target.device)
