"""Which config keys a reload cannot apply: the parts built once per process. A reload keeps
their running values and names each changed key, so an operator knows a restart is due;
``failwell check`` names them too, against the version the gateway last applied."""

from __future__ import annotations

from typing import Any

from failwell.config.models import FailwellConfig

# Built once per process: the listener (address, TLS, body limit, access log), the cache file,
# the log writers, the fault book and flags file, the alert evaluator, the registry stores,
# the shared rate-limit store, the request limits checked before a route is known, the fleet link.
RESTART_KEYS = (
    "gateway",
    "log",
    "control",
    "alerts",
    "registry",
    "security.auth",
    "security.key_rate",
    "security.redis",
    "security.limits",
    "fleet",
)


def _get(config: FailwellConfig, key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _changed(old: Any, new: Any, key: str) -> list[str]:
    """``key`` itself, or its changed sub-keys when both sides are config sections."""
    if old == new:
        return []
    fields = getattr(type(old), "model_fields", None)
    if fields is None or type(old) is not type(new):
        return [key]
    return [
        sub
        for name in fields
        for sub in _changed(getattr(old, name), getattr(new, name), f"{key}.{name}")
    ]


def needs_restart(running: FailwellConfig, new: FailwellConfig) -> list[str]:
    """The changed keys of ``new`` that only take effect after a restart."""
    return [k for key in RESTART_KEYS for k in _changed(_get(running, key), _get(new, key), key)]
