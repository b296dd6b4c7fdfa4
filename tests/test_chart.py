"""The Helm chart, rendered with the real helm binary and validated object by object:
what an operator installing it would notice (hardened pods, probes, routing, switches,
dashboards, alerts) and that every metric it charts is one the code exports."""

import inspect
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from scripts import helm_check
from scripts import run as run_script
from scripts.helm_check import CASES, CHART, HelmError, template
from tests.support.fake_kube import FakeKube

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("gateway", "notifier", "prompt", "video")


pytestmark = pytest.mark.usefixtures("helm_binary")


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
        # Probes on the ops port (the gateway's and notifier's own, a worker's only one).
        ops = "ops" if component(deployment) in ("gateway", "notifier") else "http"
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": ops}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": ops}
        assert container["resources"]["requests"] and container["resources"]["limits"]
        # The Service reaches the ports uvicorn and the ops server are told to listen on.
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["UVICORN_PORT"] == str(ports["http"])
        assert env.get("OPS_PORT") == (str(ports["ops"]) if "ops" in ports else None)
        assert [p["targetPort"] for p in services[name]["spec"]["ports"]] == list(ports)


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
    assert len(secret["SIGNING_KEY"]) >= 32  # derived from the seed, never the development default
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
    expr = re.sub(r'"(\\.|[^"\\])*"|`[^`]*`', '""', expr)  # strings (label values, regexes)
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


# --- reachability: KEDA, network policies, disruption budgets, scrape targets ----------


def test_helm_check_script_passes_end_to_end() -> None:
    """`make helm-check` as CI runs it (the script finds uv itself: $UV, PATH or
    .venv-tools), so `make test` covers the target too; about 7 seconds."""
    env = {k: v for k, v in os.environ.items() if k != "UV"}
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "helm-check.sh")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout and "ok    template prod" in result.stdout


def test_keda_reaches_the_in_chart_backends_from_its_own_namespace() -> None:
    """KEDA's operator runs in another namespace: the AMQP_URL it reads (the services'
    own) must name the broker with its namespace, and every in-chart URL a real Service."""
    objects = template(set_values=("keda.enabled=true", "storage.type=s3", "minio.enabled=true"))
    (auth,) = of_kind(objects, "TriggerAuthentication").values()
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "host"
    secrets = of_kind(objects, "Secret")
    config = of_kind(objects, "ConfigMap")["pv-product-videos"]["data"]
    urls = {
        "AMQP_URL": secrets[ref["name"]]["stringData"][ref["key"]],
        "MONGODB_URL": secrets["pv-product-videos-backends"]["stringData"]["MONGODB_URL"],
        "S3_ENDPOINT_URL": config["S3_ENDPOINT_URL"],
    }
    services = of_kind(objects, "Service")
    for key, url in urls.items():
        parsed = urlsplit(url)
        name, namespace, svc = str(parsed.hostname).split(".")
        assert (namespace, svc) == ("videos", "svc"), (key, url)
        assert parsed.port in {p["port"] for p in services[name]["spec"]["ports"]}, (key, url)


def test_workers_never_scale_to_zero() -> None:
    """The reconciler runs in the worker pods only: KEDA may not remove them all."""
    for worker in ("prompt", "video"):
        with pytest.raises(HelmError, match="minReplicas"):
            template(set_values=("keda.enabled=true", f"keda.{worker}.minReplicas=0"))


def test_ingress_lets_the_gateway_answer_oversized_uploads() -> None:
    """nginx's body limit sits a little above the gateway's (photo + form overhead), so
    the client gets the gateway's JSON 413 rather than nginx's HTML page."""
    from gateway.core.config import GatewaySettings

    objects = template(set_values=("ingress.enabled=true",))
    (ingress,) = of_kind(objects, "Ingress").values()
    size = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert size.endswith("m")
    nginx_limit = int(size[:-1]) * 1024 * 1024
    main = (ROOT / "services" / "gateway" / "src" / "gateway" / "main.py").read_text()
    overhead = re.search(r"FORM_OVERHEAD_BYTES = (\d+) \* 1024\n", main)
    assert overhead, "gateway.main.FORM_OVERHEAD_BYTES moved"
    gateway_limit = GatewaySettings.model_fields["max_upload_bytes"].default
    gateway_limit += int(overhead.group(1)) * 1024
    assert gateway_limit < nginx_limit <= gateway_limit + 2 * 1024 * 1024


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def pod_labels(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Pod template labels by component, of every Deployment, StatefulSet and Job."""
    return {
        component(o): o["spec"]["template"]["metadata"]["labels"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet", "Job")
    }


def peers_allowed(
    rules: list[dict[str, Any]], key: str, port: int | str, protocol: str = "TCP"
) -> list[dict[str, Any] | None]:
    """The peers (`from`/`to` entries; None for any) of the rules that open `port`."""
    found: list[dict[str, Any] | None] = []
    for rule in rules:
        if any(
            p.get("port") == port and p.get("protocol", "TCP") == protocol
            for p in rule.get("ports", [])
        ):
            found += rule.get(key) or [None]
    return found


def reaches(peer: dict[str, Any] | None, labels: dict[str, str], namespace: str) -> bool:
    """Whether a NetworkPolicy peer selects a pod with `labels` in `namespace`."""
    if peer is None:
        return True
    if "ipBlock" in peer:
        return False
    ns_selector = peer.get("namespaceSelector")
    ns_labels = {"kubernetes.io/metadata.name": namespace}
    if ns_selector is None and namespace != "videos":
        return False
    if ns_selector is not None and not matches(ns_selector.get("matchLabels", {}), ns_labels):
        return False
    return matches(peer.get("podSelector", {}).get("matchLabels", {}), labels)


def test_network_policies_allow_exactly_the_paths_the_system_uses() -> None:
    (case,) = [c for c in CASES if c.name == "network-policy"]
    objects = template(set_values=(*case.set, "serviceMonitor.enabled=true"))
    policies = of_kind(objects, "NetworkPolicy")
    pods = pod_labels(objects)
    ingress_nginx = {"app.kubernetes.io/name": "ingress-nginx"}
    prometheus = {"app.kubernetes.io/name": "prometheus"}
    keda_operator = {"app.kubernetes.io/name": "keda-operator"}

    deny = policies["pv-product-videos-default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny and "egress" not in deny
    assert all(matches(deny["podSelector"]["matchLabels"], labels) for labels in pods.values())

    def policy_of(name: str) -> dict[str, Any]:
        (spec,) = [
            p["spec"]
            for p in policies.values()
            if "matchLabels" in p["spec"]["podSelector"]
            and p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == name
        ]
        assert matches(spec["podSelector"]["matchLabels"], pods[name])
        return spec

    for name in SERVICES:
        spec = policy_of(name)
        egress, ingress = spec["egress"], spec["ingress"]
        for protocol in ("UDP", "TCP"):
            assert None in peers_allowed(egress, "to", 53, protocol), (name, "DNS")
        for backend, port in (("rabbitmq", 5672), ("mongodb", 27017), ("minio", 9000)):
            peers = peers_allowed(egress, "to", port)
            assert any(reaches(p, pods[backend], "videos") for p in peers), (name, backend)
        ops = "ops" if name in ("gateway", "notifier") else "http"
        assert any(
            reaches(p, prometheus, "monitoring") for p in peers_allowed(ingress, "from", ops)
        ), (name, "scrape")
        assert not any(
            reaches(p, ingress_nginx, "ingress-nginx")
            for p in peers_allowed(ingress, "from", "ops")
        ), (name, "the ingress controller reaches no ops port")
        from_ingress = any(
            reaches(p, ingress_nginx, "ingress-nginx")
            for p in peers_allowed(ingress, "from", "http")
        )
        assert from_ingress == (name in ("gateway", "notifier")), name
        # Nothing else in the cluster reaches a service.
        assert not any(
            reaches(p, pods["gateway"], "videos") for p in peers_allowed(ingress, "from", "http")
        )

    broker = policy_of("rabbitmq")["ingress"]
    assert any(reaches(p, pods["gateway"], "videos") for p in peers_allowed(broker, "from", 5672))
    assert any(reaches(p, keda_operator, "keda") for p in peers_allowed(broker, "from", 5672))
    assert any(reaches(p, prometheus, "monitoring") for p in peers_allowed(broker, "from", 15692))
    for backend, port in (("mongodb", 27017), ("minio", 9000)):
        allowed = peers_allowed(policy_of(backend)["ingress"], "from", port)
        assert allowed and all(reaches(p, pods["prompt"], "videos") for p in allowed), backend
        assert not any(reaches(p, keda_operator, "keda") for p in allowed), backend
    # The bucket job reaches MinIO.
    bucket_egress = policy_of("minio-bucket")["egress"]
    assert any(
        reaches(p, pods["minio"], "videos") for p in peers_allowed(bucket_egress, "to", 9000)
    )


@pytest.mark.parametrize("disabled", [(), ("video.enabled=false",)], ids=["all", "no-video"])
def test_one_disruption_budget_per_service(disabled: tuple[str, ...]) -> None:
    objects = template(set_values=disabled)
    deployments = {component(d): d for d in of_kind(objects, "Deployment").values()}
    budgets = {component(b): b["spec"] for b in of_kind(objects, "PodDisruptionBudget").values()}
    assert budgets.keys() == deployments.keys()
    pods = pod_labels(objects)
    for name, spec in budgets.items():
        # Selects this service's pods and no other's.
        assert spec["selector"] == deployments[name]["spec"]["selector"]
        assert [
            c for c, labels in pods.items() if matches(spec["selector"]["matchLabels"], labels)
        ] == [name]
        # A drain may always take one pod, even of a single-replica service.
        assert spec["maxUnavailable"] >= 1 and "minAvailable" not in spec
    assert (
        of_kind(template(set_values=("podDisruptionBudget.enabled=false",)), "PodDisruptionBudget")
        == {}
    )


def test_each_service_monitor_finds_its_service_and_port() -> None:
    objects = template(set_values=("serviceMonitor.enabled=true",))
    services = of_kind(objects, "Service")
    monitors = of_kind(objects, "ServiceMonitor")
    assert sorted(component(m) for m in monitors.values()) == sorted((*SERVICES, "rabbitmq"))
    for name, monitor in monitors.items():
        spec = monitor["spec"]
        assert spec["namespaceSelector"] == {"matchNames": ["videos"]}
        selected = [
            s
            for s in services.values()
            if matches(spec["selector"]["matchLabels"], s["metadata"]["labels"])
        ]
        assert [component(s) for s in selected] == [component(monitor)], name
        ports = {p["name"] for p in selected[0]["spec"]["ports"]}
        for endpoint in spec["endpoints"]:
            assert endpoint["port"] in ports, (name, endpoint["port"], ports)
            relabel = endpoint["relabelings"][0]
            assert relabel["targetLabel"] == "component"


# --- dashboards and alerts: each query asks about this release only ---------------------


def test_dashboard_queries_keep_services_and_brokers_apart() -> None:
    objects = template(set_values=("grafana.dashboards.enabled=true",))
    for name, board in helm_check.dashboards(objects):
        for panel in helm_check.panels(board):
            for target in panel.get("targets", []):
                expr, where = target["expr"], (name, panel["title"])
                # FastStream's metrics come from all four services: name the ones meant.
                if "faststream_" in expr:
                    assert re.search(r'component=~?"', expr), where
                # RabbitMQ's: this namespace's broker first, another only as the fallback.
                if "rabbitmq_" in expr:
                    assert 'namespace="$namespace"' in expr, where
                    assert " or sum" in expr, where
                # A free-text prefix goes into a regex escaped, at the start of a raw
                # string (Grafana's escapes are not PromQL "..." escapes).
                assert "${prefix}" not in expr and "$prefix" not in expr, where
                assert set(re.findall(r"(.)\$\{prefix:regex\}", expr)) <= {"`"}, where


@pytest.mark.parametrize(
    ("values", "matcher"),
    [
        ((), 'namespace="videos", '),
        (("rabbitmq.enabled=false", "secrets.AMQP_URL=amqp://broker.example/"), ""),
        (
            (
                "rabbitmq.enabled=false",
                "secrets.AMQP_URL=amqp://b/",
                "prometheusRule.rabbitmqNamespace=mq",
            ),
            'namespace="mq", ',
        ),
    ],
    ids=["in-chart", "external", "external-namespace"],
)
def test_queue_alerts_read_this_releases_broker(values: tuple[str, ...], matcher: str) -> None:
    objects = template(set_values=("prometheusRule.enabled=true", *values))
    (rule,) = of_kind(objects, "PrometheusRule").values()
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    selectors = re.findall(r"rabbitmq_\w+\{([^}]*)\}", "\n".join(exprs))
    assert len(selectors) == 2
    assert all(s.startswith(f"{matcher}queue=~") for s in selectors), selectors


def test_an_alert_names_jobs_the_reconciler_timed_out() -> None:
    import common.reconciler

    objects = template(set_values=("prometheusRule.enabled=true",))
    (rule,) = of_kind(objects, "PrometheusRule").values()
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    expr = alerts["ProductVideosJobsTimedOut"]["expr"]
    assert 'pv_reconciler_actions_total{namespace="videos", action="timed_out"}' in expr
    # The action is the one the reconciler counts when it fails a job on a deadline.
    assert 'return "timed_out"' in inspect.getsource(common.reconciler)
    assert "sum by (status)" in expr
    assert alerts["ProductVideosJobsTimedOut"]["labels"]["severity"]
    off = template(set_values=("prometheusRule.enabled=false",))
    assert of_kind(off, "PrometheusRule") == {}


# --- storage: what works on more than one node ------------------------------------------


def claims_mounted(objects: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Persistent volume claims each workload's pods mount, by component."""
    mounted: dict[str, set[str]] = {}
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            pod = obj["spec"]["template"]["spec"]
            names = {
                v["persistentVolumeClaim"]["claimName"]
                for v in pod.get("volumes", [])
                if "persistentVolumeClaim" in v
            }
            mounted[component(obj)] = names
    return mounted


def test_default_storage_is_the_in_chart_minio_and_no_shared_volume() -> None:
    """By default nothing is mounted by pods that may land on different nodes: the files go
    to the in-chart MinIO, and the bucket exists without waiting for post-install hooks."""
    objects = template()
    config = of_kind(objects, "ConfigMap")["pv-product-videos"]["data"]
    assert config["STORAGE_URL"] == "s3://product-videos"
    assert config["S3_ENDPOINT_URL"] == "http://pv-product-videos-minio.videos.svc:9000"
    assert of_kind(objects, "PersistentVolumeClaim") == {}
    assert all(not claims for claims in claims_mounted(objects).values())
    (job,) = of_kind(objects, "Job").values()
    assert "helm.sh/hook" not in job["metadata"].get("annotations", {})
    assert job["metadata"]["name"].startswith("pv-product-videos-minio-bucket-")


@pytest.mark.parametrize(
    "claim", [(), ("storage.filesystem.existingClaim=my-files",)], ids=["chart", "existing"]
)
def test_a_read_write_once_volume_on_several_nodes_is_refused(claim: tuple[str, ...]) -> None:
    with pytest.raises(HelmError, match=r"ReadWriteOnce volume attaches to one node only"):
        template(set_values=("minio.enabled=false", "storage.type=filesystem", *claim))


def test_filesystem_storage_needs_minio_off() -> None:
    with pytest.raises(HelmError, match=r"set minio\.enabled=false"):
        template(set_values=("storage.type=filesystem", "storage.filesystem.singleNode=true"))
    with pytest.raises(HelmError, match=r"set minio\.enabled=false"):
        template(set_values=("storage.s3.endpointUrl=https://acc.r2.cloudflarestorage.com",))


@pytest.mark.parametrize("case", ["filesystem-rwx", "filesystem-one-node"])
def test_the_shared_volume_is_mounted_by_the_services_only(case: str) -> None:
    (found,) = [c for c in CASES if c.name == case]
    objects = helm_check.render(found)
    (claim,) = of_kind(objects, "PersistentVolumeClaim")
    mounted = claims_mounted(objects)
    assert {name for name, claims in mounted.items() if claim in claims} == set(SERVICES)
    assert "minio" not in mounted
    config = of_kind(objects, "ConfigMap")["pv-product-videos"]["data"]
    assert config["STORAGE_URL"] == "file:///data/objects"


# --- deterministic rendering: GitOps and no-op upgrades ---------------------------------

EVERYTHING = (
    "ingress.enabled=true",
    "keda.enabled=true",
    "networkPolicy.enabled=true",
    "serviceMonitor.enabled=true",
    "prometheusRule.enabled=true",
    "grafana.dashboards.enabled=true",
)


def pod_templates(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        f"{o['kind']}/{o['metadata']['name']}": o["spec"]["template"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet", "Job")
    }


def test_two_renders_of_the_same_values_are_identical() -> None:
    """helm template, Argo CD and Flux render without a cluster: generated secrets would
    change on every sync (sessions and links break), so nothing may be random."""
    args = ("template", "pv", str(CHART), "--set", helm_check.SEED)
    args += tuple(a for pair in EVERYTHING for a in ("--set", pair))
    assert helm_check.helm(*args) == helm_check.helm(*args)  # two renders, not one cached
    # Nor may a template ask the cluster or the clock (comments left out), except the
    # checks that refuse impossible upgrades: they only decide whether the render fails.
    random = r"\b(lookup|rand[A-Z]\w*|randInt|uuidv4|now|gen[A-Z]\w*|bcrypt|htpasswd)\b"
    guard = r'\{\{- define "product-videos.refuseImpossibleChanges" -\}\}.*?\n\{\{- end \}\}\n\n'
    for path in (CHART / "templates").rglob("*.*"):
        text = re.sub(guard, "", path.read_text(), flags=re.S)
        text = re.sub(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", "", text, flags=re.S)
        actions = re.findall(r"\{\{.*?\}\}", text, flags=re.S)
        assert not [a for a in actions if re.search(random, a)], path.name


def test_a_no_op_upgrade_changes_no_pod_template() -> None:
    installed = pod_templates(template(set_values=EVERYTHING))
    upgraded = pod_templates(template(set_values=EVERYTHING, upgrade=True))
    assert installed == upgraded
    assert len(installed) == 8  # four services, three backends, the bucket job


def test_without_a_seed_the_render_says_what_to_set() -> None:
    with pytest.raises(HelmError, match=r"secrets\.SIGNING_KEY is empty .* secrets\.seed"):
        template(seed=False)
    # Everything given: no seed needed.
    given = (
        "secrets.SIGNING_KEY=k",
        "rabbitmq.password=r",
        "mongodb.password=m",
        "minio.rootPassword=minio-pass",
    )
    secrets = of_kind(template(set_values=given, seed=False), "Secret")
    assert secrets["pv-product-videos"]["stringData"]["SIGNING_KEY"] == "k"
    assert secrets["pv-product-videos-backends"]["stringData"]["mongodb-password"] == "m"


def secrets_checksum(*values: str) -> str:
    deployments = of_kind(template(set_values=values), "Deployment")
    pod = deployments["pv-product-videos-gateway"]["spec"]["template"]
    return str(pod["metadata"]["annotations"]["checksum/secret"])


@pytest.mark.parametrize(
    "change",
    [
        "secrets.OPENROUTER_API_KEY=sk-or-new",
        "secrets.seed=another-seed",
        "rabbitmq.password=changed",
        "mongodb.password=changed",
        "minio.rootPassword=changed-pass",
        "secrets.existingSecret=mine",
        "mongodb.existingSecret=my-mongodb",
    ],
)
def test_the_checksum_covers_every_secret_the_pods_read(change: str) -> None:
    assert secrets_checksum() != secrets_checksum(change)


def test_each_backend_can_use_the_operators_secret() -> None:
    objects = template(
        set_values=(
            "secrets.existingSecret=app",
            "rabbitmq.existingSecret=mq",
            "mongodb.existingSecret=db",
            "minio.existingSecret=s3",
            "keda.enabled=true",
        ),
        seed=False,
    )
    assert of_kind(objects, "Secret") == {}  # nothing to derive, nothing written
    refs: dict[str, set[str]] = {}
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            for container in obj["spec"]["template"]["spec"]["containers"]:
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        refs.setdefault(ref["name"], set()).add(ref["key"])
    assert refs == {
        "mq": {"AMQP_URL", "rabbitmq-username", "rabbitmq-password"},
        "db": {"MONGODB_URL", "mongodb-username", "mongodb-password"},
        "s3": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
    }
    (auth,) = of_kind(objects, "TriggerAuthentication").values()
    assert auth["spec"]["secretTargetRef"][0]["name"] == "mq"


# --- upgrades the API server would refuse, refused at render time -----------------------


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube.running() as fake:
        yield fake


def stored_statefulset(kube: FakeKube, name: str, size: str, storage_class: str = "") -> None:
    claim: dict[str, Any] = {"accessModes": ["ReadWriteOnce"]}
    claim["resources"] = {"requests": {"storage": size}}
    if storage_class:
        claim["storageClassName"] = storage_class
    template_ = {"metadata": {"name": "data"}, "spec": claim}
    kube.put(
        "apps/v1",
        "StatefulSet",
        f"pv-product-videos-{name}",
        spec={"volumeClaimTemplates": [template_]},
    )


def test_a_statefulset_claim_size_change_is_refused_with_what_to_do(kube: FakeKube) -> None:
    stored_statefulset(kube, "mongodb", "5Gi")
    # The same size, written differently, is no change.
    template(set_values=("mongodb.persistence.size=5120Mi",), kubeconfig=kube.kubeconfig)
    with pytest.raises(HelmError) as refused:
        template(set_values=("mongodb.persistence.size=10Gi",), kubeconfig=kube.kubeconfig)
    message = str(refused.value)
    assert "mongodb.persistence.size is 10Gi" in message and "created with 5Gi" in message
    assert "kubectl -n videos patch pvc data-pv-product-videos-mongodb-0" in message
    assert "--cascade=orphan" in message
    # Without a cluster to compare with (helm template, GitOps) nothing is refused.
    template(set_values=("mongodb.persistence.size=10Gi",))


def test_a_statefulset_storage_class_change_is_refused(kube: FakeKube) -> None:
    stored_statefulset(kube, "rabbitmq", "2Gi", storage_class="standard")
    template(set_values=("rabbitmq.persistence.storageClass=standard",), kubeconfig=kube.kubeconfig)
    with pytest.raises(HelmError, match=r'rabbitmq\.persistence\.storageClass is "fast"'):
        template(set_values=("rabbitmq.persistence.storageClass=fast",), kubeconfig=kube.kubeconfig)


FILES = ("minio.enabled=false", "storage.type=filesystem", "storage.filesystem.singleNode=true")


def stored_claim(kube: FakeKube, size: str, storage_class: str = "") -> None:
    spec: dict[str, Any] = {"resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    kube.put("v1", "PersistentVolumeClaim", "pv-product-videos-objects", spec=spec)


def test_a_shared_volume_cannot_shrink(kube: FakeKube) -> None:
    stored_claim(kube, "10Gi", "standard")
    with pytest.raises(HelmError, match=r"a volume cannot shrink\. Keep 10Gi"):
        template(set_values=(*FILES, "storage.filesystem.size=5Gi"), kubeconfig=kube.kubeconfig)


@pytest.mark.parametrize(
    ("storage_class", "expandable", "refusal"),
    [
        ("", False, "statically provisioned volume"),
        ("standard", False, "storage class standard does not allow volume expansion"),
        ("standard", True, None),
    ],
    ids=["static", "fixed-class", "expandable"],
)
def test_a_shared_volume_grows_only_where_it_can(
    kube: FakeKube, storage_class: str, expandable: bool, refusal: str | None
) -> None:
    stored_claim(kube, "10Gi", storage_class)
    if storage_class:
        kube.put(
            "storage.k8s.io/v1", "StorageClass", storage_class, allowVolumeExpansion=expandable
        )
    grow = (*FILES, "storage.filesystem.size=20Gi")
    if refusal:
        with pytest.raises(HelmError, match=f"{refusal}.*existingClaim"):
            template(set_values=grow, kubeconfig=kube.kubeconfig)
    else:
        template(set_values=grow, kubeconfig=kube.kubeconfig)


# --- custom resources against their CRDs' schemas ---------------------------------------


def test_custom_resources_are_checked_against_their_real_crds() -> None:
    objects = template(set_values=EVERYTHING)
    custom = [o for o in objects if (o["apiVersion"], o["kind"]) in helm_check.CRD_SCHEMAS]
    kinds = {o["kind"] for o in custom}
    assert kinds == {"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PrometheusRule"}
    for obj in custom:
        assert helm_check.validate(obj) == [], obj["metadata"]["name"]
        # A field the CRD does not know is an error, not silently dropped.
        typo = json.loads(json.dumps(obj))
        typo["spec"]["unknownField"] = 1
        assert any("unknownField" in p for p in helm_check.validate(typo)), obj["kind"]


@pytest.mark.parametrize(
    ("kind", "path", "value", "problem"),
    [
        ("ScaledObject", ("spec", "minReplicaCount"), "one", "is not of type 'integer'"),
        ("ScaledObject", ("spec", "triggers", 0, "metadata", "value"), 2, "is not of type"),
        ("ServiceMonitor", ("spec", "endpoints", 0, "intervall"), "30s", "intervall"),
        ("ServiceMonitor", ("spec", "endpoints", 0, "interval"), "30 seconds", "does not match"),
        ("PrometheusRule", ("spec", "groups", 0, "rules", 0, "for"), "5 minutes", "does not match"),
        ("TriggerAuthentication", ("spec", "secretTargetRef", 0, "parameter"), None, "None"),
    ],
)
def test_a_custom_resource_mistake_is_named(
    kind: str, path: tuple[str | int, ...], value: Any, problem: str
) -> None:
    objects = template(set_values=EVERYTHING)
    obj = json.loads(json.dumps(next(o for o in objects if o["kind"] == kind)))
    target = obj
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    problems = helm_check.validate(obj)
    assert any(problem in p for p in problems), problems


# --- helm test ---------------------------------------------------------------------------


def test_helm_test_asks_each_service_for_readyz_from_inside_the_cluster() -> None:
    objects = template(set_values=("networkPolicy.enabled=true", "video.enabled=false"))
    tests = {p["metadata"]["name"]: p for p in of_kind(objects, "Pod").values()}
    services = of_kind(objects, "Service")
    asked = {}
    for name, pod in tests.items():
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test", name
        (container,) = pod["spec"]["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        url = urlsplit(re.search(r'url = "([^"]+)"', container["command"][-1]).group(1))
        service = services[str(url.hostname)]
        assert url.port in {p["port"] for p in service["spec"]["ports"]}
        assert url.path == "/readyz"
        asked[component(service)] = name
    assert sorted(asked) == ["gateway", "notifier", "prompt"]
    # Allowed through the network policies: out of the test pod, into each service.
    policies = of_kind(objects, "NetworkPolicy")
    test_labels = next(iter(tests.values()))["metadata"]["labels"]
    egress = policies["pv-product-videos-test"]["spec"]["egress"]
    deployments = {component(d): d for d in of_kind(objects, "Deployment").values()}
    for name in asked:
        pod = deployments[name]["spec"]["template"]
        port = pod["spec"]["containers"][0]["ports"][0]["containerPort"]
        peers = peers_allowed(egress, "to", port)
        assert any(reaches(p, pod["metadata"]["labels"], "videos") for p in peers), name
        ingress = policies[f"pv-product-videos-{name}"]["spec"]["ingress"]
        assert any(
            reaches(p, test_labels, "videos") for p in peers_allowed(ingress, "from", "http")
        )


# --- operator knobs -----------------------------------------------------------------------


def test_operator_knobs_reach_every_service_pod() -> None:
    (case,) = [c for c in CASES if c.name == "operator-knobs"]
    objects = helm_check.render(case)
    for deployment in of_kind(objects, "Deployment").values():
        name = component(deployment)
        pod = deployment["spec"]["template"]["spec"]
        main, *others = pod["containers"]
        assert main["name"] == name
        assert pod["priorityClassName"] == "high"
        assert [c["name"] for c in pod["initContainers"]] == ["wait"]
        # A service's own list replaces the shared one.
        assert [c["name"] for c in others] == (["own"] if name == "video" else ["proxy"])
        assert {"name": "HTTPS_PROXY", "value": "http://proxy:3128"} in main["env"]
        assert {"name": "ca", "configMap": {"name": "corp-ca"}} in pod["volumes"]
        mount = {"name": "ca", "mountPath": "/etc/ssl/corp", "readOnly": True}
        assert mount in main["volumeMounts"]
        # What the chart sets stays.
        assert {m["mountPath"] for m in main["volumeMounts"]} >= {"/tmp"}
        assert any(e["name"] == "UVICORN_PORT" for e in main["env"])
    images = {
        component(o): o["spec"]["template"]["spec"]["containers"][0]["image"]
        for o in objects
        if o["kind"] in ("StatefulSet", "Job")
    }
    for backend, digest in (
        ("rabbitmq", "a"),
        ("mongodb", "b"),
        ("minio", "c"),
        ("minio-bucket", "d"),
    ):
        assert images[backend].endswith(f"@sha256:{digest * 64}"), images[backend]
    for statefulset in of_kind(objects, "StatefulSet").values():
        assert statefulset["spec"]["template"]["spec"]["priorityClassName"] == "high"


def test_a_bad_digest_is_refused_by_the_schema() -> None:
    with pytest.raises(HelmError, match="imageDigest"):
        template(set_values=("mongodb.imageDigest=latest",))


def test_network_policies_are_on_by_default_with_ipv6_and_shared_ranges() -> None:
    policies = of_kind(template(), "NetworkPolicy")
    assert "pv-product-videos-default-deny" in policies
    for name in SERVICES:
        egress = policies[f"pv-product-videos-{name}"]["spec"]["egress"]
        blocks = {p["ipBlock"]["cidr"]: p["ipBlock"] for p in peers_allowed(egress, "to", 443) if p}
        assert set(blocks) == {"0.0.0.0/0", "::/0"}, name
        assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"} <= set(
            blocks["0.0.0.0/0"]["except"]
        )
        assert {"fc00::/7", "fe80::/10"} <= set(blocks["::/0"]["except"])
