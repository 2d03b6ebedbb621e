"""How the drill's load tells a streamed answer's end: complete, an in-band error, or a
clean close of a truncated answer."""

from __future__ import annotations

import pytest

from failwell.drills.analysis import stream_check
from failwell.drills.load import COMPLETE, ERROR_EVENT, HANG, TRUNCATED, Shot, stream_end
from failwell.drills.run import stream_ends


@pytest.mark.parametrize(
    ("body", "end"),
    [
        (b'data: {"a":1}\n\ndata: [DONE]\n\n', COMPLETE),
        (b'data: {"a":1}\r\n\r\ndata: [DONE]\r\n\r\n', COMPLETE),
        (b'data: {"a":1}\n\ndata: {"error": {"message": "cut"}}\n\n', ERROR_EVENT),
        (b'data: {"a":1}\n\nevent: error\ndata: {"message": "x"}\n\n', ERROR_EVENT),
        (b'data: {"a":1}\n\ndata: {"a":2}\n\n', TRUNCATED),
        (b'data: {"a":1}\n\ndata: {"a"', TRUNCATED),
        (b"", TRUNCATED),
    ],
)
def test_stream_end(body: bytes, end: str) -> None:
    assert stream_end(body) == end


def test_a_stream_step_passes_only_when_every_stream_ended_in_the_open() -> None:
    assert stream_check("cut", {COMPLETE: 3, ERROR_EVENT: 7}).ok
    bad = stream_check("cut", {ERROR_EVENT: 7, TRUNCATED: 1, HANG: 1})
    assert not bad.ok and bad.detail == "9 streams: error_event 7, hang 1, truncated 1"
    assert not stream_check("cut", {}).ok  # no stream sent proves nothing
    assert not stream_check("cut", {"status 503": 2}).ok


def test_stream_ends_names_what_was_not_a_stream() -> None:
    shots = [
        Shot(0.0, 0.1, 200, "primary", ERROR_EVENT),
        Shot(0.1, 0.1, 200, "static", None),
        Shot(0.2, 5.0, 0, None, HANG),
    ]
    assert stream_ends(shots) == {ERROR_EVENT: 1, "not a stream": 1, "no answer": 1}
