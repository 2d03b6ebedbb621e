"""Open Inference Protocol v2 (Triton, KServe, MLServer) over HTTP.

A field route's inputs go up as plain JSON (``v2codec``); a tensor route's ``Tensors`` go up
as they are (``v2tensors``): the client's bytes in Triton's binary extension, or JSON for a
server without it (``tensor_data: json``), and the answer comes back as ``Tensors``.
"""

from __future__ import annotations

from failwell.backends.http import HttpUpstream
from failwell.config.tensors import TensorWire
from failwell.contracts import Request, Result
from failwell.errors import UpstreamMalformed
from failwell.protocols.tensor import Tensors
from failwell.protocols.v2codec import decode_upstream_response, encode_upstream_request
from failwell.protocols.v2tensors import decode_tensor_response, encode_tensor_upstream


class V2Adapter:
    def __init__(
        self,
        http: HttpUpstream,
        base_url: str,
        model: str,
        replica: str,
        version: str | None = None,
        wire: TensorWire = TensorWire.MIRROR,
    ) -> None:
        self._http = http
        self._url = f"{base_url}/v2/models/{model}/infer"
        self._replica = replica
        self._version = version
        self._wire = wire

    async def call(self, request: Request, timeout: float) -> Result:
        inputs = request.inputs
        if type(inputs) is Tensors:
            return await self._call_tensors(request, inputs, timeout)
        body = encode_upstream_request(inputs, request.schema, request.request_id or None)
        payload, _ = await self._http.exchange(  # not post: one coroutine frame fewer
            self._url, body, timeout, self._replica, request.headers
        )
        try:
            outputs, version = decode_upstream_response(payload)
        except UpstreamMalformed as exc:
            exc.backend, exc.replica = self._http.backend, self._replica
            raise
        return Result(outputs, version or self._version)

    async def _call_tensors(self, request: Request, inputs: Tensors, timeout: float) -> Result:
        body, header_length = encode_tensor_upstream(inputs, request.request_id or None, self._wire)
        headers = request.headers
        if header_length is not None:
            headers = {**headers, "inference-header-content-length": str(header_length)}
        payload, answer_length = await self._http.exchange(
            self._url, body, timeout, self._replica, headers
        )
        try:
            if answer_length is not None and not answer_length.isdigit():
                raise UpstreamMalformed(
                    f"Inference-Header-Content-Length {answer_length!r} is not a number"
                )
            length = None if answer_length is None else int(answer_length)
            outputs, version = decode_tensor_response(payload, length)
        except UpstreamMalformed as exc:
            exc.backend, exc.replica = self._http.backend, self._replica
            raise
        return Result(outputs, version or self._version)

    async def close(self) -> None:
        await self._http.close()
