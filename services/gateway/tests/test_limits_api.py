"""Free-tier limits (counters in MongoDB, shared by every replica) and the client IP
they count by: X-Forwarded-For only from trusted proxies."""

import asyncio
from ipaddress import ip_network

import httpx
import pytest

from common.events import JobStatus
from tests.support import client as user

API = "/api/v1"


class Clock:
    """The limiter's clock, moved by the test: windows pass without waiting."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def limited(response, limit: str) -> dict:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "rate_limited" and error["details"]["limit"] == limit, error
    assert int(response.headers["retry-after"]) == error["details"]["retry_after"] >= 1
    return error


def at_window_start(gateway, window: int) -> Clock:
    clock = Clock(1_800_000_000 // window * window + 1)  # 1 s into a window
    gateway.services.limiter.clock = clock
    return clock


async def test_jobs_per_email_limit_triggers_and_resets(start_gateway):
    window = 3600
    async with start_gateway(free_jobs_per_email=2, free_window_seconds=window) as gateway:
        clock = at_window_start(gateway, window)
        for _ in range(2):
            assert (await gateway.submit()).status_code == 202
        files_before = gateway.stored_files()

        refused = await gateway.submit()
        error = limited(refused, "jobs_per_email")
        assert error["details"]["max"] == 2
        assert error["details"]["retry_after"] == window - 1
        assert error["details"]["resets_at"].startswith("2027-01-15T")  # the window's end
        assert "2 videos for this account per hour" in error["message"]
        # The refusal stored and queued nothing.
        assert await gateway.job_count() == 2 and gateway.stored_files() == files_before
        assert await gateway.queue_depth(gateway.prompt_queue) == 2

        # Another user is not affected; the next window starts afresh.
        other = await gateway.sign_in()
        assert (await gateway.submit(headers=user.auth(other))).status_code == 202
        clock.now += window
        assert (await gateway.submit()).status_code == 202


async def test_plus_addresses_share_their_mailbox_allowance(start_gateway):
    async with start_gateway(free_jobs_per_email=2) as gateway:
        name = user.new_email().partition("@")[0]
        for tag in ("", "+a", "+b"):
            session = await gateway.sign_in(f"{name}{tag}@example.com")
            answer = await gateway.submit(headers=user.auth(session))
            if tag == "+b":
                limited(answer, "jobs_per_email")
            else:
                assert answer.status_code == 202, answer.text


async def test_jobs_per_ip_limit_counts_every_user_of_the_address(start_gateway):
    async with start_gateway(free_jobs_per_ip=2) as gateway:
        at_window_start(gateway, gateway.settings.free_window_seconds)
        for _ in range(2):
            session = await gateway.sign_in()
            assert (await gateway.submit(headers=user.auth(session))).status_code == 202
        error = limited(await gateway.submit(), "jobs_per_ip")
        assert "per day" in error["message"]
        assert await gateway.job_count() == 2


async def test_running_jobs_per_email_limit(start_gateway):
    async with start_gateway(free_running_jobs_per_email=1) as gateway:
        first = (await gateway.submit()).json()["id"]
        error = limited(await gateway.submit(), "running_jobs_per_email")
        assert error["details"]["resets_at"] is None
        # Once that job is done, there is room again.
        await gateway.services.repo.transition(
            first, expected=[JobStatus.QUEUED], to=JobStatus.FAILED, progress=0
        )
        assert (await gateway.submit()).status_code == 202


async def test_racing_submissions_on_two_replicas_never_pass_the_running_limit(start_gateway):
    async with (
        start_gateway(free_running_jobs_per_email=2) as one,
        start_gateway(free_running_jobs_per_email=2) as other,
    ):
        await one.auth()
        other.session = one.session  # the same user on both replicas
        answers = await asyncio.gather(*(g.submit() for g in [one, other] * 4))
        codes = sorted(a.status_code for a in answers)
        assert codes == [202, 202] + [429] * 6, codes
        for refused in (a for a in answers if a.status_code == 429):
            assert refused.json()["error"]["details"]["limit"] == "running_jobs_per_email"
        assert await one.job_count() == 2


async def test_refusals_and_replays_take_no_allowance(start_gateway, make_photo):
    async with start_gateway(free_jobs_per_email=1) as gateway:
        refused = await gateway.submit(b"not an image at all" * 10)
        assert refused.status_code == 415
        key = {"Idempotency-Key": "once"}
        assert (await gateway.submit(headers=key)).status_code == 202
        assert (await gateway.submit(headers=key)).status_code == 200  # a replay, not a job
        limited(await gateway.submit(), "jobs_per_email")


async def test_code_requests_are_limited_per_ip(start_gateway):
    async with start_gateway(free_codes_per_ip=2) as gateway:
        for _ in range(2):
            email = user.new_email()
            ok = await gateway.client.post(f"{API}/auth/email", json={"email": email})
            assert ok.status_code == 202
        again = await gateway.client.post(f"{API}/auth/email", json={"email": user.new_email()})
        limited(again, "codes_per_ip")


def client_from(gateway, peer: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=gateway.app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def submitted_ip(gateway, peer: str, forwarded: str | None) -> str:
    headers = {**await gateway.auth(), **({"X-Forwarded-For": forwarded} if forwarded else {})}
    async with client_from(gateway, peer) as client:
        response = await client.post(
            f"{API}/jobs",
            data={"title": "Mug", "description": "A mug."},
            files={"image": ("p.jpg", user.product_photo(seed=7), "image/jpeg")},
            headers=headers,
        )
    assert response.status_code == 202, response.text
    job = await gateway.services.repo.get(response.json()["id"])
    return str(job["client_ip"])


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(gateway):
    assert gateway.settings.trusted_proxies == []
    assert await submitted_ip(gateway, "198.51.100.7", "203.0.113.9") == "198.51.100.7"


async def test_forwarded_for_from_a_trusted_proxy_is_used(start_gateway):
    async with start_gateway(trusted_proxies=[ip_network("10.0.0.0/8")]) as gateway:
        # The proxy appended the address it saw; what the client wrote before it is ignored.
        assert await submitted_ip(gateway, "10.1.2.3", "1.1.1.1, 203.0.113.9") == "203.0.113.9"
        # Through two of our proxies.
        assert await submitted_ip(gateway, "10.1.2.3", "203.0.113.9, 10.9.9.9") == "203.0.113.9"
        # A peer outside the trusted networks is its own client IP, whatever it says.
        assert await submitted_ip(gateway, "192.0.2.1", "203.0.113.9") == "192.0.2.1"


async def test_the_ip_limit_follows_the_forwarded_address(start_gateway):
    async with start_gateway(
        trusted_proxies=[ip_network("10.0.0.0/8")], free_jobs_per_ip=1
    ) as gateway:
        await submitted_ip(gateway, "10.0.0.1", "203.0.113.1")
        await submitted_ip(gateway, "10.0.0.1", "203.0.113.2")  # another client: allowed
        with pytest.raises(AssertionError, match="jobs_per_ip"):
            await submitted_ip(gateway, "10.0.0.1", "203.0.113.1")
