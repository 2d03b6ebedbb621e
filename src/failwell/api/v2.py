"""The Open Inference Protocol v2 front end, so Triton's and KServe's clients work as is:
/v2 (server metadata), /v2/health/{live,ready}, /v2/models/{route}[/versions/{v}][/ready|/infer].

A field route maps its fields to tensors of one row (``v2codec``); a tensor route takes and
answers tensors as they are (``v2tensors``): any shape and datatype, batches, binary data
kept as bytes, each output in the form the client asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from failwell.api.auth import Pass
from failwell.api.http import (
    Receive,
    Scope,
    Send,
    header,
    read_body,
    read_parts,
    read_whole,
    respond,
)
from failwell.api.layers import FrontEnd
from failwell.api.limits import BodyLimits
from failwell.api.predict import find_route
from failwell.api.responses import Headers, answer_headers, encode
from failwell.config.models import RouteKind
from failwell.contracts import Answer, Exchange
from failwell.errors import InvalidInput, NotFound
from failwell.protocols.tensor import Tensors
from failwell.protocols.v2codec import decode_infer_request, encode_infer_response
from failwell.protocols.v2tensors import Body, decode_tensor_request, encode_tensor_response
from failwell.routing.route import Route
from failwell.version import __version__

V2_DATATYPE = {
    "str": "BYTES",
    "int": "INT64",
    "float": "FP64",
    "bool": "BOOL",
    "list[str]": "BYTES",
    "list[int]": "INT64",
    "list[float]": "FP64",
}
JSON_HEADERS = [(b"content-type", b"application/json")]


def split_model_path(rest: str) -> tuple[str, str]:
    """'recommend/versions/1/infer' → ('recommend', 'infer'); 'recommend' → ('recommend', '')."""
    parts = rest.split("/")
    name = parts[0]
    tail = parts[1:]
    if len(tail) >= 2 and tail[0] == "versions":
        tail = tail[2:]
    if len(tail) > 1 or not name:
        raise NotFound(f"no such endpoint /v2/models/{rest}")
    return name, tail[0] if tail else ""


def model_metadata(route: Route) -> dict[str, Any]:
    outputs: list[dict[str, Any]] = []
    if route.tensors is not None:
        specs = route.tensors.inputs or {}
        inputs = [
            {"name": n, "datatype": s.datatype.value, "shape": list(s.shape)}
            for n, s in specs.items()
        ]
        outputs = [
            {"name": n, "datatype": s.datatype.value, "shape": list(s.shape)}
            for n, s in route.tensors.outputs.items()
        ]
    else:
        inputs = [
            {"name": n, "datatype": V2_DATATYPE[t], "shape": [-1] if t.is_list else [1]}
            for n, t in route.schema.items()
        ]
    return {
        "name": route.name,
        "versions": ["1"],
        "platform": "failwell",
        "inputs": inputs,
        "outputs": outputs,
    }


async def infer_tensors(
    route: Route, body: Body, header_len: int | None, send: Send, ex: Exchange
) -> None:
    assert route.tensors is not None
    request = decode_tensor_request(body, header_len)
    ex.inputs = inputs = route.tensors.check(request.inputs)
    ex.answer = answer = await route.answer(
        inputs, request.request_id or ex.request_id, "v2", ex.upstream_headers
    )
    outputs = answer.outputs
    assert type(outputs) is Tensors  # the chain conforms every tier's answer
    params = {
        "failwell_tier": answer.tier,
        "failwell_quality": answer.quality,
        "failwell_backend": answer.backend,
    }
    if answer.row_tiers is not None:  # answered row by row: the tier of each row, in order
        params["failwell_tiers"] = ",".join(answer.row_tiers)
    payload, out_len = encode_tensor_response(
        route.name, answer.model_version, outputs, request, params
    )
    await respond(send, 200, payload, _headers(answer, ex.request_id, out_len))


def _headers(answer: Answer, request_id: str, header_len: int | None) -> Headers:
    """An answer's headers; binary outputs follow an inference header of ``header_len``."""
    headers = answer_headers(answer, request_id)
    if header_len is not None:
        headers[0] = (b"content-type", b"application/octet-stream")
        headers.append((b"inference-header-content-length", str(header_len).encode()))
    return headers


def front_end(routes: Mapping[str, Route], limit: BodyLimits) -> FrontEnd:
    """/v2/models/{route}[/versions/{v}][/ready|/infer]."""
    predict = RouteKind.PREDICT  # read once: an enum member off its class is a slow lookup

    async def serve(scope: Scope, receive: Receive, send: Send, ex: Exchange, gate: Pass) -> None:
        ex.front_end = "v2"
        rest = ex.path[11:]
        name, action = split_model_path(rest)
        ex.route = name
        if action != "infer":
            gate.authorize(name)
            await metadata(routes, name, action, rest, scope["method"], send)
            return
        slot = await gate.admit(name)
        try:  # the inference, inline: a coroutine of its own would be one more frame
            route = find_route(routes, name, predict)
            if scope["method"] != "POST":
                raise NotFound(f"no such endpoint: {scope['method']} /v2/models/{rest}")
            raw_len = header(scope, b"inference-header-content-length")
            if raw_len is not None and not raw_len.isdigit():
                raise InvalidInput("Inference-Header-Content-Length must be a number", status=400)
            header_len = int(raw_len) if raw_len is not None else None
            if route.tensors is not None:  # binary: the parts, not joined; JSON: not copied
                read = read_whole if header_len is None else read_parts
                body = await read(scope, receive, limit, route.max_body)
                await infer_tensors(route, body, header_len, send, ex)
                return
            request = decode_infer_request(
                await read_body(scope, receive, limit, route.max_body), header_len, route.schema
            )
            ex.inputs = request.inputs
            ex.answer = answer = await route.answer(
                request.inputs, request.request_id or ex.request_id, "v2", ex.upstream_headers
            )
            payload, out_len = encode_infer_response(
                route.name,
                answer.model_version,
                request.request_id,
                answer.outputs,
                request,
                {
                    "failwell_tier": answer.tier,
                    "failwell_quality": answer.quality,
                    "failwell_backend": answer.backend,
                },
            )
            await respond(send, 200, payload, _headers(answer, ex.request_id, out_len))
        finally:
            gate.release(slot)

    return serve


async def metadata(
    routes: Mapping[str, Route], name: str, action: str, rest: str, method: str, send: Send
) -> None:
    route = find_route(routes, name, RouteKind.PREDICT)
    if action == "" and method == "GET":
        await respond(send, 200, encode(model_metadata(route)), JSON_HEADERS)
    elif action == "ready" and method == "GET":
        await respond(send, 200, b"", JSON_HEADERS)
    else:
        raise NotFound(f"no such endpoint: {method} /v2/models/{rest}")


def server_metadata() -> bytes:

    return encode(
        {"name": "failwell", "version": __version__, "extensions": ["binary_tensor_data"]}
    )
