"""In-process models, run in a thread pool so a slow model cannot stall the event loop.

At most ``QUEUE_PER_WORKER`` calls per worker may be waiting or running (calls that timed out
but still run count too); beyond that a call fails at once with ``UpstreamBusy`` instead of
queueing behind a hung model.

A tensor route's model gets its batch as named numpy arrays (views of the request's bytes)
and answers named arrays (or one array) with a row per batch row.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping
from typing import Any

from failwell.config.load import resolve_import
from failwell.contracts import Request, Result
from failwell.errors import UpstreamBusy, UpstreamMalformed, UpstreamTimeout, UpstreamUnavailable
from failwell.protocols.tensor import Tensors

QUEUE_PER_WORKER = 4


class PythonAdapter:
    def __init__(
        self,
        backend: str,
        target: str,
        args: Mapping[str, Any],
        workers: int,
        version: str | None = None,
    ) -> None:
        self._backend = backend
        self._model = resolve_import(target)(**args)
        self._predict = self._model.predict
        self._version = version or getattr(self._model, "version", None)
        self._limit = workers * QUEUE_PER_WORKER
        self._busy = 0
        self._pool = concurrent.futures.ThreadPoolExecutor(
            workers, thread_name_prefix=f"model-{backend}"
        )

    @property
    def busy(self) -> int:
        """Calls waiting or running in the pool (timed-out ones that still run included)."""
        return self._busy

    def _done(self, _: Any) -> None:
        self._busy -= 1

    async def call(self, request: Request, timeout: float) -> Result:
        if self._busy >= self._limit:
            raise UpstreamBusy("the model's queue is full", backend=self._backend, replica="local")
        loop = asyncio.get_running_loop()
        inputs = request.inputs
        if type(inputs) is Tensors:
            inputs = inputs.arrays()
        try:
            future = loop.run_in_executor(self._pool, self._predict, inputs)
        except RuntimeError:  # closed (a model swapped out): a retry reaches a live one
            raise UpstreamUnavailable(
                "the model was unloaded", backend=self._backend, replica="local"
            ) from None
        self._busy += 1
        future.add_done_callback(self._done)
        try:
            outputs = await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise UpstreamTimeout(
                f"model did not answer within {timeout * 1000:.0f}ms",
                backend=self._backend,
                replica="local",
            ) from None
        except Exception as exc:  # the model's own failure, whatever it raised
            raise UpstreamMalformed(
                f"model raised {type(exc).__name__}: {exc}", backend=self._backend, replica="local"
            ) from None
        return Result(outputs, self._version)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
