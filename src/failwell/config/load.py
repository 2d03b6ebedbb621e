"""Loading: YAML → ${ENV}/file: expansion → typed models → cross-checks, errors with key paths."""

from __future__ import annotations

import importlib
import os
import re
import string
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from failwell.config.backends import BackendConfig
from failwell.config.checks import (
    canary_issues,
    exposure_issues,
    fallback_issues,
    freshness_issues,
    retrain_issues,
    tensor_issues,
)
from failwell.config.models import FailwellConfig, RouteConfig, RouteKind, TierKind
from failwell.config.paths import anchor_files, anchor_stores
from failwell.errors import ConfigError, ConfigIssue

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
CHAT_KEY_FIELDS = frozenset({"prompt", "messages"})
KEY_FIELDS: dict[RouteKind, frozenset[str]] = {
    RouteKind.CHAT: CHAT_KEY_FIELDS,
    RouteKind.EMBEDDINGS: frozenset({"input"}),
}
SECRET_KEYS = frozenset({"api_key", "secret"})  # keys whose value may be file:PATH


def key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _expand(
    node: Any, loc: tuple[int | str, ...], env: Mapping[str, str], issues: list[ConfigIssue]
) -> Any:
    if isinstance(node, dict):
        return {k: _expand(v, (*loc, str(k)), env, issues) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, (*loc, i), env, issues) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in env:
            issues.append(ConfigIssue(key_path(loc), f"environment variable {name} is not set"))
            return ""
        return env[name]

    value = _ENV.sub(sub, node)
    if value.startswith("file:") and loc and loc[-1] in SECRET_KEYS:
        path = Path(value[5:])
        try:
            return path.read_text().strip()
        except OSError as exc:
            issues.append(
                ConfigIssue(key_path(loc), f"cannot read secret file {path}: {exc.strerror}")
            )
            return ""
    return value


def _pydantic_issues(exc: ValidationError) -> list[ConfigIssue]:
    issues = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        issues.append(ConfigIssue(key_path(loc), msg))
    return issues


def resolve_import(path: str) -> Callable[..., Any]:
    """Import 'module:attr' and return the attribute; raises ImportError/AttributeError."""
    module, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{path} is not callable")
    return obj  # type: ignore[no-any-return]


def _backend_problem(kind: RouteKind, backend: BackendConfig, name: str) -> str | None:
    """Why a route of ``kind`` cannot use ``backend``, or None."""
    protocol = backend.protocol.value
    if kind is RouteKind.PREDICT:
        return f"predict route cannot use openai backend {name!r}" if protocol == "openai" else None
    if protocol == "v2":
        return f"{kind.value} route cannot use v2 backend {name!r}"
    if kind is RouteKind.CHAT and backend.dimension is not None:
        return f"chat route cannot use embeddings backend {name!r} (it declares a dimension)"
    if kind is RouteKind.EMBEDDINGS and backend.dimension is None:
        return f"embeddings route needs backend {name!r} to declare its 'dimension'"
    return None


def _dimension_issues(cfg: FailwellConfig, name: str, route: RouteConfig) -> list[ConfigIssue]:
    """The model tiers of an embeddings route must answer vectors of one size."""
    sizes = {
        t.name: backend.dimension
        for t in route.tiers
        if (backend := cfg.backends.get(t.backend or "")) is not None
        and backend.dimension is not None
    }
    if len(set(sizes.values())) <= 1:
        return []
    told = ", ".join(f"{tier} {size}" for tier, size in sizes.items())
    message = f"the model tiers of an embeddings route must share one dimension; got {told}"
    return [ConfigIssue(f"routes.{name}.tiers", message)]


def _cross_check(cfg: FailwellConfig, resolve: bool) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for rname, route in cfg.routes.items():
        base = f"routes.{rname}"
        for i, tier in enumerate(route.tiers):
            where = f"{base}.tiers[{i}]"
            if tier.kind is TierKind.MODEL:
                backend = cfg.backends.get(tier.backend or "")
                if backend is None:
                    issues.append(
                        ConfigIssue(f"{where}.backend", f"unknown backend {tier.backend!r}")
                    )
                else:
                    problem = _backend_problem(route.kind, backend, tier.backend or "")
                    if problem is not None:
                        issues.append(ConfigIssue(f"{where}.backend", problem))
            if resolve and tier.kind is TierKind.RULES:
                issues.extend(_check_import(f"{where}.rules", tier.rules or ""))
        if route.kind is RouteKind.EMBEDDINGS:
            issues.extend(_dimension_issues(cfg, rname, route))
        if route.cache.key is not None:
            allowed = KEY_FIELDS.get(route.kind) or set(route.input)
            if route.tensors is not None:  # each name stands for its tensor's digest
                allowed = set(route.tensors.inputs)
            try:
                fields = [
                    f for _, f, _, _ in string.Formatter().parse(route.cache.key) if f is not None
                ]
            except ValueError as exc:
                issues.append(ConfigIssue(f"{base}.cache.key", f"invalid template: {exc}"))
                fields = []
            for f in fields:
                if f not in allowed:
                    issues.append(ConfigIssue(f"{base}.cache.key", f"unknown input field {f!r}"))
    issues += scope_issues(cfg) + exposure_issues(cfg)
    if resolve:
        for bname, backend in cfg.backends.items():
            if backend.target:
                issues.extend(_check_import(f"backends.{bname}.target", backend.target))
    return issues


def scope_issues(cfg: FailwellConfig) -> list[ConfigIssue]:
    """Keys whose predict scopes name routes that do not exist."""
    issues = []
    for i, key in enumerate(cfg.security.keys):
        for j, scope in enumerate(key.scopes):
            route = scope.removeprefix("predict:")
            if route != scope and route != "*" and route not in cfg.routes:
                issues.append(
                    ConfigIssue(f"security.keys[{i}].scopes[{j}]", f"unknown route {route!r}")
                )
    return issues


def _check_import(where: str, path: str) -> list[ConfigIssue]:
    try:
        resolve_import(path)
    except Exception as exc:  # any import-time failure is a config problem
        return [ConfigIssue(where, f"cannot import {path!r}: {type(exc).__name__}: {exc}")]
    return []


def parse_config(
    data: Any, *, env: Mapping[str, str] | None = None, resolve: bool = True
) -> FailwellConfig:
    """Validate already-parsed YAML. Raises ConfigError listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue("", "the config must be a mapping at the top level")])
    issues: list[ConfigIssue] = []
    data = _expand(data, (), os.environ if env is None else env, issues)
    try:
        cfg = FailwellConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(issues + _pydantic_issues(exc)) from None
    issues += _cross_check(cfg, resolve) + canary_issues(cfg) + freshness_issues(cfg)
    issues += tensor_issues(cfg) + fallback_issues(cfg) + retrain_issues(cfg)
    if issues:
        raise ConfigError(issues)
    return cfg


def load_config(
    path: str | Path, *, env: Mapping[str, str] | None = None, resolve: bool = True
) -> FailwellConfig:
    """Read and validate a YAML config file; its relative paths mean "beside the file"."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError([ConfigIssue("", f"cannot read {path}: {exc.strerror}")]) from None
    return config_from_text(text, Path(path).resolve().parent, env=env, resolve=resolve)


def config_from_text(
    text: str, base: Path, *, env: Mapping[str, str] | None = None, resolve: bool = True
) -> FailwellConfig:
    """Validate the YAML ``text`` of a config file that lives in the folder ``base``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ConfigError(
            [ConfigIssue("", f"invalid YAML at {where}: {getattr(exc, 'problem', exc)}")]
        ) from None
    return anchor_stores(parse_config(anchor_files(data, base), env=env, resolve=resolve), base)
