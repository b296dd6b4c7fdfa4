"""`make chart-e2e`: the chart on the real cluster KUBECONFIG names (kind, k3d, a cloud one).

Installs the chart into a namespace of its own and waits for readiness, upgrades it with
the same values (no pod template may change: no Deployment or StatefulSet gets a new
generation), upgrades it with a real change (every service rolls and becomes ready again),
runs `helm test` (each Service answers /readyz from inside the cluster), submits one job
through the gateway's Service (sign-in code from the gateway's log, the offline template
prompt and local renderer) until it completes, and uninstalls. Without a cluster it says
so and exits non-zero. Not part of `make test`.

Settings (environment):
  KUBECONFIG              the cluster (kubectl's default: ~/.kube/config, current context)
  CHART_E2E_NAMESPACE     namespace to use and delete afterwards (default pv-e2e)
  CHART_E2E_KEEP=1        leave the release and namespace for a look afterwards
  CHART_E2E_SET           more --set pairs, space-separated (e.g. image.registry=ghcr.io/acme)
  CHART_E2E_TIMEOUT       helm's --timeout for each step (default 10m)
Images: `product-videos-<service>:<appVersion>` unless CHART_E2E_SET says otherwise; on
kind, `make images` and `kind load docker-image` them first (docs/deploy.md).
"""

import contextlib
import io
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "product-videos"
BIN = ROOT / ".bin"
RELEASE = "pv"
FULLNAME = f"{RELEASE}-product-videos"
API = "/api/v1"


class Failed(Exception):
    pass


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(*args: str, check: bool = True, timeout: float | None = None) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise Failed(f"{' '.join(args)}\n{result.stdout}{result.stderr}".strip())
    return result.stdout


def kubectl(*args: str, check: bool = True) -> str:
    return run(str(BIN / "kubectl"), *args, check=check, timeout=600)


def helm(*args: str) -> str:
    return run(str(BIN / "helm"), *args)


def cluster_problem() -> str | None:
    """Why no cluster answers, or None when one does."""
    try:
        result = subprocess.run(
            [str(BIN / "kubectl"), "version", "--request-timeout=10s", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return "kubectl version did not answer within 30 s"
    if result.returncode != 0 or '"serverVersion"' not in result.stdout:
        return (result.stderr.strip().splitlines() or ["no server version"])[-1]
    return None


def generations(namespace: str) -> dict[str, int]:
    """metadata.generation of the release's Deployments and StatefulSets: it grows with
    every change of their spec, pod template included."""
    text = kubectl(
        "-n", namespace, "get", "deployments,statefulsets", "-o", "json",
        "-l", f"app.kubernetes.io/instance={RELEASE}",
    )  # fmt: skip
    items = json.loads(text)["items"]
    return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["generation"] for i in items}


@contextlib.contextmanager
def port_forward(namespace: str, service: str, port: int) -> Iterator[str]:
    """A local URL for a Service, through kubectl port-forward."""
    process = subprocess.Popen(
        [str(BIN / "kubectl"), "-n", namespace, "port-forward", f"svc/{service}", f":{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not found:
            raise Failed(f"kubectl port-forward svc/{service}: {line.strip()}")
        yield f"http://127.0.0.1:{found.group(1)}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def photo() -> bytes:
    img = Image.new("RGB", (640, 480), (200, 180, 150))
    ImageDraw.Draw(img).ellipse([220, 140, 420, 340], fill=(60, 90, 160))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def sign_in_code(namespace: str, email: str, deadline: float) -> str:
    """The code the gateway logs when no SMTP server is set (its development mailer)."""
    while time.monotonic() < deadline:
        logs = kubectl(
            "-n", namespace, "logs", "--tail=200", "--prefix=false", "--max-log-requests=10",
            "-l", f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=gateway",
        )  # fmt: skip
        codes = re.findall(rf"sign-in code for {re.escape(email)}: (\d+)", logs)
        if codes:
            return codes[-1]
        time.sleep(2)
    raise Failed(f"no sign-in code for {email} in the gateway's log")


def one_job(namespace: str, port: int) -> dict[str, Any]:
    email = f"chart-e2e-{secrets.token_hex(4)}@example.com"
    deadline = time.monotonic() + 600
    with (
        port_forward(namespace, f"{FULLNAME}-gateway", port) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        asked = client.post(f"{API}/auth/email", json={"email": email})
        if asked.status_code != 202:
            raise Failed(f"POST /auth/email: {asked.status_code} {asked.text}")
        code = sign_in_code(namespace, email, deadline)
        verified = client.post(f"{API}/auth/verify", json={"email": email, "code": code})
        if verified.status_code != 200:
            raise Failed(f"POST /auth/verify: {verified.status_code} {verified.text}")
        headers = {"Authorization": f"Bearer {verified.json()['token']}"}
        submitted = client.post(
            f"{API}/jobs",
            files={"image": ("photo.jpg", photo(), "image/jpeg")},
            data={"title": "Ceramic mug", "description": "Blue glazed stoneware mug."},
            headers=headers,
        )
        if submitted.status_code != 202:
            raise Failed(f"POST /jobs: {submitted.status_code} {submitted.text}")
        job_id = submitted.json()["id"]
        while time.monotonic() < deadline:
            job: dict[str, Any] = client.get(f"{API}/jobs/{job_id}", headers=headers).json()
            if job["status"] in ("completed", "failed", "canceled"):
                if job["status"] != "completed":
                    raise Failed(f"job {job_id} ended {job['status']}: {job.get('error')}")
                return job
            time.sleep(3)
    raise Failed("the job did not finish within 10 minutes")


def e2e(namespace: str) -> None:
    timeout = os.environ.get("CHART_E2E_TIMEOUT", "10m")
    values = ["--set", f"secrets.seed={secrets.token_hex(32)}"]
    for pair in os.environ.get("CHART_E2E_SET", "").split():
        values += ["--set", pair]
    upgrade = ["upgrade", "--install", RELEASE, str(CHART), "-n", namespace]
    upgrade += ["--wait", "--timeout", timeout, *values]

    step(f"install {RELEASE} into namespace {namespace} and wait for readiness")
    helm(*upgrade, "--create-namespace")
    before = generations(namespace)

    step("no-op upgrade (same values): no pod template may change")
    helm(*upgrade)
    changed = {
        k: (v, before.get(k)) for k, v in generations(namespace).items() if v != before.get(k)
    }
    if changed:
        raise Failed(f"a no-op upgrade changed (generation now, before): {changed}")

    step("real upgrade (config.LOG_LEVEL=DEBUG): every service rolls and is ready again")
    helm(*upgrade, "--set", "config.LOG_LEVEL=DEBUG")
    after = generations(namespace)
    services = [k for k in after if k.startswith("Deployment/")]
    stale = [k for k in services if after[k] <= before[k]]
    if stale:
        raise Failed(f"a changed setting did not roll {stale}")
    for name in services:
        kubectl("-n", namespace, "rollout", "status", name.lower(), f"--timeout={timeout}")

    step("helm test: each Service answers /readyz from inside the cluster")
    print(helm("test", RELEASE, "-n", namespace, "--timeout", timeout, "--logs"))

    step("one job through the gateway's Service")
    port = int(json.loads(helm("get", "values", RELEASE, "-n", namespace, "--all", "-o", "json"))[
        "gateway"]["port"])  # fmt: skip
    job = one_job(namespace, port)
    print(f"job {job['id']} completed: {job.get('video', {}).get('duration')} s of video")


def main() -> int:
    run("bash", str(ROOT / "scripts" / "fetch-helm.sh"))
    problem = cluster_problem()
    if problem:
        where = os.environ.get("KUBECONFIG") or "~/.kube/config"
        print(
            f"No Kubernetes cluster answers (KUBECONFIG: {where}): {problem}\n"
            "make chart-e2e needs one, e.g. `kind create cluster` with the images loaded "
            "(docs/deploy.md, 'Checking the chart on a cluster').",
            file=sys.stderr,
        )
        return 2
    namespace = os.environ.get("CHART_E2E_NAMESPACE", "pv-e2e")
    try:
        e2e(namespace)
    except (Failed, subprocess.TimeoutExpired, httpx.HTTPError) as e:
        print(f"FAIL  {e}", file=sys.stderr)
        with contextlib.suppress(Failed, subprocess.TimeoutExpired):
            print(kubectl("-n", namespace, "get", "pods,jobs,pvc", "-o", "wide"), file=sys.stderr)
        return 1
    finally:
        if os.environ.get("CHART_E2E_KEEP") != "1":
            step(f"uninstall {RELEASE} and delete namespace {namespace}")
            with contextlib.suppress(Failed, subprocess.TimeoutExpired):
                helm("uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "5m")
            with contextlib.suppress(Failed, subprocess.TimeoutExpired):
                kubectl("delete", "namespace", namespace, "--wait=true", "--ignore-not-found")
    print("ok    chart-e2e: install, no-op upgrade, real upgrade, helm test, one job, uninstall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
