"""A fake Kubernetes API server, just enough for `helm template --dry-run=server`: version,
discovery of the kinds the chart renders, and GET of the objects a test puts in it (what a
real cluster holds after an earlier install). Everything else is 404, as for an empty
namespace. Chart tests use it to check what the chart's `lookup`s do with a cluster's state.

    with FakeKube.running() as kube:
        kube.put("apps/v1", "StatefulSet", "pv-product-videos-mongodb", spec={...})
        helm_check.template(..., kubeconfig=kube.kubeconfig)
"""

import contextlib
import json
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

NAMESPACE = "videos"
RELEASE = "pv"

# (group, version, kind, resource); the namespaced ones first.
KINDS = (
    ("", "v1", "ConfigMap", "configmaps"),
    ("", "v1", "Secret", "secrets"),
    ("", "v1", "Service", "services"),
    ("", "v1", "ServiceAccount", "serviceaccounts"),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("", "v1", "Pod", "pods"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("batch", "v1", "Job", "jobs"),
    ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies"),
    ("networking.k8s.io", "v1", "Ingress", "ingresses"),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    ("storage.k8s.io", "v1", "StorageClass", "storageclasses"),
)
CLUSTER_SCOPED = {"StorageClass"}


def _group_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.folder = tempfile.TemporaryDirectory()
        self.kubeconfig = Path(self.folder.name) / "kubeconfig"
        url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": url}}],
                    "users": [{"name": "fake", "user": {"token": "fake"}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                    "current-context": "fake",
                }
            )
        )

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator["FakeKube"]:
        kube = cls()
        thread = threading.Thread(target=kube.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield kube
        finally:
            kube.server.shutdown()
            kube.server.server_close()
            kube.folder.cleanup()

    def put(self, api_version: str, kind: str, name: str, **fields: Any) -> None:
        """Store an object as an earlier `helm install` of release `pv` left it."""
        group, _, version = api_version.rpartition("/")
        (resource,) = [r for g, v, k, r in KINDS if (g, v, k) == (group, version, kind)]
        prefix = f"/apis/{api_version}" if group else f"/api/{version}"
        scope = "" if kind in CLUSTER_SCOPED else f"/namespaces/{NAMESPACE}"
        metadata: dict[str, Any] = {"name": name}
        if kind not in CLUSTER_SCOPED:
            metadata |= {
                "namespace": NAMESPACE,
                "labels": {"app.kubernetes.io/managed-by": "Helm"},
                "annotations": {
                    "meta.helm.sh/release-name": RELEASE,
                    "meta.helm.sh/release-namespace": NAMESPACE,
                },
            }
        obj = {"apiVersion": api_version, "kind": kind, "metadata": metadata, **fields}
        self.objects[f"{prefix}{scope}/{resource}/{name}"] = obj

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        groups = sorted({(g, v) for g, v, _, _ in KINDS if g})
        if path == "/version":
            return 200, {"major": "1", "minor": "34", "gitVersion": "v1.34.0"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"]}
        if path == "/apis":
            return 200, {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": g,
                        "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                        "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v},
                    }
                    for g, v in groups
                ],
            }
        for group, version in [("", "v1"), *groups]:
            gv = _group_version(group, version)
            if path == (f"/apis/{gv}" if group else "/api/v1"):
                return 200, {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": gv,
                    "resources": [
                        {
                            "name": r,
                            "singularName": k.lower(),
                            "namespaced": k not in CLUSTER_SCOPED,
                            "kind": k,
                            "verbs": ["get", "list", "create", "update", "patch", "delete"],
                        }
                        for g, v, k, r in KINDS
                        if (g, v) == (group, version)
                    ],
                }
        if path in self.objects:
            return 200, self.objects[path]
        if path.rsplit("/", 1)[-1] in {r for _, _, _, r in KINDS}:  # a list (Helm's releases)
            return 200, {"kind": "List", "apiVersion": "v1", "items": []}
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        kube = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code, body = kube.answer(self.path.split("?")[0])
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
