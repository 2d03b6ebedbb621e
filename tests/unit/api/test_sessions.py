"""Dashboard sessions: a token per sign-in, found by its cookie, gone when it expires."""

from __future__ import annotations

from failwell.api.sessions import COOKIE, Sessions, cookie
from failwell.testing import FakeClock


def headers(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"cookie", f"theme=dark; {COOKIE}={token}".encode())]


def test_a_session_lives_until_its_ttl_or_its_key_expires() -> None:
    clock = FakeClock()
    sessions = Sessions(ttl=60.0, clock=clock)
    token, max_age = sessions.open("ops", None)
    assert max_age == 60
    found = sessions.find(headers(token))
    assert found is not None and found.caller == "ops"
    assert sessions.find(headers("forged")) is None
    clock.advance(61)
    assert sessions.find(headers(token)) is None
    short, max_age = sessions.open("ops", key_expires=clock.wall() + 10)
    assert max_age == 10
    sessions.close(headers(short))
    assert sessions.find(headers(short)) is None


def test_the_cookie_is_http_only_strict_and_scoped_to_the_dashboard() -> None:
    text = cookie("t0k", 60).decode()
    assert "HttpOnly" in text and "SameSite=Strict" in text and "Path=/dashboard" in text
