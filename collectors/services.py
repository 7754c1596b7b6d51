"""Service checks for the applications the SOPs keep running: ICMP ping, TCP connect, HTTP(S),
TLS certificate, DNS resolution and database port reachability.

Each check is a small blocking function returning a typed, frozen result; nothing raises for a
service that is down (the reason is in `error`). `ServiceCheckCollector` wraps one configured
check for the daemon (one job per check, so each has its own interval) and turns its result into
records: `service_*` samples for metrics and one `service_check` Event that
`detectors/services.py` reads. `run_service_check` is `monitord check service --json`.

Standard library only: raw sockets for ICMP, http.client for HTTP, ssl plus a small DER reader
for certificates (no `cryptography`), struct for DNS."""

from __future__ import annotations

import errno
import inspect
import ipaddress
import os
import re
import secrets as _random
import select
import socket
import ssl
import struct
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from http import client as http_client
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urljoin, urlsplit

from monitord.records import Event, Sample

KINDS = ("icmp", "tcp", "http", "tls", "dns", "database")
USER_AGENT = "monitord-check/1"


# -- results --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CheckResult:
    kind: str
    target: str
    ok: bool
    latency_ms: float | None = None
    error: str | None = None

    @property
    def up(self) -> bool:
        """The service answered (a TLS check with a bad certificate is up but not ok)."""
        return self.ok

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["up"] = self.up
        return data


@dataclass(frozen=True, slots=True)
class PingResult(CheckResult):
    sent: int = 0
    received: int = 0
    loss_percent: float = 100.0
    rtt_min_ms: float | None = None
    rtt_avg_ms: float | None = None
    rtt_max_ms: float | None = None
    method: str | None = None  # "raw" or "dgram" (unprivileged ICMP socket)


@dataclass(frozen=True, slots=True)
class TcpResult(CheckResult):
    host: str = ""
    port: int = 0


@dataclass(frozen=True, slots=True)
class HttpResult(CheckResult):
    status: int | None = None
    final_url: str | None = None
    redirects: int = 0
    content_matched: bool | None = None
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class TlsResult(CheckResult):
    host: str = ""
    port: int = 443
    days_left: float | None = None
    not_before: str | None = None
    not_after: str | None = None
    subject: str | None = None
    issuer: str | None = None
    san: tuple[str, ...] = ()
    chain_ok: bool | None = None
    chain_error: str | None = None
    hostname_ok: bool | None = None
    hostname_error: str | None = None

    @property
    def up(self) -> bool:
        return self.days_left is not None


@dataclass(frozen=True, slots=True)
class DnsResult(CheckResult):
    name: str = ""
    qtype: str = "A"
    server: str | None = None  # None: the system resolver (getaddrinfo)
    rcode: str | None = None
    answers: tuple[str, ...] = ()
    expected: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _reason(exc: BaseException) -> str:
    """A short, stable reason a technician reads (no secrets: targets are not secret)."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"tls: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"name resolution failed: {exc.strerror}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower()
    return f"{type(exc).__name__}: {exc}"


def split_host_port(target: str, default_port: int | None = None) -> tuple[str, int]:
    """'host:port', '[v6]:port', or a bare host when `default_port` is given."""
    if target.startswith("["):
        host, _sep, rest = target[1:].partition("]")
        port = rest.lstrip(":")
    elif target.count(":") == 1:
        host, _sep, port = target.partition(":")
    else:
        host, port = target, ""
    if not port:
        if default_port is None:
            raise ValueError(f"{target!r}: expected HOST:PORT")
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{target!r}: the port must be 1-65535")
    return host, int(port)


# -- ICMP -----------------------------------------------------------------------------------

def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _icmp_socket(family: int) -> tuple[socket.socket, str]:
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    try:
        return socket.socket(family, socket.SOCK_RAW, proto), "raw"
    except PermissionError:
        pass
    try:  # Linux unprivileged ping sockets (net.ipv4.ping_group_range)
        return socket.socket(family, socket.SOCK_DGRAM, proto), "dgram"
    except (PermissionError, OSError) as exc:
        raise PermissionError("raw ICMP sockets refused (need root or CAP_NET_RAW) and "
                              "unprivileged ICMP sockets are not allowed") from exc


def ping(host: str, count: int = 3, timeout: float = 1.0, interval: float = 0.2,
         max_loss_percent: float = 99.9) -> PingResult:
    """`count` echo requests, each waiting up to `timeout` seconds; ok when the loss is at most
    `max_loss_percent` (by default: at least one reply)."""
    target = host
    try:
        info = socket.getaddrinfo(host, None, type=socket.SOCK_RAW)[0]
    except OSError as exc:
        return PingResult("icmp", target, False, error=_reason(exc), sent=0)
    family, address = info[0], info[4][0]
    v4 = family == socket.AF_INET
    request_type, reply_type = (8, 0) if v4 else (128, 129)
    try:
        sock, method = _icmp_socket(family)
    except PermissionError as exc:
        return PingResult("icmp", target, False, error=str(exc))
    ident = _random.randbelow(0xFFFF)
    token = _random.token_bytes(8)
    rtts: list[float] = []
    try:
        sock.setblocking(False)
        for seq in range(count):
            if seq:
                time.sleep(interval)
            payload = token + struct.pack("!d", time.perf_counter())
            header = struct.pack("!BBHHH", request_type, 0, 0, ident, seq)
            checksum = _checksum(header + payload) if v4 else 0  # the kernel sums ICMPv6
            packet = struct.pack("!BBHHH", request_type, 0, checksum, ident, seq) + payload
            sent_at = time.perf_counter()
            sock.sendto(packet, (address, 0))
            deadline = sent_at + timeout
            while (left := deadline - time.perf_counter()) > 0:
                readable, _w, _x = select.select([sock], [], [], left)
                if not readable:
                    break
                data = sock.recv(65535)
                if v4 and method == "raw":
                    data = data[(data[0] & 0x0F) * 4:]  # strip the IP header
                if len(data) < 8 + len(token):
                    continue
                kind, _code, _sum, their_id, their_seq = struct.unpack("!BBHHH", data[:8])
                if kind != reply_type or their_seq != seq or data[8:8 + len(token)] != token:
                    continue  # our own request on loopback, or someone else's reply
                if method == "raw" and their_id != ident:
                    continue
                rtts.append(time.perf_counter() - sent_at)
                break
    except OSError as exc:
        return PingResult("icmp", target, False, error=_reason(exc), sent=count,
                          method=method)
    finally:
        sock.close()
    received = len(rtts)
    loss = round(100.0 * (count - received) / count, 1) if count else 100.0
    ok = received > 0 and loss <= max_loss_percent
    return PingResult(
        "icmp", target, ok, latency_ms=_ms(sum(rtts) / received) if rtts else None,
        error=None if ok else ("no reply" if not received else f"{loss:g}% packet loss"),
        sent=count, received=received, loss_percent=loss,
        rtt_min_ms=_ms(min(rtts)) if rtts else None,
        rtt_avg_ms=_ms(sum(rtts) / received) if rtts else None,
        rtt_max_ms=_ms(max(rtts)) if rtts else None, method=method)


# -- TCP ------------------------------------------------------------------------------------

def tcp_connect(host: str, port: int, timeout: float = 5.0, kind: str = "tcp") -> TcpResult:
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    started = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            latency = _ms(time.perf_counter() - started)
    except OSError as exc:
        return TcpResult(kind, target, False, error=_reason(exc), host=host, port=port)
    return TcpResult(kind, target, True, latency_ms=latency, host=host, port=port)


# -- HTTP(S) --------------------------------------------------------------------------------

def _tls_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=ca_file)


def http_check(url: str, timeout: float = 10.0, expect_status: int | Sequence[int] | None = None,
               match: str | None = None, match_regex: bool = False, max_redirects: int = 5,
               verify_tls: bool = True, ca_file: str | None = None, method: str = "GET",
               max_body: int = 1_000_000) -> HttpResult:
    """GET `url`, following up to `max_redirects` redirects. ok when the final status is
    `expect_status` (one or several; by default any 2xx) and, with `match`, the body contains
    it (a regular expression with `match_regex`). Latency covers every hop."""
    expected = ({expect_status} if isinstance(expect_status, int)
                else set(expect_status) if expect_status else None)
    context = _tls_context(verify_tls, ca_file)
    started = time.perf_counter()
    current, redirects = url, 0
    while True:
        parts = urlsplit(current)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return HttpResult("http", url, False, error=f"not an http(s) URL: {current}",
                              redirects=redirects)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if parts.scheme == "https":
            conn: http_client.HTTPConnection = http_client.HTTPSConnection(
                parts.hostname, parts.port, timeout=timeout, context=context)
        else:
            conn = http_client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        try:
            conn.request(method, path, headers={"User-Agent": USER_AGENT, "Accept": "*/*",
                                                "Connection": "close"})
            response = conn.getresponse()
            status = response.status
            location = response.getheader("Location")
            body = response.read(max_body)
        except (OSError, http_client.HTTPException) as exc:
            return HttpResult("http", url, False, latency_ms=None, error=_reason(exc),
                              final_url=current, redirects=redirects)
        finally:
            conn.close()
        if status in (301, 302, 303, 307, 308) and location:
            if redirects >= max_redirects:
                return HttpResult("http", url, False, _ms(time.perf_counter() - started),
                                  error=f"more than {max_redirects} redirects", status=status,
                                  final_url=current, redirects=redirects)
            current, redirects = urljoin(current, location), redirects + 1
            continue
        break
    latency = _ms(time.perf_counter() - started)
    status_ok = status in expected if expected else 200 <= status < 300
    matched = None
    if match is not None:
        text = body.decode("utf-8", "replace")
        matched = bool(re.search(match, text)) if match_regex else match in text
    ok = status_ok and matched is not False
    error = None if ok else (f"HTTP {status}" if not status_ok else "content did not match")
    return HttpResult("http", url, ok, latency, error, status=status, final_url=current,
                      redirects=redirects, content_matched=matched, bytes=len(body))


# -- TLS certificate ------------------------------------------------------------------------

_NAME_OIDS = {"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
              "2.5.4.10": "O", "2.5.4.11": "OU", "1.2.840.113549.1.9.1": "emailAddress",
              "0.9.2342.19200300.100.1.25": "DC", "2.5.4.5": "serialNumber"}
_SAN_OID = "2.5.29.17"


def _der(data: bytes, pos: int) -> tuple[int, int, int]:
    """The TLV at `pos` -> (tag, content start, content end)."""
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _der_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    while start < end:
        tag, content, stop = _der(data, start)
        out.append((tag, content, stop))
        start = stop
    return out


def _oid(raw: bytes) -> str:
    arcs, value = [raw[0] // 40, raw[0] % 40], 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(map(str, arcs))


def _der_string(tag: int, raw: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return raw.decode("utf-16-be", "replace")
    return raw.decode("utf-8", "replace")


def _der_name(data: bytes, start: int, end: int) -> str:
    parts = []
    for _set_tag, s_start, s_end in _der_children(data, start, end):
        for _seq_tag, a_start, a_end in _der_children(data, s_start, s_end):
            (_t, o_start, o_end), (v_tag, v_start, v_end) = _der_children(data, a_start, a_end)[:2]
            oid = _oid(data[o_start:o_end])
            parts.append(f"{_NAME_OIDS.get(oid, oid)}={_der_string(v_tag, data[v_start:v_end])}")
    return ", ".join(parts)


def _der_time(tag: int, raw: bytes) -> datetime:
    text = raw.decode("ascii").rstrip("Z")
    if tag == 0x17:  # UTCTime, YYMMDDHHMM[SS]Z: years 50-99 are 19xx
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    fmt = "%Y%m%d%H%M%S" if len(text) >= 14 else "%Y%m%d%H%M"
    return datetime.strptime(text[:14], fmt).replace(tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class CertInfo:
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    common_names: tuple[str, ...] = field(default=())


def parse_certificate(der: bytes) -> CertInfo:
    """The fields a NOC needs from an X.509 certificate in DER, read without `cryptography`."""
    _tag, c_start, c_end = _der(der, 0)
    _tag, t_start, t_end = _der_children(der, c_start, c_end)[0]
    tbs = _der_children(der, t_start, t_end)
    if tbs[0][0] == 0xA0:  # [0] version
        tbs = tbs[1:]
    _serial, _alg, issuer, validity, subject = tbs[:5]
    (nb_tag, nb_s, nb_e), (na_tag, na_s, na_e) = _der_children(der, validity[1], validity[2])
    dns_names: list[str] = []
    ips: list[str] = []
    for tag, start, end in tbs[5:]:
        if tag != 0xA3:  # [3] extensions
            continue
        (_seq, e_start, e_end), = _der_children(der, start, end)
        for _t, x_start, x_end in _der_children(der, e_start, e_end):
            parts = _der_children(der, x_start, x_end)
            if _oid(der[parts[0][1]:parts[0][2]]) != _SAN_OID:
                continue
            _octet, o_start, o_end = parts[-1]
            _seq, g_start, g_end = _der(der, o_start)
            for g_tag, n_start, n_end in _der_children(der, g_start, g_end):
                if g_tag == 0x82:
                    dns_names.append(der[n_start:n_end].decode("ascii", "replace"))
                elif g_tag == 0x87:
                    ips.append(str(ipaddress.ip_address(der[n_start:n_end])))
    subject_text = _der_name(der, subject[1], subject[2])
    cns = tuple(p[3:] for p in subject_text.split(", ") if p.startswith("CN="))
    return CertInfo(subject_text, _der_name(der, issuer[1], issuer[2]),
                    _der_time(nb_tag, der[nb_s:nb_e]), _der_time(na_tag, der[na_s:na_e]),
                    tuple(dns_names), tuple(ips), cns)


def hostname_matches(hostname: str, cert: CertInfo) -> bool:
    """RFC 6125: an IP address against the IP SANs; a name against the DNS SANs (a wildcard
    covers exactly the left-most label), or the CN when there is no DNS SAN at all."""
    try:
        address = ipaddress.ip_address(hostname.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        return str(address) in cert.ip_addresses
    name = hostname.rstrip(".").lower()
    for pattern in (cert.dns_names or cert.common_names):
        pattern = pattern.rstrip(".").lower()
        if pattern == name:
            return True
        if pattern.startswith("*.") and "." in name:
            label, rest = name.split(".", 1)
            if rest == pattern[2:] and label:
                return True
    return False


def tls_check(host: str, port: int = 443, server_name: str | None = None, timeout: float = 10.0,
              ca_file: str | None = None, now: datetime | None = None) -> TlsResult:
    """Fetch the certificate (unverified, so a bad one can still be read), then verify the
    chain (against the system store, or `ca_file`) and the host name separately, so that each
    problem is its own field. ok: chain and host name valid and not expired."""
    name = server_name or host
    target = f"{host}:{port}"
    sni = None if _is_ip(name) else name
    unverified = _tls_context(False, None)
    started = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with unverified.wrap_socket(raw, server_hostname=sni) as tls:
                der = tls.getpeercert(binary_form=True)
        latency = _ms(time.perf_counter() - started)
    except (OSError, ValueError) as exc:
        return TlsResult("tls", target, False, error=_reason(exc), host=host, port=port)
    if not der:
        return TlsResult("tls", target, False, latency, "no certificate presented",
                         host=host, port=port)
    try:
        cert = parse_certificate(der)
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        return TlsResult("tls", target, False, latency, f"unreadable certificate: {exc}",
                         host=host, port=port)
    chain_error = None
    verifying = _tls_context(True, ca_file)
    verifying.check_hostname = False  # the host name is checked below, on its own
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with verifying.wrap_socket(raw, server_hostname=sni):
                pass
    except ssl.SSLCertVerificationError as exc:
        chain_error = exc.verify_message or str(exc)
    except (OSError, ValueError) as exc:
        chain_error = _reason(exc)
    hostname_ok = hostname_matches(name, cert)
    hostname_error = None if hostname_ok else (
        f"certificate is for {', '.join(cert.dns_names + cert.ip_addresses) or cert.subject},"
        f" not {name}")
    moment = now or datetime.now(timezone.utc)
    days_left = round((cert.not_after - moment).total_seconds() / 86400.0, 1)
    problems = [p for p in (chain_error, hostname_error) if p]
    if days_left <= 0:
        problems.insert(0, "certificate expired")
    return TlsResult(
        "tls", target, not problems, latency, "; ".join(problems) or None, host=host, port=port,
        days_left=days_left, not_before=cert.not_before.isoformat(),
        not_after=cert.not_after.isoformat(), subject=cert.subject, issuer=cert.issuer,
        san=cert.dns_names + cert.ip_addresses, chain_ok=chain_error is None,
        chain_error=chain_error, hostname_ok=hostname_ok, hostname_error=hostname_error)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


# -- DNS ------------------------------------------------------------------------------------

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "MX": 15, "TXT": 16, "AAAA": 28}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna") if label else b""
        if not 0 < len(raw) < 64:
            raise ValueError(f"{name!r}: not a valid DNS name")
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def build_query(name: str, qtype: str = "A", query_id: int | None = None) -> bytes:
    query_id = _random.randbelow(0x10000) if query_id is None else query_id
    return (struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)  # RD
            + encode_name(name) + struct.pack("!HH", QTYPES[qtype], 1))


def read_name(message: bytes, pos: int) -> tuple[str, int]:
    """A (possibly compressed) name at `pos` -> (name, position after it)."""
    labels, end, jumps = [], None, 0
    while True:
        length = message[pos]
        if length & 0xC0 == 0xC0:
            if jumps > 20:
                raise ValueError("DNS name compression loop")
            if end is None:
                end = pos + 2
            pos, jumps = ((length & 0x3F) << 8) | message[pos + 1], jumps + 1
            continue
        pos += 1
        if length == 0:
            return ".".join(labels), end if end is not None else pos
        labels.append(message[pos:pos + length].decode("ascii", "replace"))
        pos += length


def parse_response(message: bytes, qtype: str = "A") -> tuple[int, str, tuple[str, ...], bool]:
    """-> (id, rcode name, answers of `qtype` as text, truncated)."""
    query_id, flags, qdcount, ancount, _ns, _ar = struct.unpack("!HHHHHH", message[:12])
    pos = 12
    for _ in range(qdcount):
        _name, pos = read_name(message, pos)
        pos += 4
    answers = []
    wanted = QTYPES[qtype]
    for _ in range(ancount):
        _name, pos = read_name(message, pos)
        rtype, _class, _ttl, length = struct.unpack("!HHIH", message[pos:pos + 10])
        pos += 10
        rdata = message[pos:pos + length]
        if rtype == wanted:
            if rtype == 1 and length == 4:
                answers.append(socket.inet_ntop(socket.AF_INET, rdata))
            elif rtype == 28 and length == 16:
                answers.append(socket.inet_ntop(socket.AF_INET6, rdata))
            elif rtype in (2, 5):
                answers.append(read_name(message, pos)[0])
            elif rtype == 15:
                answers.append(read_name(message, pos + 2)[0])
            elif rtype == 16:
                answers.append(rdata[1:1 + rdata[0]].decode("utf-8", "replace"))
        pos += length
    return query_id, RCODES.get(flags & 0x0F, str(flags & 0x0F)), tuple(answers), \
        bool(flags & 0x0200)


def _dns_exchange(query: bytes, server: str, port: int, timeout: float) -> bytes:
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((server, port))
        sock.send(query)
        deadline = time.monotonic() + timeout
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            reply = sock.recv(65535)
            if len(reply) >= 12 and reply[:2] == query[:2]:
                break
    if reply[2] & 0x02:  # TC: ask again over TCP
        with socket.create_connection((server, port), timeout=timeout) as sock:
            sock.sendall(struct.pack("!H", len(query)) + query)
            data = b""
            while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
                chunk = sock.recv(65535)
                if not chunk:
                    raise ConnectionError(errno.ECONNRESET, "DNS server closed the connection")
                data += chunk
            reply = data[2:2 + struct.unpack("!H", data[:2])[0]]
    return reply


def dns_check(name: str, server: str | None = None, qtype: str = "A",
              expected: Sequence[str] = (), timeout: float = 3.0, port: int = 53) -> DnsResult:
    """Resolve `name` with a query to `server` (HOST or HOST:PORT), or with the system resolver
    (getaddrinfo: /etc/hosts, then DNS) when there is none. ok when there is an answer and, with
    `expected`, every answer is one of them (a wrong address is caught; a round-robin subset is
    fine)."""
    qtype = qtype.upper()
    if qtype not in QTYPES:
        raise ValueError(f"qtype must be one of {', '.join(QTYPES)}")
    expected_t = tuple(expected or ())
    started = time.perf_counter()
    rcode: str | None = None
    try:
        if server:
            host, port = split_host_port(server, port)
            query = build_query(name, qtype)
            _id, rcode, answers, _tc = parse_response(_dns_exchange(query, host, port, timeout),
                                                      qtype)
        else:
            if qtype not in ("A", "AAAA"):
                raise ValueError("without a server only A and AAAA can be resolved")
            family = socket.AF_INET if qtype == "A" else socket.AF_INET6
            infos = socket.getaddrinfo(name, None, family, socket.SOCK_STREAM)
            answers = tuple(dict.fromkeys(info[4][0] for info in infos))
            rcode = "NOERROR"
    except socket.gaierror as exc:
        rcode = "NXDOMAIN" if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA",
                                                                         -5)) else None
        return DnsResult("dns", name, False, error=_reason(exc), name=name, qtype=qtype,
                         server=server, rcode=rcode, expected=expected_t)
    except (OSError, ValueError, struct.error, IndexError) as exc:
        return DnsResult("dns", name, False, error=_reason(exc), name=name, qtype=qtype,
                         server=server, rcode=rcode, expected=expected_t)
    latency = _ms(time.perf_counter() - started)
    unexpected = tuple(a for a in answers if expected_t and a not in expected_t)
    if rcode != "NOERROR":
        error = rcode
    elif not answers:
        error = "no answer"
    elif unexpected:
        error = f"unexpected answer {', '.join(unexpected)}"
    else:
        error = None
    return DnsResult("dns", name, error is None, latency, error, name=name, qtype=qtype,
                     server=server, rcode=rcode, answers=answers, expected=expected_t,
                     unexpected=unexpected)


# -- one check by kind ----------------------------------------------------------------------

def guess_kind(target: str) -> str:
    if target.startswith(("http://", "https://")):
        return "http"
    try:
        split_host_port(target)
        return "tcp"
    except ValueError:
        return "icmp"


def _call(func: Callable[..., CheckResult], options: Mapping[str, Any], **fixed: Any
          ) -> CheckResult:
    accepted = set(inspect.signature(func).parameters) - set(fixed)
    unknown = set(options) - accepted
    if unknown:
        raise ValueError(f"options not understood by a {func.__name__} check: "
                         f"{', '.join(sorted(unknown))}")
    return func(**fixed, **options)


def run_check(target: str, kind: str | None = None, options: Mapping[str, Any] | None = None
              ) -> CheckResult:
    """One check. Targets: http -> a URL; tcp, database -> HOST:PORT; tls -> HOST[:PORT] or an
    https URL; dns -> the name to resolve (options: server, qtype, expected); icmp -> HOST."""
    kind = kind or guess_kind(target)
    options = {k: v for k, v in (options or {}).items() if v is not None}
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if kind == "http":
        return _call(http_check, options, url=target)
    if kind in ("tcp", "database"):
        host, port = split_host_port(target, options.pop("port", None))
        return _call(tcp_connect, options, host=host, port=port, kind=kind)
    if kind == "tls":
        if target.startswith("https://"):
            parts = urlsplit(target)
            host, port = parts.hostname or "", parts.port or 443
        else:
            host, port = split_host_port(target, options.pop("port", 443))
        return _call(tls_check, options, host=host, port=port)
    if kind == "dns":
        return _call(dns_check, options, name=target)
    return _call(ping, options, host=target)


_TLS_OPTIONS = ("timeout", "ca_file", "server_name")


def run_checks(target: str, kind: str | None = None, options: Mapping[str, Any] | None = None
               ) -> list[CheckResult]:
    """The check, plus a TLS inspection of an https URL (skip it with `inspect_tls: false`)."""
    options = dict(options or {})
    inspect_tls = options.pop("inspect_tls", True)
    kind = kind or guess_kind(target)
    results = [run_check(target, kind, {k: v for k, v in options.items()
                                        if kind != "http" or k != "server_name"})]
    if kind == "http" and target.startswith("https://") and inspect_tls:
        results.append(run_check(target, "tls", {k: v for k, v in options.items()
                                                 if k in _TLS_OPTIONS}))
    return results


# -- records for the daemon -----------------------------------------------------------------

_EVENT_FIELDS = ("status", "redirects", "content_matched", "days_left", "not_after", "subject",
                 "issuer", "chain_error", "hostname_error", "rcode", "answers", "unexpected",
                 "loss_percent", "rtt_avg_ms")


def result_records(result: CheckResult, check: str, device: str, now: datetime,
                   part_of: str | None = None) -> list[Sample | Event]:
    """`service_*` samples (for metrics) and one `service_check` Event (for the detector)."""
    labels = {"check": check, "kind": result.kind}
    records: list[Sample | Event] = [
        Sample(device, "service_up", 1.0 if result.ok else 0.0, now, labels)]
    if result.latency_ms is not None:
        records.append(Sample(device, "service_latency_ms", result.latency_ms, now, labels))
    for attribute, metric in (("status", "service_http_status"),
                              ("days_left", "service_tls_days_left"),
                              ("loss_percent", "service_icmp_loss_percent"),
                              ("rtt_avg_ms", "service_icmp_rtt_ms")):
        value = getattr(result, attribute, None)
        if value is not None:
            records.append(Sample(device, metric, float(value), now, labels))
    fields: dict[str, Any] = {"check": check, "kind": result.kind, "target": result.target,
                              "ok": result.ok, "up": result.up, "latency_ms": result.latency_ms,
                              "error": result.error}
    for name in _EVENT_FIELDS:
        if hasattr(result, name):
            value = getattr(result, name)
            fields[name] = list(value) if isinstance(value, tuple) else value
    if part_of:
        fields["part_of"] = part_of
    records.append(Event(device, "service_check", now, fields))
    return records


class ServiceCheckCollector:
    """One configured check as a collector: the daemon runs one job per check, so each check
    keeps its own interval. Blocking (sockets): the scheduler runs it in a worker thread."""

    def __init__(self, check: str, target: str, kind: str | None = None,
                 options: Mapping[str, Any] | None = None, device: str | None = None) -> None:
        self.check = check
        self.name = f"service:{check}"
        self.target = target
        self.kind = kind or guess_kind(target)
        self.options = dict(options or {})
        self.device = device or _target_host(target)

    def poll(self, now: datetime) -> list[Sample | Event]:
        records: list[Sample | Event] = []
        main, *extra = run_checks(self.target, self.kind, self.options)
        records += result_records(main, self.check, self.device, now)
        for result in extra:
            records += result_records(result, self.check, self.device, now, part_of=self.kind)
        return records


def _target_host(target: str) -> str:
    if "://" in target:
        return urlsplit(target).hostname or target
    try:
        return split_host_port(target)[0]
    except ValueError:
        return target


def run_service_check(target: str, kind: str | None = None,
                      options: Mapping[str, Any] | None = None, *, check: str | None = None,
                      device: str | None = None, policy: object | None = None) -> dict[str, Any]:
    """`monitord check service TARGET [--kind K] --json`: one run, what was seen, and the
    findings it would raise (failures needed = 1; `policy` as the daemon's detector takes it)."""
    from monitord.detectors.host import finding_json
    from monitord.detectors.services import ServiceDetector, ServicePolicy

    kind = kind or guess_kind(target)
    collector = ServiceCheckCollector(check or target, target, kind, options, device)
    now = datetime.now(timezone.utc)
    results = run_checks(target, kind, options)
    detector = ServiceDetector(default=policy if isinstance(policy, ServicePolicy)
                               else ServicePolicy(), failures=1)
    findings = []
    for index, result in enumerate(results):
        for record in result_records(result, collector.check, collector.device, now,
                                     part_of=kind if index else None):
            findings += detector.observe(record)
    main = results[0].as_dict()
    if len(results) > 1:
        main["tls"] = results[1].as_dict()
    for key, value in main.items():
        if isinstance(value, tuple):
            main[key] = list(value)
    if "tls" in main:
        main["tls"] = {k: list(v) if isinstance(v, tuple) else v for k, v in main["tls"].items()}
    main["check"] = collector.check
    main["device"] = collector.device
    main["findings"] = [finding_json(f) for f in findings]
    return main
