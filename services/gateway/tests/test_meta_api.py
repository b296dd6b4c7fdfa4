"""Probes, metrics, client configuration, security headers and the web client."""

import re
from typing import Any

import httpx

from services.gateway.tests.support import web_modules


def ops_client(gateway: Any) -> httpx.AsyncClient:
    """The gateway's ops port (OPS_PORT), which the ingress does not expose."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.app.state.ops), base_url="http://ops"
    )


async def test_healthz_and_readyz(gateway):
    assert (await gateway.client.get("/healthz")).json() == {"status": "ok"}
    ready = await gateway.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True}  # to anyone: no backend named
    async with ops_client(gateway) as ops:
        assert (await ops.get("/healthz")).json() == {"status": "ok"}
        detailed = await ops.get("/readyz")
    assert detailed.status_code == 200
    assert detailed.json() == {
        "ready": True,
        "checks": {"broker": "ok", "database": "ok", "storage": "ok"},
    }


async def test_readyz_is_503_when_the_database_is_gone(gateway):
    await gateway.services.client.close()
    ready = await gateway.client.get("/readyz")
    assert ready.status_code == 503 and ready.json() == {"ready": False}
    async with ops_client(gateway) as ops:
        detailed = await ops.get("/readyz")
    assert detailed.status_code == 503
    body = detailed.json()
    assert body["ready"] is False and body["checks"]["database"].startswith("error")
    assert body["checks"]["broker"] == "ok"


async def test_metrics_are_not_on_the_public_port(gateway):
    public = await gateway.client.get("/metrics")
    assert public.status_code == 404
    assert "pv_http_requests_total" not in public.text


async def test_metrics_count_requests_by_route_template(gateway):
    job_id = "f" * 32
    for _ in range(2):
        await gateway.client.get(f"/api/v1/jobs/{job_id}")  # 401: no token
    await gateway.submit()

    async with ops_client(gateway) as ops:
        text = (await ops.get("/metrics")).text

    line = re.search(
        r'pv_http_requests_total\{method="GET",route="/api/v1/jobs/\{job_id\}",status="401"\} '
        r"(\d+)",
        text,
    )
    assert line and int(float(line.group(1))) >= 2
    assert job_id not in text
    assert 'route="/api/v1/jobs",status="202"' in text
    assert "pv_http_request_duration_seconds_bucket" in text
    assert re.search(r"^pv_jobs_submitted_total [1-9]", text, re.M)


async def test_config_tells_the_client_what_it_needs(gateway):
    config = (await gateway.client.get("/api/v1/config")).json()
    assert config["ws_url"] == "ws://localhost:8001/ws"
    assert config["aspect_ratios"] == ["9:16", "1:1", "16:9"]
    assert config["durations"] == {"min": 3, "max": 10, "default": 5}
    assert config["max_upload_bytes"] == 20 * 1024 * 1024
    assert config["limits"]["title_max_length"] == 120
    assert config["limits"]["description_max_length"] == 2000
    assert config["limits"]["image_types"] == ["image/jpeg", "image/png", "image/webp"]
    assert config["cta_max_length"] == 40 and config["price_max_length"] == 20
    presets = {p["name"]: p for p in config["presets"]}
    assert list(presets) == ["tiktok", "reels", "shorts", "feed", "youtube", "amazon"]
    assert presets["tiktok"] == {
        "name": "tiktok",
        "label": "TikTok",
        "aspect_ratio": "9:16",
        "durations": {"min": 5, "max": 10, "default": 9},
        "best": [9, 15],
    }
    assert presets["amazon"]["aspect_ratio"] == "16:9"
    assert presets["amazon"]["durations"] == {"min": 6, "max": 10, "default": 10}
    assert presets["feed"]["aspect_ratio"] == "1:1"


async def test_web_client_is_served_with_security_headers(gateway):
    page = await gateway.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/js/app.js">' in page.text
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "connect-src 'self' ws://localhost:8001" in csp
    assert "blob:" in re.search(r"media-src [^;]+", csp).group(0)

    # One module per screen, each served as JavaScript from this origin (which the CSP allows).
    modules = await web_modules(gateway.client)
    screens = ("api", "ws", "sign-in", "create", "presets", "job", "brief", "my-jobs")
    assert {f"/js/{name}.js" for name in screens} <= set(modules)
    for path, text in modules.items():
        assert "innerHTML" not in text, path  # user text is only ever set as textContent
    assert (await gateway.client.get("/style.css")).status_code == 200

    # The catalogue page: its own HTML file and entry module, sharing api.js and dom.js.
    catalogue = await gateway.client.get("/catalogue.html")
    assert '<script type="module" src="/js/catalogue.js">' in catalogue.text
    modules = await web_modules(gateway.client, "/js/catalogue.js")
    page_modules = (
        "catalogue",
        "catalogue-check",
        "manifest-preview",
        "batch-table",
        "batch-follow",
        "api",
        "dom",
    )
    assert {f"/js/{name}.js" for name in page_modules} <= set(modules)
    assert not any("innerHTML" in text for text in modules.values())
    assert (await gateway.client.get("/catalogue.css")).status_code == 200

    api = await gateway.client.get("/api/v1/config")
    assert api.headers["x-content-type-options"] == "nosniff"


async def test_openapi_documents_the_api_and_its_errors(gateway):
    docs = await gateway.client.get("/docs")
    assert docs.status_code == 200 and "content-security-policy" not in docs.headers
    schema = (await gateway.client.get("/openapi.json")).json()
    create = schema["paths"]["/api/v1/jobs"]["post"]
    assert {"202", "200", "409", "413", "415", "422", "503"} <= set(create["responses"])
    error_ref = create["responses"]["415"]["content"]["application/json"]["schema"]["$ref"]
    assert error_ref.endswith("/ErrorResponse")
    assert "/api/v1/jobs/{job_id}/video" in schema["paths"]


async def test_unknown_api_path_uses_the_error_shape(gateway):
    response = await gateway.client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
