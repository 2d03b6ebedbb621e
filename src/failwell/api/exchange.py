"""One request/response exchange at the edge: what the edge reads from the request's headers
(request id, trace context), what the front end learns (route, inputs, answer) and how it
ended. Observers registered on the gateway see every finished exchange."""

from __future__ import annotations

import itertools
import os
import random
import re

from failwell.api.http import Scope
from failwell.contracts import Exchange

_REQUEST_ID = re.compile(rb"^[\x21-\x7e]{1,128}$")
# Request ids: a random per-process prefix and a counter; unique across restarts and
# instances without a syscall per request.
_PREFIX = os.urandom(6).hex()
_COUNTER = itertools.count(1)
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_bits = random.getrandbits


def exchange(scope: Scope) -> Exchange:
    rid = None
    upstream: dict[str, str] = {}
    for key, value in scope["headers"]:
        if key == b"x-request-id" and _REQUEST_ID.match(value):
            rid = value.decode()
        elif key == b"traceparent" or key == b"tracestate":
            upstream[key.decode()] = value.decode("latin-1")
    rid = rid or f"{_PREFIX}{next(_COUNTER):08x}"
    upstream["x-request-id"] = rid
    if "traceparent" not in upstream:  # start a W3C trace here: version-trace id-span id-sampled
        # ids need to be unique, not secret: the process's PRNG (reseeded in each forked
        # worker), not a getrandom syscall per request; 24 random bytes in hex are both ids
        # (one conversion, no integer formatting); never all zeros (invalid)
        ids = _bits(192).to_bytes(24, "little").hex()
        trace, span = ids[:32], ids[32:]
        if trace == _ZERO_TRACE or span == _ZERO_SPAN:
            trace, span = trace[:-1] + "1", span[:-1] + "1"
        upstream["traceparent"] = "00-" + trace + "-" + span + "-01"
    return Exchange(rid, upstream, scope["path"])
