"""The drill file (YAML): target, load, steady-state hypothesis, and steps.

    name: classic
    target: demo                    # or a gateway URL, e.g. http://127.0.0.1:8080
    route: recommend
    load: {rate: 40, timeout: 2s}   # open loop: 40 requests/s whatever the answers take
    steady_state: {availability: 0.999, max_5xx: 0, tier1_share: 0.99, p99: 150ms}
    warmup: 3s                      # healthy baseline before the first step
    steps:
      - name: primary down
        duration: 4s
        actions: [{process: kill, replicas: [ranker-east-1, ranker-east-2, ranker-west-1]}]
        expect: {min_share: {fallback: 0.95}}
      - name: restore
        duration: 10s
        actions: [{restore: true}]
        expect: {recover_within: 8s}

An action does one thing: ``process`` (kill, stop, cont; start too on the demo target;
on a URL target the replicas' pids go under ``processes``, or ``managed:BACKEND`` names a
serving replica the gateway's supervisor runs),
``gateway`` (an in-gateway fault, as for ``POST /admin/faults``), ``flag`` (switch a tier or
backend off or on), ``network`` (set the fault of one of the drill's ``proxies``) or
``restore`` (undo everything the drill did so far).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from failwell.config.units import Duration
from failwell.errors import ConfigError, ConfigIssue

MANAGED = "managed:"  # a process action's replica: a serving replica of a managed backend


def is_managed(replica: str) -> bool:
    return replica.startswith(MANAGED) and len(replica) > len(MANAGED)


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Load(Strict):
    rate: float = Field(40.0, gt=0, le=5000, description="Requests per second, open loop.")
    timeout: Duration = Field(2.0, description="Client timeout of one request.")
    users: int = Field(500, ge=1, description="Distinct user ids the requests cycle through.")
    inputs: dict[str, Any] = Field(
        default_factory=lambda: {"user_id": "u{i:04d}", "country": "DE", "category": "books"},
        description="Inputs of each request; '{i}' in a string is the user number.",
    )


class SteadyState(Strict):
    availability: float = Field(0.999, ge=0, le=1, description="Answered share, whole drill.")
    max_5xx: int = Field(0, ge=0, description="Most 5xx answers allowed, whole drill.")
    tier1_share: float = Field(0.99, ge=0, le=1, description="Tier-1 share when healthy.")
    p99: Duration | None = Field(None, description="p99 latency when healthy.")


class ProcessSignal(enum.StrEnum):
    KILL = "kill"
    STOP = "stop"
    CONT = "cont"
    START = "start"


class Action(Strict):
    process: ProcessSignal | None = None
    replicas: tuple[str, ...] = ()
    gateway: dict[str, Any] | None = None
    flag: str | None = None
    enabled: bool = False  # flag actions: the state to set (YAML reads a bare `on` as true)
    network: dict[str, Any] | None = None
    proxy: str | None = None
    restore: bool = False

    @model_validator(mode="after")
    def _one_thing(self) -> Action:
        chosen = [
            k
            for k, v in (
                ("process", self.process),
                ("gateway", self.gateway),
                ("flag", self.flag),
                ("network", self.network),
                ("restore", self.restore or None),
            )
            if v is not None
        ]
        if len(chosen) != 1:
            raise ValueError(
                "an action has exactly one of process, gateway, flag, network, restore"
            )
        if self.process is not None and not self.replicas:
            raise ValueError("a process action names its replicas")
        if self.network is not None and not self.proxy:
            raise ValueError("a network action names its proxy")
        return self

    def describe(self) -> str:
        if self.process is not None:
            return f"{self.process.value} {', '.join(self.replicas)}"
        if self.gateway is not None:
            where = self.gateway.get("replica") or self.gateway.get("backend")
            return f"inject {self.gateway.get('kind')} on {where}"
        if self.flag is not None:
            return f"flag {self.flag} {'on' if self.enabled else 'off'}"
        if self.network is not None:
            return f"proxy {self.proxy}: {self.network}"
        return "restore everything"


class Expect(Strict):
    min_share: dict[str, float] = Field(
        default_factory=dict, description="Tier → least share of answers in the step."
    )
    max_failed: int = Field(0, ge=0, description="Most failed requests in the step.")
    p99: Duration | None = Field(None, description="p99 latency in the step.")
    recover_within: Duration | None = Field(
        None, description="Tier 1 must be back this soon after the step starts (restore steps)."
    )


class StreamProbe(Strict):
    """Streamed chat requests sent during a step, each read to its end: every one must end
    complete (``[DONE]``) or with an in-band error event, never a clean close of a truncated
    answer, never a hang."""

    route: str = Field("chat", description="The chat route the streams go to.")
    rate: float = Field(10.0, gt=0, le=1000, description="Streams per second, open loop.")
    timeout: Duration = Field(5.0, description="The most one stream may take to end.")
    prompt: str = Field("What should I read next?", description="The user message.")


class Step(Strict):
    name: str
    duration: Duration = Field(gt=0)
    actions: tuple[Action, ...] = ()
    expect: Expect = Field(default_factory=Expect)
    grace: Duration = Field(1.0, description="Time allowed to detect before shares count.")
    stream: StreamProbe | None = Field(
        None, description="Also send streamed chat requests during the step and check their ends."
    )
    settle: Duration | None = Field(
        None,
        description="Restore steps: end once tier 1 has been back this long (duration is then "
        "the most the step may last).",
    )

    @property
    def restores(self) -> bool:
        return any(a.restore for a in self.actions)


class Proxy(Strict):
    upstream: str = Field(description="host:port of the real server behind the proxy.")
    listen: str = Field(description="host:port the proxy listens on (the replica's URL).")


class LocalProcess(Strict):
    pid: int | None = Field(None, gt=1, description="The process id.")
    pidfile: str | None = Field(None, description="A file holding the process id.")

    @model_validator(mode="after")
    def _one(self) -> LocalProcess:
        if (self.pid is None) == (self.pidfile is None):
            raise ValueError("give pid or pidfile")
        return self


class DemoTarget(Strict):
    rules: str | None = Field(None, description="Replace the demo's rules function (module:fn).")
    workdir: str | None = Field(None, description="Demo work directory; a temporary one if unset.")


class Drill(Strict):
    name: str = "drill"
    target: str = Field("demo", description="'demo' or the gateway's base URL.")
    demo: DemoTarget = Field(default_factory=DemoTarget)
    route: str = "recommend"
    tiers: tuple[str, ...] = Field(
        (), description="The route's tier names in order; read from the gateway when empty."
    )
    load: Load = Field(default_factory=Load)
    steady_state: SteadyState = Field(default_factory=SteadyState)
    warmup: Duration = 3.0
    proxies: dict[str, Proxy] = Field(default_factory=dict)
    processes: dict[str, LocalProcess] = Field(
        default_factory=dict,
        description="Local upstream processes by replica name, for process actions on a URL "
        "target (kill, stop, cont; a killed one is restarted by its own supervisor).",
    )
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _refs(self) -> Drill:
        for step in self.steps:
            for action in step.actions:
                if action.proxy is not None and action.proxy not in self.proxies:
                    raise ValueError(f"step {step.name!r}: unknown proxy {action.proxy!r}")
                if action.process is not None and self.target != "demo":
                    unknown = [
                        r for r in action.replicas if r not in self.processes and not is_managed(r)
                    ]
                    if unknown or action.process is ProcessSignal.START:
                        raise ValueError(
                            f"step {step.name!r}: process actions on a URL target need the "
                            f"replicas under processes or as {MANAGED}BACKEND (and cannot "
                            f"start them): {unknown}"
                        )
        return self


def parse_drill(data: Any) -> Drill:
    try:
        return Drill.model_validate(data)
    except ValidationError as exc:
        issues = [ConfigIssue(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        raise ConfigError(issues) from None


def load_drill(path: Path) -> Drill:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError([ConfigIssue("", f"cannot read {path}: {exc.strerror}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue("", f"invalid YAML in {path}: {exc}")]) from None
    return parse_drill(data)
