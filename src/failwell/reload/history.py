"""Config as code: a config's version is the hash of what it says, and every config a gateway
ran is kept so it can be listed and put back.

The version is the SHA-256 (first 12 hex digits) of the parsed YAML in canonical JSON, before
``${ENV}`` expansion: comments and layout do not change it, and no secret goes into it. The
history lives beside the config file in ``.failwell/config-history/``: one ``VERSION.yaml``
with the text as written (``${ENV}`` references, never their values) and ``history.jsonl``
with one line per event (applied, rejected, rolled back).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import yaml

from failwell.errors import ConfigError, ConfigIssue
from failwell.registry.stores import LocalStore


def config_version(text: str) -> str:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = text
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


class ConfigHistory:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.store = LocalStore(config_path.resolve().parent / ".failwell" / "config-history")

    def record(self, event: str, version: str, text: str | None = None, **detail: Any) -> None:
        if text is not None and not self.store.exists(f"{version}.yaml"):
            self.store.write(f"{version}.yaml", text.encode())
        line = {"at": time.time(), "event": event, "version": version, **detail}
        old = self.store.read("history.jsonl") or b""
        self.store.write("history.jsonl", old + json.dumps(line).encode() + b"\n")

    def entries(self) -> list[dict[str, Any]]:
        data = self.store.read("history.jsonl") or b""
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def applied(self) -> list[str]:
        """Versions that ran, oldest first (a version applied twice appears twice)."""
        return [e["version"] for e in self.entries() if e["event"] in ("applied", "rolled_back")]

    def text(self, version: str) -> str:
        data = self.store.read(f"{version}.yaml")
        if data is None:
            raise ConfigError([ConfigIssue("", f"no config version {version} in the history")])
        return data.decode()

    def rollback_target(self, version: str | None) -> str:
        """``version``, or the version that ran before the current one."""
        if version is not None:
            return version
        applied = self.applied()
        current = applied[-1] if applied else None
        for older in reversed(applied):
            if older != current:
                return older
        raise ConfigError([ConfigIssue("", "no earlier config version to roll back to")])

    def put_back(self, version: str | None) -> str:
        """Write an earlier version over the config file (atomically); a running gateway
        picks it up like any edit. Returns the version written."""
        target = self.rollback_target(version)
        text = self.text(target)
        LocalStore(self.config_path.resolve().parent).write(self.config_path.name, text.encode())
        self.record("rollback_written", target)
        return target
