"""The server side of a connection, per request: uvicorn's httptools protocol with the steps it
takes on every request made lean. The steps are the same, in the same order. Three things are
cheaper:

- **The cycle.** It is built from the protocol in one call with three arguments
  (``api/cycle.py``), not eleven keywords. Its message event is a small ``Signal`` in place of
  an ``asyncio.Event``.
- **The scope.** Its ``asgi`` entry is one dict per connection, not one per request.
- **The keep-alive timer.** uvicorn arms a timer as each response completes and cancels it as
  each read arrives: a timer handle made and dropped per request. Here a response notes the
  time it completed, and a read clears the note. One timer per idle spell checks the note when
  it fires: a connection that has been idle the whole ``timeout_keep_alive`` since its last
  response is closed. A busy connection's timer is armed again at the end of its last note's
  spell. uvicorn's rule holds as before: close after ``timeout_keep_alive`` with no bytes
  since the last response.

callgrind, server alone (``bench/floor_app.py fixed``): 113.4k -> 96.6k instructions per
request. Everything else (upgrades, errors, 100 Continue, pipelining, shutdown) is uvicorn's
own code. uvicorn is pinned; these overrides follow its 0.54 source line for line.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import httptools
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from failwell.api.cycle import Cycle


class Protocol(HttpToolsProtocol):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asgi = {"version": self.asgi_version, "spec_version": "2.3"}
        self.extensions: dict[str, Any] = {}  # each request's scope["extensions"]
        self.idle_from: float | None = None  # when the last response completed, no bytes since

    def data_received(self, data: bytes) -> None:
        self.idle_from = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def on_message_begin(self) -> None:
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        scope: Any = {
            "type": "http",
            "asgi": self.asgi,
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        self.scope = scope

    def on_headers_complete(self) -> None:
        parser, scope = self.parser, self.scope
        http_version = parser.get_http_version()
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if parser.should_upgrade() and self._should_upgrade():
            return
        url = httptools.parse_url(self.url)
        raw_path = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        root = self.root_path
        scope["path"] = root + path
        scope["raw_path"] = root.encode("ascii") + raw_path if root else raw_path
        scope["query_string"] = url.query or b""
        scope["extensions"] = self.extensions
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        else:
            app = self.app
        existing = self.cycle
        self.cycle = Cycle(self, scope, http_version != "1.0" and parser.should_keep_alive())
        if existing is None or existing.response_complete:
            self._start_asgi_task(self.cycle, app)
        else:  # pipelined behind the request in progress
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, app))

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            self.idle_from = None
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self.idle_from = now = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_at(
                now + self.timeout_keep_alive, self._check_idle
            )

    def _check_idle(self) -> None:
        """The keep-alive timer: close a connection idle since ``idle_from`` for the whole
        ``timeout_keep_alive``; for one that answered since the timer was armed, wait out the
        rest of its last idle spell."""
        self.timeout_keep_alive_task = None
        if self.idle_from is None:  # bytes came: its next response arms the timer again
            return
        due = self.idle_from + self.timeout_keep_alive
        if due <= self.loop.time():
            self.timeout_keep_alive_handler()
        else:
            self.timeout_keep_alive_task = self.loop.call_at(due, self._check_idle)
