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

from common.webhooks import WebhookEvent

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
FAIR_SHARE_TURNS = Counter(
    "pv_fair_share_turns_total",
    "Jobs started ahead of the queue, their owner having fewer in the stage (common/fairness).",
    ["stage"],
)
DUPLICATE_EVENTS = Counter(
    "pv_duplicate_events_total",
    "Work events dropped because their job was already past the stage.",
    ["stage"],
)
RECONCILER_ACTIONS = Counter(
    "pv_reconciler_actions_total",
    "Jobs the reconciler failed on a deadline or drove on again, and batches it announced,"
    " by their status.",
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
BUDGET_REFUSALS = Counter(
    "pv_budget_refusals_total",
    "Paid clips refused by a spending cap (usd_per_day: the deployment's daily budget, "
    "paid_clips_per_user: one account's paid clips per day, batch_max_cost: a batch's "
    "max_cost_usd).",
    ["limit"],
)
for _limit in ("usd_per_day", "paid_clips_per_user", "batch_max_cost"):
    BUDGET_REFUSALS.labels(limit=_limit)  # 0 from the start: alerts see a series
SPEND_TODAY = Gauge(
    "pv_spend_today_usd",
    "Money reserved and spent on paid clips in the current UTC day, as this process last saw it.",
)
SPEND_LIMIT = Gauge("pv_spend_limit_usd_per_day", "SPEND_LIMIT_USD_PER_DAY (0: no daily budget).")
VIDEO_FIDELITY = Histogram(
    "pv_video_fidelity",
    "How closely AI clips keep the product photo (0-1), per provider.",
    ["provider"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
)
VIDEO_FIDELITY_WARNINGS = Counter(
    "pv_video_fidelity_warnings_total",
    "AI clips scored under FIDELITY_WARN_BELOW (the owner is warned).",
    ["provider"],
)
PROMPT_REUSE = Counter("pv_prompt_reuse_total", "Prompt reuse cache lookups.", ["result"])
RESULT_REUSE = Counter(
    "pv_result_reuse_total",
    "Result reuse lookups: jobs completed from an earlier result.",
    ["result"],
)
WS_CONNECTIONS = Gauge("pv_ws_connections", "Open WebSocket connections.")
WS_MESSAGES = Counter("pv_ws_messages_pushed_total", "Messages pushed to WebSockets.", ["type"])
WS_PUSH_SECONDS = Histogram(
    "pv_ws_push_latency_seconds",
    "From an event's occurred_at to its push to a socket.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WEBHOOK_DELIVERIES = Counter(
    "pv_webhook_deliveries_total",
    "Webhook delivery attempts by event and outcome (delivered, retrying, failed: given up).",
    ["event", "outcome"],
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "pv_webhook_attempt_duration_seconds",
    "How long a customer's endpoint took to answer a webhook (or to fail).",
    ["event"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
for _event in WebhookEvent:  # 0 from the start: the dashboard and alerts see a series
    WEBHOOK_ATTEMPT_SECONDS.labels(event=_event)
    for _outcome in ("delivered", "retrying", "failed"):
        WEBHOOK_DELIVERIES.labels(event=_event, outcome=_outcome)
WEBHOOK_ENDPOINTS_DISABLED = Counter(
    "pv_webhook_endpoints_disabled_total",
    "Webhook endpoints disabled after failing for a day.",
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
MEDIA_CPU = Counter(
    "pv_media_cpu_seconds_total",
    "CPU seconds of media work in this process's own threads (drawing, decoding for a "
    "score, preparing a photo or music), by step; ffmpeg's child processes not included.",
    ["step"],
)
