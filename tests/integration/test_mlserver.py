"""failwell in front of MLServer itself (the V2 server of the Seldon stack) serving a
scikit-learn model, and falling back when MLServer is killed."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from failwell.demo.procs import ManagedProcess
from tests.integration.conftest import Stack, free_port, http_json

ROOT = Path(__file__).resolve().parents[2]
MLSERVER_PY = ROOT / ".venv-mlserver" / "bin" / "python"

TRAIN = """
import sys, joblib, numpy as np
from sklearn.linear_model import LogisticRegression
rng = np.random.default_rng(0)
X = rng.normal(size=(400, 4))
y = (X @ np.array([1.0, -2.0, 0.5, 0.0]) > 0).astype(int)
joblib.dump(LogisticRegression().fit(X, y), sys.argv[1])
"""


@pytest.fixture
def mlserver(tmp_path: Path, stack: Stack) -> str:
    if not MLSERVER_PY.exists():
        pytest.fail(".venv-mlserver is missing: run scripts/setup.sh test")
    model_dir = tmp_path / "models" / "clf"
    model_dir.mkdir(parents=True)
    subprocess.run(
        [str(MLSERVER_PY), "-c", TRAIN, str(model_dir / "model.joblib")], check=True, timeout=120
    )
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "clf",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "lr-1"},
            }
        )
    )
    port = free_port()
    (tmp_path / "models" / "settings.json").write_text(
        json.dumps(
            {
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "parallel_workers": 0,
                "host": "127.0.0.1",
            }
        )
    )
    proc = ManagedProcess("mlserver", log_file=tmp_path / "mlserver.log")
    mlserver_bin = MLSERVER_PY.parent / "mlserver"
    proc.start(
        [str(mlserver_bin), "start", str(tmp_path / "models")],
        ready_url=f"http://127.0.0.1:{port}/v2/models/clf/ready",
        timeout=120,
    )
    stack.procs.append(proc)
    return f"http://127.0.0.1:{port}"


def test_gateway_in_front_of_mlserver(stack: Stack, mlserver: str) -> None:
    config: dict[str, Any] = stack.config(
        backends={
            "clf": {
                "protocol": "v2",
                "timeout": "2s",
                "replicas": [{"url": mlserver, "name": "mlserver"}],
                "breaker": {"failure_threshold": 1},
            }
        },
        routes={
            "classify": {
                "input": {"features": "list[float]"},
                "deadline": "3s",
                "tiers": [
                    {"name": "primary", "backend": "clf"},
                    {"name": "static", "value": {"predict": 0}},
                ],
            }
        },
    )
    gw = stack.gateway(config)
    url = gw.predict_url("classify")
    positive = http_json(url, {"inputs": {"features": [2.0, -1.0, 0.0, 0.0]}})
    negative = http_json(url, {"inputs": {"features": [-2.0, 1.0, 0.0, 0.0]}})
    assert positive["tier"] == "primary" and positive["model_version"] == "lr-1"
    # MLServer answers shape [1, 1]: a one-element list (only shape [1] decodes to a scalar)
    assert (positive["outputs"]["predict"], negative["outputs"]["predict"]) == ([1], [0])

    stack.procs[-2].kill(signal.SIGKILL)  # MLServer (the gateway was started after it)
    fallback = http_json(url, {"inputs": {"features": [2.0, -1.0, 0.0, 0.0]}})
    assert fallback["tier"] == "static" and fallback["quality"] == "minimal"


@pytest.fixture
def mlserver_batched(tmp_path: Path, stack: Stack) -> str:
    """MLServer serving the classifier with declared tensor specs: FP32 [-1, 4] in."""
    if not MLSERVER_PY.exists():
        pytest.fail(".venv-mlserver is missing: run scripts/setup.sh test")
    model_dir = tmp_path / "models" / "clf"
    model_dir.mkdir(parents=True)
    subprocess.run(
        [str(MLSERVER_PY), "-c", TRAIN, str(model_dir / "model.joblib")], check=True, timeout=120
    )
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "clf",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}],
                "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1, 1]}],
                "parameters": {"uri": "./model.joblib", "version": "lr-1"},
            }
        )
    )
    port = free_port()
    (tmp_path / "models" / "settings.json").write_text(
        json.dumps(
            {
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "parallel_workers": 0,
                "host": "127.0.0.1",
            }
        )
    )
    proc = ManagedProcess("mlserver", log_file=tmp_path / "mlserver.log")
    proc.start(
        [str(MLSERVER_PY.parent / "mlserver"), "start", str(tmp_path / "models")],
        ready_url=f"http://127.0.0.1:{port}/v2/models/clf/ready",
        timeout=120,
    )
    stack.procs.append(proc)
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("binary", [True, False])
def test_a_batch_through_mlserver_with_its_published_specs(
    stack: Stack, mlserver_batched: str, binary: bool
) -> None:
    import numpy as np
    import tritonclient.http as triton

    config: dict[str, Any] = stack.config(
        backends={
            "clf": {
                "protocol": "v2",
                "timeout": "2s",
                "tensor_data": "json",  # MLServer has no binary tensor extension
                "replicas": [{"url": mlserver_batched, "name": "mlserver"}],
            }
        },
        routes={  # no input: the specs come from MLServer's GET /v2/models/clf
            "classify": {
                "deadline": "3s",
                "tiers": [
                    {"name": "primary", "backend": "clf"},
                    {"name": "static", "value": {"predict": [0]}},
                ],
            }
        },
    )
    gw = stack.gateway(config)
    x = np.array([[2, -1, 0, 0], [-2, 1, 0, 0], [3, -2, 0, 0]], dtype=np.float32)
    client = triton.InferenceServerClient(f"127.0.0.1:{gw.port}")
    try:
        assert client.get_model_metadata("classify")["inputs"] == [
            {"name": "features", "datatype": "FP32", "shape": [-1, 4]}
        ]
        tensor = triton.InferInput("features", [3, 4], "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        asked = triton.InferRequestedOutput("predict", binary_data=binary)
        result = client.infer("classify", [tensor], outputs=[asked])
    finally:
        client.close()
    assert result.get_response()["parameters"]["failwell_tier"] == "primary"
    predict = result.as_numpy("predict")
    assert predict is not None and predict.shape[0] == 3
    assert predict.ravel().tolist() == [1, 0, 1]
