"""The local demo stack: trained models, five model servers and the gateway in front of them.

    ranker replicas   base_port, base_port+1 (zone east, priority 0), base_port+100 (west, 1)
    chat servers      base_port+200 (demo-large, primary), base_port+201 (demo-small, fallback)
    MLServer          base_port+400 (the image classifier of route ``images``; when
                      ``.venv-mlserver`` exists, see ``demo/images.py``)
    gateway           gateway_port, config at <workdir>/failwell.yaml, logs in <workdir>/logs

``run_demo`` trains (once per seed), writes the config, starts everything, prints what to try,
and stops every child on Ctrl-C or SIGTERM. ``python -m failwell.demo.stack`` runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import yaml

from failwell.demo.gatewayconfig import DemoPorts, demo_config, url
from failwell.demo.images import ImagesDemo
from failwell.demo.procs import ManagedProcess, ProcessStartError
from failwell.demo.redisserver import REDIS_OFFSET, start_redis

__all__ = ["DemoPorts", "demo_config", "ensure_models", "port_busy", "run_demo", "server_commands"]

START_TIMEOUT = 60.0
STOP_GRACE = 5.0
DEFAULT_WORKDIR = Path(".failwell-demo")


def demo_key(workdir: Path) -> tuple[str, Path]:
    """A fresh API key for this demo run, written (mode 600) to ``<workdir>/api-key``."""
    key = "fw_" + secrets.token_urlsafe(32)
    path = workdir / "api-key"
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(key + "\n")
    return key, path


def modelserver_cmd(port: int, *extra: str) -> list[str]:
    """The command line of a demo model server on ``port``."""
    return [sys.executable, "-m", "failwell.demo.modelserver", "--port", str(port), *extra]


def _servers(workdir: Path, ports: DemoPorts) -> list[tuple[str, list[str]]]:
    models = str(workdir / "models")
    rankers = [
        ("ranker-east-1", ports.ranker_east[0]),
        ("ranker-east-2", ports.ranker_east[1]),
        ("ranker-west-1", ports.ranker_west),
    ]
    return [
        *(
            (name, modelserver_cmd(port, "--model-dir", models, "--label", name))
            for name, port in rankers
        ),
        (
            "chat-large",
            modelserver_cmd(
                ports.chat_large, "--chat-model", "demo-large", "--label", "chat-large"
            ),
        ),
        (
            "chat-small",
            modelserver_cmd(
                ports.chat_small,
                "--chat-model",
                "demo-small",
                "--chat-sentences",
                "1",
                "--label",
                "chat-small",
            ),
        ),
    ]


def server_commands(workdir: Path, ports: DemoPorts) -> list[tuple[str, list[str]]]:
    """Name and command line of each demo model server (the drill runner starts them too)."""
    return _servers(workdir, ports)


def ensure_models(models: Path, seed: int = 0) -> None:
    """Train the demo models into ``models`` unless they are there for this seed."""
    _ensure_models(models, seed)


def port_busy(port: int) -> bool:
    return _port_busy(port)


def _port_busy(port: int) -> bool:
    """Something listens on 127.0.0.1:port (TIME_WAIT leftovers of a past run do not count,
    as the servers bind with SO_REUSEADDR too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _ensure_models(models: Path, seed: int) -> None:
    from failwell.demo.train import read_report, train  # scikit-learn only when needed

    report = read_report(models)
    if report is not None and report.seed == seed:
        print(f"models: {models} (already trained with seed {seed})", flush=True)
        return
    print(f"training the demo models into {models} ...", flush=True)
    report = train(models, seed)
    print(
        f"  {report.ranker_version}  AUC {report.ranker_auc:.3f}   "
        f"{report.light_version}  AUC {report.light_auc:.3f}",
        flush=True,
    )


class _Signals:
    """SIGINT/SIGTERM: KeyboardInterrupt while starting up, afterwards only a stop flag."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.starting = True

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()
        if self.starting:
            self.starting = False
            raise KeyboardInterrupt


def _print_usage(
    workdir: Path, ports: DemoPorts, procs: Sequence[ManagedProcess], key: str
) -> None:
    gw = url(ports.gateway)
    json_header = f"-H 'content-type: application/json' -H 'authorization: Bearer {key}'"
    predict = '{"inputs": {"user_id": "u0042", "country": "DE", "category": "books"}}'
    chat = '{"model": "chat", "messages": [{"role": "user", "content": "What should I read?"}]}'
    east_a, east_b = ports.ranker_east
    pids = "  ".join(f"{p.name}={p.pid}" for p in procs)
    print(
        f"""
failwell demo is up; Ctrl-C stops everything.
  gateway   {gw}   (config {workdir / "failwell.yaml"}, logs {workdir / "logs"})
  API key   {key}   (also in {workdir / "api-key"}; scopes predict:*, admin, metrics)
  ranker    {url(east_a)} {url(east_b)} (east)   {url(ports.ranker_west)} (west, standby)
  chat      {url(ports.chat_large)} (demo-large)   {url(ports.chat_small)} (demo-small)
  pids      {pids}

Ask:
  curl -s {gw}/v1/predict/recommend {json_header} -d '{predict}'
  curl -s {gw}/v1/chat/completions {json_header} -d '{chat}'
  curl -s {gw}/admin/status -H 'authorization: Bearer {key}'    # without a key: 401
  curl -s {gw}/v2/models/images {json_header}   # tensor route (MLServer; tritonclient, kserve)
Break a model server, then ask again and watch the tier change:
  curl -s {url(east_a)}/_control -d '{{"mode": "error"}}'      # 500s; also malformed, close, hang
  curl -s {url(east_b)}/_control -d '{{"mode": "slow", "delay_ms": 200}}'
  curl -s {url(ports.chat_large)}/_control -d '{{"mode": "hang"}}'
  kill -STOP <pid>   /   kill -CONT <pid>                   # freeze and thaw a replica
  curl -s {url(east_a)}/_control -d '{{"mode": "ok"}}'         # heal
Watch it:
  {gw}/dashboard   (sign in with the API key)
  failwell status --url {gw} --key {key} --watch
""",
        flush=True,
    )


def _watch(signals: _Signals, gateway: ManagedProcess, servers: list[ManagedProcess]) -> int:
    """Wait for a stop signal; report children that die. 1 if the gateway dies."""
    reported: set[str] = set()
    while not signals.stop.wait(0.5):
        if not gateway.alive():
            print(
                f"the gateway exited with code {gateway.returncode}; stopping the demo:\n"
                f"{gateway.output(20)}",
                file=sys.stderr,
                flush=True,
            )
            return 1
        for proc in servers:
            if proc.name not in reported and not proc.alive():
                reported.add(proc.name)
                print(
                    f"{proc.name} exited with code {proc.returncode}; the gateway falls back",
                    flush=True,
                )
    return 0


def run_demo(
    workdir: Path,
    gateway_port: int = 8080,
    base_port: int = 9001,
    *,
    seed: int = 0,
    fleet: bool = False,
) -> int:
    """Run the demo stack until Ctrl-C or SIGTERM: 0 after a clean stop, 1 if it cannot start.
    With ``fleet``, the config shares state through a redis-server this starts (on
    ``base_port + REDIS_OFFSET``) and the gateway runs one worker per core."""
    workdir = workdir.resolve()
    ports = DemoPorts.from_base(gateway_port, base_port)
    redis_port = base_port + REDIS_OFFSET if fleet else None
    if fleet and shutil.which("redis-server") is None:
        print(
            "cannot start the demo with --fleet: redis-server is not on the PATH", file=sys.stderr
        )
        return 1
    busy = [p for p in (*ports.all(), redis_port) if p is not None and _port_busy(p)]
    if busy:
        print(
            f"cannot start the demo: port(s) {', '.join(map(str, busy))} on 127.0.0.1 are in "
            "use; pick others with the gateway port and base port options",
            file=sys.stderr,
        )
        return 1
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    signals = _Signals()
    in_main = threading.current_thread() is threading.main_thread()
    previous = (
        {s: signal.signal(s, signals) for s in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
    )
    procs: list[ManagedProcess] = []
    try:
        _ensure_models(workdir / "models", seed)
        config_path = workdir / "failwell.yaml"
        key, key_file = demo_key(workdir)
        images = ImagesDemo.local(workdir, base_port + 400)
        if images is not None:
            print(f"  images: accuracy {images.prepare(seed)} (primary, light)", flush=True)
        config = demo_config(workdir, gateway_port, base_port, key_file, images, redis_port)
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        if "fleet" in config and redis_port is not None:  # the config asks for a fleet's Redis
            print(f"starting redis-server on 127.0.0.1:{redis_port} for the fleet ...", flush=True)
            procs.append(start_redis(workdir / "logs" / "redis.log", workdir, redis_port))
        servers = _servers(workdir, ports) + ([("mlserver", images.command())] if images else [])
        for name, cmd in servers:
            proc = ManagedProcess(name, log_file=workdir / "logs" / f"{name}.log")
            procs.append(proc)
            proc.spawn(cmd, ready_line=None if name == "mlserver" else "READY")
        print(f"starting {len(procs)} model servers ...", flush=True)
        for proc in procs:
            ready = images.ready_url() if images and proc.name == "mlserver" else None
            proc.wait_ready(ready_url=ready, timeout=START_TIMEOUT * (2 if ready else 1))
        gateway = ManagedProcess("gateway", log_file=workdir / "logs" / "gateway.log")
        procs.append(gateway)
        print(f"starting the gateway on {url(gateway_port)} ...", flush=True)
        gateway.start(
            [sys.executable, "-m", "failwell", "serve", "--config", str(config_path)],
            ready_url=f"{url(gateway_port)}/health/live",
            timeout=START_TIMEOUT,
        )
        signals.starting = False
        _print_usage(workdir, ports, procs, key)
        code = _watch(signals, gateway, procs[:-1])
        if code == 0:
            print("stopping ...", flush=True)
        return code
    except ProcessStartError as exc:
        print(f"cannot start the demo: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted during start-up; stopping ...", file=sys.stderr, flush=True)
        return 1
    finally:
        signals.starting = False
        for proc in reversed(procs):
            proc.stop(grace=STOP_GRACE)
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m failwell.demo.stack", description="run the failwell demo stack"
    )
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--port", type=int, default=8080, help="gateway port")
    parser.add_argument("--base-port", type=int, default=9001, help="first model server port")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fleet", action="store_true", help="workers sharing a redis-server")
    args = parser.parse_args(argv)
    return run_demo(args.workdir, args.port, args.base_port, seed=args.seed, fleet=args.fleet)


if __name__ == "__main__":
    sys.exit(main())
