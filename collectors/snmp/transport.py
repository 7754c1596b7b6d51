"""One asyncio UDP socket for every v1/v2c device: request-id matching, per-request timeout and
retries, so thousands of devices are polled concurrently from one socket and an unreachable
device costs only its own timeout budget (its futures time out; nobody else waits for them).

`SnmpTransport.request()` is the only I/O primitive; `V2Session` builds GET, GETNEXT and
GETBULK column walks on it. Malformed datagrams are counted (`decode_errors`, which the
collector exports as `monitord_snmp_decode_errors_total`) and dropped, never raised.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from monitord.collectors.snmp import ber
from monitord.collectors.snmp.ber import BerError, SnmpMessage


class SnmpTimeout(Exception):
    """No (valid) answer from the device after every retry."""


class SnmpError(Exception):
    """The agent answered with an error-status (noSuchName, tooBig, genErr, ...)."""

    def __init__(self, status: int, index: int) -> None:
        super().__init__(f"SNMP error-status {status} at varbind {index}")
        self.status = status
        self.index = index


@dataclass(frozen=True, slots=True)
class Target:
    """Where a v1/v2c device answers and with what community."""

    host: str
    port: int = 161
    community: bytes = b"public"
    version: int = ber.VERSION_2C
    timeout: float = 2.0
    retries: int = 1


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: "SnmpTransport") -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner._received(data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable, etc.
        self.owner.socket_errors += 1


class SnmpTransport:
    """A shared UDP socket (one per address family, opened on first use)."""

    def __init__(self, on_decode_error: Callable[[], None] | None = None) -> None:
        self._transports: dict[int, asyncio.DatagramTransport] = {}
        self._pending: dict[int, tuple[asyncio.Future, tuple[str, int]]] = {}
        self._ids = itertools.count(random.randrange(1, 1 << 30))
        self._resolved: dict[tuple[str, int], tuple[int, tuple[str, int]]] = {}
        self.decode_errors = 0
        self.unmatched = 0
        self.socket_errors = 0
        self._on_decode_error = on_decode_error
        self._opening: dict[int, asyncio.Future] = {}

    def next_id(self) -> int:
        rid = next(self._ids) & 0x7FFFFFFF
        return rid or next(self._ids) & 0x7FFFFFFF

    async def _resolve(self, host: str, port: int) -> tuple[int, tuple[str, int]]:
        key = (host, port)
        found = self._resolved.get(key)
        if found is None:
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            if not infos:
                raise SnmpTimeout(f"cannot resolve {host}")
            family, _t, _p, _c, sockaddr = infos[0]
            found = (family, (sockaddr[0], sockaddr[1]))
            self._resolved[key] = found
        return found

    async def _transport(self, family: int) -> asyncio.DatagramTransport:
        transport = self._transports.get(family)
        if transport is not None:
            return transport
        opening = self._opening.get(family)
        if opening is None:
            loop = asyncio.get_running_loop()
            opening = loop.create_future()
            self._opening[family] = opening
            local = ("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Protocol(self), local_addr=local, family=family)
            except BaseException as exc:
                del self._opening[family]
                opening.set_exception(exc)
                opening.exception()  # consumed here; waiters re-raise it
                raise
            sock = transport.get_extra_info("socket")
            try:  # a burst of 2,000 answers must not overflow the default buffer
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            except OSError:
                pass
            self._transports[family] = transport
            opening.set_result(transport)
            return transport
        return await opening

    def _received(self, data: bytes, addr: Any) -> None:
        try:
            message = ber.decode_message(data)
        except BerError:
            self.decode_errors += 1
            if self._on_decode_error is not None:
                self._on_decode_error()
            return
        entry = self._pending.get(message.request_id)
        if entry is None or (addr[0], addr[1]) != entry[1] or \
                message.pdu_type not in (ber.PDU_RESPONSE, ber.PDU_REPORT):
            self.unmatched += 1  # late answer to a timed-out request, or spoofed
            return
        future = entry[0]
        if not future.done():
            future.set_result(message)

    async def request(self, target: Target, build: Callable[[int], bytes]) -> SnmpMessage:
        """Send `build(request_id)` and wait for the matching response, resending up to
        `target.retries` times, each attempt waiting `target.timeout` seconds."""
        family, addr = await self._resolve(target.host, target.port)
        transport = await self._transport(family)
        loop = asyncio.get_running_loop()
        for _attempt in range(target.retries + 1):
            rid = self.next_id()
            future = loop.create_future()
            self._pending[rid] = (future, addr)
            handle = loop.call_later(target.timeout, _expire, future)
            try:
                transport.sendto(build(rid), addr)
                message = await future
            except asyncio.TimeoutError:
                continue
            finally:
                handle.cancel()
                self._pending.pop(rid, None)
            return message
        raise SnmpTimeout(f"no answer from {target.host}:{target.port}")

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()
        for future, _addr in self._pending.values():
            if not future.done():
                future.cancel()
        self._pending.clear()


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(asyncio.TimeoutError())


class V2Session:
    """GET / GETNEXT / GETBULK walks for one v1 or v2c device over a shared transport.

    `max_repetitions` is the varbind budget of one GETBULK, shared by the columns still being
    walked (15 IF-MIB columns of a 50-port switch: 13 rows each per request); it halves when
    the agent answers tooBig."""

    def __init__(self, transport: SnmpTransport, target: Target, max_repetitions: int = 200,
                 max_rows: int = 100_000) -> None:
        self.transport = transport
        self.target = target
        self.max_repetitions = max_repetitions
        self.max_rows = max_rows
        self.requests = 0

    async def _ask(self, build: Callable[[int], bytes]) -> SnmpMessage:
        self.requests += 1
        return await self.transport.request(self.target, build)

    async def get(self, oids: list[bytes]) -> dict[bytes, tuple[int, Any]]:
        """GET the OIDs; absent ones (noSuchObject/Instance, v1 noSuchName) are left out."""
        t = self.target
        found: dict[bytes, tuple[int, Any]] = {}
        pending = list(oids)
        while pending:
            message = await self._ask(
                lambda rid: ber.encode_get(t.version, t.community, rid, pending))
            if message.error_status == 2 and t.version == ber.VERSION_1 and \
                    1 <= message.error_index <= len(pending):
                # v1 noSuchName: drop the named varbind and ask again for the rest
                del pending[message.error_index - 1]
                continue
            if message.error_status:
                raise SnmpError(message.error_status, message.error_index)
            for oid, tag, value in message.varbinds:
                if tag not in (ber.TAG_NO_SUCH_OBJECT, ber.TAG_NO_SUCH_INSTANCE,
                               ber.TAG_END_OF_MIB_VIEW):
                    found[oid] = (tag, value)
            break
        return found

    async def walk(self, columns: Iterable[bytes]) -> dict[bytes, dict[tuple[int, ...],
                                                                      tuple[int, Any]]]:
        """Walk several table columns (or subtrees) at once: GETBULK with one varbind per
        unfinished column (GETNEXT for v1). Returns {column: {index: (tag, value)}}."""
        t = self.target
        cols = list(dict.fromkeys(columns))
        result: dict[bytes, dict[tuple[int, ...], tuple[int, Any]]] = {c: {} for c in cols}
        last = {c: c for c in cols}
        active = list(cols)
        rows = 0
        index_of = ber.index_of
        while active:
            oids = [last[c] for c in active]
            if t.version == ber.VERSION_1:
                message = await self._ask(
                    lambda rid: ber.encode_getnext(t.version, t.community, rid, oids))
                if message.error_status == 2:  # noSuchName: end of the MIB for some column
                    bad = message.error_index - 1
                    if 0 <= bad < len(active):
                        active.pop(bad)
                        continue
                    break
            else:
                reps = max(1, self.max_repetitions // len(active))
                message = await self._ask(
                    lambda rid: ber.encode_getbulk(t.community, rid, oids, reps))
                if message.error_status == 1 and self.max_repetitions > len(active):
                    self.max_repetitions //= 2  # tooBig: ask for less next time
                    continue
            if message.error_status:
                raise SnmpError(message.error_status, message.error_index)
            vbs = message.varbinds
            n = len(active)
            if not vbs:
                break
            finished: set[bytes] = set()
            for i, (oid, tag, value) in enumerate(vbs):
                col = active[i % n]
                if col in finished:
                    continue
                plen = len(col)
                if tag == ber.TAG_END_OF_MIB_VIEW or len(oid) <= plen or \
                        not oid.startswith(col):
                    finished.add(col)
                    continue
                if oid <= last[col] and _not_after(oid, last[col]):
                    finished.add(col)  # the agent is walking in circles
                    continue
                result[col][index_of(oid[plen:])] = (tag, value)
                last[col] = oid
                rows += 1
            if rows > self.max_rows:
                break
            active = [c for c in active if c not in finished]
        return result


def _not_after(oid: bytes, previous: bytes) -> bool:
    """True when `oid` does not sort after `previous` (an agent walking in circles)."""
    if oid == previous:
        return True
    return ber.bytes_to_oid(oid) <= ber.bytes_to_oid(previous)
