"""Prometheus metrics shared by the services (one place, so dashboards and code agree).

Names are prefixed `pv_`; FastStream's own consumer/publisher metrics come
from its Prometheus middleware with the `faststream_` prefix.
"""

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200)

JOBS_SUBMITTED = Counter("pv_jobs_submitted_total", "Jobs accepted by the gateway.")
JOBS_FINISHED = Counter(
    "pv_jobs_finished_total", "Jobs that reached a final status.", ["status", "error_code"]
)
STAGE_SECONDS = Histogram(
    "pv_stage_duration_seconds",
    "Time a job spent in a status (stage), observed when it moves on: waits included.",
    ["stage"],
    buckets=STAGE_BUCKETS,
)
JOB_SECONDS = Histogram(
    "pv_job_duration_seconds",
    "Time from submission to a final status.",
    ["status"],
    buckets=STAGE_BUCKETS,
)
JOB_RETRIES = Counter(
    "pv_job_retries_total",
    "Delayed retries scheduled after a retryable error.",
    ["stage", "error_code"],
)
DUPLICATE_EVENTS = Counter(
    "pv_duplicate_events_total",
    "Work events dropped because their job was already past the stage.",
    ["stage"],
)
RECONCILER_ACTIONS = Counter(
    "pv_reconciler_actions_total",
    "Jobs the reconciler failed on a deadline or drove on again, by their status.",
    ["action", "status"],
)
PROVIDER_CALLS = Counter(
    "pv_provider_calls_total",
    "Calls to prompt and video providers.",
    ["provider", "operation", "outcome"],
)
PROVIDER_SECONDS = Histogram(
    "pv_provider_call_duration_seconds",
    "Latency of provider calls.",
    ["provider", "operation"],
    buckets=STAGE_BUCKETS,
)
PROVIDER_COST = Counter(
    "pv_provider_cost_usd_total", "Money spent at providers, in US dollars.", ["provider"]
)
PROMPT_REUSE = Counter("pv_prompt_reuse_total", "Prompt reuse cache lookups.", ["result"])
WS_CONNECTIONS = Gauge("pv_ws_connections", "Open WebSocket connections.")
WS_MESSAGES = Counter("pv_ws_messages_pushed_total", "Messages pushed to WebSockets.", ["type"])
WS_PUSH_SECONDS = Histogram(
    "pv_ws_push_latency_seconds",
    "From an event's occurred_at to its push to a socket.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_REQUESTS = Counter(
    "pv_http_requests_total", "HTTP requests by route and status.", ["route", "method", "status"]
)
HTTP_SECONDS = Histogram(
    "pv_http_request_duration_seconds", "HTTP request latency by route.", ["route", "method"]
)


def render() -> tuple[bytes, str]:
    """The exposition text of every metric of this process, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


MONGODB_COMMANDS = Counter(
    "pv_mongodb_commands_total",
    "MongoDB commands (round trips) this process sent, by command and collection.",
    ["command", "collection"],
)
