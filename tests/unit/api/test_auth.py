"""API keys: hashed at load, found by one hash and a dict lookup, scopes and expiry."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from failwell.api.auth import KeyRing, client_host, presented_key
from failwell.config import parse_config
from failwell.config.security import ApiKeyConfig, hash_key
from failwell.errors import ConfigError, Unauthorized
from failwell.testing.fakes import FakeClock

SECRET = "s3cret-key-0123456789"


def key(**over: Any) -> ApiKeyConfig:
    return ApiKeyConfig.model_validate(
        {"name": "app", "secret": SECRET, "scopes": ["predict:*"], **over}
    )


def test_the_secret_is_hashed_and_dropped() -> None:
    k = key()
    assert k.secret is None and k.sha256 == hash_key(SECRET)
    assert SECRET not in repr(k) and SECRET not in k.model_dump_json()


def test_bearer_and_x_api_key() -> None:
    ring = KeyRing([key()])
    for header in (
        (b"authorization", b"Bearer " + SECRET.encode()),
        (b"x-api-key", SECRET.encode()),
    ):
        assert ring.authenticate([header]).name == "app"
    assert presented_key([(b"authorization", b"Basic abc")]) is None


@pytest.mark.parametrize(
    "headers",
    [[], [(b"x-api-key", b"wrong-key-0123456789")], [(b"authorization", b"Bearer ")]],
)
def test_missing_or_invalid_key(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(Unauthorized):
        KeyRing([key()]).authenticate(headers)


def test_expired_key() -> None:
    clock = FakeClock(start=dt.datetime(2030, 1, 1, tzinfo=dt.UTC).timestamp())
    ring = KeyRing([key(expires="2030-01-01T00:00:00")], clock)
    with pytest.raises(Unauthorized, match="expired"):
        ring.authenticate([(b"x-api-key", SECRET.encode())])
    clock.advance(-1)
    assert ring.authenticate([(b"x-api-key", SECRET.encode())]).name == "app"


def test_rotation_two_keys_valid_at_once() -> None:
    new = "n3w-key-0123456789abcdef"
    ring = KeyRing([key(), key(name="app-next", secret=new)])
    assert ring.authenticate([(b"x-api-key", SECRET.encode())]).name == "app"
    assert ring.authenticate([(b"x-api-key", new.encode())]).name == "app-next"


def test_scopes() -> None:
    ring = KeyRing([key(scopes=["predict:recommend", "metrics"])])
    who = ring.authenticate([(b"x-api-key", SECRET.encode())])
    assert who.may_predict("recommend") and not who.may_predict("chat")
    assert who.may("metrics") and not who.may("admin")


BASE: dict[str, Any] = {
    "routes": {"recommend": {"input": {"user_id": "str"}, "tiers": [{"name": "s", "value": 1}]}}
}


def errors(security: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    try:
        parse_config({**BASE, "security": security}, env=env or {})
    except ConfigError as exc:
        return [str(i) for i in exc.issues]
    return []


def test_config_errors_name_the_key_path() -> None:
    assert errors({"keys": [{"name": "a", "secret": SECRET, "scopes": ["predict:nope"]}]}) == [
        "security.keys[0].scopes[0]: unknown route 'nope'"
    ]
    assert any(
        e.startswith("security.keys[0].scopes: unknown scope")
        for e in errors({"keys": [{"name": "a", "secret": SECRET, "scopes": ["root"]}]})
    )
    assert any("exactly one" in e for e in errors({"keys": [{"name": "a", "scopes": []}]}))
    assert any(
        "at least" in e for e in errors({"keys": [{"name": "a", "secret": "short", "scopes": []}]})
    )


def test_secrets_from_env_and_file(tmp_path: Path) -> None:
    (tmp_path / "k").write_text(SECRET + "\n")
    keys = [
        {"name": "env", "secret": "${FW_KEY}", "scopes": ["admin"]},
        {"name": "file", "secret": f"file:{tmp_path / 'k'}", "scopes": ["metrics"]},
    ]
    cfg = parse_config({**BASE, "security": {"keys": keys}}, env={"FW_KEY": "e" * 20})
    assert [k.sha256 for k in cfg.security.keys] == [hash_key("e" * 20), hash_key(SECRET)]
    assert cfg.security.auth_required


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        (None, [], None),  # a Unix socket or an in-process call
        ("203.0.113.5", [b"127.0.0.1"], "203.0.113.5"),  # only the local proxy is believed
        ("127.0.0.1", [], "127.0.0.1"),
        ("127.0.0.1", [b"203.0.113.5"], "203.0.113.5"),
        ("127.0.0.1", [b"127.0.0.1, 203.0.113.5"], "203.0.113.5"),  # the proxy appended it
        ("127.0.0.1", [b"203.0.113.5, 127.0.0.1"], "203.0.113.5"),  # through two local hops
        ("127.0.0.1", [b"127.0.0.1", b"127.0.0.1"], "127.0.0.1"),  # two headers, all local
        ("127.0.0.1", [b"198.51.100.7:4711"], "198.51.100.7"),
        ("127.0.0.1", [b"[2001:db8::1]:80"], "2001:db8::1"),
        ("127.0.0.1", [b"2001:db8::2"], "2001:db8::2"),
        ("127.0.0.1", [b" , "], "127.0.0.1"),
    ],
)
def test_the_client_is_the_one_a_local_proxy_names(
    peer: str | None, forwarded: list[bytes], client: str | None
) -> None:
    headers = [(b"x-forwarded-for", value) for value in forwarded]
    scope = {"client": None if peer is None else (peer, 5000), "headers": headers}
    assert client_host(scope) == client
