"""Who is calling and what they may do: API keys → ``Principal`` → scopes → admission.

Keys are stored as SHA-256 digests. A lookup hashes the presented key once and looks the
digest up in a dict; the digest found is compared again with ``hmac.compare_digest``. Timing
can at most reveal how much of a *digest* matched, which says nothing useful about any key.
Keys come from ``Authorization: Bearer <key>`` or ``x-api-key: <key>`` and are never logged:
``Exchange.caller`` holds the key's name.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from failwell.admission.admit import Admission, Caller
from failwell.admission.concurrency import RETRY_AFTER, ConcurrencyLimit
from failwell.api.http import Scope
from failwell.api.limits import HeaderLimits
from failwell.api.sessions import Sessions
from failwell.clock import SYSTEM_CLOCK, Clock
from failwell.config.checks import is_loopback
from failwell.config.security import ApiKeyConfig, SecurityConfig
from failwell.contracts import Exchange
from failwell.errors import Forbidden, Overloaded, Unauthorized

ADMIN, METRICS, ALL_ROUTES = "admin", "metrics", "predict:*"
OPEN_PATHS = frozenset(
    {
        "/health/live",
        "/health/ready",
        "/v2/health/live",
        "/v2/health/ready",
        "/openapi.json",
        "/dashboard",  # the page alone: no data in it; it signs in for the feed
    }
)
SESSION_PATHS = frozenset({"/dashboard/feed", "/dashboard/signout"})  # a cookie will do


@dataclass(frozen=True, slots=True)
class Principal:
    digest: bytes
    caller: Caller
    scopes: frozenset[str]
    expires: float | None  # wall-clock seconds

    @property
    def name(self) -> str:
        return self.caller.name

    def may(self, scope: str) -> bool:
        return scope in self.scopes

    def may_predict(self, route: str) -> bool:
        return ALL_ROUTES in self.scopes or f"predict:{route}" in self.scopes


def principal(key: ApiKeyConfig) -> Principal:
    assert key.sha256 is not None
    return Principal(
        bytes.fromhex(key.sha256),
        Caller(key.name, key.priority, key.rate),
        frozenset(key.scopes),
        key.expires.timestamp() if key.expires is not None else None,
    )


class KeyRing:
    """Every valid key (several at once, for rotation), looked up by digest."""

    def __init__(self, keys: Sequence[ApiKeyConfig], clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self.replace(keys)

    def replace(self, keys: Sequence[ApiKeyConfig]) -> None:
        self._by_digest = {p.digest: p for p in map(principal, keys)}
        self._by_name = {p.name: p for p in self._by_digest.values()}

    def named(self, name: str | None) -> Principal | None:
        """The principal already authenticated as ``name`` (None: no key was needed)."""
        return None if name is None else self._by_name[name]

    def __len__(self) -> int:
        return len(self._by_digest)

    def authenticate(self, headers: list[tuple[bytes, bytes]]) -> Principal:
        token = presented_key(headers)
        if token is None:
            raise Unauthorized("an API key is required: 'Authorization: Bearer <key>' or x-api-key")
        digest = hashlib.sha256(token).digest()
        found = self._by_digest.get(digest)
        if found is None or not hmac.compare_digest(found.digest, digest):
            raise Unauthorized("the API key is not valid")
        if found.expires is not None and self._clock.wall() >= found.expires:
            raise Unauthorized(f"the API key {found.name!r} has expired")
        return found


def presented_key(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for key, value in headers:
        if key == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
        elif key == b"x-api-key" and value:
            return value
    return None


PROXY = "127.0.0.1"  # the one peer whose X-Forwarded-For is believed


def client_host(scope: Scope) -> str | None:
    """The client's address: the connection's peer (uvicorn names the peer of every TCP
    connection; None for a Unix socket or an in-process call), or, when the peer is a proxy on
    this machine (``PROXY``), the rightmost address its ``X-Forwarded-For`` chain names that is
    not ``PROXY`` (the leftmost when all are). Only the admin check asks, so no request pays
    for it otherwise."""
    client = scope.get("client")
    if client is None:
        return None
    host = str(client[0])
    if host != PROXY:
        return host
    forwarded = [value for key, value in scope["headers"] if key == b"x-forwarded-for"]
    if not forwarded:
        return host
    chain = [_address(part) for part in b",".join(forwarded).decode("latin-1").split(",")]
    chain = [part for part in chain if part]
    for part in reversed(chain):
        if part != PROXY:
            return part
    return chain[0] if chain else host


def _address(entry: str) -> str:
    """The address of one ``X-Forwarded-For`` entry, without a port: ``1.2.3.4:80`` and
    ``[::1]:80`` name 1.2.3.4 and ::1."""
    entry = entry.strip()
    if entry.startswith("["):
        return entry[1 : entry.find("]")] if "]" in entry else entry
    return entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry


def _from_loopback(scope: Scope) -> bool:
    """A client on this machine: a loopback address, or none at all (a Unix socket, an
    in-process call)."""
    host = client_host(scope)
    return host is None or is_loopback(host)


class Guard:
    """The edge's gatekeeper: request limits, authentication, scopes, admission."""

    def __init__(
        self, security: SecurityConfig, keys: KeyRing, admission: Admission, sessions: Sessions
    ) -> None:
        self.header_limits = HeaderLimits.from_config(security.limits)
        self.required = security.auth_required
        self.keys = keys
        self.admission = admission
        self.sessions = sessions
        self.draining = False

    def enter(self, scope: Scope, path: str, ex: Exchange) -> Principal | None:
        """Check limits and the key for ``path``; the scopes of admin and metrics endpoints.
        Predict scopes are checked by ``admit`` once the route is known."""
        headers = scope["headers"]
        self.header_limits.check(headers)
        if not self.required:
            if path.startswith("/admin/") and not _from_loopback(scope):
                raise Forbidden("without API keys the admin API answers loopback clients only")
            return None
        if path in OPEN_PATHS:
            return None
        if path in SESSION_PATHS and presented_key(headers) is None:
            session = self.sessions.find(headers)  # a signed-in browser
            if session is None:
                raise Unauthorized("sign in: POST /dashboard/session with a key")
            ex.caller = session.caller
            return None
        who = self.keys.authenticate(headers)
        ex.caller = who.name
        if path.startswith("/admin/"):
            self.require(who, ADMIN)
        elif path == "/metrics":
            self.require(who, METRICS)
        elif path.startswith("/dashboard/"):
            self.require_reader(who)
        return who

    @staticmethod
    def require(who: Principal, scope: str) -> None:
        if not who.may(scope):
            raise Forbidden(f"the key {who.name!r} lacks the {scope!r} scope")

    @staticmethod
    def require_reader(who: Principal) -> None:
        """The dashboard is for keys that may read the gateway's state: admin or metrics."""
        if not (who.may(ADMIN) or who.may(METRICS)):
            raise Forbidden(f"the key {who.name!r} lacks the 'admin' or 'metrics' scope")

    def authorize(self, who: Principal | None, route: str) -> None:
        if who is not None and not who.may_predict(route):
            raise Forbidden(f"the key {who.name!r} lacks the 'predict:{route}' scope")

    def admit(
        self, who: Principal | None, route: str
    ) -> Coroutine[Any, Any, ConcurrencyLimit | None]:
        """Scope check and admission for one inference on ``route``; release the slot after.
        The checks are made at the call; await what it returns (admission itself, with no
        coroutine frame of this method's around it)."""
        self.authorize(who, route)
        if self.draining:
            raise Overloaded("the gateway is draining; use another instance", RETRY_AFTER)
        return self.admission.admit(route, who.caller if who is not None else None)


class Pass:
    """One request's way through admission, the same for every front end: ``authorize`` a
    route (metadata), or ``admit`` an inference on it and ``release`` the slot afterwards."""

    __slots__ = ("guard", "who")

    def __init__(self, guard: Guard, who: Principal | None) -> None:
        self.guard, self.who = guard, who

    def authorize(self, route: str) -> None:
        self.guard.authorize(self.who, route)

    def admit(self, route: str) -> Coroutine[Any, Any, ConcurrencyLimit | None]:
        """``Guard.admit`` for this request: await it."""
        return self.guard.admit(self.who, route)

    @staticmethod
    def release(slot: ConcurrencyLimit | None) -> None:
        if slot is not None:
            slot.release()
