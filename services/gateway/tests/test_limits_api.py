"""Free-tier limits (counters in MongoDB, shared by every replica) and the client IP
they count by: X-Forwarded-For only from trusted proxies."""

import asyncio
from ipaddress import ip_network

import httpx
import pytest
from pymongo.errors import DuplicateKeyError

from common.errors import ApiError
from common.events import JobStatus
from gateway import images
from gateway.limits import Limit
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


async def test_one_owners_parallel_uploads_are_all_accepted(start_gateway):
    """A shop's sync script: 32 uploads of one owner at once, none refused as busy; the
    running-jobs limit still counts every one of them."""
    async with start_gateway(free_running_jobs_per_email=40) as gateway:
        await gateway.auth()
        answers = await asyncio.gather(*(gateway.submit() for _ in range(32)))
        assert [a.status_code for a in answers] == [202] * 32, [a.text for a in answers]
        assert await gateway.job_count() == 32
        running = await gateway.services.db["running_jobs"].find_one({})
        assert len(running["jobs"]) == 32


async def test_a_slot_left_behind_by_a_crash_is_given_back_at_the_limit(start_gateway):
    """A job that ended without giving back its running slot (the process died between the
    two writes) and a slot taken by a submission that died before storing its job do not
    keep the owner at the limit."""
    async with start_gateway(free_running_jobs_per_email=2) as gateway:
        clock = at_window_start(gateway, gateway.settings.free_window_seconds)
        first = (await gateway.submit()).json()["id"]
        await gateway.services.db["jobs"].update_one(
            {"_id": first}, {"$set": {"status": JobStatus.FAILED.value}}
        )
        async with gateway.services.limiter.reserve(gateway.email, 2, [], job_id="never-stored"):
            pass  # as if the gateway died here: the slot is not given back
        assert (await gateway.submit()).status_code == 202  # the ended job's slot
        # The unstored job's slot may still be on its way: kept until it cannot be.
        limited(await gateway.submit(), "running_jobs_per_email")
        clock.now += 600
        assert (await gateway.submit()).status_code == 202
        limited(await gateway.submit(), "running_jobs_per_email")


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
        # Our proxy as a dual-stack socket reports it.
        assert await submitted_ip(gateway, "::ffff:10.1.2.3", "203.0.113.9") == "203.0.113.9"
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


NOT_A_PHOTO = b"\xff\xd8\xff" + b"a JPEG signature and nothing of a JPEG after it" * 20


@pytest.mark.parametrize(
    "limit", ["jobs_per_email", "jobs_per_ip", "running_jobs_per_email"], ids=str
)
async def test_a_user_over_a_limit_is_refused_before_the_photo_is_decoded(
    start_gateway, monkeypatch, limit
):
    async with start_gateway(**{f"free_{limit}": 1}) as gateway:
        assert (await gateway.submit()).status_code == 202
        # Not a photo: decoding it would answer 400 invalid_image. 429 proves it never ran.
        decoded = []
        monkeypatch.setattr(images, "normalize_image", lambda *a: decoded.append(a))
        limited(await gateway.submit(NOT_A_PHOTO), limit)
        assert decoded == []
        assert await gateway.job_count() == 1


async def test_under_the_limits_a_bad_photo_is_still_400(start_gateway):
    async with start_gateway(free_jobs_per_email=2) as gateway:
        assert (await gateway.submit()).status_code == 202
        refused = await gateway.submit(NOT_A_PHOTO)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "invalid_image"


async def test_racing_first_takes_of_a_window_take_exactly_the_maximum(gateway):
    """Many requests take from a counter that does not exist yet: exactly `max` pass
    (on MongoDB their upserts race to insert it; see the next test)."""
    limiter = gateway.services.limiter
    for round in range(5):
        limit = Limit("jobs_per_ip", f"198.51.100.{round}", 5)

        async def take(limit: Limit = limit) -> bool:
            try:
                await limiter.take([limit])
                return True
            except ApiError as e:
                assert e.status == 429
                return False

        passed = await asyncio.gather(*(take() for _ in range(20)))
        assert sum(passed) == 5, passed
        [counter] = await limiter.counters.find({"_id": {"$regex": limit.subject}}).to_list()
        assert counter["count"] == 5


class LosesTheInsertRace:
    """The counters as one request sees them when another request's upsert inserts the
    window's counter between this upsert's match and its insert: MongoDB then fails
    this upsert with DuplicateKeyError although the counter is far from full."""

    def __init__(self, counters) -> None:
        self.counters = counters

    def __getattr__(self, name: str):
        return getattr(self.counters, name)

    async def _upsert(self, method: str, query, update, upsert: bool = False, **options):
        if upsert:
            await self.counters.insert_one({"_id": query["_id"], "count": 1})  # the other one
            raise DuplicateKeyError("E11000 duplicate key error collection: rate_limits")
        return await getattr(self.counters, method)(query, update, **options)

    async def update_one(self, *args, **kwargs):
        return await self._upsert("update_one", *args, **kwargs)

    async def find_one_and_update(self, *args, **kwargs):
        return await self._upsert("find_one_and_update", *args, **kwargs)


async def test_losing_the_race_to_create_a_counter_is_not_a_429(gateway):
    limiter = gateway.services.limiter
    limiter.counters = LosesTheInsertRace(limiter.counters)
    limit = Limit("jobs_per_email", "racer@example.com", 2)
    await limiter.take([limit])  # counted after the other request's unit
    with pytest.raises(ApiError) as full:
        await limiter.take([limit])  # now the counter really is full
    assert full.value.status == 429
    counters = await limiter.counters.counters.find({"_id": {"$regex": "racer@"}}).to_list()
    assert [c["count"] for c in counters] == [2]


async def test_sign_in_attempts_are_limited_per_network(start_gateway):
    async with start_gateway(free_verifies_per_ip=2) as gateway:
        attempt = {"email": user.new_email(), "code": "123456"}
        for _ in range(2):
            wrong = await gateway.client.post(f"{API}/auth/verify", json=attempt)
            assert wrong.status_code == 400, wrong.text
        error = limited(
            await gateway.client.post(f"{API}/auth/verify", json=attempt), "verifies_per_ip"
        )
        assert error["details"]["max"] == 2 and "sign-in attempts" in error["message"]
        # Even the right code of another address, from the same network.
        other = {"email": user.new_email(), "code": "654321"}
        limited(await gateway.client.post(f"{API}/auth/verify", json=other), "verifies_per_ip")
        # Another network has its own allowance.
        async with client_from(gateway, "203.0.113.50") as elsewhere:
            assert (await elsewhere.post(f"{API}/auth/verify", json=attempt)).status_code == 400
