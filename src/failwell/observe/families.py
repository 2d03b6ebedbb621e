"""Every metric family failwell exports, declared once: name, help, labels, kind, buckets.

Modules make their metrics from these (``REQUESTS.counter(registry)``); collectors that yield
families at scrape time use ``name`` and ``help`` from here too; the generated Prometheus
rules and Grafana dashboard (``observe/deploy.py``) name series through ``sample``. So a
renamed metric breaks at one place, and ``FAMILIES`` lists what a gateway can export.
"""

from __future__ import annotations

from prometheus_client import Histogram

from failwell.observe.families_planes import PLANE_FAMILIES
from failwell.observe.family import LATENCY_BUCKETS as LATENCY_BUCKETS
from failwell.observe.family import Family as Family
from failwell.observe.family import Kind as Kind
from failwell.observe.family import counter, gauge, histogram

# --- the request path (observe/metrics.py) --------------------------------------------------
REQUESTS = counter(
    "failwell_requests",
    "Requests answered or refused, by route, tier and outcome.",
    "route", "tier", "outcome",
)  # fmt: skip
REQUEST_DURATION = histogram(
    "failwell_request_duration_seconds",
    "Time to answer, by route and answering tier.",
    "route", "tier",
)  # fmt: skip
FALLBACKS = counter(
    "failwell_fallbacks",
    "Tiers passed over, by route, the tier that failed and why.",
    "route", "from_tier", "error",
)  # fmt: skip
ROWS = counter(
    "failwell_rows",
    "Rows of batches answered row by row (fallback: rows) once tier 1 failed, by route and the tier that answered each row.",
    "route", "tier",
)  # fmt: skip
BREAKER_STATE = gauge(
    "failwell_breaker_state",
    "Breaker state per replica: 0 closed, 1 half-open, 2 open.",
    "backend", "replica",
)  # fmt: skip
BREAKER_TRANSITIONS = counter(
    "failwell_breaker_transitions", "Breaker state changes per replica.", "backend", "replica", "to"
)
IN_FLIGHT = gauge("failwell_in_flight_requests", "Requests being answered now, by route.", "route")
TOKENS = counter(
    "failwell_tokens",
    "Tokens the upstream counted (usage), by route, answering tier, backend and kind "
    "(prompt, completion).",
    "route", "tier", "backend", "kind",
)  # fmt: skip
STREAM_GAP = histogram(
    "failwell_stream_chunk_gap_seconds",
    "Time between two chunks relayed to a streaming client, by route and tier (the time to "
    "the first chunk is failwell_request_duration_seconds).",
    "route", "tier",
)  # fmt: skip
STREAM_ENDS = counter(
    "failwell_stream_ends",
    "Streams ended, by route, tier and how: complete, or the mid-stream failure's kind "
    "(timeout, unavailable, malformed, stream_error), or client_gone.",
    "route", "tier", "outcome",
)  # fmt: skip
STREAM_FIRST_TOKEN = histogram(
    "failwell_stream_first_token_seconds",
    "Time to the first chunk of a streamed answer (TTFT), by route and the tier of that chunk.",
    "route", "tier",
)  # fmt: skip
STREAMS_IN_FLIGHT = gauge(
    "failwell_streams_in_flight", "Streams open to clients now, by route.", "route"
)
STREAM_FAILURES = counter(
    "failwell_stream_failures",
    "Mid-stream failures (after the first chunk), by route, the failing tier, kind (timeout, "
    "unavailable, malformed, stream_error) and outcome (resumed on a later tier, or error: the "
    "stream ended with an in-band error event).",
    "route", "tier", "kind", "outcome",
)  # fmt: skip
CACHE_WRITES_DROPPED = counter(
    "failwell_cache_writes_dropped", "Cache writes dropped because the queue was full."
)

# --- the health plane: replica queues (health/plane.py, read at scrape time) ---------------
REPLICA_OUTSTANDING = gauge(
    "failwell_replica_outstanding_requests",
    "Requests in flight or queued per replica.",
    "backend", "replica",
)  # fmt: skip

# --- active probes and rotation (health/prober.py) ------------------------------------------
PROBE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
REPLICA_HEALTHY = gauge(
    "failwell_replica_healthy",
    "1 while a replica is in rotation (active probes and canaries pass).",
    "backend", "replica",
)  # fmt: skip
REPLICA_HEALTH_CHANGES = counter(
    "failwell_replica_health_changes",
    "Replicas taken out of or put back into rotation, by reason.",
    "backend", "replica", "to", "reason",
)  # fmt: skip
PROBE_DURATION = histogram(
    "failwell_probe_duration_seconds",
    "Time of one active health probe, by backend.",
    "backend",
    buckets=PROBE_BUCKETS,
)
PROBES = counter(
    "failwell_probes", "Active health probes by backend and result.", "backend", "result"
)

# --- canary inferences (health/canary.py) ---------------------------------------------------
CANARY_STATUS = gauge(
    "failwell_canary_status",
    "Latest canary verdict per route: 1 healthy, 0.5 degraded, 0 unhealthy.",
    "route",
)
CANARY_CHECKS = counter(
    "failwell_canary_checks", "Canary checks by route and result.", "route", "result"
)
CANARY_DURATION = histogram(
    "failwell_canary_duration_seconds",
    "Latency of one canary inference, by route.",
    "route",
    buckets=Histogram.DEFAULT_BUCKETS,  # prometheus_client's default, not LATENCY_BUCKETS
)

# --- answers: cache tier and model versions (health/answers.py) -----------------------------
AGE_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0, 7 * 86400.0)
CACHE_LOOKUPS = counter(
    "failwell_cache_lookups",
    "Cache-tier lookups by route and result (hit, or the miss reason).",
    "route", "result",
)  # fmt: skip
STALE_ANSWER_AGE = histogram(
    "failwell_stale_answer_age_seconds",
    "Age of the cached answers served by the cache tier.",
    "route",
    buckets=AGE_BUCKETS,
)
MODEL_VERSION = gauge(
    "failwell_model_version_info",
    "1 for the model version that last answered a route from a model tier.",
    "route", "backend", "version",
)  # fmt: skip

# --- freshness (health/freshness.py; the model age is read at scrape time) ------------------
MODEL_AGE = gauge(
    "failwell_model_age_seconds",
    "Age of the model version a backend serves (registry time, model_created, or first seen).",
    "backend",
)
FEATURE_AGE = histogram(
    "failwell_feature_age_seconds",
    "Age of the features a route declares, per answered request.",
    "route", "feature",
    buckets=AGE_BUCKETS,
)  # fmt: skip

# --- SLO events (health/slo.py, read at scrape time) ----------------------------------------
SLO_REQUESTS = counter(
    "failwell_slo_requests",
    "Requests counted for SLOs (caller errors excluded) since start, by route.",
    "route",
)
TIER1_ANSWERS = counter(
    "failwell_tier1_answers", "Requests answered by tier 1 since start, by route.", "route"
)
SLO_TIER1_FLOOR = gauge(
    "failwell_slo_tier1_floor_ratio", "Configured floor of the tier-1 share per route.", "route"
)
SLO_EVENTS = counter(
    "failwell_slo_events",
    "SLO events since start by route, objective and kind (total or bad).",
    "route", "slo", "kind",
)  # fmt: skip

# --- SLO gauges and alerts (health/alerts.py) -----------------------------------------------
SLO_OBJECTIVE = gauge("failwell_slo_objective_ratio", "SLO objective.", "route", "slo")
SLO_SLI = gauge(
    "failwell_slo_sli_ratio",
    "Share of good events over a window.",
    "route", "slo", "window",
)  # fmt: skip
SLO_BURN_RATE = gauge(
    "failwell_slo_burn_rate",
    "Error budget burn rate over a window (1: spends the budget exactly in the period).",
    "route", "slo", "window",
)  # fmt: skip
SLO_BUDGET_REMAINING = gauge(
    "failwell_slo_error_budget_remaining_ratio",
    "Error budget left over the longest window (1: untouched, below 0: overspent).",
    "route", "slo",
)  # fmt: skip
ALERT_FIRING = gauge(
    "failwell_alert_firing",
    "1 while an SLO alert fires.",
    "route", "slo", "severity",
)  # fmt: skip
ALERT_NOTIFICATIONS = counter(
    "failwell_alert_notifications",
    "Alert notifications sent, by state and delivery result.",
    "state", "result",
)  # fmt: skip

# --- drift (drift/monitor.py) ---------------------------------------------------------------
DRIFT_PSI = gauge(
    "failwell_drift_psi",
    "Population stability index of the latest window against the reference, per feature.",
    "route", "feature",
)  # fmt: skip
DRIFT_P_VALUE = gauge(
    "failwell_drift_p_value",
    "p-value of the latest window's KS (numeric) or chi-square (categorical) test, per feature.",
    "route", "feature",
)  # fmt: skip
DRIFT_DRIFTING = gauge(
    "failwell_drift_drifting",
    "1 while a feature's latest window is over its drift threshold.",
    "route", "feature",
)  # fmt: skip
DRIFT_WINDOW = gauge(
    "failwell_drift_window_samples", "Sampled requests in a route's drift window.", "route"
)

# --- live quality from feedback (quality/watch.py) -----------------------------------------
QUALITY_LIVE = gauge(
    "failwell_quality_live",
    "Live quality of a route's labelled answers over its window (accuracy, mae or auc).",
    "route", "metric",
)  # fmt: skip
QUALITY_LABELS = counter(
    "failwell_quality_labels",
    "Labels received on /v1/feedback, by route and result (accepted, not_found, conflict, invalid_input).",
    "route", "result",
)  # fmt: skip

# --- admission (admission/admit.py) ---------------------------------------------------------
ADMISSION_REFUSED = counter(
    "failwell_admission_refused",
    "Requests refused by admission: rate_limited (429) or shed (503), by route.",
    "route", "reason", "priority",
)  # fmt: skip
ADMISSION_QUEUE_DEPTH = gauge(
    "failwell_admission_queue_depth", "Requests waiting for a concurrency slot, by route.", "route"
)
ADMISSION_ACTIVE = gauge(
    "failwell_admission_active", "Requests holding a concurrency slot, by route.", "route"
)
ADMISSION_CAPACITY_SCALE = gauge(
    "failwell_admission_capacity_scale",
    "Share of the route's limits admitted now (below 1 while a standby serves).",
    "route",
)

# --- injected faults (faults/admin.py) ------------------------------------------------------
FAULTS_INJECTED = counter(
    "failwell_faults_injected",
    "Calls that met an injected fault, by backend and fault kind.",
    "backend", "kind",
)  # fmt: skip

# --- the scheduled canary drill (faults/canary_drill.py) ------------------------------------
CANARY_DRILL_ACTIVE = gauge("failwell_canary_drill_active", "1 while a canary drill runs.", "route")
CANARY_DRILL_REQUESTS = counter(
    "failwell_canary_drill_requests", "Canary drill requests by outcome.", "route", "outcome"
)
CANARY_DRILL_RUNS = counter(
    "failwell_canary_drill_runs", "Canary drills by result.", "route", "result"
)
CANARY_DRILL_LAST_ANSWERED = gauge(
    "failwell_canary_drill_last_answered_ratio",
    "Answered share of the canary requests in the last drill.",
    "route",
)
CANARY_DRILL_LAST_PASS = gauge(
    "failwell_canary_drill_last_pass",
    "1 if the last canary drill passed, 0 if it failed.",
    "route",
)

# --- rollouts (rollout/controller.py) -------------------------------------------------------
ROLLOUT_CANDIDATE_WEIGHT = gauge(
    "failwell_rollout_candidate_weight",
    "Share of a tier's traffic sent to a rollout's candidate (0 when none runs).",
    "route", "tier",
)  # fmt: skip
ROLLOUTS = counter(
    "failwell_rollouts",
    "Finished rollouts by route and outcome (promoted, rolled_back, aborted).",
    "route", "outcome",
)  # fmt: skip
ROLLOUT_FOLLOW_FAILURES = counter(
    "failwell_rollout_follow_failures",
    "Times this process could not put the fleet's rollout split in place (its candidate did "
    "not load): it serves stable for that tier meanwhile.",
    "route", "tier",
)  # fmt: skip

# --- the model registry: hot swaps and replication (registry/serving.py) --------------------
MODEL_SWAP = gauge(
    "failwell_model_swap_seconds",
    "Duration of the last hot swap (load + warm + switch), by backend.",
    "backend",
)
REGISTRY_REPLICATION_LAG = gauge(
    "failwell_registry_replication_lag_seconds",
    "Age of the oldest change not yet on an asynchronous replica, by store.",
    "store",
)


FAMILIES: tuple[Family, ...] = (
    *(v for v in list(globals().values()) if isinstance(v, Family)),
    *PLANE_FAMILIES,
)
