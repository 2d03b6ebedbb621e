"""Cross-checks of a whole config that one section cannot make alone: canaries against their
routes' inputs, freshness objectives against the route's fields, tensor routes against their
tier 1, per-row fallback against the route's kind, and the listener's exposure against the keys."""

from __future__ import annotations

import ipaddress

from failwell.config.backends import WireProtocol
from failwell.config.models import FailwellConfig, Fallback
from failwell.config.retrain import Signal
from failwell.config.tensors import SchemaSource
from failwell.errors import ConfigIssue


def canary_issues(config: FailwellConfig) -> list[ConfigIssue]:
    """Cross-checks of the canaries against their routes: tier 1 is a model, and every check's
    inputs fit the route's input schema (chat routes: a ``messages`` list)."""
    issues = []
    for name, route in config.routes.items():
        if route.canary is None:
            continue
        if route.tiers[0].backend is None:
            issues.append(ConfigIssue(f"routes.{name}.canary", "tier 1 is not a model tier"))
        for i, check in enumerate(route.canary.checks):
            where = f"routes.{name}.canary.checks[{i}].inputs"
            if route.kind.value == "chat":
                if not isinstance(check.inputs.get("messages"), list):
                    issues.append(ConfigIssue(where, "a chat canary needs a 'messages' list"))
                continue
            if route.tensors is not None:  # checked against the specs once they are known
                continue
            for field in sorted(set(route.input) ^ set(check.inputs)):
                what = "missing" if field in route.input else "not in the route's input"
                issues.append(ConfigIssue(f"{where}.{field}", what))
            for field, kind in route.input.items():
                if field in check.inputs and not kind.admits(check.inputs[field]):
                    issues.append(ConfigIssue(f"{where}.{field}", f"expected {kind}"))
    return issues


_TIMESTAMP_KINDS = ("float", "str")


def freshness_issues(config: FailwellConfig) -> list[ConfigIssue]:
    """Cross-checks of the freshness objectives: every declared feature is a field of the
    route's input holding a timestamp (float epoch seconds or str ISO 8601), and a model-age
    bound needs a model tier 1."""
    issues = []
    for name, route in config.routes.items():
        fresh = route.slo.freshness
        if fresh is None:
            continue
        where = f"routes.{name}.slo.freshness"
        if fresh.max_model_age is not None and route.tiers[0].backend is None:
            issues.append(ConfigIssue(f"{where}.max_model_age", "tier 1 is not a model tier"))
        for field in fresh.features:
            kind = route.input.get(field)
            if kind is None:
                issues.append(ConfigIssue(f"{where}.features.{field}", "not in the route's input"))
            elif kind not in _TIMESTAMP_KINDS:
                issues.append(
                    ConfigIssue(
                        f"{where}.features.{field}",
                        f"the input field is {kind}; a feature timestamp must be float (epoch seconds) or str (ISO 8601)",
                    )
                )
    return issues


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a listener's host or a client's address) is this machine only."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_issues(config: FailwellConfig) -> list[ConfigIssue]:
    """Secure by default: a gateway reachable beyond this machine needs API keys, unless the
    operator says in the config that it should be open."""
    security = config.security
    if is_loopback(config.gateway.host) or security.auth_required:
        return []
    if security.open_beyond_loopback:
        return []
    return [
        ConfigIssue(
            "gateway.listen",
            f"{config.gateway.listen} is reachable beyond this machine and no API keys are "
            "configured: add security.keys, or set security.open_beyond_loopback: true to "
            "serve without keys (admin endpoints then stay loopback-only)",
        )
    ]


def tensor_issues(config: FailwellConfig) -> list[ConfigIssue]:
    """A tensor route whose specs come from the model server needs a V2 backend as tier 1."""
    issues = []
    for name, route in config.routes.items():
        if route.tensors is None or route.tensors.origin is not SchemaSource.SERVER:
            continue
        backend = config.backends.get(route.tiers[0].backend or "")
        if backend is None or backend.protocol is not WireProtocol.V2:
            issues.append(
                ConfigIssue(
                    f"routes.{name}",
                    "a predict route without 'input' fields or declared 'tensors' takes its "
                    "tensor specs from tier 1's V2 server, but tier 1 is not a v2 backend",
                )
            )
        if route.canary is not None:
            issues.append(
                ConfigIssue(
                    f"routes.{name}.canary",
                    "canaries need declared tensor specs (tensors.inputs with source: declared)",
                )
            )
    return issues


def fallback_issues(config: FailwellConfig) -> list[ConfigIssue]:
    """Per-row fallback needs a tensor route (a batch of rows), and tier names that can be
    listed per row (joined with commas in a V2 answer's ``failwell_tiers``)."""
    issues = []
    for name, route in config.routes.items():
        if route.fallback is not Fallback.ROWS:
            continue
        if route.tensors is None:
            issues.append(
                ConfigIssue(
                    f"routes.{name}.fallback",
                    "'rows' needs a tensor route (a batch of rows); this route has none",
                )
            )
        for i, tier in enumerate(route.tiers):
            if "," in tier.name:
                issues.append(
                    ConfigIssue(
                        f"routes.{name}.tiers[{i}].name",
                        "with fallback 'rows' a tier name cannot contain ',' (the tiers used "
                        "per row are listed joined with commas)",
                    )
                )
    return issues


def _model_tier(config: FailwellConfig, route: str, tier: str | None) -> str | None:
    """The backend of ``route``'s model tier named ``tier`` (the first model tier when None)."""
    for t in config.routes[route].tiers:
        if t.backend is not None and tier in (None, t.name):
            return t.backend
    return None


def retrain_issues(config: FailwellConfig) -> list[ConfigIssue]:
    """Cross-checks of the retraining loops and of drift references taken from the registry:
    the tier serves from the registry (model_ref), and every trigger has its signal."""
    issues = []
    for name, route in config.routes.items():
        drift = route.drift
        if drift is not None and drift.reference is None:
            backend = _model_tier(config, name, None)
            cfg = config.backends.get(backend) if backend is not None else None
            if cfg is None or cfg.model_ref is None:
                issues.append(
                    ConfigIssue(
                        f"routes.{name}.drift.reference",
                        "required unless the route's model tier serves from the registry "
                        "(model_ref)",
                    )
                )
        retrain = route.retrain
        if retrain is None:
            continue
        where = f"routes.{name}.retrain"
        backend = _model_tier(config, name, retrain.tier)
        cfg = config.backends.get(backend) if backend is not None else None
        if backend is None:
            issues.append(ConfigIssue(f"{where}.tier", "no such model tier in the route"))
        elif cfg is not None and cfg.model_ref is None:
            issues.append(
                ConfigIssue(
                    f"{where}.tier", f"backend {backend!r} does not serve from the registry"
                )
            )
        present = {
            Signal.DRIFT: route.drift is not None,
            Signal.QUALITY: route.quality is not None and route.quality.objective is not None,
            Signal.FRESHNESS: route.slo.freshness is not None,
            Signal.SCHEDULE: retrain.schedule is not None,
        }
        needs = {
            Signal.DRIFT: "the route has no drift monitor (drift:)",
            Signal.QUALITY: "the route has no quality objective (quality.objective)",
            Signal.FRESHNESS: "the route has no freshness objective (slo.freshness)",
            Signal.SCHEDULE: "no retrain.schedule is set",
        }
        for i, signal in enumerate(retrain.triggers):
            if not present[signal]:
                issues.append(ConfigIssue(f"{where}.triggers[{i}]", f"{signal}: {needs[signal]}"))
    return issues
