"""The embedded log backend: append-only segment files on local disk, one folder per stream.

    <path>/<stream>/00000000000000000001.log   records 1 ... (named by their first seq)
    <path>/<stream>/00000000000000052311.log   the active segment, the only one written
    <path>/<stream>/LOCK                       held by the one writing process
    <path>/<stream>/consumers/<name>           a consumer's last acknowledged seq

Every method here blocks (file I/O, fsync): the writer calls them from its own thread. Readers
(the CLI, consumers) may read while a gateway writes; they ignore an incomplete last line.

Start-up recovery: an incomplete final line (torn write, SIGKILL mid-write, power loss) is cut
off, and the chain continues from the last complete record. Nothing before it is touched."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from failwell.log.records import GENESIS, BadLine, Fields, Record, parse_line, seal
from failwell.observe.logging import log

_SUFFIX = ".log"
_READ_CHUNK = 1 << 20


class LogLocked(RuntimeError):
    """Another process is writing this log."""


class LogCorrupt(RuntimeError):
    """A record read back does not verify."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{_SUFFIX}"


def complete_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, line without newline) for each complete line of a file."""
    with path.open("rb") as f:
        rest, number = b"", 0
        while chunk := f.read(_READ_CHUNK):
            parts = (rest + chunk).split(b"\n")
            rest = parts.pop()
            for line in parts:
                number += 1
                yield number, line


class SegmentLog:
    """One stream's segments. ``writer=True`` takes the lock and recovers the tail."""

    def __init__(
        self,
        path: str | Path,
        stream: str,
        *,
        writer: bool = False,
        segment_size: int = 64 * 1024 * 1024,
        max_size: int | None = None,
        max_age: float | None = None,
    ) -> None:
        self.stream = stream
        self.dir = Path(path) / stream
        self.segment_size = segment_size
        self.max_size, self.max_age = max_size, max_age
        self.head, self.next_seq = GENESIS, 1
        self.recovered_bytes = 0
        self._fd: int | None = None
        self._size = 0
        self._lock_fd: int | None = None
        if writer:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock()
            self._recover()
        else:
            self._peek_tail()

    # -- segments ---------------------------------------------------------------------------

    def segments(self) -> list[tuple[int, Path]]:
        """(first seq, path) of every segment, oldest first."""
        if not self.dir.is_dir():
            return []
        found = []
        for p in self.dir.iterdir():
            if p.suffix == _SUFFIX and p.stem.isdigit():
                found.append((int(p.stem), p))
        return sorted(found)

    def _lock(self) -> None:
        fd = os.open(self.dir / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LogLocked(f"{self.dir} is being written by another process") from None
        self._lock_fd = fd

    def _recover(self) -> None:
        for first, path in reversed(self.segments()):
            data = path.read_bytes()
            cut = data.rfind(b"\n") + 1  # drop an incomplete final line
            while cut > 0:
                start = data.rfind(b"\n", 0, cut - 1) + 1
                last = self._tail_record(data[start : cut - 1], path)
                if last is not None:
                    self.head, self.next_seq = last.hash, last.seq + 1
                    break
                cut = start  # not even a record's shape: cut it too
            if cut != len(data):
                self.recovered_bytes += len(data) - cut
                log.warning("log_tail_recovered", segment=str(path), cut_bytes=len(data) - cut)
                with path.open("r+b") as f:
                    f.truncate(cut)
                    os.fsync(f.fileno())
            if cut > 0:
                self._open(path, cut)
                return
            if first > 1 and len(self.segments()) > 1:
                path.unlink()  # an empty segment: continue from the one before
                continue
            self.next_seq = first
            self._open(path, 0)
            return

    def _peek_tail(self) -> None:
        """For readers: where the stream ends now (the last complete record's seq)."""
        segs = self.segments()
        if not segs:
            return
        first, path = segs[-1]
        self.next_seq = first
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - _READ_CHUNK))
            data = f.read()
        lines = data.split(b"\n")[:-1]  # the last piece is incomplete or empty
        for line in reversed(lines):
            try:
                record = parse_line(line)[0]
            except BadLine:
                continue
            self.head, self.next_seq = record.hash, record.seq + 1
            return

    @staticmethod
    def _tail_record(line: bytes, path: Path) -> Record | None:
        """The last complete line as a record, trusting its stored hash even if it does not
        verify (``verify`` reports that record; new records chain to what is there)."""
        try:
            return parse_line(line)[0]
        except BadLine:
            pass
        try:
            seq = msgspec.json.decode(line[65:])["seq"]
            stored = line[:64].decode("ascii")
            int(stored, 16)
        except (msgspec.DecodeError, KeyError, TypeError, ValueError):
            return None
        log.error("log_tail_does_not_verify", segment=str(path), seq=seq)
        return Record(int(seq), stored, line[65:])

    def _open(self, path: Path, size: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = size

    def _rotate(self) -> None:
        path = self.dir / _segment_name(self.next_seq)
        self._open(path, 0)
        _fsync_dir(self.dir)
        self._retain()

    def _retain(self) -> None:
        segs = self.segments()[:-1]  # never the active one
        sizes = [p.stat().st_size for _, p in segs]
        total = sum(sizes) + self._size
        now = time.time()
        for (_, path), size in zip(segs, sizes, strict=True):
            too_big = self.max_size is not None and total > self.max_size
            too_old = self.max_age is not None and path.stat().st_mtime < now - self.max_age
            if not (too_big or too_old):
                break
            path.unlink()
            total -= size
            log.info("log_segment_removed", segment=str(path), reason="size" if too_big else "age")

    # -- writing ----------------------------------------------------------------------------

    def append(self, batch: list[Fields]) -> list[Record]:
        """Seal, write and fsync a batch. On an error nothing of the batch stays on disk."""
        if self._fd is None or self._size >= self.segment_size:
            self._rotate()
        assert self._fd is not None
        out, prev, seq = [], self.head, self.next_seq
        lines: list[bytes] = []  # each record's line in four parts, joined once
        for fields in batch:
            record = seal(seq, prev, fields)
            out.append(record)
            lines += (record.hash.encode(), b" ", record.body, b"\n")
            prev, seq = record.hash, seq + 1
        data = memoryview(b"".join(lines))
        before = self._size
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            os.fdatasync(self._fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, before)
            raise
        self._size += len(data)
        self.head, self.next_seq = prev, seq
        return out

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.dir).free

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- reading ----------------------------------------------------------------------------

    def lines(self) -> Iterator[tuple[bytes, str]]:
        """Every complete line, oldest first, with its place (segment:line)."""
        for _, path in self.segments():
            with contextlib.suppress(FileNotFoundError):  # removed by retention meanwhile
                for number, line in complete_lines(path):
                    yield line, f"{path.name}:{number}"

    def first_seq(self) -> int | None:
        segs = self.segments()
        return segs[0][0] if segs else None

    def read(self, after: int, limit: int) -> list[Record]:
        """Up to ``limit`` records with seq > ``after``, in order."""
        segs = self.segments()
        start = 0
        for i, (first, _) in enumerate(segs):
            if first <= after + 1:
                start = i
        out: list[Record] = []
        for _, path in segs[start:]:
            for number, line in complete_lines(path):
                try:
                    record = parse_line(line)[0]
                except BadLine as exc:
                    raise LogCorrupt(f"{path.name}:{number}: {exc}") from None
                if record.seq > after:
                    out.append(record)
                    if len(out) >= limit:
                        return out
        return out

    # -- consumer offsets -------------------------------------------------------------------

    def get_offset(self, consumer: str) -> int:
        try:
            return int((self.dir / "consumers" / consumer).read_text().strip() or 0)
        except FileNotFoundError:
            return 0

    def set_offset(self, consumer: str, seq: int) -> None:
        """Store a consumer's last acknowledged seq atomically (write, fsync, rename)."""
        folder = self.dir / "consumers"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{consumer}.tmp"
        with tmp.open("w") as f:
            f.write(f"{seq}\n")
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(folder / consumer)
        _fsync_dir(folder)
