"""The inference and audit log wired into the gateway: exchange → record, audit action → record.

``InferenceLog`` is built by the gateway when ``log.enabled``; it offers:
- two writers (``inference``, ``audit``) as services;
- an observer that queues one record per answered or refused request (``batch``);
- a ``before_respond`` hook: in ``sync`` mode it holds the response until the exchange's
  record is durable; for admin responses with a sync audit stream it waits until the audit
  records the request made are durable; with ``on_failure: refuse`` it turns an answer whose
  record cannot be written into a 503;
- an audit sink, a readiness check per stream and ``GET /admin/log``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from failwell.config.log import Durability, InputPolicy, LogConfig, OnFailure
from failwell.config.models import RouteConfig
from failwell.contracts import AdminCall, AdminRoute, Exchange, Service
from failwell.errors import LogUnavailable
from failwell.log.metrics import LogMetrics
from failwell.log.records import canonical
from failwell.log.store import open_store
from failwell.log.writer import LogWriter
from failwell.protocols.chat import usage_of

_LOGGED_FRONT_ENDS = frozenset({"predict", "v2", "openai", "python", "feedback"})


def outcome(status: int) -> str:
    if status == 200:
        return "ok"
    if status == 499:
        return "disconnected"
    return "refused" if 400 <= status < 500 else "failed"


# read once: in CPython 3.11 an enum member read off its class goes through a slow hook
_FULL, _HASHED = InputPolicy.FULL, InputPolicy.HASHED


def inference_record(ex: Exchange, policy: InputPolicy) -> dict[str, Any] | None:
    """The record of one exchange, or None for exchanges that are not inferences (metadata).
    Built key by key, in the order a reader sees them (one record per request)."""
    front_end, a, status = ex.front_end, ex.answer, ex.status
    unanswered = a is None and ex.error is None and front_end != "feedback"
    if front_end not in _LOGGED_FRONT_ENDS or unanswered:
        return None
    fields: dict[str, Any] = {
        "time": ex.started,
        "request_id": ex.request_id,
        "route": ex.route,
        "front_end": front_end,
        "caller": ex.caller,
        "status": status,
        "outcome": "ok" if status == 200 else outcome(status),
        "error": ex.error,
        "input_policy": policy._value_,  # .value is a property: a Python call
    }
    if ex.inputs is not None:
        if policy is _FULL:
            fields["inputs"] = ex.inputs
        elif policy is _HASHED:
            fields["input_sha256"] = hashlib.sha256(canonical(ex.inputs)).hexdigest()
    if a is not None:
        fields["outputs"] = a.outputs
        fields["tier"] = a.tier
        fields["tier_index"] = a.tier_index
        fields["quality"] = a.quality
        fields["backend"] = a.backend
        fields["replica"] = a.replica
        fields["model_version"] = a.model_version
        fields["latency_ms"] = latency_ms = round(a.latency * 1000, 3)
        fields["fallbacks"] = [[f.tier, f.kind] for f in a.failures] if a.failures else []
        if a.tiers is not None:  # a stream: its time to the first chunk and who wrote it
            fields["ttft_ms"] = latency_ms
            fields["tiers"] = a.tiers
            fields["resumed"] = a.resumed
        if a.row_tiers is not None:  # a batch answered row by row: each row's tier
            fields["row_tiers"] = a.row_tiers
        usage = usage_of(a.outputs)
        if usage is not None:
            fields["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1]}
    return fields


class InferenceLog:
    def __init__(self, cfg: LogConfig, registry: CollectorRegistry) -> None:
        self.cfg = cfg
        self.metrics = LogMetrics(registry)
        self.policies: dict[str, InputPolicy] = {}
        min_free = cfg.min_free if cfg.backend.value == "segments" else 0

        def writer(stream: str, durability: Durability) -> LogWriter:
            window = cfg.batch_window if durability is Durability.BATCH else 0.0
            return LogWriter(
                lambda: open_store(cfg, stream, writer=True),
                stream,
                self.metrics,
                window=window,
                max_pending=cfg.max_pending,
                min_free=min_free,
            )

        self.inference = writer("inference", cfg.durability)
        self.audit = writer("audit", cfg.audit_durability)
        self.sync = cfg.durability is Durability.SYNC
        self.audit_sync = cfg.audit_durability is Durability.SYNC
        self.refuse = cfg.on_failure is OnFailure.REFUSE
        self._held: set[int] = set()  # exchanges whose record the hook already wrote

    def bind(self, routes: Mapping[str, RouteConfig]) -> None:
        """Each route's input policy (``routes.NAME.log_input``), at start and on reload."""
        self.policies = {name: rc.log_input for name, rc in routes.items()}

    @property
    def services(self) -> list[Service]:
        return [self.inference, self.audit]

    @property
    def holds_answers(self) -> bool:
        """Whether ``before_respond`` must run for inference requests: a sync stream or
        refusal on failure (for admin calls: ``audit_sync``)."""
        return self.sync or self.refuse

    def admin_routes(self) -> list[AdminRoute]:
        return [AdminRoute("GET", "/admin/log", self.status)]

    def record(self, ex: Exchange) -> dict[str, Any] | None:
        policy = self.policies.get(ex.route or "", InputPolicy.FULL)
        return inference_record(ex, policy)

    def observe(self, ex: Exchange) -> None:
        if self._held:
            key = id(ex)
            if key in self._held:
                self._held.discard(key)
                return
        fields = self.record(ex)
        if fields is not None:
            self.inference.submit(fields)

    async def before_respond(self, ex: Exchange) -> None:
        if ex.front_end == "admin":
            if self.audit_sync:
                await self._durable(self.audit.barrier(), answer=False)
            return
        streaming = ex.answer is not None and ex.answer.tiers is not None
        if not self.sync or streaming:  # a stream's record is made at its end, assembled
            if self.refuse and ex.status == 200 and not self.inference.healthy:
                raise LogUnavailable("the inference log is failing; refusing to answer")
            return
        fields = self.record(ex)
        if fields is None:
            return
        self._held.add(id(ex))
        await self._durable(self.inference.durable(fields), answer=ex.status == 200)

    async def _durable(self, done: Any, answer: bool) -> None:
        try:
            await done
        except LogUnavailable:
            if self.refuse and answer:
                raise
            # serve: the drop is counted by the writer; the answer goes out

    def audit_sink(self, action: str, detail: dict[str, Any], caller: str | None) -> None:
        fields = {"time": time.time(), "action": action, "detail": detail, "caller": caller}
        self.audit.submit(fields)

    def readiness(self) -> dict[str, dict[str, Any]]:
        out = {}
        for w in (self.inference, self.audit):
            check: dict[str, Any] = {"ok": w.ready, "pending": w.pending}
            if w.last_error:
                check["error"] = w.last_error
            if w.free is not None:
                check["free_bytes"] = w.free
                if w.free < w.min_free:
                    check["error"] = f"free space {w.free} is below log.min_free {w.min_free}"
            out[f"log:{w.stream}"] = check
        return out

    async def status(self, call: AdminCall) -> tuple[int, Any]:
        streams = {}
        for w in (self.inference, self.audit):
            store = w.store
            streams[w.stream] = {
                "next_seq": store.next_seq if store is not None else None,
                "pending": w.pending,
                "healthy": w.healthy,
                "error": w.last_error,
                "free_bytes": w.free,
            }
        return 200, {"backend": self.cfg.backend.value, "streams": streams}
