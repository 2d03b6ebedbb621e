"""Training rows from the inference log: each answered request of a route, joined by request
id with the label its feedback gave (``POST /v1/feedback/ROUTE`` is logged like any request),
over a window (the last ``since`` seconds, the newest ``records`` rows). Rows have the form a
path-based job reads: one JSON object a line, ``{"inputs", "outputs", "label", "request_id"}``,
oldest first. Requests without a label are left out, and counted.

Works on any log backend (``open_store``). A label is taken from an accepted feedback record
(status 200) only; the first accepted label of a request wins (the gateway refuses repeats)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failwell.config.training import FromLog
from failwell.log.query import scan
from failwell.log.store import LogStore


@dataclass(frozen=True)
class Joined:
    rows: list[dict[str, Any]]
    requests: int  # answered requests of the route in the window (with logged inputs)
    unlabelled: int  # of those, without a label: left out
    labels: int  # accepted labels of the route seen in the log
    orphans: int  # labels whose request is not in the window

    def summary(self) -> dict[str, int]:
        return {
            "rows": len(self.rows),
            "requests": self.requests,
            "unlabelled": self.unlabelled,
            "labels": self.labels,
            "orphans": self.orphans,
        }


def join(store: LogStore, spec: FromLog, now: float | None = None) -> Joined:
    """Read the whole inference stream once; keep the route's answered requests in the window
    and the accepted labels, then join them."""
    since = None if spec.since is None else (now if now is not None else time.time()) - spec.since
    requests: dict[str, dict[str, Any]] = {}
    labels: dict[str, Any] = {}
    for record in scan(store):
        fields = record.fields()
        if fields.get("route") != spec.route or fields.get("status") != 200:
            continue
        if fields.get("front_end") == "feedback":
            for item in (fields.get("inputs") or {}).get("items", []):
                labels.setdefault(item["request_id"], item["label"])
            continue
        rid, inputs = fields.get("request_id"), fields.get("inputs")
        if rid is None or not isinstance(inputs, dict):
            continue  # inputs not logged in full (log_input: hashed or none)
        if since is not None and fields.get("time", 0.0) < since:
            continue
        requests[rid] = {"inputs": inputs, "outputs": fields.get("outputs")}
    rows = [
        {**seen, "label": labels[rid], "request_id": rid}
        for rid, seen in requests.items()
        if rid in labels
    ]
    labelled = len(rows)
    if spec.records is not None:
        rows = rows[-spec.records :]
    orphans = sum(1 for rid in labels if rid not in requests)
    return Joined(rows, len(requests), len(requests) - labelled, len(labels), orphans)


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
