"""The demo's tensor route for real: the image classifier trained at demo time, served by
MLServer, tier 2 in process; tritonclient (binary and JSON) and KServe's V2 REST client work
against the gateway unchanged; MLServer killed, a batch is answered by tier 2 with its shape."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton

from failwell.demo import images
from failwell.demo.procs import ManagedProcess
from tests.integration.conftest import Stack, free_port

ROOT = Path(__file__).resolve().parents[2]
MLSERVER_PY = ROOT / ".venv-mlserver" / "bin" / "python"
KSERVE_PY = ROOT / ".venv-kserve" / "bin" / "python"

# Runs under .venv-kserve: KServe's own V2 REST client, a JSON batch; prints the outputs.
KSERVE_CLIENT = """
import asyncio, json, sys
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

async def main(url, path):
    x = np.load(path)
    tensor = InferInput("image", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=False)
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    try:
        result = await client.infer(url, InferRequest("images", [tensor]), model_name="images")
    finally:
        await client.close()
    label = result.outputs[0].as_numpy()
    print(json.dumps({"shape": list(label.shape), "dtype": str(label.dtype),
                      "label": label.ravel().tolist(), "parameters": result.parameters}))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.fixture
def demo_images(tmp_path: Path, stack: Stack) -> tuple[ManagedProcess, int]:
    """MLServer serving the demo's image classifier, and the gateway with the demo's route."""
    if not MLSERVER_PY.exists():
        pytest.fail(".venv-mlserver is missing: run scripts/setup.sh test")
    accuracy = images.train_images(tmp_path / "models", tmp_path / "mlserver", seed=0)
    assert accuracy["primary"] > 0.9 and accuracy["light"] > 0.9, accuracy
    port = free_port()
    images.mlserver_settings(tmp_path / "mlserver", port, free_port(), free_port())
    server = ManagedProcess("mlserver", log_file=tmp_path / "mlserver.log")
    server.start(
        images.mlserver_command(MLSERVER_PY, tmp_path / "mlserver"),
        ready_url=f"http://127.0.0.1:{port}/v2/models/{images.MODEL}/ready",
        timeout=120,
    )
    stack.procs.append(server)
    backends, routes = images.route_config(f"http://127.0.0.1:{port}", tmp_path / "models")
    gw = stack.gateway(stack.config(backends=backends, routes=routes))
    return server, gw.port


def triton_infer(port: int, x: np.ndarray[Any, Any], binary: bool) -> triton.InferResult:
    client = triton.InferenceServerClient(f"127.0.0.1:{port}", network_timeout=30)
    try:
        tensor = triton.InferInput("image", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        asked = triton.InferRequestedOutput("label", binary_data=binary)
        return client.infer(images.MODEL, [tensor], outputs=[asked])
    finally:
        client.close()


def test_demo_image_route_with_tritonclient_kserve_and_a_killed_mlserver(
    demo_images: tuple[ManagedProcess, int], tmp_path: Path
) -> None:
    server, port = demo_images
    x, truth = images.make_images(8, seed=7)
    client = triton.InferenceServerClient(f"127.0.0.1:{port}")
    try:  # the specs the gateway took from MLServer
        assert client.get_model_metadata(images.MODEL)["inputs"] == [
            {"name": "image", "datatype": "FP32", "shape": [-1, 3, 16, 16]}
        ]
    finally:
        client.close()
    for binary in (True, False):
        result = triton_infer(port, x, binary)
        label = result.as_numpy("label")
        assert result.get_response()["parameters"]["failwell_tier"] == "primary"
        assert label is not None and label.dtype == np.int64 and label.shape == (8, 1)
        assert (label.ravel() == truth).mean() >= 0.75, (label.ravel(), truth)

    if not KSERVE_PY.exists():
        pytest.fail(".venv-kserve is missing: run scripts/setup.sh test")
    np.save(tmp_path / "batch.npy", x)
    out = subprocess.run(
        [
            str(KSERVE_PY),
            "-c",
            KSERVE_CLIENT,
            f"http://127.0.0.1:{port}",
            str(tmp_path / "batch.npy"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    kserve = json.loads(out.stdout.strip().splitlines()[-1])
    assert kserve["shape"] == [8, 1] and kserve["dtype"] == "int64"
    assert kserve["parameters"]["failwell_tier"] == "primary"
    assert kserve["label"] == label.ravel().tolist()

    server.kill(signal.SIGKILL)
    fallback = triton_infer(port, x, True)
    label = fallback.as_numpy("label")
    assert fallback.get_response()["parameters"]["failwell_tier"] == "fallback"
    assert label is not None and label.dtype == np.int64 and label.shape == (8, 1)
    assert (label.ravel() == truth).mean() >= 0.75
