"""The SNMP notification receiver: v1/v2c traps, v3 traps and informs, v2c/v3 informs answered.

A notification becomes an `Event(kind="snmp_trap")` the moment it arrives and is pushed into the
pipeline at once (not at the next poll); `monitord.detectors.traps` turns it into findings.

Trust: UDP source addresses are easy to forge, so a notification is accepted only when
  * its source address is the address of a configured device, and
  * v1/v2c: its community is that device's own credential or one of `traps.credentials`;
  * v3: its user is such a credential and USM (pysnmp) authenticates it.
Anything else is counted in `monitord_snmp_traps_total{outcome}` and dropped, never a finding.

`TrapReceiver.handle_datagram(bytes, (host, port))` is the whole receive path without a
socket, so the fuzz test can push a million mutated messages through it. It never raises.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter

from monitord.collectors.snmp.trap_decode import (
    Notification,
    TrapDecodeError,
    Varbind,
    decode_notification,
    decode_v3_header,
    inform_response,
    message_version,
)
from monitord.records import Event

log = logging.getLogger("monitord.snmp.traps")

# Notification OIDs the detectors understand, by name. Everything else is "unknown": logged,
# counted, stored nowhere else.
SNMP_TRAPS = "1.3.6.1.6.3.1.1.5"
UPS_TRAPS = "1.3.6.1.2.1.33.2"  # RFC 1628 upsTraps
APC_TRAPS = "1.3.6.1.4.1.318.0"  # PowerNet-MIB (v1 enterprise apc, specific trap n)
KNOWN_TRAPS: Mapping[str, str] = {
    f"{SNMP_TRAPS}.1": "coldStart",
    f"{SNMP_TRAPS}.2": "warmStart",
    f"{SNMP_TRAPS}.3": "linkDown",
    f"{SNMP_TRAPS}.4": "linkUp",
    f"{SNMP_TRAPS}.5": "authenticationFailure",
    f"{UPS_TRAPS}.1": "upsTrapOnBattery",
    f"{UPS_TRAPS}.2": "upsTrapTestCompleted",
    f"{UPS_TRAPS}.3": "upsTrapAlarmEntryAdded",
    f"{UPS_TRAPS}.4": "upsTrapAlarmEntryRemoved",
    f"{APC_TRAPS}.5": "apcUpsOnBattery",
    f"{APC_TRAPS}.7": "apcLowBattery",
    f"{APC_TRAPS}.9": "apcPowerRestored",
    f"{APC_TRAPS}.11": "apcReturnFromLowBattery",
}

OUTCOMES = ("accepted", "unknown_trap", "malformed", "unknown_source", "bad_community",
            "unknown_user", "v3_rejected", "v3_report", "not_a_notification", "error")
MAX_EVIDENCE_TEXT = 512
MAX_LEARNT_ENGINES = 4  # per v3 user and device: the engine IDs accepted for its traps


@dataclass(frozen=True, slots=True)
class V3User:
    """An SNMPv3 credential, resolved. Keys are plain strings here and nowhere else."""

    name: str
    user: str
    auth_protocol: str
    auth_key: str
    priv_protocol: str
    priv_key: str | None


@dataclass(frozen=True, slots=True)
class TrapSource:
    """What one device may send: its name, and the credentials it may use."""

    device: str
    communities: frozenset[bytes]
    v3_users: tuple[V3User, ...] = ()


@dataclass(frozen=True, slots=True)
class TrapResult:
    """What one datagram did: the outcome word, the events to emit, the bytes to answer."""

    outcome: str
    events: tuple[Event, ...] = ()
    response: bytes | None = None


class TrapMetrics:
    """The receiver's counters, on the daemon's registry. Labels are fixed words."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter("monitord_snmp_traps_total",
                                "SNMP notifications received, by outcome (accepted, "
                                "unknown_trap, malformed, unknown_source, bad_community, ...).",
                                ["outcome"], registry=registry)
        self.decode_errors = Counter("monitord_snmp_trap_decode_errors_total",
                                     "Datagrams that were not well-formed SNMP, by reason.",
                                     ["reason"], registry=registry)
        self.by_trap = Counter("monitord_snmp_traps_by_name_total",
                               "Accepted notifications by trap name (known names only; the "
                               "rest are counted as 'unknown').", ["trap"], registry=registry)
        # the children, looked up once: a trap storm should not pay for label lookups
        self.outcome = {outcome: self.received.labels(outcome) for outcome in OUTCOMES}
        self.trap = {name: self.by_trap.labels(name)
                     for name in (*KNOWN_TRAPS.values(), "unknown")}


def _text(value: Any) -> Any:
    """Varbind values as JSON-safe evidence: text stays text (it is data: escaped where shown),
    anything not valid UTF-8 becomes hex; long text is cut."""
    if isinstance(value, bytes):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + value[:MAX_EVIDENCE_TEXT].hex()
        if not text.isprintable() and any(ord(ch) < 32 and ch not in "\t\r\n"
                                          for ch in text):
            return "0x" + value[:MAX_EVIDENCE_TEXT].hex()
        return text[:MAX_EVIDENCE_TEXT]
    return value


def trap_fields(notification: Notification, source: tuple[str, int]) -> dict[str, Any]:
    """The event's fields: what the detectors read and what is kept as evidence."""
    return {
        "trap_oid": notification.trap_oid,
        "trap": KNOWN_TRAPS.get(notification.trap_oid),
        "version": notification.version,
        "pdu": notification.pdu,
        "source": f"{source[0]}:{source[1]}",
        "uptime_ticks": notification.uptime_ticks,
        "varbinds": [{"oid": vb.oid, "type": vb.type, "value": _text(vb.value)}
                     for vb in notification.varbinds],
    }


class _V3Engine:
    """pysnmp's SNMPv3 machinery (USM: authentication, decryption, time windows, discovery
    for informs) fed one datagram at a time, with its replies captured instead of sent."""

    def __init__(self, users: Iterable[V3User]) -> None:
        from pysnmp.carrier.asyncio.dgram import udp
        from pysnmp.carrier.base import AbstractTransport, AbstractTransportDispatcher
        from pysnmp.entity import config as pconfig
        from pysnmp.entity import engine
        from pysnmp.entity.rfc3413 import ntfrcv

        class Dispatcher(AbstractTransportDispatcher):
            def __init__(self) -> None:
                super().__init__()
                self.sent: list[bytes] = []

            def send_message(self, message, domain, address) -> None:  # noqa: ANN001
                self.sent.append(bytes(message))

            def run_dispatcher(self, timeout: float = 0.0) -> None:
                return None

            def close_dispatcher(self) -> None:
                return None

        class Transport(AbstractTransport):
            def __init__(self) -> None:
                self.callback = None

            def register_callback(self, cbFun) -> None:  # noqa: N803, ANN001
                self.callback = cbFun

            def unregister_callback(self) -> None:
                self.callback = None

        self._pconfig = pconfig
        self._udp = udp
        self.engine = engine.SnmpEngine()
        self.dispatcher = Dispatcher()
        self.transport = Transport()
        self.dispatcher.register_transport(udp.DOMAIN_NAME, self.transport)
        self.engine.register_transport_dispatcher(self.dispatcher)
        self.users = {u.user: u for u in users}
        self._masters: dict[str, tuple[Any, Any, Any, Any]] = {}
        self._learnt: dict[tuple[str, str], list[bytes]] = {}
        self._received: list[list[Varbind]] = []
        for user in self.users.values():  # informs: we are the authoritative engine
            self._add(user, None)
        ntfrcv.NotificationReceiver(self.engine, self._on_notification)

    _AUTH = {"md5": "USM_AUTH_HMAC96_MD5", "sha": "USM_AUTH_HMAC96_SHA",
             "sha224": "USM_AUTH_HMAC128_SHA224", "sha256": "USM_AUTH_HMAC192_SHA256",
             "sha384": "USM_AUTH_HMAC256_SHA384", "sha512": "USM_AUTH_HMAC384_SHA512"}
    _PRIV = {"none": "USM_PRIV_NONE", "des": "USM_PRIV_CBC56_DES", "aes": "USM_PRIV_CFB128_AES",
             "aes192": "USM_PRIV_CFB192_AES", "aes256": "USM_PRIV_CFB256_AES"}

    def _master_keys(self, user: V3User) -> tuple[Any, Any, Any, Any]:
        """(auth protocol, priv protocol, master auth key, master priv key): the 1 MB
        pass-phrase hash is done once per user, so learning an engine ID costs one small hash
        (a forged engine ID from a spoofed address must not buy a millisecond of CPU)."""
        from pysnmp.proto import rfc1902

        if user.user not in self._masters:
            c = self._pconfig
            auth = getattr(c, self._AUTH[user.auth_protocol])
            priv = getattr(c, self._PRIV[user.priv_protocol])
            auth_key = c.AUTH_SERVICES[auth].hash_passphrase(rfc1902.OctetString(user.auth_key))
            priv_key = None
            if user.priv_protocol != "none" and user.priv_key:
                priv_key = c.PRIV_SERVICES[priv].hash_passphrase(
                    auth, rfc1902.OctetString(user.priv_key))
            self._masters[user.user] = (auth, priv, auth_key, priv_key)
        return self._masters[user.user]

    def _add(self, user: V3User, engine_id: bytes | None) -> None:
        from pysnmp.proto.api import v2c

        c = self._pconfig
        auth, priv, auth_key, priv_key = self._master_keys(user)
        kwargs: dict[str, Any] = {}
        if engine_id is not None:
            kwargs["securityEngineId"] = v2c.OctetString(engine_id)
        c.add_v3_user(self.engine, user.user, auth, auth_key, priv, priv_key,
                      authKeyType=c.USM_KEY_TYPE_MASTER, privKeyType=c.USM_KEY_TYPE_MASTER,
                      **kwargs)

    def learn(self, device: str, user: V3User, engine_id: bytes) -> None:
        """A trap's authoritative engine is its sender: its (engine, user) keys are localised
        on first sight, at most MAX_LEARNT_ENGINES per device and user (the oldest forgotten)."""
        known = self._learnt.setdefault((device, user.user), [])
        if engine_id in known:
            return
        if len(known) >= MAX_LEARNT_ENGINES:
            old = known.pop(0)
            if not any(old in ids for key, ids in self._learnt.items() if key[1] == user.user):
                from pysnmp.proto.api import v2c
                self._pconfig.delete_v3_user(self.engine, user.user,
                                          securityEngineId=v2c.OctetString(old))
        if not any(engine_id in ids for key, ids in self._learnt.items()
                   if key[1] == user.user):
            self._add(user, engine_id)
        known.append(engine_id)

    def _on_notification(self, snmpEngine, stateReference, contextEngineId,  # noqa: N803
                         contextName, varBinds, cbCtx) -> None:  # noqa: N803, ANN001
        self._received.append([_from_pysnmp(oid, value) for oid, value in varBinds])

    def receive(self, data: bytes, source: tuple[str, int]
                ) -> tuple[list[list[Varbind]], list[bytes]]:
        """(notifications received, messages to send back: an inform's response or a
        discovery report)."""
        self._received, self.dispatcher.sent = [], []
        address = self._udp.UdpTransportAddress(source)
        self.dispatcher._callback_function(self.transport, address, data)
        return self._received, self.dispatcher.sent


def _from_pysnmp(oid: Any, value: Any) -> Varbind:
    name = type(value).__name__
    kind = {"Integer": "integer", "Integer32": "integer", "OctetString": "octets",
            "ObjectIdentifier": "oid", "IpAddress": "ipaddress", "Counter32": "counter32",
            "Gauge32": "gauge32", "Unsigned32": "gauge32", "TimeTicks": "timeticks",
            "Counter64": "counter64", "Opaque": "opaque", "Null": "null"}.get(name, "null")
    if kind in ("integer", "counter32", "gauge32", "timeticks", "counter64"):
        converted: Any = int(value)
    elif kind in ("octets", "opaque"):
        converted = bytes(value)
    elif kind in ("oid", "ipaddress"):
        converted = value.prettyPrint() if kind == "ipaddress" else str(value)
    else:
        converted = None
    return Varbind(str(oid), kind, converted)


class TrapReceiver:
    """Datagram in, events and an optional answer out. One instance per listening socket."""

    def __init__(self, sources: Mapping[str, TrapSource], metrics: TrapMetrics,
                 now: Callable[[], datetime]) -> None:
        self.metrics = metrics
        self.now = now
        self._v3: _V3Engine | None = None
        self.configure(sources)

    def configure(self, sources: Mapping[str, TrapSource]) -> None:
        """New devices and credentials (SIGHUP). `sources` maps an IP address to its device."""
        self.sources = dict(sources)
        users = {u.user: u for s in sources.values() for u in s.v3_users}
        self._v3 = _V3Engine(users.values()) if users else None

    def _count(self, outcome: str) -> None:
        self.metrics.outcome[outcome].inc()

    def handle_datagram(self, data: bytes, source: tuple[str, int]) -> TrapResult:
        """The whole receive path. Never raises: a malformed or hostile datagram is counted."""
        host = str(source[0])
        if host.startswith("::ffff:") and "." in host:  # a v4 device on a dual-stack socket
            host = host[7:]
        try:
            result = self._handle(data, (host, int(source[1])))
        except TrapDecodeError as exc:
            self.metrics.decode_errors.labels(exc.reason).inc()
            result = TrapResult("malformed")
        except Exception as exc:  # pysnmp or a bug: one datagram lost, never the receiver
            self.metrics.decode_errors.labels("error").inc()
            log.warning("trap handling failed source=%s error=%s", source[0],
                        type(exc).__name__)
            result = TrapResult("error")
        self._count(result.outcome)
        return result

    def _handle(self, data: bytes, source: tuple[str, int]) -> TrapResult:
        version = message_version(data)
        trusted = self.sources.get(source[0])
        if version == 3:
            return self._handle_v3(data, source, trusted)
        notification = decode_notification(data)
        if trusted is None:
            log.info("trap dropped: source is not a configured device source=%s", source[0])
            return TrapResult("unknown_source")
        if not any(hmac.compare_digest(notification.community, c) for c in trusted.communities):
            log.warning("trap dropped: wrong community device=%s source=%s", trusted.device,
                        source[0])
            return TrapResult("bad_community")
        response = inform_response(data) if notification.pdu == "inform" else None
        return self._accepted(trusted.device, notification, source, response)

    def _handle_v3(self, data: bytes, source: tuple[str, int],
                   trusted: TrapSource | None) -> TrapResult:
        header = decode_v3_header(data)
        if trusted is None:
            log.info("trap dropped: source is not a configured device source=%s", source[0])
            return TrapResult("unknown_source")
        user = next((u for u in trusted.v3_users if u.user.encode() == header.user), None)
        if user is None and header.user:
            log.warning("trap dropped: unknown SNMPv3 user device=%s source=%s",
                        trusted.device, source[0])
            return TrapResult("unknown_user")
        assert self._v3 is not None or user is None
        if self._v3 is None:  # discovery probe with no user, and no v3 configured
            return TrapResult("unknown_user")
        if user is not None and header.engine_id:
            try:
                self._v3.learn(trusted.device, user, header.engine_id)
            except Exception as exc:  # pysnmp refused the engine ID: the datagram is bad
                log.debug("SNMPv3 engine ID refused error=%s", type(exc).__name__)
                raise TrapDecodeError("bad_engine_id") from None
        try:
            received, sent = self._v3.receive(data, source)
        except Exception as exc:  # pyasn1 raises more than its own errors on bad input
            log.debug("SNMPv3 message not decodable error=%s", type(exc).__name__)
            raise TrapDecodeError("v3_undecodable") from None
        response = sent[0] if sent else None
        if not received:
            if response is not None:
                return TrapResult("v3_report", response=response)  # discovery, time window
            log.warning("trap dropped: SNMPv3 authentication or decryption failed "
                        "device=%s source=%s", trusted.device, source[0])
            return TrapResult("v3_rejected")
        varbinds = received[0]
        pdu = "inform" if response is not None else "trap"  # pysnmp answers informs only
        if len(varbinds) < 2 or varbinds[1].type != "oid":
            raise TrapDecodeError("no_trap_oid")
        uptime = varbinds[0].value if varbinds[0].type == "timeticks" else None
        notification = Notification("3", b"", pdu, None, str(varbinds[1].value),
                                    uptime if isinstance(uptime, int) else None,
                                    tuple(varbinds[2:]))
        return self._accepted(trusted.device, notification, source, response)

    def _accepted(self, device: str, notification: Notification, source: tuple[str, int],
                  response: bytes | None) -> TrapResult:
        fields = trap_fields(notification, source)
        name = fields["trap"]
        self.metrics.trap[name or "unknown"].inc()
        event = Event(device=device, kind="snmp_trap", at=self.now(), fields=fields)
        if name is None:
            log.info("unknown trap device=%s trap_oid=%s", device, notification.trap_oid)
            return TrapResult("unknown_trap", (event,), response)
        log.info("trap device=%s trap=%s", device, name)
        return TrapResult("accepted", (event,), response)


def trap_sources(config: Any) -> dict[str, TrapSource]:
    """Resolve each device's trap credentials from the configuration (secrets read now)."""
    from monitord.config import SnmpV3Credential

    sources: dict[str, TrapSource] = {}
    for device in config.devices:
        names = ([device.credential] if device.credential else []) + \
            list(config.traps.credentials)
        communities: set[bytes] = set()
        users: list[V3User] = []
        for name in names:
            cred = config.credentials.get(name)
            if cred is None:
                continue
            if isinstance(cred, SnmpV3Credential):
                users.append(V3User(name, cred.user, cred.auth_protocol,
                                    cred.auth_key.resolve().reveal(), cred.priv_protocol,
                                    cred.priv_key.resolve().reveal() if cred.priv_key else None))
            elif hasattr(cred, "community"):
                communities.add(cred.community.resolve().reveal().encode())
        for address in _addresses(device.address):
            sources[address] = TrapSource(device.name, frozenset(communities), tuple(users))
    return sources


def _addresses(address: str) -> list[str]:
    """A device named by host name is matched by the addresses the name has now."""
    import ipaddress
    import socket

    try:
        return [str(ipaddress.ip_address(address))]
    except ValueError:
        pass
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(address, None,
                                                                 type=socket.SOCK_DGRAM)})
    except OSError:
        log.warning("trap source not resolvable device_address=%s", address)
        return []


@dataclass
class TrapListener(asyncio.DatagramProtocol):
    """The socket side: each datagram goes through the receiver; events go to `emit` at once."""

    receiver: TrapReceiver
    emit: Callable[[Sequence[Event]], Any]
    transport: asyncio.DatagramTransport | None = None
    _pending: list[Event] = field(default_factory=list)
    _flush: asyncio.Task | None = None

    def connection_made(self, transport) -> None:  # noqa: ANN001
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        result = self.receiver.handle_datagram(data, (addr[0], addr[1]))
        if result.response is not None and self.transport is not None:
            self.transport.sendto(result.response, addr)
        if result.events:  # emitted on the loop's next turn, together with any in the queue
            self._pending.extend(result.events)
            if self._flush is None:
                self._flush = asyncio.ensure_future(self._emit_pending())

    async def _emit_pending(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self.emit(batch)
        finally:
            self._flush = None

    def error_received(self, exc: Exception) -> None:
        log.warning("trap socket error error=%s", type(exc).__name__)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def start_listener(host: str, port: int, receiver: TrapReceiver,
                         emit: Callable[[Sequence[Event]], Any]) -> TrapListener:
    """Bind the UDP socket. Port 162 needs CAP_NET_BIND_SERVICE (or root)."""
    import socket

    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    _transport, protocol = await loop.create_datagram_endpoint(
        lambda: TrapListener(receiver, emit), local_addr=(host, port), family=family)
    return protocol
