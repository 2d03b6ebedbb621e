"""What the edge reads from every request's headers: the request id and trace context."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from failwell.api.http import Scope

_REQUEST_ID = re.compile(rb"^[\x21-\x7e]{1,128}$")


@dataclass(slots=True)
class RequestInfo:
    request_id: str
    upstream_headers: dict[str, str]  # propagated to upstreams


def request_info(scope: Scope) -> RequestInfo:
    rid = None
    upstream: dict[str, str] = {}
    for key, value in scope["headers"]:
        if key == b"x-request-id" and _REQUEST_ID.match(value):
            rid = value.decode()
        elif key == b"traceparent" or key == b"tracestate":
            upstream[key.decode()] = value.decode("latin-1")
    rid = rid or os.urandom(8).hex()
    upstream["x-request-id"] = rid
    return RequestInfo(rid, upstream)
