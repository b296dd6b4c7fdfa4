"""Lint and render the Helm chart for every important values combination, and validate
every rendered object: Kubernetes kinds against the API schemas (kubernetes-validate,
strict: unknown fields are errors), the custom resources (KEDA, Prometheus Operator)
against the OpenAPI schemas of their real CRDs (scripts/crds/, strict the same way) plus
checks of what their controllers need, and every PromQL expression for balance.

Run through `scripts/helm-check.sh` (which fetches helm first); tests/test_chart.py uses
the same functions, so `make test` covers the chart too.
"""

import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "product-videos"
HELM = ROOT / ".bin" / "helm"
KUBE_VERSION = "1.34.0"
VALUES_FILES = ("values.yaml", "values-dev.yaml", "values-prod.yaml")


@dataclass(frozen=True)
class Case:
    """One `helm template` run: values files from the chart folder plus `--set` pairs."""

    name: str
    values: tuple[str, ...] = ()
    set: tuple[str, ...] = ()


CASES = (
    Case("default"),
    Case("dev", values=("values-dev.yaml",)),
    Case("prod", values=("values-prod.yaml",)),
    Case("ingress", set=("ingress.enabled=true", "ingress.tls.enabled=true")),
    Case("autoscaling", set=("autoscaling.enabled=true",)),
    Case("keda", set=("keda.enabled=true",)),
    Case("network-policy", set=("networkPolicy.enabled=true", "keda.enabled=true")),
    Case("monitoring", set=("serviceMonitor.enabled=true", "prometheusRule.enabled=true")),
    Case("dashboards", set=("grafana.dashboards.enabled=true",)),
    Case(
        "existing-secret",
        set=(
            "secrets.existingSecret=pv-secrets",
            "rabbitmq.enabled=false",
            "mongodb.enabled=false",
        ),
    ),
    Case(
        "s3",
        set=(
            "minio.enabled=false",
            "storage.s3.endpointUrl=https://account.r2.cloudflarestorage.com",
            "storage.s3.region=auto",
        ),
    ),
    Case(
        "filesystem-rwx",
        set=(
            "minio.enabled=false",
            "storage.type=filesystem",
            "storage.filesystem.accessModes={ReadWriteMany}",
            "storage.filesystem.storageClass=efs",
        ),
    ),
    Case(
        "filesystem-one-node",
        set=(
            "minio.enabled=false",
            "storage.type=filesystem",
            "storage.filesystem.singleNode=true",
        ),
    ),
    Case(
        "operator-knobs",
        set=(
            "defaults.priorityClassName=high",
            "defaults.extraEnv[0].name=HTTPS_PROXY",
            "defaults.extraEnv[0].value=http://proxy:3128",
            "defaults.extraVolumes[0].name=ca",
            "defaults.extraVolumes[0].configMap.name=corp-ca",
            "defaults.extraVolumeMounts[0].name=ca",
            "defaults.extraVolumeMounts[0].mountPath=/etc/ssl/corp",
            "defaults.extraVolumeMounts[0].readOnly=true",
            "defaults.initContainers[0].name=wait",
            "defaults.initContainers[0].image=busybox:1.37",
            "defaults.sidecars[0].name=proxy",
            "defaults.sidecars[0].image=envoyproxy/envoy:v1.34",
            "video.sidecars[0].name=own",
            "video.sidecars[0].image=busybox:1.37",
            f"rabbitmq.imageDigest=sha256:{'a' * 64}",
            f"mongodb.imageDigest=sha256:{'b' * 64}",
            f"minio.imageDigest=sha256:{'c' * 64}",
            f"minio.mcImageDigest=sha256:{'d' * 64}",
        ),
    ),
    Case(
        "queue-prefix",
        set=("config.AMQP_PREFIX=staging.", "keda.enabled=true", "prometheusRule.enabled=true"),
    ),
)


class HelmError(Exception):
    pass


def helm(*args: str, kubeconfig: Path | None = None) -> str:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)} if kubeconfig else None
    result = subprocess.run([str(HELM), *args], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise HelmError(f"helm {' '.join(args)}\n{result.stderr.strip()}")
    return result.stdout


# What an operator sets once per installation (values.yaml: secrets.seed); the checks pass
# it unless they test what happens without it.
SEED = "secrets.seed=0123456789abcdef0123456789abcdef"


def lint(values_file: str) -> str:
    return helm("lint", "--strict", str(CHART), "-f", str(CHART / values_file), "--set", SEED)


def template_text(
    values: tuple[str, ...] = (),
    set_values: tuple[str, ...] = (),
    release: str = "pv",
    seed: bool = True,
    upgrade: bool = False,
    kubeconfig: Path | None = None,
) -> str:
    """What `helm template` prints (hooks included); `upgrade` renders as for an upgrade;
    with `kubeconfig` the chart's lookups read that cluster (--dry-run=server)."""
    args = ["template", release, str(CHART), "--namespace", "videos"]
    if kubeconfig:
        args += ["--dry-run=server", "--disable-openapi-validation"]
    else:
        args += ["--kube-version", KUBE_VERSION]
    if upgrade:
        args.append("--is-upgrade")
    for name in values:
        args += ["-f", str(CHART / name)]
    for pair in (SEED, *set_values) if seed else set_values:
        args += ["--set", pair]
    if kubeconfig:
        return helm(*args, kubeconfig=kubeconfig)
    return _rendered(tuple(args))


@functools.cache
def _rendered(args: tuple[str, ...]) -> str:
    """Offline renders are a function of their arguments (the chart does not change
    while the checks run): each combination is rendered once per process."""
    return helm(*args)


def template(
    values: tuple[str, ...] = (),
    set_values: tuple[str, ...] = (),
    release: str = "pv",
    seed: bool = True,
    upgrade: bool = False,
    kubeconfig: Path | None = None,
) -> list[dict[str, Any]]:
    """The objects `helm template` renders (hooks included), in order."""
    text = template_text(values, set_values, release, seed, upgrade, kubeconfig)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(case: Case) -> list[dict[str, Any]]:
    return template(case.values, case.set)


# --- custom resources: what their controllers need beyond their schemas ----------------


def promql_problems(expr: str) -> list[str]:
    """Unbalanced brackets or quotes: what a broken template usually leaves behind.
    Strings ("..." and raw `...`) are left out first."""
    stripped = re.sub(r'"(\\.|[^"\\])*"|`[^`]*`', '""', expr)
    if stripped.count('"') % 2:
        return [f"unbalanced quotes in {expr!r}"]
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in stripped:
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return [f"unbalanced {char!r} in {expr!r}"]
    return [f"unclosed {stack[-1]!r} in {expr!r}"] if stack else []


def check_scaled_object(obj: dict[str, Any]) -> list[str]:
    spec = obj["spec"]
    problems = []
    if not spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 100):
        problems.append("minReplicaCount must not exceed maxReplicaCount")
    for trigger in spec["triggers"]:
        if trigger["type"] == "rabbitmq":
            if not trigger["metadata"].get("queueName"):
                problems.append("a rabbitmq trigger needs queueName")
            if "authenticationRef" not in trigger and "host" not in trigger["metadata"]:
                problems.append("a rabbitmq trigger needs a host or an authenticationRef")
    return problems


def check_trigger_authentication(obj: dict[str, Any]) -> list[str]:
    if not obj["spec"].get("secretTargetRef"):
        return ["a TriggerAuthentication needs secretTargetRef"]
    return []


def check_service_monitor(obj: dict[str, Any]) -> list[str]:
    problems = []
    if not obj["spec"].get("selector", {}).get("matchLabels"):
        problems.append("a ServiceMonitor without selector.matchLabels scrapes every Service")
    for endpoint in obj["spec"].get("endpoints", []):
        if not endpoint.get("port"):
            problems.append("an endpoint needs a port name")
    return problems


def check_prometheus_rule(obj: dict[str, Any]) -> list[str]:
    problems = []
    for group in obj["spec"]["groups"]:
        for rule in group.get("rules", []):
            problems += promql_problems(str(rule["expr"]))
            if rule.get("alert") and not rule.get("labels", {}).get("severity"):
                problems.append(f"{rule['alert']}: an alert needs a severity label")
    return problems


CUSTOM: dict[tuple[str, str], Callable[[dict[str, Any]], list[str]]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): check_scaled_object,
    ("keda.sh/v1alpha1", "TriggerAuthentication"): check_trigger_authentication,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): check_service_monitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): check_prometheus_rule,
}


def dashboards(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file name, parsed JSON) of every Grafana dashboard in the rendered ConfigMaps."""
    for obj in objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"].get("labels", {}).get(
            "grafana_dashboard"
        ):
            for name, text in obj["data"].items():
                yield name, json.loads(text)


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


# --- custom resources: their CRDs' own schemas ---------------------------------------

CRDS = ROOT / "scripts" / "crds"


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A CRD's structural schema as a JSON Schema that refuses unknown fields, as the API
    server does with `fieldValidation=Strict` (it would silently drop them otherwise):
    every object with listed properties and no open map gets additionalProperties: false."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "x-kubernetes-int-or-string" and value:
            out["type"] = ["integer", "string"]
        elif key in ("properties", "patternProperties"):
            out[key] = {name: strict(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = strict(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [strict(sub) for sub in value]
        elif not key.startswith("x-kubernetes-"):
            out[key] = value
    open_map = (
        schema.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in schema
    )
    if "properties" in schema and not open_map:
        out["additionalProperties"] = False
    return out


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict schema, for every served version of the stored CRDs."""
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served", True):
                schema = strict(version["schema"]["openAPIV3Schema"])
                # metadata is the API server's (ObjectMeta), checked there, not in the CRD.
                schema["properties"]["metadata"] = {"type": "object"}
                schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


CRD_SCHEMAS = crd_schemas()


def validate_custom(obj: dict[str, Any]) -> list[str]:
    """A custom resource against its CRD's schema, then what its controller needs."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    validator = jsonschema.Draft7Validator(CRD_SCHEMAS[key])
    problems = [
        f"{'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    ]
    # The controllers' needs are checked on an object of the right shape only.
    return problems or CUSTOM[key](obj)


def validate(obj: dict[str, Any]) -> list[str]:
    """Problems with one rendered object (empty when it is valid)."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    if key in CUSTOM:
        return validate_custom(obj)
    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{'.'.join(str(p) for p in e.path)}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no schema for {key[0]} {key[1]}"]
    return []


def check_case(case: Case) -> list[str]:
    """Render one case and return its problems, each prefixed with the object it is about."""
    try:
        objects = render(case)
    except HelmError as e:
        return [str(e)]
    problems = []
    for obj in objects:
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        problems += [f"{where}: {p}" for p in validate(obj)]
    for name, dashboard in dashboards(objects):
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                where = f"{name} {panel['title']!r}"
                problems += [f"{where}: {p}" for p in promql_problems(target["expr"])]
    return problems


def main() -> int:
    failed = False
    for values_file in VALUES_FILES:
        try:
            lint(values_file)
            print(f"ok    lint --strict -f {values_file}")
        except HelmError as e:
            failed = True
            print(f"FAIL  lint --strict -f {values_file}\n{e}")
    for case in CASES:
        problems = check_case(case)
        failed |= bool(problems)
        print(f"{'FAIL' if problems else 'ok  '}  template {case.name}")
        for problem in problems:
            print(f"      {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
