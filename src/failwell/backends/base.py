"""The one seam every backend sits behind: an async call (request in, result or a failwell
error out) plus close. Pools, breakers and retries wrap it; they never reach inside."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from failwell.resilience.deadline import Deadline


@dataclass(slots=True)
class Request:
    """One inference request as it travels the tier chain."""

    route: str
    inputs: dict[str, Any]
    deadline: Deadline
    request_id: str = ""
    front_end: str = "predict"
    schema: Mapping[str, str] = field(default_factory=dict)  # the route's input types
    headers: dict[str, str] = field(default_factory=dict)  # propagated upstream (traceparent)


@dataclass(slots=True)
class Result:
    outputs: Any
    model_version: str | None = None


class Adapter(Protocol):
    """Talks to one replica (or one in-process model)."""

    async def call(self, request: Request, timeout: float) -> Result:
        """Answer within ``timeout`` seconds or raise an ``UpstreamError``."""
        ...

    async def close(self) -> None: ...
