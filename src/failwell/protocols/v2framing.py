"""The binary extension's framing: a body split into its JSON header and binary tail, and the
tail cut into each tensor's bytes, without copying (``v2binary.py`` reads the elements)."""

from __future__ import annotations

from collections.abc import Sequence

from failwell.protocols.v2binary import V2Malformed

_NO_TAIL = memoryview(b"")


def split_body(
    body: bytes | memoryview, header_length: int | None
) -> tuple[bytes | memoryview, memoryview]:
    """The JSON header and the binary tail of a body, without copying either; a plain-JSON
    body (no header length) is its own header, as it is."""
    if header_length is None:
        return body, _NO_TAIL
    view = memoryview(body)
    if not 0 <= header_length <= len(view):
        raise V2Malformed(
            f"Inference-Header-Content-Length {header_length} is outside the {len(view)}-byte body"
        )
    return view[:header_length], view[header_length:]


def split_parts(
    parts: Sequence[bytes | memoryview], header_length: int | None
) -> tuple[bytes | memoryview, list[memoryview]]:
    """``split_body`` over a body in parts: the JSON header (a view when it lies in the first
    part, else joined) and the binary tail as views of the parts."""
    if len(parts) <= 1:
        whole, after = split_body(parts[0] if parts else b"", header_length)
        return whole, [after]
    size = sum(len(part) for part in parts)
    if header_length is None:
        return b"".join(parts), []
    if not 0 <= header_length <= size:
        raise V2Malformed(
            f"Inference-Header-Content-Length {header_length} is outside the {size}-byte body"
        )
    views = [memoryview(part) for part in parts]
    if header_length <= len(views[0]):
        header: bytes | memoryview = views[0][:header_length]
    else:  # the header spans parts: join only what it takes
        needed: list[memoryview] = []
        got = 0
        for view in views:
            if got >= header_length:
                break
            needed.append(view[: header_length - got])
            got += len(needed[-1])
        header = b"".join(needed)
    rest: list[memoryview] = []
    pos = 0
    for view in views:
        if pos + len(view) > header_length:
            rest.append(view[max(header_length - pos, 0) :])
        pos += len(view)
    return header, rest


def slice_tail(
    named_sizes: Sequence[tuple[str, int | None]], tail: memoryview, role: str
) -> list[memoryview | None]:
    """Each tensor's bytes in the tail (None for a tensor without binary data).

    The sizes must account for the tail exactly: no tensor may run past its end and no byte
    may be left over.
    """
    return [
        None if at is None else tail[at[0] : at[0] + at[1]]
        for at in _offsets(named_sizes, len(tail), role)
    ]


def slice_parts(
    named_sizes: Sequence[tuple[str, int | None]], tail: Sequence[memoryview], role: str
) -> list[tuple[memoryview, ...] | None]:
    """``slice_tail`` over a tail in parts (a body as it arrived): each tensor's bytes as
    views of the parts it spans, nothing copied."""
    starts = []
    end = 0
    for view in tail:
        starts.append(end)
        end += len(view)
    out: list[tuple[memoryview, ...] | None] = []
    for at in _offsets(named_sizes, end, role):
        if at is None:
            out.append(None)
            continue
        pos, stop = at[0], at[0] + at[1]
        views = [
            view[max(pos - start, 0) : stop - start]
            for view, start in zip(tail, starts, strict=True)
            if start < stop and start + len(view) > pos
        ]
        out.append(tuple(views) if views else (tail[0][:0] if tail else memoryview(b""),))
    return out


def _offsets(
    named_sizes: Sequence[tuple[str, int | None]], end: int, role: str
) -> list[tuple[int, int] | None]:
    """(start, size) of each tensor's bytes in a tail of ``end`` bytes; raises V2Malformed."""
    out: list[tuple[int, int] | None] = []
    pos = 0
    for name, size in named_sizes:
        if size is None:
            out.append(None)
            continue
        if size < 0:
            raise V2Malformed(f"{role} {name!r}: binary_data_size {size} is negative", name)
        if size > end - pos:
            raise V2Malformed(
                f"{role} {name!r}: binary_data_size {size} runs past the end of the "
                f"{end} bytes after the header",
                name,
            )
        out.append((pos, size))
        pos += size
    if pos != end:
        raise V2Malformed(
            f"{end - pos} of the {end} bytes after the header belong to no tensor "
            f"(the binary_data_size values add up to {pos})"
        )
    return out
