"""What the benchmark measures: the nginx upstream, an nginx hop, failwell and LiteLLM's proxy.

Each ``start_*`` starts one target pinned to a CPU, waits (bounded) until it answers, and
returns a ``Target``; ``check`` sends one real request and says what is wrong with the answer.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from procs import Child, Children, StartError, accepts, free_port, http_ok, request, wait_ready

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# Pinned: litellm 1.82.7, 1.82.8 and 1.107.0 were compromised releases on PyPI; 1.82.6 is a
# release known to be clean. Bump deliberately, never to "latest".
LITELLM_REQUIREMENT = "litellm[proxy]==1.82.6"
LITELLM_VENV = ROOT / ".venv-litellm"
ANSWER_TEXT = "pong from the bench upstream"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


PATHS = {"v2": "/v2/models/bench/infer", "chat": "/v1/chat/completions"}
REQUESTS = {
    "v2": _compact(
        {"inputs": [{"name": "user_id", "datatype": "BYTES", "shape": [1], "data": ["user-1"]}]}
    ),
    "chat": _compact({"model": "chat", "messages": [{"role": "user", "content": "hello"}]}),
}
V2_DATA = [1, 2, 3]
V2_ANSWER = {
    "model_name": "bench",
    "model_version": "1",
    "outputs": [{"name": "items", "datatype": "INT64", "shape": [3], "data": V2_DATA}],
}
CHAT_ANSWER = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "demo",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": ANSWER_TEXT},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6},
}


@dataclass(frozen=True)
class Target:
    key: str  # direct | hop | failwell | litellm
    label: str
    port: int
    child: Child
    routes: tuple[str, ...]


def render(template: Path, out: Path, values: Mapping[str, str]) -> Path:
    text = template.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise StartError(f"{template.name}: no value for {', '.join(sorted(set(left)))}")
    out.write_text(text)
    return out


def _nginx(children: Children, tmp: Path, name: str, conf: Path, port: int, cpu: int) -> Child:
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    argv = [exe, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / f"{name}-error.log")]
    child = children.start(name, argv, cpu)
    wait_ready(child, accepts(port), timeout=10)
    return child


def start_upstream(children: Children, tmp: Path, cpu: int) -> Target:
    port = free_port()
    values = {
        "DIR": str(tmp),
        "PORT": str(port),
        "V2_ANSWER": _compact(V2_ANSWER),
        "CHAT_ANSWER": _compact(CHAT_ANSWER),
    }
    conf = render(BENCH / "nginx-upstream.conf", tmp / "upstream.conf", values)
    child = _nginx(children, tmp, "upstream", conf, port, cpu)
    return Target("direct", "upstream direct", port, child, ("v2", "chat"))


def start_hop(children: Children, tmp: Path, upstream: int, cpu: int) -> Target:
    port = free_port()
    values = {"DIR": str(tmp), "PORT": str(port), "UPSTREAM_PORT": str(upstream)}
    conf = render(BENCH / "nginx-hop.conf", tmp / "hop.conf", values)
    child = _nginx(children, tmp, "hop", conf, port, cpu)
    return Target("hop", "nginx hop", port, child, ("v2", "chat"))


def failwell_config(port: int, upstream: int, tmp: Path) -> str:
    url = f"http://127.0.0.1:{upstream}"
    config = {
        "gateway": {"listen": f"127.0.0.1:{port}", "cache": {"path": str(tmp / "cache.sqlite")}},
        "backends": {
            "upstream_v2": {
                "protocol": "v2",
                "model": "bench",
                "replicas": [{"url": url}],
                "timeout": "500ms",
            },
            "upstream_images": {
                "protocol": "v2",
                "model": "images",
                "replicas": [{"url": url}],
                "timeout": "4s",
            },
            "upstream_rows": {
                "protocol": "v2",
                "model": "rows",
                "replicas": [{"url": url}],
                "timeout": "2s",
            },
            "upstream_chat": {
                "protocol": "openai",
                "model": "demo",
                "replicas": [{"url": url}],
                "timeout": "500ms",
            },
        },
        "routes": {
            "bench": {
                "input": {"user_id": "str"},
                "deadline": "1s",
                "tiers": [
                    {"name": "primary", "backend": "upstream_v2"},
                    {"name": "static", "value": {"items": [0]}},
                ],
            },
            "images": {  # the tensor bench: [4, 3, 299, 299] FP32 in binary
                "tensors": {"inputs": {"image": {"datatype": "FP32", "shape": [-1, 3, -1, -1]}}},
                "max_body": "8MiB",
                "deadline": "5s",
                "tiers": [
                    {"name": "primary", "backend": "upstream_images"},
                    {"name": "static", "value": {"score": [0.0]}},
                ],
            },
            "rows": {  # the tensor bench: [64, 128] FP32, JSON and binary
                "tensors": {"inputs": {"x": {"datatype": "FP32", "shape": [-1, 128]}}},
                "deadline": "3s",
                "tiers": [
                    {"name": "primary", "backend": "upstream_rows"},
                    {"name": "static", "value": {"score": [0.0]}},
                ],
            },
            "chat": {
                "kind": "chat",
                "deadline": "1s",
                "tiers": [
                    {"name": "primary", "backend": "upstream_chat"},
                    {"name": "static", "value": "static answer"},
                ],
            },
        },
    }
    return json.dumps(config, indent=2)  # JSON is YAML


def start_failwell(
    children: Children,
    tmp: Path,
    upstream: int,
    cpu: int,
    src: Path | None = None,
    name: str = "failwell",
) -> Target:
    """failwell from this tree, or from the source tree ``src`` (its PYTHONPATH); ``name``
    tells two apart (their logs)."""
    port = free_port()
    cfg = tmp / "failwell.yaml"
    cfg.write_text(failwell_config(port, upstream, tmp))
    python = ROOT / ".venv" / "bin" / "python"
    exe = str(python) if python.exists() else sys.executable
    env = {"PYTHONPATH": str(src)} if src is not None else None
    argv = [exe, "-m", "failwell", "serve", "--config", str(cfg)]
    child = children.start(name, argv, cpu, env=env)
    wait_ready(child, http_ok(port, "/health/live"), timeout=60)
    return Target("failwell", name, port, child, ("v2", "chat"))


def ensure_litellm(log: Path) -> Path:
    """LiteLLM's proxy in its own virtualenv (its pins clash with ours); returns its CLI."""
    exe = LITELLM_VENV / "bin" / "litellm"
    stamp = LITELLM_VENV / ".installed"
    if exe.exists() and stamp.exists() and stamp.read_text() == LITELLM_REQUIREMENT:
        return exe
    python3 = shutil.which("python3") or sys.executable
    steps = [
        [python3, "-m", "venv", str(LITELLM_VENV)],
        [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", LITELLM_REQUIREMENT],
    ]
    with log.open("ab") as out:
        for argv in steps:
            try:
                code = subprocess.run(argv, stdout=out, stderr=out, timeout=900).returncode
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise StartError(f"{' '.join(argv[:3])}: {exc}") from None
            if code != 0:
                raise StartError(f"{' '.join(argv[:3])} failed with exit code {code}")
    if not exe.exists():
        raise StartError(f"{exe} missing after install")
    stamp.write_text(LITELLM_REQUIREMENT)
    return exe


LITELLM_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the price list at import
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_MODE": "PRODUCTION",  # no .env loading
    "LITELLM_LOG": "ERROR",
    "DISABLE_ADMIN_UI": "True",
    "NO_DOCS": "True",
}
# uvicorn's access log off: LiteLLM would log every request line otherwise.
UVICORN_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"err": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
    "loggers": {
        "uvicorn": {"handlers": ["err"], "level": "WARNING", "propagate": False},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
}


def start_litellm(children: Children, tmp: Path, upstream: int, cpu: int, exe: Path) -> Target:
    port = free_port()
    cfg = tmp / "litellm.yaml"
    model = {
        "model_name": "chat",
        "litellm_params": {
            "model": "openai/demo",
            "api_base": f"http://127.0.0.1:{upstream}/v1",
            "api_key": "sk-bench-dummy",
        },
    }
    config = {
        "model_list": [model],
        "litellm_settings": {"drop_params": True, "turn_off_message_logging": True},
        "general_settings": {"disable_spend_logs": True, "disable_error_logs": True},
    }
    cfg.write_text(json.dumps(config, indent=2))
    logging_cfg = tmp / "litellm-logging.json"
    logging_cfg.write_text(json.dumps(UVICORN_LOGGING))
    argv = [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--num_workers", "1", "--telemetry", "False", "--log_config", str(logging_cfg)]
    child = children.start("litellm", argv, cpu, env=LITELLM_ENV, cwd=tmp)
    wait_ready(child, http_ok(port, "/health/liveliness"), timeout=120)
    return Target("litellm", "litellm", port, child, ("chat",))


def check(target: Target, route: str) -> str | None:
    """Send one request; None when the answer is right, else what is wrong."""
    try:
        status, headers, body = request(
            target.port, "POST", PATHS[route], REQUESTS[route].encode(), timeout=10.0
        )
    except (OSError, http.client.HTTPException) as exc:
        return f"{route}: no answer: {exc!r}"
    if status != 200:
        return f"{route}: status {status}: {body[:300]!r}"
    try:
        doc = json.loads(body)
        got = (
            doc["outputs"][0]["data"] if route == "v2" else doc["choices"][0]["message"]["content"]
        )
    except (ValueError, KeyError, IndexError, TypeError):
        return f"{route}: unexpected answer {body[:300]!r}"
    want = V2_DATA if route == "v2" else ANSWER_TEXT
    if got != want:
        return f"{route}: answer {got!r}, expected {want!r} (from the upstream)"
    tier = headers.get("x-failwell-tier")
    if target.key == "failwell" and tier != "primary":
        return f"{route}: answered by tier {tier!r}, not primary"
    return None
