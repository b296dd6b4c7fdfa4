"""Debian's Prometheus (`make prometheus`) as a test runs it: scraping real processes
every second, each target labelled as the chart's ServiceMonitors label it, optionally
evaluating rule files every second."""

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.backends import free_port

PROMETHEUS = shutil.which("prometheus")
RELEASE = "pv-product-videos"
NAMESPACE = "videos"


@dataclass(frozen=True)
class Target:
    """One scraped endpoint: `component` is the chart's name for it (gateway, rabbitmq)."""

    component: str
    address: str  # host:port
    path: str = "/metrics"

    def scrape_config(self) -> dict[str, Any]:
        # What the Prometheus Operator makes of the chart's ServiceMonitor: the job is the
        # Service's name, the relabeling adds `component`.
        service = f"{RELEASE}-{self.component}"
        return {
            "job_name": service,
            "metrics_path": self.path,
            "static_configs": [
                {
                    "targets": [self.address],
                    "labels": {
                        "namespace": NAMESPACE,
                        "service": service,
                        "pod": f"{service}-0",
                        "component": self.component,
                    },
                }
            ],
        }


@contextlib.contextmanager
def running(
    folder: Path, targets: Sequence[Target], rule_files: Sequence[Path] = ()
) -> Iterator[str]:
    """A Prometheus scraping `targets` every second; yields its URL."""
    assert PROMETHEUS
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [target.scrape_config() for target in targets],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = folder / "prometheus.log"
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(log.read_text()[-2000:])
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


async def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    """The instant vector `expr` evaluates to now."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{prometheus}/api/v1/query", params={"query": expr})
    body = response.json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def alerts(prometheus: str) -> list[dict[str, Any]]:
    """The alerts of the loaded rules that are pending or firing, with their labels."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{prometheus}/api/v1/alerts")
    body = response.json()
    assert body["status"] == "success", body
    found: list[dict[str, Any]] = body["data"]["alerts"]
    return found
