"""Calling a running gateway from the CLI: its base URL and API key (``--key`` or
``FAILWELL_API_KEY``, sent as a bearer header), one JSON request, errors printed with the
gateway's own message and exit code 1."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer
from rich.console import Console

GatewayOption = Annotated[str, typer.Option("--gateway", "-g", help="The gateway's base URL.")]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key", envvar="FAILWELL_API_KEY", help="API key (admin scope) when keys are on."
    ),
]
_err = Console(stderr=True, highlight=False)


def call(
    gateway: str,
    method: str,
    path: str,
    body: Any = None,
    key: str | None = None,
    timeout: float = 30,
) -> Any:
    """``method path`` on ``gateway`` with a JSON body; the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    req = urllib.request.Request(gateway.rstrip("/") + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = str(exc)
        _err.print(f"[red]error[/red] {method} {path}: {exc.code} {message}")
        raise typer.Exit(1) from None
    except OSError as exc:
        _err.print(f"[red]error[/red] cannot reach {gateway}: {exc}")
        raise typer.Exit(1) from None
