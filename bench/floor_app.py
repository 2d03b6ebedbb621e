"""The floor under failwell's cost: the same server (uvicorn, httptools, uvloop, failwell's
connection protocol, ``api/bodyreader.py``, as ``failwell serve`` runs it) with no gateway in
it.

``fixed`` answers every request with a fixed completion; ``proxy`` relays each request's body to
the upstream with failwell's own HTTP client (``backends/http.py``) and answers its body.

Usage: python bench/floor_app.py fixed|proxy PORT UPSTREAM_PORT
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

from failwell.api.bodyreader import BodyReader
from failwell.backends.http import HttpUpstream

FIXED = (
    b'{"id":"chatcmpl-floor","object":"chat.completion","created":1700000000,"model":"demo",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"pong"},'
    b'"finish_reason":"stop"}]}'
)


def main() -> None:
    mode, port, upstream = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    http = HttpUpstream("floor", 64)
    url = f"http://127.0.0.1:{upstream}/v1/chat/completions"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        answer = await http.post(url, body, 0.5, "floor") if mode == "proxy" else FIXED
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http=BodyReader,
        proxy_headers=False,
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
    )


if __name__ == "__main__":
    main()
