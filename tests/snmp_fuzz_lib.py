"""Seeds and mutations for the SNMP fuzz (tests/test_snmp_fuzz.py), kept apart from the test
so the worker processes and the benchmark-style loop import only this.

Seeds are real datagrams captured from net-snmp (tests/data/snmp-seeds/, see its README).
`Mutator.one()` returns one mutated message, chosen deterministically from its Random:

- byte level: bit flips, "interesting" bytes, truncation, insertion, deletion;
- header level: a TLV's length rewritten (0, off by one, past the end, indefinite 0x80,
  non-minimal 0x81/0x82 forms, 4- and 5-byte lengths, 0xff) or its tag replaced;
- splicing: the head of one seed up to a TLV boundary joined to the tail of another;
- tree level (structure-aware): the seed parsed into its TLV tree, one node changed (leaf
  bytes replaced/grown/shrunk, tag changed, child dropped/duplicated/swapped/inserted, an
  INTEGER made huge or empty, an OID made of 200 sub-identifiers or an endless one), then
  re-encoded with lengths that agree, so the damage reaches the inner decoders instead of
  being caught by the outermost length check.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from pathlib import Path

SEED_PCAP = Path(__file__).resolve().parent / "data" / "snmp-seeds" / "seeds.pcap"
CONSTRUCTED = frozenset([0x30, *range(0xA0, 0xA9)])
INTERESTING = (0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x1F, 0x30, 0x40, 0x41, 0x42, 0x43, 0x44,
               0x46, 0x7F, 0x80, 0x81, 0x82, 0x84, 0x85, 0xA2, 0xA4, 0xA7, 0xA8, 0xFF)
TAGS = (0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x1F, 0x30, 0x31, 0x40, 0x41, 0x42, 0x43,
        0x44, 0x45, 0x46, 0x47, 0x80, 0x81, 0x82, 0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6,
        0xA7, 0xA8, 0xA9, 0xBF, 0xFF)


@dataclass(frozen=True)
class Seed:
    """One captured datagram; `direction` is "request", "response", "trap" or "trap-reply"
    (from the UDP ports), `version` 0, 1 or 3 when it parses that far (else -1)."""

    data: bytes
    direction: str
    version: int


def read_seeds(path: Path = SEED_PCAP, trap_port: int = 16162) -> list[Seed]:
    """UDP payloads of a classic little-endian Ethernet pcap (what tcpdump -w wrote)."""
    raw = path.read_bytes()
    magic, = struct.unpack_from("<I", raw, 0)
    if magic != 0xA1B2C3D4:
        raise ValueError(f"{path}: not a little-endian microsecond pcap")
    pos, seeds = 24, []
    while pos + 16 <= len(raw):
        _ts, _us, incl, _orig = struct.unpack_from("<IIII", raw, pos)
        frame = raw[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0x0F) * 4
        sport, dport, ulen = struct.unpack_from("!HHH", frame, 14 + ihl)
        payload = frame[14 + ihl + 8:14 + ihl + ulen]
        if dport == 161:
            direction = "request"
        elif sport == 161:
            direction = "response"
        elif dport == trap_port:
            direction = "trap"
        elif sport == trap_port:
            direction = "trap-reply"
        else:
            continue
        seeds.append(Seed(payload, direction, _version(payload)))
    return seeds


def _version(data: bytes) -> int:
    try:
        node = parse(data)
        return int.from_bytes(node[1][0][1], "big") if node and node[0] == 0x30 else -1
    except (ValueError, IndexError, TypeError):
        return -1


# ---- a forgiving TLV tree (test-side, independent of the decoder under test) ------------
Node = tuple  # (tag, bytes) for a leaf, (tag, [Node, ...]) for a constructed value


def _hdr(data: bytes, pos: int) -> tuple[int, int, int]:
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if not 0 < n <= 4 or pos + n > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise ValueError("overrun")
    return tag, pos, pos + length


def parse(data: bytes) -> Node:
    tag, start, stop = _hdr(data, 0)
    return _node(data, tag, start, stop)


def _node(data: bytes, tag: int, start: int, stop: int) -> Node:
    if tag in CONSTRUCTED:
        children, pos = [], start
        while pos < stop:
            ctag, cstart, cstop = _hdr(data[:stop], pos)
            children.append(_node(data, ctag, cstart, cstop))
            pos = cstop
        return (tag, children)
    if tag == 0x04 and stop - start > 2 and data[start] == 0x30:
        try:  # v3 msgSecurityParameters: an OCTET STRING wrapping a SEQUENCE
            inner = parse(data[start:stop])
            if _length(inner) == stop - start:
                return (tag, [inner])
        except (ValueError, IndexError):
            pass
    return (tag, data[start:stop])


def _len_bytes(n: int, rng: random.Random | None = None) -> bytes:
    if rng is not None and rng.random() < 0.02:  # legal but non-minimal long form
        return b"\x82" + n.to_bytes(2, "big") if n < 65536 else b"\x84" + n.to_bytes(4, "big")
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def encode(node: Node, rng: random.Random | None = None,
           cache: dict[int, bytes] | None = None) -> bytes:
    """DER-like encoding; `cache` maps id() of unchanged seed nodes to their bytes, so a
    mutated tree re-encodes only the path to the change."""
    if cache is not None:
        known = cache.get(id(node))
        if known is not None:
            return known
    tag, value = node
    body = b"".join([encode(c, rng, cache) for c in value]) if isinstance(value, list) \
        else value
    return bytes([tag]) + _len_bytes(len(body), rng) + body


def _length(node: Node) -> int:
    return len(encode(node))


def _all_nodes(node: Node, path: tuple = ()) -> list[tuple[tuple, Node]]:
    out = [(path, node)]
    if isinstance(node[1], list):
        for i, child in enumerate(node[1]):
            out.extend(_all_nodes(child, path + (i,)))
    return out


def _replace(node: Node, path: tuple, new: Node | None) -> Node:
    if not path:
        return new  # type: ignore[return-value]
    tag, children = node
    children = list(children)
    if len(path) == 1:
        if new is None:
            del children[path[0]]
        else:
            children[path[0]] = new
    else:
        children[path[0]] = _replace(children[path[0]], path[1:], new)
    return (tag, children)


def _headers(data: bytes) -> list[tuple[int, int, int]]:
    """(header start, content start, content stop) of every TLV reachable from the top."""
    out, stack = [], [(0, len(data))]
    while stack:
        pos, end = stack.pop()
        while pos < end:
            try:
                tag, start, stop = _hdr(data[:end], pos)
            except (ValueError, IndexError):
                break
            out.append((pos, start, stop))
            if tag in CONSTRUCTED or (tag == 0x04 and stop > start and data[start] == 0x30):
                stack.append((start, stop))
            pos = stop
    return out


class Mutator:
    """Deterministic stream of mutated messages from the seeds (see the module docstring)."""

    def __init__(self, seeds: list[Seed], rng: random.Random) -> None:
        self.rng = rng
        self.seeds = [s.data for s in seeds]
        self.headers = [_headers(s) for s in self.seeds]
        self.trees: list[Node | None] = []
        self.nodes: list[list[tuple[tuple, Node]]] = []
        for s in self.seeds:
            try:
                self.trees.append(parse(s))
            except (ValueError, IndexError):
                self.trees.append(None)
            self.nodes.append(_all_nodes(self.trees[-1]) if self.trees[-1] else [])
        self.cache = {id(n): encode(n) for nodes in self.nodes for _p, n in nodes}
        self.byte_ops = (self.bitflip, self.interesting, self.truncate, self.insert,
                         self.delete, self.length, self.length, self.tag, self.splice)

    def one(self) -> bytes:
        rng = self.rng
        i = rng.randrange(len(self.seeds))
        if rng.random() < 0.45 and self.trees[i] is not None:
            data = self.tree_mutation(self.trees[i], self.nodes[i])
            if rng.random() < 0.2:
                data = rng.choice(self.byte_ops)(data, i)
            return data
        data = self.seeds[i]
        for _ in range(1 + (rng.random() < 0.3) + (rng.random() < 0.1)):
            data = rng.choice(self.byte_ops)(data, i)
        return data

    # ---- byte level ---------------------------------------------------------------------
    def bitflip(self, data: bytes, _i: int) -> bytes:
        if not data:
            return b"\x30"
        buf = bytearray(data)
        for _ in range(self.rng.randint(1, 4)):
            buf[self.rng.randrange(len(buf))] ^= 1 << self.rng.randrange(8)
        return bytes(buf)

    def interesting(self, data: bytes, _i: int) -> bytes:
        if not data:
            return bytes([self.rng.choice(INTERESTING)])
        buf = bytearray(data)
        buf[self.rng.randrange(len(buf))] = self.rng.choice(INTERESTING)
        return bytes(buf)

    def truncate(self, data: bytes, _i: int) -> bytes:
        return data[:self.rng.randrange(len(data))] if data else data

    def insert(self, data: bytes, _i: int) -> bytes:
        pos = self.rng.randrange(len(data) + 1)
        junk = self.rng.randbytes(self.rng.randint(1, 8))
        return data[:pos] + junk + data[pos:]

    def delete(self, data: bytes, _i: int) -> bytes:
        if len(data) < 2:
            return data
        a = self.rng.randrange(len(data))
        return data[:a] + data[a + self.rng.randint(1, min(16, len(data) - a)):]

    def _header_of(self, data: bytes, i: int) -> tuple[int, int, int] | None:
        headers = self.headers[i] if data is self.seeds[i] else _headers(data)
        return self.rng.choice(headers) if headers else None

    def length(self, data: bytes, i: int) -> bytes:
        h = self._header_of(data, i)
        if h is None:
            return self.bitflip(data, i)
        pos, start, stop = h
        n = stop - start
        rng = self.rng
        new = rng.choice((
            b"\x00", _len_bytes(max(0, n - 1)), _len_bytes(n + 1),
            _len_bytes(n + rng.randint(2, 5000)),
            b"\x80", b"\x81" + bytes([n & 0xFF]), b"\x82" + (n & 0xFFFF).to_bytes(2, "big"),
            b"\x84\xff\xff\xff\xff", b"\x84" + n.to_bytes(4, "big"), b"\x85\x00\x00\x00\x00\x01",
            b"\xff", b"\x7f",
        ))
        return data[:pos + 1] + new + data[start:]

    def tag(self, data: bytes, i: int) -> bytes:
        h = self._header_of(data, i)
        if h is None:
            return self.interesting(data, i)
        pos = h[0]
        return data[:pos] + bytes([self.rng.choice(TAGS)]) + data[pos + 1:]

    def splice(self, data: bytes, i: int) -> bytes:
        j = self.rng.randrange(len(self.seeds))
        mine = self.headers[i] if data is self.seeds[i] else _headers(data)
        theirs = self.headers[j]
        if not mine or not theirs:
            return data + self.seeds[j][: self.rng.randrange(len(self.seeds[j]) + 1)]
        cut_a = self.rng.choice(mine)[self.rng.randrange(2)]
        cut_b = self.rng.choice(theirs)[self.rng.randrange(2)]
        return data[:cut_a] + self.seeds[j][cut_b:]

    # ---- tree level ---------------------------------------------------------------------
    def tree_mutation(self, tree: Node, nodes: list[tuple[tuple, Node]]) -> bytes:
        rng = self.rng
        path, node = rng.choice(nodes)
        tag, value = node
        op = rng.randrange(9)
        if op == 0:  # new tag, same content
            new_tag = rng.choice(TAGS)
            if isinstance(value, list) and new_tag not in CONSTRUCTED:
                new: Node | None = (new_tag, b"".join(encode(c) for c in value))
            else:
                new = (new_tag, value)
        elif op == 1 and isinstance(value, bytes):  # leaf content replaced / grown / shrunk
            choice = rng.randrange(4)
            if choice == 0:
                value = rng.randbytes(rng.randint(0, 12))
            elif choice == 1:
                value = value + rng.randbytes(rng.randint(1, 12))
            elif choice == 2:
                value = value[:rng.randrange(len(value) + 1)]
            else:
                value = value * rng.randint(2, 40)
            new = (tag, value)
        elif op == 2 and path:  # drop this node
            new = None
        elif op == 3 and path:  # duplicate it next to itself
            parent_path, idx = path[:-1], path[-1]
            parent = next(n for p, n in nodes if p == parent_path)
            children = list(parent[1])
            children.insert(idx, node)
            return encode(_replace(tree, parent_path, (parent[0], children)), rng, self.cache)
        elif op == 4 and isinstance(value, list) and len(value) > 1:  # shuffle children
            value = list(value)
            rng.shuffle(value)
            new = (tag, value)
        elif op == 5 and isinstance(value, list):  # insert a random leaf
            value = list(value)
            junk = rng.randbytes(rng.randint(0, 9))
            value.insert(rng.randrange(len(value) + 1), (rng.choice(TAGS), junk))
            new = (tag, value)
        elif op == 6:  # huge / empty / negative INTEGER-ish content
            new = (tag if not isinstance(value, list) else 0x02,
                   rng.choice((b"", b"\xff" * rng.randint(5, 40), b"\x80", b"\x00" * 9,
                               b"\x7f\xff\xff\xff\xff\xff\xff\xff\xff\xff")))
        elif op == 7:  # pathological OIDs
            new = (0x06, rng.choice((b"\x2b" + b"\x01" * 200, b"\x2b" + b"\xff" * 30,
                                     b"\x2b\x06\x01" + b"\x8f\xff\xff\xff\xff\x7f",
                                     b"", b"\x80", b"\x88\x37\x01")))
        else:  # the same node twice as deep (nested SEQUENCEs)
            new = (0x30, [node])
            for _ in range(rng.randint(0, 30)):
                new = (0x30, [new])
        mutated = _replace(tree, path, new)
        if mutated is None:
            return b""
        return encode(mutated, rng, self.cache)
