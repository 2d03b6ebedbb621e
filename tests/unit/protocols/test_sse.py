"""A chunk of a stream that took over from another reads as part of the first stream."""

from __future__ import annotations

import msgspec

from failwell.protocols.sse import continued_chunk, decode_chunk


def test_a_continued_chunk_takes_the_first_streams_id_and_drops_a_second_role() -> None:
    raw = msgspec.json.encode(
        {
            "id": "chatcmpl-tier2",
            "object": "chat.completion.chunk",
            "created": 2,
            "model": "demo-small",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": " more"}}],
        }
    )
    out = msgspec.json.decode(continued_chunk(raw, "chatcmpl-tier1", 1))
    assert out["id"] == "chatcmpl-tier1" and out["created"] == 1
    assert out["model"] == "demo-small"  # still names the model that wrote this part
    assert out["choices"][0]["delta"] == {"content": " more"}
    first = decode_chunk(b'{"id": "chatcmpl-tier1", "created": 1, "choices": []}')
    assert (first.id, first.created) == ("chatcmpl-tier1", 1)
