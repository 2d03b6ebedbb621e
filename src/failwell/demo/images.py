"""The demo's tensor route: a small image classifier served by MLServer, a lighter one in
process as tier 2.

Images are generated, never downloaded: ``[3, 16, 16]`` FP32 pictures of one of four
patterns (horizontal stripes, vertical stripes, a checkerboard, a centred blob) in a random
colour, with noise. ``train_images`` fits two models on them with numpy alone:

    primary   softmax regression over all 768 pixels, served by MLServer (custom runtime
              ``failwell_images.ImageClassifier``, written next to its weights)
    light     nearest centroid over the grey 16 x 16 picture (256 numbers), in process
              (``failwell.demo.images:LightClassifier``, a ``python`` backend)

Both take ``image`` FP32 ``[-1, 3, 16, 16]`` and answer ``label`` INT64 ``[-1, 1]``, a row per
image, so a batch keeps its shape whichever tier answers it. MLServer has no binary tensor
extension: the gateway sends it JSON (``tensor_data: json``) and still answers a binary client
in binary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SIDE = 16
CLASSES = ("horizontal", "vertical", "checker", "blob")
MODEL = "images"  # the MLServer model name, and the route's
LIGHT_FILE = "light-images.npz"
MLSERVER_PYTHON = Path(".venv-mlserver") / "bin" / "python"  # scripts/setup.sh test makes it

# The MLServer runtime, written into the model folder (MLServer imports it from there; it
# needs only numpy and MLServer, not failwell).
RUNTIME = '''"""failwell demo: softmax regression over [3, 16, 16] images (weights in weights.npz)."""
import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class ImageClassifier(MLModel):
    async def load(self) -> bool:
        weights = np.load(await get_model_uri(self.settings))
        self._w, self._b = weights["w"], weights["b"]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        image = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        logits = image.reshape(image.shape[0], -1) @ self._w + self._b
        label = logits.argmax(axis=1).astype(np.int64).reshape(-1, 1)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output("label", label)],
        )
'''


def make_images(n: int, seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """``n`` generated images ``[n, 3, 16, 16]`` FP32 and their labels ``[n]``."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), n)
    ys, xs = np.mgrid[0:SIDE, 0:SIDE]
    patterns = np.stack(
        [
            (ys // 2) % 2,
            (xs // 2) % 2,
            ((ys // 4) + (xs // 4)) % 2,
            ((ys - 7.5) ** 2 + (xs - 7.5) ** 2 < 25).astype(int),
        ]
    ).astype(np.float32)
    colours = rng.uniform(0.4, 1.0, size=(n, 3, 1, 1)).astype(np.float32)
    images = patterns[labels][:, None, :, :] * colours
    images += rng.normal(0.0, 0.25, size=images.shape).astype(np.float32)
    return images.astype(np.float32), labels


def _softmax_regression(
    x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], steps: int = 60
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Weights ``[d, k]`` and bias ``[k]`` by full-batch gradient descent."""
    k = len(CLASSES)
    w = np.zeros((x.shape[1], k), dtype=np.float32)
    b = np.zeros(k, dtype=np.float32)
    onehot = np.eye(k, dtype=np.float32)[y]
    for _ in range(steps):
        logits = x @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - onehot) / len(x)
        w -= 0.5 * (x.T @ grad)
        b -= 0.5 * grad.sum(axis=0)
    return w, b


def train_images(models: Path, mlserver_models: Path, seed: int = 0) -> dict[str, float]:
    """Train both models: MLServer's folder (runtime, weights, model-settings.json) under
    ``mlserver_models/images`` and the light model's centroids in ``models``. Returns each
    model's accuracy on fresh images."""
    images, labels = make_images(600, seed)
    w, b = _softmax_regression(images.reshape(len(images), -1), labels)
    folder = mlserver_models / MODEL
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "weights.npz", w=w, b=b)
    (folder / "failwell_images.py").write_text(RUNTIME)
    settings = {
        "name": MODEL,
        "implementation": "failwell_images.ImageClassifier",
        "inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 3, SIDE, SIDE]}],
        "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1, 1]}],
        "parameters": {"uri": "./weights.npz", "version": "softmax-1"},
    }
    (folder / "model-settings.json").write_text(json.dumps(settings, indent=2))
    grey = images.mean(axis=1).reshape(len(images), -1)
    centroids = np.stack([grey[labels == c].mean(axis=0) for c in range(len(CLASSES))])
    models.mkdir(parents=True, exist_ok=True)
    np.savez(models / LIGHT_FILE, centroids=centroids.astype(np.float32))
    test, truth = make_images(500, seed + 1)
    primary = (test.reshape(len(test), -1) @ w + b).argmax(axis=1)
    light = LightClassifier(str(models)).predict({"image": test})["label"].ravel()
    return {
        "primary": float((primary == truth).mean()),
        "light": float((light == truth).mean()),
    }


class LightClassifier:
    """Tier 2: the nearest class centroid of the grey picture; a row per image."""

    version = "centroid-1"

    def __init__(self, model_dir: str) -> None:
        self._centroids = np.load(Path(model_dir) / LIGHT_FILE)["centroids"]

    def predict(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        image = np.asarray(inputs["image"], dtype=np.float32)
        grey = image.mean(axis=1).reshape(image.shape[0], -1)
        distances = ((grey[:, None, :] - self._centroids[None, :, :]) ** 2).sum(axis=2)
        return {"label": distances.argmin(axis=1).astype(np.int64).reshape(-1, 1)}


def mlserver_settings(mlserver_models: Path, port: int, grpc_port: int, metrics_port: int) -> None:
    """MLServer's server settings: HTTP on 127.0.0.1:``port``, no worker processes."""
    settings = {
        "http_port": port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": 0,
        "host": "127.0.0.1",
    }
    (mlserver_models / "settings.json").write_text(json.dumps(settings))


def mlserver_command(python: Path, mlserver_models: Path) -> list[str]:
    """MLServer's command line (from the virtualenv of ``python``) serving ``mlserver_models``."""
    return [str(python.parent / "mlserver"), "start", str(mlserver_models)]


def route_config(mlserver_url: str, models: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(backends, routes) of the demo's tensor route ``images``."""
    backends = {
        "images": {
            "protocol": "v2",
            "model": MODEL,
            "timeout": "2s",
            "tensor_data": "json",  # MLServer has no binary tensor extension
            "replicas": [{"url": mlserver_url}],
            "breaker": {"failure_threshold": 2, "recovery": "5s"},
        },
        "images-light": {
            "protocol": "python",
            "target": "failwell.demo.images:LightClassifier",
            "args": {"model_dir": str(models)},
        },
    }
    routes = {
        MODEL: {  # no input: the tensor specs come from MLServer's GET /v2/models/images
            "deadline": "3s",
            "max_body": "8MiB",
            "tiers": [
                {"name": "primary", "backend": "images"},
                {"name": "fallback", "backend": "images-light"},
            ],
        }
    }
    return backends, routes


@dataclass(frozen=True)
class ImagesDemo:
    """The demo stack's part for the tensor route: MLServer on ``port`` (gRPC and metrics on
    the next two), its models under ``workdir/mlserver``, the light model in ``workdir/models``."""

    workdir: Path
    port: int
    python: Path = MLSERVER_PYTHON

    @classmethod
    def local(cls, workdir: Path, port: int) -> ImagesDemo | None:
        """The part when MLServer's virtualenv is there (``scripts/setup.sh test``), else None."""
        return cls(workdir, port, MLSERVER_PYTHON.absolute()) if MLSERVER_PYTHON.exists() else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def prepare(self, seed: int = 0) -> dict[str, float]:
        mlserver = self.workdir / "mlserver"
        accuracy = train_images(self.workdir / "models", mlserver, seed)
        mlserver_settings(mlserver, self.port, self.port + 1, self.port + 2)
        return accuracy

    def command(self) -> list[str]:
        return mlserver_command(self.python, self.workdir / "mlserver")

    def ready_url(self) -> str:
        return f"{self.url}/v2/models/{MODEL}/ready"

    def config(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return route_config(self.url, self.workdir / "models")
