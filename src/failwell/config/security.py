"""Security and admission config: API keys and scopes, rate and concurrency limits, request
limits, and TLS for the listener and for upstreams.

Secrets never live in the file: a key's ``secret`` is a ``${ENV}`` or ``file:PATH`` reference
(or its SHA-256 in ``sha256``). The plaintext is hashed while the config is validated and only
the hash is kept, so neither the config object nor a log of it can leak a key.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re
import ssl
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from failwell.config.base import Frozen
from failwell.config.units import Duration, Size

_SCOPE = re.compile(r"^(predict:(\*|[A-Za-z0-9_.\-]+)|admin|metrics)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MIN_SECRET = 16


def hash_key(secret: str) -> str:
    """The stored form of a key: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Priority(enum.StrEnum):
    """Priority classes: interactive traffic is shed last."""

    INTERACTIVE = "interactive"
    BATCH = "batch"

    @property
    def rank(self) -> int:
        """0 is served first and shed last."""
        return 0 if self is Priority.INTERACTIVE else 1


class RateConfig(Frozen):
    rate: float = Field(gt=0, description="Requests per second allowed on average.")
    burst: int = Field(1, ge=1, description="Requests allowed at once above the average rate.")


class ApiKeyConfig(Frozen):
    name: str = Field(
        description="Who holds the key; logged and audited as the caller (never the key)."
    )
    secret: str | None = Field(
        None,
        description="The key itself, as ${ENV} or file:PATH; hashed at load, never kept.",
        repr=False,
    )
    sha256: str | None = Field(
        None, description="Or the key's SHA-256 (hex), so the plaintext need not reach the host."
    )
    scopes: tuple[str, ...] = Field(
        description="predict:<route>, predict:* (every route), admin, metrics."
    )
    expires: dt.datetime | None = Field(
        None, description="When the key stops working (ISO 8601; UTC when no zone is given)."
    )
    priority: Priority = Field(
        Priority.INTERACTIVE,
        description="interactive or batch: batch traffic is queued behind and shed before interactive.",
    )
    rate: RateConfig | None = Field(
        None, description="This key's own rate limit; default: security.key_rate."
    )

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for scope in value:
            if not _SCOPE.match(scope):
                raise ValueError(
                    f"unknown scope {scope!r} (use predict:<route>, predict:*, admin, metrics)"
                )
        return value

    @field_validator("expires")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value

    @model_validator(mode="after")
    def _hash(self) -> ApiKeyConfig:
        if (self.secret is None) == (self.sha256 is None):
            raise ValueError("a key needs exactly one of 'secret' and 'sha256'")
        if self.secret is not None:
            if len(self.secret) < MIN_SECRET:
                raise ValueError(f"a key's secret must have at least {MIN_SECRET} characters")
            object.__setattr__(self, "sha256", hash_key(self.secret))
            object.__setattr__(self, "secret", None)
        elif not _SHA256.match(self.sha256 or ""):
            raise ValueError("sha256 must be 64 lower-case hex digits")
        return self


class ConcurrencyConfig(Frozen):
    limit: int = Field(ge=1, description="Requests answered at once on this route.")
    queue: int = Field(
        16, ge=0, description="Requests that may wait for a slot; beyond it: 503 + Retry-After."
    )
    queue_timeout: Duration = Field(
        0.05, description="Longest wait in the queue before the request is shed."
    )


class AdmissionConfig(Frozen):
    rate: RateConfig | None = Field(None, description="Rate limit of the route, all callers.")
    concurrency: ConcurrencyConfig | None = Field(
        None, description="Concurrency limit with a short queue and shedding."
    )


class RequestLimits(Frozen):
    max_header_bytes: Size = Field(16 * 1024, description="Largest total of header sizes (431).")
    max_headers: int = Field(100, ge=1, description="Most headers in a request (431).")
    max_json_depth: int = Field(32, ge=2, description="Deepest JSON nesting in a body (400).")
    max_json_elements: int = Field(
        200_000, ge=1, description="Most JSON values (array items, object members) in a body (400)."
    )
    body_timeout: Duration = Field(
        10.0, description="Time a client has to send its whole body (408 beyond): slow clients."
    )


class SecurityConfig(Frozen):
    keys: tuple[ApiKeyConfig, ...] = Field(
        (),
        description="API keys. With any key configured, every endpoint but health needs one.",
    )
    auth: bool | None = Field(
        None, description="Require keys; default: on when keys are configured."
    )
    key_rate: RateConfig | None = Field(
        None, description="Default rate limit per key (each key its own bucket)."
    )
    redis: str | None = Field(
        None,
        description="redis:// URL: rate limits shared by every gateway using it; default: local.",
    )
    limits: RequestLimits = Field(
        default_factory=RequestLimits, description="Limits on request size, shape and speed."
    )
    open_beyond_loopback: bool = Field(
        False,
        description="Allow listening on a non-loopback address with no API keys (anyone who can "
        "reach it may call the models). Admin endpoints stay loopback-only without keys.",
    )

    @model_validator(mode="after")
    def _unique(self) -> SecurityConfig:
        names = [k.name for k in self.keys]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"key names must be unique: {', '.join(dupes)}")
        hashes = [k.sha256 for k in self.keys]
        if len(set(hashes)) != len(hashes):
            raise ValueError("two keys have the same secret")
        if self.auth and not self.keys:
            raise ValueError("auth is on but no keys are configured")
        return self

    @property
    def auth_required(self) -> bool:
        return bool(self.keys) if self.auth is None else self.auth


class ListenerTls(Frozen):
    cert: str = Field(description="PEM certificate (chain) of the listener.")
    key: str = Field(description="PEM private key of the listener.")
    client_ca: str | None = Field(
        None, description="PEM CA bundle: when set, clients must present a certificate it signed."
    )

    @field_validator("cert", "key", "client_ca")
    @classmethod
    def _exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"no such file {value!r}")
        return value


class UpstreamTls(Frozen):
    ca: str | None = Field(None, description="PEM CA bundle to verify upstreams; default: system.")
    cert: str | None = Field(None, description="PEM client certificate presented to upstreams.")
    key: str | None = Field(None, description="PEM private key of the client certificate.")
    verify: bool = Field(True, description="Verify the upstream's certificate and host name.")

    @field_validator("ca", "cert", "key")
    @classmethod
    def _exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"no such file {value!r}")
        return value

    @model_validator(mode="after")
    def _pair(self) -> UpstreamTls:
        if (self.cert is None) != (self.key is None):
            raise ValueError("a client certificate needs both 'cert' and 'key'")
        return self


def upstream_context(tls: UpstreamTls) -> ssl.SSLContext:
    """The client TLS context for one backend's replicas."""
    context = ssl.create_default_context(cafile=tls.ca)
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.cert is not None:
        context.load_cert_chain(tls.cert, tls.key)
    return context
