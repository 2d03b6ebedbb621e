"""Log records and their hash chain, shared by every log backend.

A record is one line: ``<sha256 hex> <JSON body>\\n``. The body is a JSON object whose first
keys are ``seq`` (1, 2, 3 ... per stream) and ``prev`` (the hash of the record before; 64
zeros for the first). The hash is the SHA-256 of the body's bytes exactly as stored, so
checking a record never re-encodes it.

What verification catches:
- an edited record: its hash no longer matches its body;
- an edited record whose hash was recomputed: the next record's ``prev`` no longer matches;
- a dropped or reordered record: ``seq`` is not the one expected, or ``prev`` does not match.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

GENESIS = "0" * 64
_HASH_LEN = 64
_canonical = msgspec.json.Encoder(order="deterministic").encode
_encode = msgspec.json.Encoder().encode
_decode_any = msgspec.json.Decoder().decode


class _Head(msgspec.Struct):
    seq: int
    prev: str


_decode_head = msgspec.json.Decoder(_Head).decode


def canonical(value: Any) -> bytes:
    """Deterministic JSON (sorted keys), e.g. for hashing inputs."""
    return _canonical(value)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Record(msgspec.Struct, frozen=True):  # built in C: the writer makes one per record
    """One stored record: its position, hash and the raw body it was hashed from."""

    seq: int
    hash: str
    body: bytes

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = _decode_any(self.body)
        return out

    def line(self) -> bytes:
        return self.hash.encode() + b" " + self.body + b"\n"


Fields = dict[str, Any] | bytes  # bytes: the fields already encoded as one JSON object


def encode_fields(fields: dict[str, Any]) -> bytes:
    return _encode(fields)


def seal(seq: int, prev: str, fields: Fields) -> Record:
    """Make record ``seq`` from ``fields`` (without seq/prev), chained to the record whose
    hash is ``prev``. Fields may come pre-encoded, so the writer thread only splices bytes."""
    encoded = _encode(fields) if isinstance(fields, dict) else fields
    if len(encoded) > 2:  # one copy of the fields, after the head and a comma
        body = b'{"seq":%d,"prev":"%s",%s' % (seq, prev.encode(), memoryview(encoded)[1:])
    else:
        body = b'{"seq":%d,"prev":"%s"}' % (seq, prev.encode())
    return Record(seq, digest(body), body)


class BadLine(ValueError):
    """A line that is not a well-formed record (torn write, garbage, edited separator)."""


def parse_line(line: bytes) -> tuple[Record, str]:
    """A stored line (without its newline) → (record, its ``prev``). Checks its own hash."""
    if len(line) < _HASH_LEN + 3 or line[_HASH_LEN : _HASH_LEN + 1] != b" ":
        raise BadLine("not a record line")
    stored = line[:_HASH_LEN].decode("ascii", "replace")
    body = line[_HASH_LEN + 1 :]
    try:
        head = _decode_head(body)
    except msgspec.DecodeError as exc:
        raise BadLine(f"body is not a record: {exc}") from None
    if digest(body) != stored:
        raise BadLine("hash does not match the body (record edited or torn)")
    return Record(head.seq, stored, body), head.prev


@dataclass(frozen=True, slots=True)
class Problem:
    """The first bad position a verification found."""

    position: int  # seq the record at that place should have
    where: str  # segment file and line, or stream id
    reason: str

    def __str__(self) -> str:
        return f"record {self.position} ({self.where}): {self.reason}"


@dataclass(frozen=True, slots=True)
class Verdict:
    checked: int
    first: int | None  # first seq checked (older ones may be gone by retention)
    last: int | None
    head: str  # hash of the last good record
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(
    lines: Iterable[tuple[bytes, str]], start_prev: str | None = None, start_seq: int | None = None
) -> Verdict:
    """Check a stream's lines in order; ``(line, where)`` pairs. Stops at the first problem.

    ``start_prev``/``start_seq`` anchor the chain; when None the first record anchors it (the
    records before it were removed by retention)."""
    expect_prev, expect_seq = start_prev, start_seq
    checked, first, last, head = 0, None, None, start_prev or GENESIS
    for line, where in lines:
        position = expect_seq if expect_seq is not None else 0
        try:
            record, prev = parse_line(line)
        except BadLine as exc:
            return Verdict(checked, first, last, head, Problem(position, where, str(exc)))
        if expect_seq is not None and record.seq != expect_seq:
            reason = f"expected seq {expect_seq}, found {record.seq} (record dropped or reordered)"
            return Verdict(checked, first, last, head, Problem(position, where, reason))
        if expect_prev is not None and prev != expect_prev:
            reason = "prev does not match the record before (edited, dropped or reordered)"
            return Verdict(checked, first, last, head, Problem(record.seq, where, reason))
        if first is None:
            first = record.seq
        checked += 1
        last, head = record.seq, record.hash
        expect_prev, expect_seq = record.hash, record.seq + 1
    return Verdict(checked, first, last, head, None)


def records(lines: Iterable[tuple[bytes, str]]) -> Iterator[Record]:
    """Parse lines into records, skipping none: a bad line raises ``BadLine``."""
    for line, _ in lines:
        yield parse_line(line)[0]
