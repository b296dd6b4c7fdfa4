"""The web client's sign-in step and the browser-facing protections: security
headers, CORS only for configured origins, bounded request bodies."""

from services.gateway.tests.support import web_modules

API = "/api/v1"


async def test_the_web_client_signs_in_by_email_and_lists_my_videos(gateway):
    page = (await gateway.client.get("/")).text
    for element in ('id="email-form"', 'id="code-form"', 'autocomplete="one-time-code"'):
        assert element in page
    assert 'id="sign-out"' in page and 'id="jobs-list"' in page
    script = "\n".join((await web_modules(gateway.client)).values())
    for call in ("/api/v1/auth/email", "/api/v1/auth/verify", "/api/v1/auth/logout"):
        assert call in script
    assert "/api/v1/jobs?" in script and "localStorage" in script
    # User text (titles, emails, messages) only ever goes in as text.
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
    assert "document.write" not in script and "eval(" not in script


async def test_security_headers_on_pages_and_api(gateway):
    for path in ("/", f"{API}/config", f"{API}/nothing"):
        response = await gateway.client.get(path)
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cross-origin-opener-policy"] == "same-origin"
        assert headers["strict-transport-security"] == "max-age=31536000"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
    signed_in = await gateway.client.post(f"{API}/auth/email", json={"email": "a@example.com"})
    assert signed_in.headers["cache-control"] == "no-store"


async def test_no_cross_origin_access_unless_configured(gateway):
    preflight = await gateway.client.options(
        f"{API}/jobs",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


async def test_cors_for_the_configured_origins(start_gateway):
    async with start_gateway(cors_origins=["https://shop.example"]) as gateway:
        allowed = await gateway.client.options(
            f"{API}/jobs",
            headers={
                "Origin": "https://shop.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, idempotency-key",
            },
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
        assert "access-control-allow-credentials" not in allowed.headers  # bearer tokens only
        other = await gateway.client.get(f"{API}/config", headers={"Origin": "https://x.example"})
        assert "access-control-allow-origin" not in other.headers


async def test_a_large_json_body_is_refused_while_streaming(gateway):
    async def body():
        yield b'{"email": "'
        for _ in range(200):
            yield b"a" * 10_000
        yield b'@example.com"}'

    response = await gateway.client.post(
        f"{API}/auth/email", content=body(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "upload_too_large"
