"""RabbitMQ's own metrics, as the chart's monitoring reads them: a RabbitMQ node of this
test's own (the shared broker on 5672 has no Prometheus plugin and is never touched) with
`rabbitmq_prometheus` enabled, the gateway and the prompt worker on it, and Debian's
Prometheus scraping them all (the node's per-object endpoint, as the chart's RabbitMQ
ServiceMonitor does) with the chart's rendered PrometheusRule loaded.

Every queue panel of the dashboards shows data; a poisoned message (a body the prompt
worker cannot read) goes through the real topology to the dead-letter queue and fires the
dead-letter alert; a stopped worker fires the service-down alert. Both alerts have
`for: 5m` in the chart: this test's copy of the rules says FOR instead, so they fire
within seconds (tests/test_alert_rules.py checks the 5 minutes with promtool)."""

import asyncio
import functools
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import pytest
import yaml

from common.events import RoutingKey
from common.settings import CommonSettings
from common.topology import Topology
from scripts import helm_check
from tests.conftest import _run
from tests.support import prometheus as prom
from tests.support.backends import unavailable
from tests.support.processes import System
from tests.support.promql import dashboard_queries
from tests.support.rabbit_node import RabbitNode, private_node

pytestmark = pytest.mark.timeout(240)

DASHBOARDS = helm_check.CHART / "dashboards"
# The alerts this test drives, and the `for:` they get in its copy of the rules.
DRIVEN = ("ProductVideosDeadLetters", "ProductVideosServiceDown")
FOR = "3s"  # a few scrapes: one slow scrape on a busy machine fires nothing
# How long a loaded machine may take to show what one scrape and one evaluation show.
WITHIN = 60.0

# The gateway publishes `job.submitted`, the prompt worker consumes it: enough to have the
# topology declared and a consumer on it (fewer processes start faster on a busy machine).
SERVICES = ("gateway", "prompt")

T = TypeVar("T")


@pytest.fixture
def node() -> Iterator[RabbitNode]:
    if prom.PROMETHEUS is None:
        unavailable("prometheus (Debian's package: make prometheus)")
    with private_node("pvprom", prometheus=True) as node:
        yield node


@pytest.fixture
def services(
    request: pytest.FixtureRequest, system_env: dict[str, str], node: RabbitNode, tmp_path: Path
) -> Iterator[System]:
    env = {**system_env, "AMQP_URL": node.url}
    yield from _run(request, env, tmp_path / "logs", SERVICES)


@pytest.fixture
def rule_file(helm_binary: None, system_env: dict[str, str], tmp_path: Path) -> Path:
    """The chart's alerts, rendered for this test's queue prefix, DRIVEN ones with FOR."""
    prefix = system_env["AMQP_PREFIX"]
    objects = helm_check.template(
        set_values=("prometheusRule.enabled=true", f"config.AMQP_PREFIX={prefix}")
    )
    (rule,) = [o for o in objects if o["kind"] == "PrometheusRule"]
    groups = rule["spec"]["groups"]
    driven = [r for g in groups for r in g["rules"] if r.get("alert") in DRIVEN]
    assert [r["for"] for r in driven] == ["5m", "5m"]
    for r in driven:
        r["for"] = FOR
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    return path


def queue_panels(prefix: str) -> list[tuple[str, str]]:
    """(title, expression) of every dashboard panel that reads RabbitMQ's metrics, with
    Grafana's variables as a viewer of this release has them (`${prefix:regex}` is the
    prefix, regex-escaped)."""
    panels = [
        (where, expr)
        for path in sorted(DASHBOARDS.glob("*.json"))
        for where, expr in dashboard_queries(path)
        if "rabbitmq_" in expr
    ]
    variables = {"$namespace": prom.NAMESPACE, "${prefix:regex}": re.escape(prefix)}
    for variable, value in variables.items():
        panels = [(where, expr.replace(variable, value)) for where, expr in panels]
    return panels


async def eventually(check: Callable[[], Awaitable[T]], what: str) -> T:
    """`check`'s first truthy answer, asked every second for WITHIN seconds."""
    deadline = time.monotonic() + WITHIN
    while not (answer := await check()):
        assert time.monotonic() < deadline, f"not within {WITHIN}s: {what}"
        await asyncio.sleep(1)
    return answer


async def firing(prometheus: str, alert: str) -> list[dict[str, str]]:
    """The labels of each firing `alert`."""
    return [
        a["labels"]
        for a in await prom.alerts(prometheus)
        if a["labels"]["alertname"] == alert and a["state"] == "firing"
    ]


async def publish_poison(url: str, prefix: str) -> None:
    """A `job.submitted` event no worker can read, published as the gateway publishes."""
    topology = Topology(CommonSettings(amqp_url=url, amqp_prefix=prefix))
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.exchange.name)
        await exchange.publish(
            aio_pika.Message(b'{"job_id": ', content_type="application/json"),
            routing_key=RoutingKey.JOB_SUBMITTED.value,
        )


def by_queue(result: list[dict[str, Any]]) -> dict[str, float]:
    return {s["metric"].get("queue", ""): float(s["value"][1]) for s in result}


async def test_queue_panels_and_alerts_read_rabbitmq_own_metrics(
    services: System,
    node: RabbitNode,
    rule_file: Path,
    system_env: dict[str, str],
    tmp_path: Path,
) -> None:
    prefix = system_env["AMQP_PREFIX"]
    assert node.prometheus_port
    targets = [
        prom.Target(name, service.ops_url.removeprefix("http://"))
        for name, service in services.services.items()
    ]
    targets.append(
        prom.Target("rabbitmq", f"127.0.0.1:{node.prometheus_port}", "/metrics/per-object")
    )
    folder = tmp_path / "prometheus"
    folder.mkdir()
    with prom.running(folder, targets, [rule_file]) as prometheus:
        # Every queue panel shows data once the node has been scraped.
        panels = queue_panels(prefix)
        assert {where.split(": ")[1] for where, _ in panels} >= {
            "Dead-lettered messages",
            "Work queue depth",
            "Retry and dead-letter queues",
            "Consumers per work queue",
        }
        for where, expr in panels:
            await eventually(functools.partial(prom.query, prometheus, expr), where)
        # And what they show is this broker's: a consumer on the prompt worker's queue
        # (no video worker runs), nothing dead-lettered, no alert.
        (consumers,) = [e for w, e in panels if w.endswith("Consumers per work queue")]
        assert by_queue(await prom.query(prometheus, consumers)) == {
            f"{prefix}prompt.jobs": 1,
            f"{prefix}video.jobs": 0,
        }
        (dead,) = [e for w, e in panels if w.endswith("Dead-lettered messages")]
        assert by_queue(await prom.query(prometheus, dead)) == {"": 0}
        assert [a for a in await prom.alerts(prometheus) if a["state"] == "firing"] == []

        # A poisoned message: the prompt worker cannot read it, RabbitMQ redelivers it up
        # to the delivery limit and dead-letters it. The panel and the alert say so.
        await publish_poison(node.url, prefix)
        labels = await eventually(
            lambda: firing(prometheus, "ProductVideosDeadLetters"), "the dead-letter alert"
        )
        assert [(a["queue"], a["severity"]) for a in labels] == [
            (f"{prefix}prompt.jobs.dlq", "warning")
        ]
        assert by_queue(await prom.query(prometheus, dead)) == {"": 1}

        # A worker that stopped cannot be scraped: the service-down alert names it.
        services["prompt"].stop()
        labels = await eventually(
            lambda: firing(prometheus, "ProductVideosServiceDown"), "the service-down alert"
        )
        assert [(a["service"], a["severity"]) for a in labels] == [
            ("pv-product-videos-prompt", "critical")
        ]
        alerting = {a["labels"]["alertname"] for a in await prom.alerts(prometheus)}
        assert alerting == set(DRIVEN)
