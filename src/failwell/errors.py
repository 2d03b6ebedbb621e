"""The one error tree of failwell.

    FailwellError
    ├── CallerError            the caller's mistake: 4xx, never retried, never trips a breaker
    │   ├── InvalidInput       body or field failed validation (422, or 400 for undecodable bodies)
    │   ├── UnknownRoute       no such route (404)
    │   ├── Conflict           the request clashes with the gateway's state or config (409)
    │   ├── BodyTooLarge       request body over the configured limit (413)
    │   ├── Unauthorized       no API key, or an unknown or expired one (401)
    │   ├── Forbidden          the key lacks the scope the endpoint needs (403)
    │   ├── RateLimited        over a rate limit (429 + Retry-After)
    │   ├── SlowClient         the body did not arrive in time (408)
    │   └── HeadersTooLarge    too many or too large headers (431)
    ├── UpstreamError          a dependency failed; carries backend, replica and attempt
    │   ├── UpstreamTimeout    no answer within the attempt's time
    │   ├── UpstreamUnavailable connection refused, reset or closed mid-response
    │   ├── UpstreamStatus     the upstream answered 5xx
    │   ├── UpstreamMalformed  the upstream's answer could not be decoded
    │   ├── UpstreamStreamError an error event in the upstream's stream
    │   ├── UpstreamBusy       the backend's local queue is full; not counted against it
    │   ├── UpstreamThrottled  the upstream answered 429: the replica cools down for its
    │   │                      Retry-After, the request moves on at once; not counted
    │   └── UpstreamRejected   the upstream answered 4xx: not counted against the replica;
    │       │                  the next tier may answer
    │       ├── UpstreamContextLength  over this model's context: the next tier may answer
    │       └── UpstreamRefused  the caller's request refused (invalid, or a content-policy
    │                          rejection): returned to the caller as the upstream said it
    ├── ShortCircuit           failed locally, without calling anything
    │   ├── NoHealthyReplica   every replica's breaker is open
    │   ├── DeadlineExceeded   the request's time is spent
    │   ├── TierFailed         a local tier (rules, cache, static) could not answer
    │   ├── SchemaUnknown      a tensor route's specs are not known yet (model server not reached)
    │   ├── LogUnavailable     the inference log cannot take the record and the policy is refuse
    │   └── Overloaded         shed by admission control (503 + Retry-After)
    ├── AllTiersFailed         every tier failed (503), lists each tier's failure
    ├── RegistryError          the model registry: unknown name/version/alias, corrupt or
    │   │                      missing artifact on every store, a store that cannot be reached
    │   └── ArtifactCorrupt    an artifact's bytes do not match its SHA-256 on any store
    └── ConfigError            load time only; lists every problem with its key path

Each backend adapter maps its client library's exceptions into this tree; the
HTTP edge (``failwell.api.responses``) maps the tree to responses in one place.
"""

from __future__ import annotations

from dataclasses import dataclass


class FailwellError(Exception):
    """Base of every error failwell raises on purpose."""

    kind: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CallerError(FailwellError):
    """The request is wrong; retrying it or falling back will not help."""

    status: int = 400
    kind = "bad_request"


class InvalidInput(CallerError):
    status = 422
    kind = "invalid_input"

    def __init__(self, message: str, field: str | None = None, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


class UnknownRoute(CallerError):
    status = 404
    kind = "unknown_route"


class NotFound(CallerError):
    status = 404
    kind = "not_found"


class Conflict(CallerError):
    status = 409
    kind = "conflict"


class MethodNotAllowed(CallerError):
    status = 405
    kind = "method_not_allowed"


class BodyTooLarge(CallerError):
    status = 413
    kind = "body_too_large"


class Unauthorized(CallerError):
    status = 401
    kind = "unauthorized"


class Forbidden(CallerError):
    status = 403
    kind = "forbidden"


class RateLimited(CallerError):
    status = 429
    kind = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SlowClient(CallerError):
    status = 408
    kind = "request_timeout"


class HeadersTooLarge(CallerError):
    status = 431
    kind = "headers_too_large"


class UpstreamError(FailwellError):
    """A dependency failed. Counted by breakers unless it is the caller's fault."""

    kind = "upstream"
    counts_against_replica = True
    retryable = True

    def __init__(
        self, message: str, *, backend: str = "", replica: str = "", attempt: int = 0
    ) -> None:
        super().__init__(message)
        self.backend = backend
        self.replica = replica
        self.attempt = attempt

    def labelled(self, backend: str, replica: str, attempt: int) -> UpstreamError:
        """This error, naming where it happened (keeps a backend or replica already set)."""
        self.backend = self.backend or backend
        self.replica = self.replica or replica
        self.attempt = attempt
        return self


class UpstreamTimeout(UpstreamError):
    kind = "timeout"


class UpstreamUnavailable(UpstreamError):
    kind = "unavailable"


class UpstreamStatus(UpstreamError):
    kind = "status"

    def __init__(
        self, message: str, *, status: int, backend: str = "", replica: str = "", attempt: int = 0
    ) -> None:
        super().__init__(message, backend=backend, replica=replica, attempt=attempt)
        self.status = status


class UpstreamMalformed(UpstreamError):
    kind = "malformed"


class UpstreamStreamError(UpstreamError):
    """The upstream's stream carried an error event (or in-band error JSON)."""

    kind = "stream_error"


class UpstreamBusy(UpstreamError):
    """Refused locally because the backend's queue is full: load, not a broken replica."""

    kind = "busy"
    counts_against_replica = False


class UpstreamThrottled(UpstreamError):
    """The upstream answered 429: that replica cools down for ``retry_after`` seconds (a
    default backoff when it did not say) and the request moves to another replica or tier at
    once. Load, not a broken replica."""

    kind = "throttled"
    counts_against_replica = False

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        backend: str = "",
        replica: str = "",
    ) -> None:
        super().__init__(message, backend=backend, replica=replica)
        self.retry_after = retry_after


class UpstreamRejected(UpstreamError):
    """The upstream refused the request (4xx): the replica is fine, the same model would
    refuse it again; another tier may answer. Carries the upstream's status and body."""

    kind = "rejected"
    counts_against_replica = False
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        body: bytes = b"",
        backend: str = "",
        replica: str = "",
    ) -> None:
        super().__init__(message, backend=backend, replica=replica)
        self.status = status
        self.body = body


class UpstreamContextLength(UpstreamRejected):
    """The request is over this model's context window; a larger-context tier may take it."""

    kind = "context_length"


class UpstreamRefused(UpstreamRejected):
    """The upstream refused the caller's request: invalid, or a content-policy or safety
    rejection. It goes back to the caller as the upstream said it (status and body); the
    chain never routes around it."""

    kind = "refused"


class ShortCircuit(FailwellError):
    kind = "short_circuit"


class NoHealthyReplica(ShortCircuit):
    kind = "no_healthy_replica"


class DeadlineExceeded(ShortCircuit):
    kind = "deadline"


class TierFailed(ShortCircuit):
    """A local tier could not answer: rules raised, cache missed, model errored in-process."""

    kind = "tier_failed"

    def __init__(self, message: str, reason: str = "tier_failed") -> None:
        super().__init__(message)
        self.kind = reason


class SchemaUnknown(ShortCircuit):
    """A tensor route takes its specs from its model server, which has not answered yet (or
    answered specs that disagree with the declared ones): the route cannot check requests."""

    kind = "schema_unknown"


class LogUnavailable(ShortCircuit):
    """The inference log cannot make the record durable and ``log.on_failure`` is refuse."""

    kind = "log_unavailable"


class FleetUnreachable(ShortCircuit):
    """What was asked needs the fleet's shared state (a label for an answer another process
    served, a rollout call passed to the process leading the fleet) and this process cannot
    reach the fleet's Redis, or no leader answered: send it again later."""

    kind = "fleet_unreachable"


class Overloaded(ShortCircuit):
    """Shed by admission control: the route is at its concurrency limit and its queue is full,
    or a request waited in the queue too long. Load, not a failure: come back shortly."""

    kind = "overloaded"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class TierFailure:
    tier: str
    kind: str
    message: str


class AllTiersFailed(FailwellError):
    status = 503
    kind = "all_tiers_failed"

    def __init__(self, route: str, failures: list[TierFailure]) -> None:
        super().__init__(f"route {route!r}: every tier failed")
        self.route = route
        self.failures = failures


class RegistryError(FailwellError):
    kind = "registry"


class ArtifactCorrupt(RegistryError):
    kind = "artifact_corrupt"


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(FailwellError):
    """The configuration is invalid. Holds every problem found, each with its key path."""

    kind = "config"

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues
