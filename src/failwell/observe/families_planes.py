"""The metric families of the log, the fleet, managed replicas and the retraining loop: the
second half of the catalogue that ``families.FAMILIES`` lists."""

from __future__ import annotations

from failwell.observe.family import Family, counter, gauge, histogram

# --- the inference and audit log (log/metrics.py) -------------------------------------------
LOG_LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 5.0)
LOG_RECORDS = counter("failwell_log_records", "Records made durable, by stream.", "stream")
LOG_DROPPED_RECORDS = counter(
    "failwell_log_dropped_records",
    "Records that could not be written, by stream and reason.",
    "stream", "reason",
)  # fmt: skip
LOG_COMMIT = histogram(
    "failwell_log_commit_seconds",
    "Time of one group commit (write + fsync).",
    "stream",
    buckets=LOG_LAG_BUCKETS,
)
LOG_LAG = histogram(
    "failwell_log_lag_seconds",
    "Time from a record being queued to it being durable.",
    "stream",
    buckets=LOG_LAG_BUCKETS,
)
LOG_LAG_MAX = gauge(
    "failwell_log_lag_max_seconds",
    "Longest time a record waited to be durable since start-up.",
    "stream",
)
LOG_PENDING_RECORDS = gauge(
    "failwell_log_pending_records", "Records queued, not yet durable.", "stream"
)
LOG_UP = gauge(
    "failwell_log_up", "1 while the last write succeeded, 0 after a failed one.", "stream"
)
LOG_DISK_FREE = gauge("failwell_log_disk_free_bytes", "Free space on the log's disk.", "stream")
LOG_RECOVERED_BYTES = counter(
    "failwell_log_recovered_bytes",
    "Bytes of an incomplete final record cut off at start-up.",
    "stream",
)

# --- the fleet: state shared through Redis (fleet/) -------------------------------------------
FLEET_PROPAGATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
FLEET_UP = gauge("failwell_fleet_up", "1 while this gateway is connected to the fleet's Redis.")
FLEET_RECONNECTS = counter(
    "failwell_fleet_reconnects", "Connections to the fleet's Redis made again after a loss."
)
FLEET_MESSAGES = counter(
    "failwell_fleet_messages",
    "Changes shared with the fleet (out) and applied from it (in), by kind.",
    "kind",
    "direction",
)
FLEET_DROPPED = counter(
    "failwell_fleet_dropped",
    "Writes to the fleet's Redis given up (Redis down or the queue full), by kind.",
    "kind",
)
FLEET_PROPAGATION = histogram(
    "failwell_fleet_propagation_seconds",
    "Time from a change on another gateway to it applying here (their wall clock to ours).",
    "kind",
    buckets=FLEET_PROPAGATION_BUCKETS,
)

FLEET_FALLBACKS = counter(
    "failwell_fleet_fallbacks",
    "Reads of the fleet's shared state that fell back to this process's own (Redis "
    "unreachable), by part: slo (alerts judged on local counts), labels (feedback joined to "
    "this process's answers only).",
    "part",
)

FLEET_CACHE_READS = counter(
    "failwell_fleet_cache_reads",
    "Cache tier reads that went to the shared cache, by result (hit, miss, down, error).",
    "result",
)


# --- managed replicas and the autoscaler (supervisor/) --------------------------------------
READY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
MANAGED_REPLICAS = gauge(
    "failwell_managed_replicas",
    "Managed replicas by state: starting, standby, serving, leaving.",
    "backend", "state",
)  # fmt: skip
REPLICA_FAILURES = counter(
    "failwell_managed_replica_failures",
    "Managed replicas replaced, by why: exit, liveness, canary, start (no readiness in time).",
    "backend", "reason",
)  # fmt: skip
REPLICA_QUARANTINED = gauge(
    "failwell_managed_quarantined",
    "1 while a backend's replicas crash-loop and are not restarted.",
    "backend",
)  # fmt: skip
REPLICA_READY_SECONDS = histogram(
    "failwell_managed_ready_seconds",
    "Time from starting a replica to its readiness (probe and canaries passed).",
    "backend",
    buckets=READY_BUCKETS,
)
AUTOSCALE_DESIRED = gauge(
    "failwell_autoscale_desired_replicas", "Serving replicas the autoscaler wants.", "backend"
)
AUTOSCALE_DECISIONS = counter(
    "failwell_autoscale_decisions",
    "Scaling decisions that changed the desired count, by direction (up, down).",
    "backend", "direction",
)  # fmt: skip
AUTOSCALE_SIGNAL = gauge(
    "failwell_autoscale_signal",
    "What the autoscaler saw: in_flight_per_replica, p99_seconds, load_ratio, request_rate, "
    "forecast_rate (trend on).",
    "backend", "signal",
)  # fmt: skip

FLEET_LEADER = gauge(
    "failwell_fleet_leader",
    "1 while this process holds the fleet's control lease (runs the control loops).",
)
FLEET_LEADER_CHANGES = counter(
    "failwell_fleet_leader_changes",
    "Times this process gained (to=leader) or lost the control lease.",
    "to",
)
FLEET_FENCED = counter(
    "failwell_fleet_fenced_writes",
    "Controller writes to the fleet's Redis, by result (done, "
    "refused: the fencing token was stale, down).",
    "result",
)

RETRAIN_TRIGGERS = counter(
    "failwell_retrain_triggers",
    "Retraining signals that fired, by route, signal (drift, quality, freshness, schedule) "
    "and outcome (started, cooldown, cap, running: held, recorded once per reason).",
    "route", "signal", "outcome",
)  # fmt: skip
RETRAIN_JOBS = counter(
    "failwell_retrain_jobs",
    "Training jobs the retraining loop ran, by route and outcome (registered, failed).",
    "route", "outcome",
)  # fmt: skip
RETRAIN_GATE = counter(
    "failwell_retrain_gate_verdicts",
    "Gate verdicts on candidates the retraining loop trained, by route and verdict "
    "(passed, rejected).",
    "route", "verdict",
)  # fmt: skip
RETRAIN_ROLLOUTS = counter(
    "failwell_retrain_rollouts",
    "Canary rollouts of retrained candidates, by route and decision (promoted, rolled_back, "
    "failed...: the rollout's final state).",
    "route", "decision",
)  # fmt: skip


PLANE_FAMILIES: tuple[Family, ...] = tuple(
    v for v in list(globals().values()) if isinstance(v, Family)
)
