"""Every service says whether it is alive and ready, and exposes its metrics."""

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import ALL, System

pytestmark = pytest.mark.timeout(120)


async def test_every_service_answers_its_probes(system: System) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        for name in ALL:
            url = system[name].ops_url
            health = await http.get(f"{url}/healthz")
            assert health.status_code == 200, (name, health.text)

            ready = await http.get(f"{url}/readyz")
            assert ready.status_code == 200, (name, ready.text)
            checks = ready.json()["checks"]
            assert set(checks) >= {"broker", "database", "storage"}, (name, checks)
            assert all(v == "ok" for v in checks.values()), (name, checks)

            metrics = await http.get(f"{url}/metrics")
            assert metrics.status_code == 200, name
            families = {f.name for f in text_string_to_metric_families(metrics.text)}
            assert any(f.startswith("pv_") for f in families), (name, sorted(families))


async def test_the_public_ports_show_no_metrics_and_no_backend_detail(system: System) -> None:
    """What the ingress exposes (the gateway's and notifier's own ports): alive and ready
    or not, nothing an outsider could learn the backends or the spending from."""
    async with httpx.AsyncClient(timeout=10) as http:
        for service in (system.gateway, system.notifier):
            assert service.ops_url != service.url
            ready = await http.get(f"{service.url}/readyz")
            assert ready.status_code == 200 and ready.json() == {"ready": True}, service.name
            metrics = await http.get(f"{service.url}/metrics")
            assert metrics.status_code == 404, service.name
            assert "pv_" not in metrics.text, service.name
