"""SNMPv3 (USM authNoPriv / authPriv) through pysnmp 7's asyncio v3arch API.

pysnmp does the engine-ID discovery, time synchronisation, HMAC-SHA/SHA-2 and AES that are
easy to get subtly wrong; v3 devices are few (UPS cards, firewalls), so its CPU cost is
acceptable there, while v1/v2c use the fast codec. `V3Session` has the same `get`/`walk`
interface as `V2Session` and returns values in the same (tag, value) form.

"Wrong credentials" is told apart from "no answer": the agent's USM reports
(usmStatsWrongDigests, usmStatsUnknownUserNames, usmStatsDecryptionErrors,
usmStatsUnknownEngineIDs after discovery, unsupported security level) raise `AuthFailed`;
silence raises `SnmpTimeout`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from monitord.collectors.base import AuthFailed
from monitord.collectors.snmp import ber
from monitord.collectors.snmp.transport import SnmpError, SnmpTimeout

AUTH_PROTOCOLS = ("md5", "sha", "sha224", "sha256", "sha384", "sha512")
PRIV_PROTOCOLS = ("none", "des", "aes", "aes192", "aes256")


@dataclass(frozen=True, slots=True)
class V3Target:
    host: str
    port: int
    user: str
    auth_protocol: str
    auth_key: str
    priv_protocol: str = "none"
    priv_key: str | None = None
    context: str = ""
    timeout: float = 2.0
    retries: int = 1

    def __repr__(self) -> str:  # keys never in a log line or a traceback
        return (f"V3Target(host={self.host!r}, port={self.port}, user={self.user!r}, "
                f"auth={self.auth_protocol}, priv={self.priv_protocol})")


def _tagged(value: Any) -> tuple[int, Any]:
    name = type(value).__name__
    if name in ("NoSuchObject", "NoSuchInstance", "EndOfMibView"):
        return {"NoSuchObject": ber.TAG_NO_SUCH_OBJECT, "NoSuchInstance":
                ber.TAG_NO_SUCH_INSTANCE, "EndOfMibView": ber.TAG_END_OF_MIB_VIEW}[name], None
    if name in ("Integer", "Integer32"):
        return ber.TAG_INTEGER, int(value)
    if name in ("Counter32", "Gauge32", "Unsigned32", "TimeTicks", "Counter64"):
        return {"Counter32": ber.TAG_COUNTER32, "Gauge32": ber.TAG_GAUGE32,
                "Unsigned32": ber.TAG_GAUGE32, "TimeTicks": ber.TAG_TIMETICKS,
                "Counter64": ber.TAG_COUNTER64}[name], int(value)
    if name == "ObjectIdentifier" or name == "ObjectName":
        return ber.TAG_OID, ".".join(map(str, value.asTuple()))
    if name == "IpAddress":
        return ber.TAG_IPADDRESS, ".".join(str(b) for b in value.asOctets())
    if name in ("OctetString", "Opaque", "Bits"):
        return ber.TAG_OCTETS, bytes(value.asOctets())
    if name == "Null":
        return ber.TAG_NULL, None
    return ber.TAG_OCTETS, str(value).encode()


class V3Session:
    """GET and column walks for one SNMPv3 device (with its own pysnmp engine)."""

    def __init__(self, target: V3Target, max_repetitions: int = 50) -> None:
        self.target = target
        self.max_repetitions = max_repetitions
        self.requests = 0
        self._transport = None
        self._engine = None
        self._engine_loop = None

    def _snmp_engine(self):
        """This device's own pysnmp engine, on the running loop. Not shared between devices:
        pysnmp's hlapi caches USM users by (user name, security engine ID), so two devices
        with the same user name and different keys sharing one engine would overwrite each
        other's keys on every poll (offices use one user name with per-device keys)."""
        import asyncio
        loop = asyncio.get_running_loop()
        if self._engine is None or self._engine_loop is not loop:
            from pysnmp.hlapi.v3arch.asyncio import SnmpEngine
            self._engine, self._engine_loop, self._transport = SnmpEngine(), loop, None
        return self._engine

    def _auth(self):
        from pysnmp.hlapi.v3arch.asyncio import UsmUserData
        from pysnmp.hlapi.v3arch.asyncio import auth as a
        t = self.target
        auth = {"md5": a.USM_AUTH_HMAC96_MD5, "sha": a.USM_AUTH_HMAC96_SHA,
                "sha224": a.USM_AUTH_HMAC128_SHA224, "sha256": a.USM_AUTH_HMAC192_SHA256,
                "sha384": a.USM_AUTH_HMAC256_SHA384, "sha512": a.USM_AUTH_HMAC384_SHA512}
        priv = {"none": a.USM_PRIV_NONE, "des": a.USM_PRIV_CBC56_DES,
                "aes": a.USM_PRIV_CFB128_AES, "aes192": a.USM_PRIV_CFB192_AES,
                "aes256": a.USM_PRIV_CFB256_AES}
        if t.priv_protocol == "none":
            return UsmUserData(t.user, authKey=t.auth_key, authProtocol=auth[t.auth_protocol])
        return UsmUserData(t.user, authKey=t.auth_key, privKey=t.priv_key,
                           authProtocol=auth[t.auth_protocol],
                           privProtocol=priv[t.priv_protocol])

    async def _target(self):
        self._snmp_engine()
        if self._transport is None:
            from pysnmp.hlapi.v3arch.asyncio import Udp6TransportTarget, UdpTransportTarget
            t = self.target
            cls = Udp6TransportTarget if ":" in t.host else UdpTransportTarget
            self._transport = await cls.create((t.host, t.port), timeout=t.timeout,
                                               retries=t.retries)
        return self._transport

    def _check(self, indication: Any, status: Any, index: Any) -> None:
        if indication:
            from pysnmp.proto import errind
            if isinstance(indication, errind.RequestTimedOut):
                raise SnmpTimeout(f"no answer from {self.target.host}:{self.target.port}")
            if isinstance(indication, (errind.WrongDigest, errind.UnknownUserName,
                                       errind.DecryptionError, errind.UnknownSecurityName,
                                       errind.AuthenticationError,
                                       errind.AuthenticationFailure,
                                       errind.UnsupportedSecurityLevel,
                                       errind.UnknownEngineID)):
                raise AuthFailed(type(indication).__name__)
            raise SnmpError(-1, 0)
        if status and int(status):
            raise SnmpError(int(status), int(index or 0))

    async def get(self, oids: list[bytes]) -> dict[bytes, tuple[int, Any]]:
        from pysnmp.hlapi.v3arch.asyncio import ContextData, ObjectIdentity, ObjectType, get_cmd
        self.requests += 1
        ind, status, index, vbs = await get_cmd(
            self._snmp_engine(), self._auth(), await self._target(), ContextData(
                contextName=self.target.context),
            *[ObjectType(ObjectIdentity(ber.oid_str(o))) for o in oids], lookupMib=False)
        self._check(ind, status, index)
        found = {}
        for name, value in vbs:
            tag, val = _tagged(value)
            if tag not in (ber.TAG_NO_SUCH_OBJECT, ber.TAG_NO_SUCH_INSTANCE,
                           ber.TAG_END_OF_MIB_VIEW):
                found[ber.oid_to_bytes(tuple(name))] = (tag, val)
        return found

    async def walk(self, columns: Iterable[bytes]) -> dict[bytes, dict[tuple[int, ...],
                                                                      tuple[int, Any]]]:
        from pysnmp.hlapi.v3arch.asyncio import (ContextData, ObjectIdentity, ObjectType,
                                                 bulk_cmd)
        cols = list(dict.fromkeys(columns))
        result: dict[bytes, dict[tuple[int, ...], tuple[int, Any]]] = {c: {} for c in cols}
        prefixes = {c: ber.bytes_to_oid(c) for c in cols}
        last = dict(prefixes)
        active = list(cols)
        rounds = 0
        while active and rounds < 10_000:
            rounds += 1
            self.requests += 1
            reps = max(1, self.max_repetitions // len(active))
            ind, status, index, vbs = await bulk_cmd(
                self._snmp_engine(), self._auth(), await self._target(),
                ContextData(contextName=self.target.context), 0, reps,
                *[ObjectType(ObjectIdentity(last[c])) for c in active], lookupMib=False)
            self._check(ind, status, index)
            if not vbs:
                break
            n = len(active)
            finished: set[bytes] = set()
            for i, (name, value) in enumerate(vbs):
                col = active[i % n]
                if col in finished:
                    continue
                oid = tuple(name)
                prefix = prefixes[col]
                tag, val = _tagged(value)
                if tag == ber.TAG_END_OF_MIB_VIEW or oid[:len(prefix)] != prefix or \
                        len(oid) <= len(prefix) or oid <= last[col]:
                    finished.add(col)
                    continue
                result[col][oid[len(prefix):]] = (tag, val)
                last[col] = oid
            active = [c for c in active if c not in finished]
        return result
