"""What the edge needs of the gateway it serves. ``failwell.gateway.Gateway`` is the one
implementation; the edge names this protocol so it never imports the composition root above
it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from failwell.api.admin import AdminApi
from failwell.api.auth import Guard
from failwell.api.limits import BodyLimits
from failwell.contracts import BeforeRespond, Observer, ReadinessCheck
from failwell.health.plane import HealthPlane
from failwell.observe.metrics import Metrics
from failwell.quality.watch import QualityWatch
from failwell.retrain.loop import RetrainLoop
from failwell.routing.pool import Pool
from failwell.routing.route import Route
from failwell.store.cache import AnswerCache
from failwell.supervisor.service import Supervisor


class Host(Protocol):
    @property
    def routes(self) -> Mapping[str, Route]: ...

    @property
    def pools(self) -> Mapping[str, Pool]: ...

    @property
    def cache(self) -> AnswerCache: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def admin(self) -> AdminApi: ...

    @property
    def guard(self) -> Guard: ...

    @property
    def limits(self) -> BodyLimits: ...

    @property
    def health(self) -> HealthPlane: ...

    @property
    def quality(self) -> QualityWatch: ...

    @property
    def supervisor(self) -> Supervisor: ...

    @property
    def retrain(self) -> RetrainLoop: ...

    @property
    def observers(self) -> Sequence[Observer]: ...

    @property
    def before_respond(self) -> Sequence[BeforeRespond]: ...

    @property
    def before_admin_respond(self) -> Sequence[BeforeRespond]: ...

    @property
    def readiness_checks(self) -> Sequence[ReadinessCheck]: ...

    @property
    def openapi(self) -> bytes:
        """The OpenAPI document of the routes served now, encoded."""
        ...

    def audit(self, action: str, detail: dict[str, Any], caller: str | None = None) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...
