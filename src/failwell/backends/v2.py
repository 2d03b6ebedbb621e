"""Open Inference Protocol v2 (Triton, KServe, MLServer) over HTTP."""

from __future__ import annotations

from failwell.backends.http import HttpUpstream
from failwell.contracts import Request, Result
from failwell.errors import UpstreamMalformed
from failwell.protocols.v2codec import decode_upstream_response, encode_upstream_request


class V2Adapter:
    def __init__(
        self,
        http: HttpUpstream,
        base_url: str,
        model: str,
        replica: str,
        version: str | None = None,
    ) -> None:
        self._http = http
        self._url = f"{base_url}/v2/models/{model}/infer"
        self._replica = replica
        self._version = version

    async def call(self, request: Request, timeout: float) -> Result:
        body = encode_upstream_request(request.inputs, request.schema, request.request_id or None)
        payload = await self._http.post(self._url, body, timeout, self._replica, request.headers)
        try:
            outputs, version = decode_upstream_response(payload)
        except UpstreamMalformed as exc:
            exc.backend, exc.replica = self._http.backend, self._replica
            raise
        return Result(outputs, version or self._version)

    async def close(self) -> None:
        await self._http.close()
