"""Tensor specs from the model server (the demo scorer, a real process): a route without
``input`` serves with them; a conflict with declared specs fails start-up and refuses a reload;
a server that is down at start-up is retried until it answers; ``failwell check --probe``
prints the schema it would use."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
import yaml

from failwell.config import parse_config
from failwell.demo.procs import ManagedProcess
from failwell.errors import ConfigError, SchemaUnknown
from failwell.gateway.core import build
from tests.integration.conftest import PY, ModelServer, Stack, free_port, http_json

SERVER_SPEC = {"datatype": "FP32", "shape": [-1, 3, -1, -1]}


def schema_config(stack: Stack, url: str, **tensors: Any) -> dict[str, Any]:
    route: dict[str, Any] = {
        "deadline": "5s",
        "tiers": [
            {"name": "primary", "backend": "scorer"},
            {"name": "static", "value": {"score": [0.0]}},
        ],
    }
    if tensors:
        route["tensors"] = tensors
    cfg = stack.config(
        backends={
            "scorer": {
                "protocol": "v2",
                "timeout": "3s",
                "replicas": [{"url": url, "name": "scorer"}],
            }
        },
        routes={"images": route},
    )
    cfg["control"] = {"flags_path": ":memory:"}
    return cfg


def scorer(stack: Stack) -> ModelServer:
    return ModelServer(stack, "scorer", ["--tensor-model", "--name", "scorer"])


def test_a_route_without_input_serves_with_the_server_specs(stack: Stack) -> None:
    server = scorer(stack)
    gw = stack.gateway(schema_config(stack, server.url))
    client = triton.InferenceServerClient(f"127.0.0.1:{gw.port}")
    try:
        meta = client.get_model_metadata("images")
        assert meta["inputs"] == [{"name": "image", **SERVER_SPEC}]
        assert meta["outputs"] == [{"name": "score", "datatype": "FP32", "shape": [-1, 1]}]
        x = np.ones((2, 3, 5, 5), np.float32)
        tensor = triton.InferInput("image", [2, 3, 5, 5], "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer("images", [tensor])
        score = result.as_numpy("score")
        assert score is not None and score.shape == (2, 1) and score.dtype == np.float32
        bad = triton.InferInput("image", [2, 5, 5], "FP32")  # rank 3, the server says 4
        bad.set_data_from_numpy(np.ones((2, 5, 5), np.float32))
        with pytest.raises(triton.InferenceServerException, match="rank 3, expected 4"):
            client.infer("images", [bad])
    finally:
        client.close()
    ready = http_json(f"{gw.url}/health/ready")
    assert ready["checks"]["schema:images"]["ok"] is True


def test_a_conflict_with_declared_specs_fails_start_up_and_refuses_a_reload(
    stack: Stack,
) -> None:
    server = scorer(stack)
    conflicting = {"source": "server", "inputs": {"image": {"datatype": "FP64", "shape": [-1, 3, -1, -1]}}}  # fmt: skip

    async def main() -> None:
        gw = build(parse_config(schema_config(stack, server.url, **conflicting)))
        with pytest.raises(ConfigError) as refused:
            await gw.start()
        text = str(refused.value)
        assert "routes.images.tensors" in text and "declared FP64" in text and "FP32" in text
        await gw.close()

        agreeing = {"source": "server", "inputs": {"image": {"datatype": "FP32", "shape": [-1, 3, 8, 8]}}}  # fmt: skip
        async with build(parse_config(schema_config(stack, server.url, **agreeing))) as gw:
            route = gw.routes["images"]
            assert route.tensors is not None and route.tensors.inputs is not None
            assert list(route.tensors.inputs["image"].shape) == [-1, 3, 8, 8]  # narrowed
            with pytest.raises(ConfigError, match="declared FP64"):
                await gw.reload(parse_config(schema_config(stack, server.url, **conflicting)))
            assert gw.routes["images"] is route  # the running routes stay

    asyncio.run(main())


def test_a_server_down_at_start_up_is_retried_until_it_answers(stack: Stack) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    x = np.ones((3, 3, 4, 4), np.float32)

    async def main() -> None:
        async with build(parse_config(schema_config(stack, url))) as gw:
            with pytest.raises(SchemaUnknown, match="did not answer"):
                await gw.predict("images", {"image": x})
            assert gw.schemas.readiness()["schema:images"]["ok"] is False

            proc = ManagedProcess("scorer-late")
            cmd = [PY, "-m", "failwell.demo.modelserver", "--port", str(port), "--tensor-model"]
            await asyncio.to_thread(
                proc.start, [*cmd, "--name", "scorer"], ready_line="READY", timeout=60
            )
            stack.procs.append(proc)
            for _ in range(200):  # the retry backs off to at most 10 s
                if gw.schemas.readiness()["schema:images"]["ok"]:
                    break
                await asyncio.sleep(0.1)
            answer = await gw.predict("images", {"image": x})
            assert answer.tier == "primary" and answer.outputs["score"].shape == (3, 1)

    asyncio.run(main())


def check_probe(tmp: Path, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp / "probe.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "failwell", "check", "--config", str(path), "--probe"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_probe_prints_the_schema_it_would_use(stack: Stack, tmp_path: Path) -> None:
    server = scorer(stack)
    done = check_probe(tmp_path, schema_config(stack, server.url))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "image" in done.stdout and "FP32" in done.stdout and "[-1, 3, -1, -1]" in done.stdout
    conflicting = {"source": "server", "inputs": {"image": {"datatype": "INT8", "shape": [1]}}}
    done = check_probe(tmp_path, schema_config(stack, server.url, **conflicting))
    assert done.returncode == 2 and "declared INT8 [1]" in done.stdout
    done = check_probe(tmp_path, schema_config(stack, f"http://127.0.0.1:{free_port()}"))
    assert done.returncode == 1 and "did not answer" in done.stdout
