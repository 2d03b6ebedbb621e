"""The whole-response cycle refuses the header bytes uvicorn refuses, and only those."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE

from failwell.api.cycle import BAD_IN_NAME, BAD_IN_VALUE


def test_refused_header_bytes_are_uvicorns() -> None:
    for code in range(256):
        byte = bytes([code])
        assert (code in BAD_IN_NAME) == (HEADER_RE.search(byte) is not None), code
        assert (code in BAD_IN_VALUE) == (HEADER_VALUE_RE.search(byte) is not None), code
