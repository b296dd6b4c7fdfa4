"""The chart's alerts, evaluated by Prometheus's own rule engine (`promtool`, from Debian's
`prometheus` package, which `make test` installs where apt-get works): the rendered
PrometheusRule passes `promtool check rules` (PromQL and annotation templates), and every
alert fires on the series a real fault leaves (a worker that cannot be scraped, a poisoned
message in a dead-letter queue, a stuck queue, a slow stage, timed-out jobs, many
failures) after its `for:`, and stays quiet on a healthy system and on other namespaces."""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.helm_check import template

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: install Debian's prometheus package (make test does, where "
    "apt-get works) to evaluate the chart's alerts",
)

SEVERITY = {
    "ProductVideosJobsStuck": "critical",
    "ProductVideosStageSlow": "warning",
    "ProductVideosDeadLetters": "warning",
    "ProductVideosJobsTimedOut": "warning",
    "ProductVideosHighFailureRate": "critical",
    "ProductVideosSpendLimitReached": "critical",
    "ProductVideosSpendHigh": "warning",
    "ProductVideosServiceDown": "critical",
}


def rule_groups() -> list[dict[str, Any]]:
    objects = template(set_values=("prometheusRule.enabled=true",))
    (rule,) = [o for o in objects if o["kind"] == "PrometheusRule"]
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    matchers = ",".join(f'{k}="{v}"' for k, v in {"namespace": "videos", **labels}.items())
    return {"series": f"{name}{{{matchers}}}", "values": values}


def firing(alert: str, at: str, *expected: dict[str, str]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": alert,
        "exp_alerts": [{"exp_labels": {"severity": SEVERITY[alert], **e}} for e in expected],
    }


# Each scenario: a minute-by-minute history of the series a fault leaves, and what fires.
SCENARIOS: dict[str, dict[str, Any]] = {
    "a worker cannot be scraped": {
        "input_series": [
            series("up", "1 1 0x10", service="pv-product-videos-video", pod="v-1"),
            series("up", "1x12", service="pv-product-videos-gateway", pod="g-1"),
        ],
        "alert_rule_test": [
            firing("ProductVideosServiceDown", "5m"),  # down 3 minutes: not yet (for: 5m)
            firing(
                "ProductVideosServiceDown",
                "8m",
                {"namespace": "videos", "service": "pv-product-videos-video", "pod": "v-1"},
            ),
        ],
    },
    "a poisoned message dead-lettered": {
        "input_series": [
            series("rabbitmq_queue_messages_ready", "0 0 1x10", queue="video.jobs.dlq"),
            series("rabbitmq_queue_messages_ready", "0x12", queue="prompt.jobs.dlq"),
            # Another release's broker is not ours.
            series(
                "rabbitmq_queue_messages_ready", "5x12", namespace="other", queue="video.jobs.dlq"
            ),
        ],
        "alert_rule_test": [
            firing("ProductVideosDeadLetters", "5m"),
            firing("ProductVideosDeadLetters", "8m", {"queue": "video.jobs.dlq"}),
        ],
    },
    "video jobs wait while no video stage finishes": {
        "input_series": [
            series("rabbitmq_queue_messages_ready", "3x30", queue="video.jobs"),
            series("rabbitmq_queue_messages_ready", "3x30", queue="prompt.jobs"),
            series(
                "pv_stage_duration_seconds_count", "5x30", component="video", stage="generating"
            ),
            series(
                "pv_stage_duration_seconds_count", "0+1x30", component="prompt", stage="prompting"
            ),
        ],
        "alert_rule_test": [
            firing(
                "ProductVideosJobsStuck",
                "20m",
                {"namespace": "videos", "queue": "video.jobs", "component": "video"},
            ),
        ],
    },
    "the generating stage takes half an hour": {
        "input_series": [
            series("pv_stage_duration_seconds_bucket", "0x40", stage="generating", le="60"),
            series("pv_stage_duration_seconds_bucket", "0+1x40", stage="generating", le="1800"),
            series("pv_stage_duration_seconds_bucket", "0+1x40", stage="generating", le="+Inf"),
            series("pv_stage_duration_seconds_bucket", "0+1x40", stage="prompting", le="60"),
            series("pv_stage_duration_seconds_bucket", "0+1x40", stage="prompting", le="+Inf"),
        ],
        "alert_rule_test": [
            firing("ProductVideosStageSlow", "10m"),  # slow, but not for 15 minutes yet
            firing("ProductVideosStageSlow", "35m", {"stage": "generating"}),
        ],
    },
    "the reconciler times a job out": {
        "input_series": [
            # A pod's first timeout in `generating`: the series appears at minute 5.
            series(
                "pv_reconciler_actions_total",
                "_x5 1x20",
                action="timed_out",
                status="generating",
                pod="v-1",
            ),
            series("pv_reconciler_actions_total", "0+1x25", action="redriven", status="queued"),
        ],
        "alert_rule_test": [
            firing("ProductVideosJobsTimedOut", "3m"),
            firing("ProductVideosJobsTimedOut", "8m", {"status": "generating"}),
            firing("ProductVideosJobsTimedOut", "25m"),  # over 15 minutes ago
        ],
    },
    "half the jobs fail": {
        "input_series": [
            series(
                "pv_jobs_finished_total", "0+1x40", status="failed", error_code="provider_error"
            ),
            series("pv_jobs_finished_total", "0+1x40", status="completed", error_code=""),
        ],
        "alert_rule_test": [
            firing("ProductVideosHighFailureRate", "8m"),
            firing("ProductVideosHighFailureRate", "30m", {}),
        ],
    },
    "the daily budget is used up": {
        "input_series": [
            # One account at its own cap is that account's business, not the budget's.
            series("pv_budget_refusals_total", "0+1x30", limit="paid_clips_per_user"),
            series("pv_budget_refusals_total", "0x5 1 2 2x30", limit="usd_per_day"),
        ],
        "alert_rule_test": [
            firing("ProductVideosSpendLimitReached", "3m"),
            firing("ProductVideosSpendLimitReached", "8m", {}),
            firing("ProductVideosSpendLimitReached", "30m"),  # over 15 minutes ago
        ],
    },
    "most of today's budget is spent": {
        "input_series": [
            series("pv_spend_today_usd", "10x5 85x10", pod="v-1"),
            series("pv_spend_limit_usd_per_day", "100x15", pod="v-1"),
        ],
        "alert_rule_test": [
            firing("ProductVideosSpendHigh", "3m"),
            firing("ProductVideosSpendHigh", "10m", {}),
        ],
    },
    "a healthy system": {
        "input_series": [
            # Spending without a daily budget (0) warns of nothing.
            series("pv_spend_today_usd", "50x40", pod="v-1"),
            series("pv_spend_limit_usd_per_day", "0x40", pod="v-1"),
            series("up", "1x40", service="pv-product-videos-video", pod="v-1"),
            series("rabbitmq_queue_messages_ready", "0x40", queue="video.jobs.dlq"),
            series("rabbitmq_queue_messages_ready", "2x40", queue="video.jobs"),
            series(
                "pv_stage_duration_seconds_count", "0+1x40", component="video", stage="generating"
            ),
            series("pv_stage_duration_seconds_bucket", "0+1x40", stage="generating", le="60"),
            series("pv_stage_duration_seconds_bucket", "0+1x40", stage="generating", le="+Inf"),
            series("pv_jobs_finished_total", "0+10x40", status="completed", error_code=""),
            series(
                "pv_jobs_finished_total", "0+1x40", status="failed", error_code="provider_error"
            ),
        ],
        "alert_rule_test": [firing(alert, "35m") for alert in SEVERITY],
    },
}


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory, helm_binary: None) -> Path:
    folder = tmp_path_factory.mktemp("rules")
    groups = rule_groups()
    (folder / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    # The behaviour tests compare labels; annotation texts are checked by `check rules`.
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (folder / "bare.yaml").write_text(yaml.safe_dump({"groups": groups}))
    return folder


def test_the_rules_pass_promtool_check(rules: Path) -> None:
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(rules / "rules.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(SEVERITY)} rules found" in result.stdout
    alerts = {r["alert"] for g in rule_groups() for r in g["rules"]}
    assert alerts == set(SEVERITY)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_alert_fires_on_its_fault_only(rules: Path, scenario: str) -> None:
    test = {"interval": "1m", "name": scenario, **SCENARIOS[scenario]}
    path = rules / f"test-{abs(hash(scenario))}.yaml"
    path.write_text(
        yaml.safe_dump({"rule_files": ["bare.yaml"], "evaluation_interval": "1m", "tests": [test]})
    )
    result = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(path)], capture_output=True, text=True, cwd=rules
    )
    assert result.returncode == 0, result.stdout + result.stderr
