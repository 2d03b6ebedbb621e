"""POST /admin/reload: re-read the config file and swap in its API keys (with their scopes,
expiry, priority and rate), so a key can be added, rotated or revoked without a restart. Everything else in the file needs a restart; the answer
says whether anything else changed. A file that does not validate changes nothing (422)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from failwell.api.admin import AdminCall
from failwell.api.auth import Guard
from failwell.config.load import load_config
from failwell.errors import ConfigError, InvalidInput
from failwell.routing.assemble import Gateway


def register_reload(gateway: Gateway, guard: Guard, path: Path) -> None:
    async def reload(call: AdminCall) -> tuple[int, Any]:
        try:
            config = load_config(path)
        except ConfigError as exc:
            gateway.audit("reload_failed", {"issues": len(exc.issues)}, call.exchange.caller)
            raise InvalidInput(f"{path} is not valid: {exc.message}", status=422) from None
        guard.keys.replace(config.security.keys)
        names = sorted(k.name for k in config.security.keys)
        running = gateway.config.security.keys  # everything but the keys, as it runs now
        rest = config.model_copy(
            update={"security": config.security.model_copy(update={"keys": running})}
        )
        restart = rest != gateway.config
        gateway.audit("reload", {"keys": names, "restart_needed": restart}, call.exchange.caller)
        return 200, {"keys": names, "restart_needed": restart}

    gateway.admin.add("POST", "/admin/reload", reload)
