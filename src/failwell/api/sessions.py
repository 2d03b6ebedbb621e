"""Dashboard sessions, so the page works in a browser when API keys are on (a browser cannot
send a bearer header). A key with the ``admin`` or ``metrics`` scope, presented once to
``POST /dashboard/session``, is exchanged for a random token in an ``HttpOnly``,
``SameSite=Strict`` cookie scoped to ``/dashboard``; the session reads the dashboard's feed and
nothing else, and expires after ``ttl`` (or with its key, if that is sooner). Tokens live in
memory only: a restart signs everyone out. The key itself is never stored or echoed."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass

from failwell.clock import SYSTEM_CLOCK, Clock

COOKIE = "failwell_session"
MAX_SESSIONS = 1000


@dataclass(frozen=True, slots=True)
class Session:
    caller: str  # the key's name, for the audit and the exchange
    expires: float  # wall-clock seconds


class Sessions:
    def __init__(self, ttl: float = 3600.0, clock: Clock = SYSTEM_CLOCK) -> None:
        self.ttl, self.clock = ttl, clock
        self._by_token: OrderedDict[str, Session] = OrderedDict()

    def open(self, caller: str, key_expires: float | None) -> tuple[str, int]:
        """A new session for ``caller``: its token and lifetime in whole seconds."""
        now = self.clock.wall()
        expires = now + self.ttl if key_expires is None else min(now + self.ttl, key_expires)
        token = secrets.token_urlsafe(32)
        self._by_token[token] = Session(caller, expires)
        while len(self._by_token) > MAX_SESSIONS:  # the oldest sessions go first
            self._by_token.popitem(last=False)
        return token, max(0, int(expires - now))

    def find(self, headers: list[tuple[bytes, bytes]]) -> Session | None:
        """The live session named by the request's cookie, if any."""
        token = session_token(headers)
        if token is None:
            return None
        found = self._by_token.get(token)
        if found is None:
            return None
        if self.clock.wall() >= found.expires:
            del self._by_token[token]
            return None
        return found

    def close(self, headers: list[tuple[bytes, bytes]]) -> None:
        token = session_token(headers)
        if token is not None:
            self._by_token.pop(token, None)


def session_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, _, token = part.strip().partition("=")
                if name == COOKIE and token:
                    return token
    return None


def cookie(token: str, max_age: int) -> bytes:
    return (
        f"{COOKIE}={token}; Path=/dashboard; Max-Age={max_age}; HttpOnly; SameSite=Strict"
    ).encode()


def cleared() -> bytes:
    return f"{COOKIE}=; Path=/dashboard; Max-Age=0; HttpOnly; SameSite=Strict".encode()
