"""Every metric a Grafana dashboard or a Prometheus alert of the chart asks for is one the
running services really export: the four services as real processes, one job through
them, and each service's `/metrics` scraped before and after it.

The metric names and label matchers come from the dashboards' JSON and the rendered
PrometheusRule, read with a PromQL parser; names exported by something else (RabbitMQ's
exporter, Prometheus itself) are listed in charts/product-videos/dashboards/external-metrics.txt.
"""

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from common.events import FINAL_STATUSES
from scripts import helm_check
from tests.support import client as user
from tests.support import prometheus as prom
from tests.support.processes import System
from tests.support.promql import Selector, dashboard_queries, selectors

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = helm_check.CHART / "dashboards"
# Labels Prometheus attaches to every scraped series (the ServiceMonitor adds `component`).
TARGET_LABELS = {"namespace", "pod", "service", "job", "instance", "container", "component"}
# Label values a panel may filter on before the first series with them exists: a job
# finishes `failed` or `canceled` only when something goes wrong.
LABEL_DOMAINS = {("pv_jobs_finished_total", "status"): {s.value for s in FINAL_STATUSES}}
# Series that no successful job creates; their panels stay empty until it happens.
ONLY_AFTER = {
    "pv_reconciler_actions_total": "the reconciler times a job out or re-drives a stale one",
}
# Sample names of a metric family, by its type (what Prometheus stores).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
}


@dataclass
class Scrape:
    """What the services' `/metrics` said: samples by name, and the sample names their
    declared families may have (a labelled family has no samples before its first use)."""

    samples: dict[str, list[tuple[str, dict[str, str], float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    declared: set[str] = field(default_factory=set)

    def add(self, service: str, text: str) -> None:
        for family in text_string_to_metric_families(text):
            self.declared |= {family.name + s for s in SUFFIXES.get(family.type, ("",))}
            for sample in family.samples:
                self.samples[sample.name].append((service, sample.labels, sample.value))

    def value(self, service: str, name: str, **labels: str) -> float | None:
        """The sum of a service's samples of `name` whose labels include `labels`;
        None when there is none."""
        values = [
            v
            for s, sample_labels, v in self.samples.get(name, [])
            if s == service and labels.items() <= sample_labels.items()
        ]
        return sum(values) if values else None


async def scrape(system: System) -> Scrape:
    result = Scrape()
    async with httpx.AsyncClient(timeout=10) as client:
        for service in system.services.values():
            response = await client.get(f"{service.ops_url}/metrics")
            response.raise_for_status()
            result.add(service.name, response.text)
    return result


def external_metrics() -> set[str]:
    lines = (DASHBOARDS / "external-metrics.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


@pytest.fixture(scope="module")
def alert_queries(helm_binary: None) -> list[tuple[str, str]]:
    """(alert, expression) of every alert of the PrometheusRule, rendered by helm."""
    objects = helm_check.template(set_values=("prometheusRule.enabled=true",))
    (rule,) = [o for o in objects if o["kind"] == "PrometheusRule"]
    return [
        (f"alert {alert['alert']}", alert["expr"])
        for group in rule["spec"]["groups"]
        for alert in group["rules"]
    ]


def dashboard_selectors() -> list[tuple[str, Selector]]:
    return [
        (where, selector)
        for path in sorted(DASHBOARDS.glob("*.json"))
        for where, expr in dashboard_queries(path)
        for selector in selectors(expr)
    ]


def problems(used: Iterable[tuple[str, Selector]], scraped: Scrape) -> list[str]:
    """What Prometheus could not answer: a metric no service exports, a label no series
    of it has, a label value it never takes."""
    external = external_metrics()
    found = []
    for where, selector in used:
        name = selector.name
        if name in external:
            continue
        if name not in scraped.declared:
            found.append(f"{where}: {name} is exported by no service")
            continue
        series = [labels for _, labels, _ in scraped.samples.get(name, [])]
        if not series:
            if name not in ONLY_AFTER:
                found.append(f"{where}: {name} has no series after a job")
            continue
        for label, value in selector.equal:
            if label in TARGET_LABELS or "$" in value:
                continue
            seen = {s[label] for s in series if label in s}
            if not seen:
                found.append(f"{where}: no series of {name} has a label {label!r}")
            elif value not in seen | LABEL_DOMAINS.get((name, label), set()):
                found.append(f"{where}: {name}{{{label}={value!r}}} never occurs (seen {seen})")
    return sorted(set(found))


async def run_one_job(system: System, api: httpx.AsyncClient) -> None:
    """A user submits a photo, follows it over the WebSocket until it is complete, and
    fetches the clip."""
    accepted = await user.submitted(api, user.product_photo(seed=61), duration=3)
    job_id, token = accepted["id"], accepted["token"]
    followed = await user.follow(system.ws_url, job_id, token, after_seq=accepted["job"]["seq"])
    assert followed.final_status == "completed", followed.final
    response = await api.get(f"{user.API}/jobs/{job_id}/video", headers=user.auth(token))
    assert response.status_code == 302, response.text


async def test_dashboards_and_alerts_query_what_the_services_export(
    system: System, api: httpx.AsyncClient, alert_queries: list[tuple[str, str]]
) -> None:
    at_start = await scrape(system)
    await run_one_job(system, api)
    after_job = await scrape(system)

    # Dashboard variables (the namespace picker) have values before any job ran.
    variables = [(where, s) for where, s in dashboard_selectors() if ": $" in where]
    assert variables, "the dashboards have no namespace variable"
    assert problems(variables, at_start) == []

    # Every panel and every alert: after one job, what they ask for exists.
    used = dashboard_selectors()
    used += [(where, s) for where, expr in alert_queries for s in selectors(expr)]
    assert {s.name for _, s in used} >= {"pv_stage_duration_seconds_bucket", "up"}
    assert problems(used, after_job) == []

    # And what the operators' questions need is there, from the service that knows.
    assert_pipeline_metrics(after_job)


def assert_pipeline_metrics(m: Scrape) -> None:
    """The metrics of one completed job, with the labels the dashboards group by."""
    # HTTP requests by route and status, gateway and notifier.
    assert m.value("gateway", "pv_http_requests_total", route="/api/v1/jobs", status="202") == 1
    assert m.value("gateway", "pv_http_requests_total", route="/api/v1/jobs/{job_id}/video")
    assert m.value("gateway", "pv_http_request_duration_seconds_count", route="/api/v1/jobs")
    assert m.value("notifier", "pv_http_requests_total", route="/healthz", status="200")
    assert m.value("gateway", "pv_jobs_submitted_total") == 1

    # FastStream: what each consumer handled and each service published.
    for worker in ("prompt", "video", "notifier"):
        assert m.value(worker, "faststream_received_messages_total"), worker
        assert m.value(worker, "faststream_received_processed_messages_total", status="acked")
    for publisher in ("gateway", "prompt", "video"):
        assert m.value(publisher, "faststream_published_messages_total", status="success")

    # Jobs by final status and error code; time per stage and end to end.
    assert m.value("video", "pv_jobs_finished_total", status="completed", error_code="") == 1
    assert m.value("video", "pv_job_duration_seconds_count", status="completed") == 1
    assert m.value("prompt", "pv_stage_duration_seconds_count", stage="prompting") == 1
    assert m.value("video", "pv_stage_duration_seconds_count", stage="generating") == 1

    # Provider calls: latency and outcome per operation; cost (zero for offline providers,
    # but a series from the start, so the cost panels show 0 rather than nothing).
    for service, operation in (("prompt", "prompt"), ("video", "video")):
        calls = m.value(service, "pv_provider_calls_total", operation=operation, outcome="ok")
        assert calls == 1, (service, calls)
        count = m.value(service, "pv_provider_call_duration_seconds_count", operation=operation)
        assert count == 1, (service, count)
        assert m.value(service, "pv_provider_cost_usd_total") == 0, service

    # Prompt reuse: one miss (the first time this photo was seen), hits counted from zero.
    assert m.value("prompt", "pv_prompt_reuse_total", result="miss") == 1
    assert m.value("prompt", "pv_prompt_reuse_total", result="hit") == 0

    # Realtime: open sockets (a gauge: there from the start), pushes, push latency.
    assert m.value("notifier", "pv_ws_connections") is not None
    assert m.value("notifier", "pv_ws_messages_pushed_total", type="snapshot") == 1
    pushed = m.value("notifier", "pv_ws_messages_pushed_total", type="status")
    assert pushed is not None and pushed >= 5  # prompting ... completed
    pushes = m.value("notifier", "pv_ws_push_latency_seconds_count")
    latency = m.value("notifier", "pv_ws_push_latency_seconds_sum")
    assert pushes and latency is not None and 0 < latency / pushes < 5


# --- the same questions asked of a real Prometheus ----------------------------------------

# Grafana's variables, as a dashboard viewer of this release would have them.
VARIABLES = {"$namespace": "videos", "$__rate_interval": "1m"}


@pytest.mark.timeout(420)
@pytest.mark.skipif(
    prom.PROMETHEUS is None,
    reason="prometheus not found: install Debian's prometheus package (make test does, "
    "where apt-get works) to ask the panels' questions of a real Prometheus",
)
async def test_every_panel_query_returns_a_series_from_a_real_prometheus(
    system: System, api: httpx.AsyncClient, alert_queries: list[tuple[str, str]], tmp_path: Path
) -> None:
    """After one job, every service panel of every dashboard shows data, every alert
    expression evaluates, and a stopped worker is what the service-down alert names. The
    queue panels (and the dead-letter alert) read RabbitMQ's own exporter, which the shared
    test broker does not run: tests/test_rabbitmq_monitoring.py asks them of a node of its
    own."""
    targets = [
        prom.Target(name, service.ops_url.removeprefix("http://"))
        for name, service in system.services.items()
    ]
    with prom.running(tmp_path, targets) as prometheus:
        await run_one_job(system, api)
        panels = [
            (where, expr)
            for path in sorted(DASHBOARDS.glob("*.json"))
            for where, expr in dashboard_queries(path)
            if "label_values" not in expr and "rabbitmq_" not in expr
        ]
        assert len(panels) >= 30
        for variable, value in VARIABLES.items():
            panels = [(where, expr.replace(variable, value)) for where, expr in panels]
        # Rates need two scrapes after the job: ask again until each panel has data.
        deadline = time.monotonic() + 120
        pending = panels
        while pending and time.monotonic() < deadline:
            pending = [
                (where, expr) for where, expr in pending if not await prom.query(prometheus, expr)
            ]
            if pending:
                await asyncio.sleep(2)
        assert pending == [], "panels without data after one job"
        for _alert, expr in alert_queries:
            await prom.query(prometheus, expr)  # evaluates (an empty answer: nothing to alert)

        # A real fault: the video worker stops. The service-down alert's expression then
        # names it, and only it (its `for: 5m` is tests/test_alert_rules.py's to check).
        (down,) = [expr for alert, expr in alert_queries if alert.endswith("ServiceDown")]
        assert await prom.query(prometheus, down) == []
        system["video"].stop()
        for _ in range(120):  # scrapes every second; a loaded machine may lag
            if found := await prom.query(prometheus, down):
                break
            await asyncio.sleep(1)
        assert [s["metric"]["service"] for s in found] == ["pv-product-videos-video"]
