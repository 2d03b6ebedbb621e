"""The demo gateway's config and the ports of the demo stack: the ranker behind three
replicas with a light in-process fallback, rules, cache and static; chat with a smaller
fallback; and, with MLServer, the tensor route ``images`` (``demo/images.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failwell.demo.images import ImagesDemo


@dataclass(frozen=True)
class DemoPorts:
    gateway: int
    ranker_east: tuple[int, int]
    ranker_west: int
    chat_large: int
    chat_small: int

    @classmethod
    def from_base(cls, gateway_port: int, base_port: int) -> DemoPorts:
        return cls(
            gateway=gateway_port,
            ranker_east=(base_port, base_port + 1),
            ranker_west=base_port + 100,
            chat_large=base_port + 200,
            chat_small=base_port + 201,
        )

    def all(self) -> tuple[int, ...]:
        return (self.gateway, *self.ranker_east, self.ranker_west, self.chat_large, self.chat_small)


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def demo_config(
    workdir: Path,
    gateway_port: int = 8080,
    base_port: int = 9001,
    key_file: Path | None = None,
    images: ImagesDemo | None = None,
    redis_port: int | None = None,
) -> dict[str, Any]:
    """The demo gateway config (plain data, as it is written to YAML). With ``key_file``, the
    key in it may call everything (predict, admin, metrics); without, the gateway is open.
    With ``images``, the tensor route ``images`` too. With ``redis_port``, a fleet section:
    the gateway's workers share state through it."""
    config = _config(workdir, gateway_port, base_port, key_file)
    if redis_port is not None:
        config["fleet"] = {"redis": f"redis://127.0.0.1:{redis_port}/0", "name": "demo"}
    if images is not None:
        backends, routes = images.config()
        config["backends"].update(backends)
        config["routes"].update(routes)
    return config


def _config(
    workdir: Path, gateway_port: int, base_port: int, key_file: Path | None
) -> dict[str, Any]:
    ports = DemoPorts.from_base(gateway_port, base_port)
    east_a, east_b = ports.ranker_east
    security: dict[str, Any] = {}
    if key_file is not None:
        scopes = ["predict:*", "admin", "metrics"]
        security = {"keys": [{"name": "demo", "secret": f"file:{key_file}", "scopes": scopes}]}
    return {
        "security": security,
        "gateway": {
            "listen": f"127.0.0.1:{gateway_port}",
            "cache": {"path": str(workdir / "cache.sqlite")},
        },
        "backends": {
            "ranker": {
                "protocol": "v2",
                "model": "ranker",
                "timeout": "80ms",
                "replicas": [
                    {"url": url(east_a), "zone": "east", "priority": 0},
                    {"url": url(east_b), "zone": "east", "priority": 0},
                    {"url": url(ports.ranker_west), "zone": "west", "priority": 1},
                ],
                "retry": {"attempts": 2, "backoff": "5ms", "max_backoff": "20ms"},
                "breaker": {"failure_threshold": 3, "recovery": "5s"},
                "health": {"interval": "1s", "timeout": "250ms"},
            },
            "light": {
                "protocol": "python",
                "target": "failwell.demo.models:LightRanker",
                "args": {"model_dir": str(workdir / "models")},
            },
            "chat-large": {
                "protocol": "openai",
                "model": "demo-large",
                "timeout": "2s",
                "replicas": [{"url": url(ports.chat_large)}],
            },
            "chat-small": {
                "protocol": "openai",
                "model": "demo-small",
                "timeout": "2s",
                "replicas": [{"url": url(ports.chat_small)}],
            },
        },
        "routes": {
            "recommend": {
                "input": {"user_id": "str", "country": "str", "category": "str"},
                "deadline": "150ms",
                "cache": {"key": "{user_id}:{category}", "ttl": "24h"},
                "canary": {
                    "interval": "5s",
                    "latency_budget": "80ms",
                    "checks": [
                        {
                            "inputs": {"user_id": "u0001", "country": "DE", "category": "books"},
                            "keys": ["items"],
                            "range": {"items": [0, 1_000_000]},
                        }
                    ],
                },
                "slo": {"availability": 0.999, "quality": 0.99, "tier1_floor": 0.9},
                "tiers": [
                    {"name": "primary", "backend": "ranker"},
                    {"name": "fallback", "backend": "light"},
                    {"name": "rules", "rules": "failwell.demo.rules:popular"},
                    {"name": "cache"},
                    {"name": "static", "value": {"items": list(range(1, 21))}},
                ],
            },
            "chat": {
                "kind": "chat",
                "deadline": "5s",
                "tiers": [
                    {"name": "primary", "backend": "chat-large"},
                    {"name": "fallback", "backend": "chat-small"},
                    {"name": "rules", "rules": "failwell.demo.rules:canned_reply"},
                    {"name": "cache"},
                    {
                        "name": "static",
                        "value": {
                            "content": "The assistant is unavailable right now. "
                            "Please try again shortly."
                        },
                    },
                ],
            },
        },
    }
