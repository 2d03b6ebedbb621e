"""Relative paths in a config file mean "beside the config file": the same for the gateway and
every CLI command, whatever the working directory. ``load_config`` anchors them; a config
built from a dict (``parse_config``) keeps them as given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from failwell.config.models import FailwellConfig

_KEEP = (":memory:",)


def anchored(value: str, base: Path) -> str:
    """``value`` under ``base`` when it is a relative file path (not a URL, not :memory:)."""
    if value in _KEEP or "://" in value or Path(value).is_absolute():
        return value
    return str(base / value)


def anchor_files(data: Any, base: Path) -> Any:
    """Anchor the certificate and key files of the raw config (before validation, which checks
    that they exist)."""
    if not isinstance(data, dict):
        return data
    sections = []
    gateway = data.get("gateway")
    if isinstance(gateway, dict):
        sections.append((gateway, "tls", ("cert", "key", "client_ca")))
    backends = data.get("backends")
    if isinstance(backends, dict):
        sections += [(b, "tls", ("ca", "cert", "key")) for b in backends.values()]
    for parent, key, names in sections:
        tls = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(tls, dict):
            parent[key] = {
                k: anchored(v, base) if k in names and isinstance(v, str) else v
                for k, v in tls.items()
            }
    return data


def anchor_stores(config: FailwellConfig, base: Path) -> FailwellConfig:
    """Anchor the stores' paths (given or default): the cache, the log, the flags file, the
    registry's folder and checkouts, the routes' drift references and retraining jobs, the managed replicas'
    folder."""
    gw, log, control, registry = config.gateway, config.log, config.control, config.registry
    routes = {}
    for name, rc in config.routes.items():
        if rc.drift is not None and rc.drift.reference is not None:
            reference = anchored(rc.drift.reference, base)
            rc = rc.model_copy(
                update={"drift": rc.drift.model_copy(update={"reference": reference})}
            )
        if rc.retrain is not None:
            job = anchored(rc.retrain.job, base)
            rc = rc.model_copy(update={"retrain": rc.retrain.model_copy(update={"job": job})})
        routes[name] = rc
    backends = {
        name: bc
        if bc.managed is None
        else bc.model_copy(
            update={
                "managed": bc.managed.model_copy(
                    update={"log_dir": anchored(bc.managed.log_dir, base)}
                )
            }
        )
        for name, bc in config.backends.items()
    }
    return config.model_copy(
        update={
            "routes": routes,
            "backends": backends,
            "gateway": gw.model_copy(
                update={
                    "cache": gw.cache.model_copy(update={"path": anchored(gw.cache.path, base)})
                }
            ),
            "log": log.model_copy(update={"path": anchored(log.path, base)}),
            "control": control.model_copy(
                update={"flags_path": anchored(control.flags_path, base)}
            ),
            "registry": registry.model_copy(
                update={
                    "path": anchored(registry.path, base),
                    "checkouts": anchored(registry.checkouts, base),
                }
            ),
        }
    )
