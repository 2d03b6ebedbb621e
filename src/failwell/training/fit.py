"""The gate's checks of a candidate against its route and its own data: does it take the
inputs the route declares (and only those) and answer the outputs the route reads, and do
its held-out inputs look like its training data (PSI per feature against the reference)?
Each returns the problems found, as sentences; none means the check held."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from failwell.drift.monitor import OUTPUT, flatten
from failwell.drift.stats import NumericReference, Reference, distance, reference_of

NUMERIC_TYPES = frozenset({"int", "float"})
CATEGORICAL_TYPES = frozenset({"str", "bool"})


@dataclass(frozen=True)
class RouteSchema:
    """What the route serving the model declares: its inputs (name → type) and the output
    keys it reads (the quality metric's, the drift monitor's)."""

    route: str
    inputs: Mapping[str, str] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()


def schema_problems(
    schema: RouteSchema, reference: Reference, outputs: Sequence[Any] | None
) -> list[str]:
    problems = []
    trained = {k: v for k, v in reference.features.items() if not k.startswith(OUTPUT)}
    for name, kind in sorted(schema.inputs.items()):
        ref = trained.get(name)
        if kind not in NUMERIC_TYPES | CATEGORICAL_TYPES:
            continue  # list inputs have no reference statistics
        if ref is None:
            problems.append(f"input {name!r} of route {schema.route!r} is not in the training data")
        elif (kind in NUMERIC_TYPES) != isinstance(ref, NumericReference):
            problems.append(
                f"input {name!r} is {kind} on route {schema.route!r}; not so in training"
            )
    if schema.inputs:
        extra = sorted(set(trained) - set(schema.inputs))
        if extra:
            problems.append(f"trained on {extra}, which route {schema.route!r} does not take")
    for key in schema.outputs:
        missing = sum(1 for out in outputs or () if not isinstance(out, dict) or key not in out)
        if missing:
            problems.append(f"{missing} held-out answers lack output {key!r} that the route reads")
    return problems


def drift_problems(
    reference: Reference, inputs: Sequence[Mapping[str, Any]], max_psi: float
) -> list[str]:
    problems = []
    for name, ref in sorted(reference.features.items()):
        if name.startswith(OUTPUT):
            continue
        found = distance(name, ref, [row[name] for row in inputs if name in row])
        if found is not None and found.psi > max_psi:
            problems.append(
                f"held-out {name!r} drifts from the training data (PSI {found.psi:.3f} > {max_psi:g})"
            )
    return problems


def with_outputs(
    reference: dict[str, Any], outputs: Sequence[Any], seed: int = 0
) -> dict[str, Any]:
    """``reference`` (JSON) with statistics of the candidate's outputs when it has none."""
    if any(k.startswith(OUTPUT) for k in reference.get("features", {})) or not outputs:
        return reference
    made = reference_of([flatten(out) for out in outputs], seed).as_json()["features"]
    return {**reference, "features": {**reference["features"], **made}}
