"""Outgoing webhooks end to end on the real broker and database: endpoints registered
through the gateway's API, jobs ending as the workers end them, the notifier's worker
delivering to a local receiver. Signatures are checked with the `standardwebhooks`
package (an independent implementation of the spec)."""

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from common.sealing import Sealer
from gateway.core.config import GatewaySettings
from gateway.main import create_app as create_gateway
from notifier.config import NotifierSettings
from notifier.webhooks import retry_delay
from services.notifier.tests.support import HAPPY_PATH, Driver
from tests.support import client as user
from tests.support.backends import free_port
from tests.support.receiver import Answer, Receiver

API = "/api/v1"
# Fast retries for tests; the shape (growing tiers) is what production has.
FAST = {"webhook_retry_delays": [0.2, 0.4, 0.6], "webhook_poll_seconds": 0.2}


class Account:
    """A signed-in owner on an in-process gateway."""

    def __init__(self, http: httpx.AsyncClient, email: str, session: str) -> None:
        self.http = http
        self.email = email
        self.headers = user.auth(session)

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.headers)
        return await self.http.request(method, f"{API}{path}", **kwargs)

    async def endpoint(self, url: str, events: list[str] | None = None) -> dict[str, Any]:
        response = await self.call(
            "POST",
            "/webhook-endpoints",
            json={"url": url, "events": events or ["job.completed", "job.failed"]},
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def deliveries(self, endpoint_id: str) -> list[dict[str, Any]]:
        response = await self.call("GET", f"/webhook-endpoints/{endpoint_id}/deliveries")
        assert response.status_code == 200, response.text
        return list(response.json()["deliveries"])


@pytest.fixture
async def account(settings: Any, mongo_db: Any) -> AsyncIterator[Account]:
    """The gateway in-process (private targets allowed: the receiver is on loopback)."""
    app = create_gateway(GatewaySettings(outbound_allow_private=True))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            email = user.new_email()
            yield Account(http, email, await user.sign_in(http, email))


@pytest.fixture
async def notifier_for_webhooks(start_notifier: Any) -> Callable[..., Awaitable[str]]:
    """Starts a notifier; returns the base URL of its ops port (where /metrics is)."""

    async def start(**overrides: Any) -> str:
        ops_port = free_port()
        settings = {"outbound_allow_private": True, **FAST, **overrides, "ops_port": ops_port}
        await start_notifier(**settings)
        return f"http://127.0.0.1:{ops_port}"

    return start


async def complete(driver: Driver, owner: str) -> str:
    job = await driver.new_job(owner)
    for status, progress in HAPPY_PATH:
        await driver.step(job["_id"], status, progress)
    return str(job["_id"])


async def metrics_of(ops_url: str) -> str:
    async with httpx.AsyncClient() as http:  # the notifier runs in this event loop
        response = await http.get(f"{ops_url}/metrics")
        assert response.status_code == 200, response.text
        return response.text


def sample(metrics: str, series: str) -> float:
    """The value of one series (name and labels as exposed) in a /metrics text."""
    for line in metrics.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {series} in the metrics")


DELIVERED = 'pv_webhook_deliveries_total{event="job.completed",outcome="delivered"}'
DISABLED = "pv_webhook_endpoints_disabled_total"


async def eventually(read: Callable[[], Awaitable[Any]], done: Callable[[Any], bool]) -> Any:
    """What `read` gives once `done` says so (within a minute)."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        value = await read()
        if done(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not done after 60 s; last value: {value!r}")
        await asyncio.sleep(0.1)


async def test_a_finished_job_is_delivered_signed_to_the_endpoints_that_want_it(
    account, driver, notifier_for_webhooks
):
    async with Receiver() as receiver, Receiver() as failures_only:
        endpoint = await account.endpoint(f"{receiver.url}/hooks")
        assert endpoint["secret"].startswith("whsec_") and endpoint["enabled"]
        listed = (await account.call("GET", "/webhook-endpoints")).json()["endpoints"]
        assert "secret" not in str(listed)
        await account.endpoint(f"{failures_only.url}/hooks", ["job.failed"])
        ops = await notifier_for_webhooks()
        delivered_before = sample(await metrics_of(ops), DELIVERED)
        # A catalogue's variant, its prompt's brief written: the shop's system gets both,
        # as the API's job view shows them.
        job = await driver.new_job(account.email)
        brief = {"hook": "Made by hand", "benefits": ["Keeps tea hot"], "cta": "Shop now"}
        links = {"product_id": "p-1", "variant": 2, "sku": "MUG-1"}
        await driver.repo.jobs.update_one({"_id": job["_id"]}, {"$set": {"brief": brief, **links}})
        for status, progress in HAPPY_PATH:
            await driver.step(job["_id"], status, progress)
        job_id = job["_id"]

        [request] = await receiver.wait_for(1)
        payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
        assert payload["type"] == "job.completed" and request.path == "/hooks"
        assert payload["data"]["id"] == job_id and payload["data"]["status"] == "completed"
        assert payload["data"]["brief"] == brief
        assert {k: payload["data"][k] for k in links} == links
        assert payload["data"]["video"]["url"] and payload["timestamp"]
        assert request.headers["webhook-id"].startswith("msg_")
        body = request.body.decode()
        assert account.email not in body and "token" not in body and "127.0.0.1" not in body

        [delivery] = await eventually(
            lambda: account.deliveries(endpoint["id"]),
            lambda d: d and d[0]["status"] == "delivered",
        )
        assert delivery["id"] == request.headers["webhook-id"] and delivery["job_id"] == job_id
        [attempt] = delivery["attempts"]
        assert attempt["status_code"] == 200 and attempt["error"] is None
        assert failures_only.received == []  # it asked for job.failed only

        assert sample(await metrics_of(ops), DELIVERED) == delivered_before + 1


def zipped(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


async def test_a_finished_batch_is_delivered_once_signed_with_its_counts(
    account, driver, notifier_for_webhooks
):
    async with Receiver() as receiver, Receiver() as jobs_only:
        endpoint = await account.endpoint(receiver.url, ["batch.completed"])
        await account.endpoint(jobs_only.url)  # job.completed and job.failed only
        await notifier_for_webhooks()
        manifest = (
            "sku;title;description;image\n"
            "MUG-1;Red mug;Stoneware.;mug.jpg\n"
            "BOWL-2;Blue bowl;Hand-thrown.;bowl.jpg\n"
        )
        photos = {
            name: user.product_photo(seed=n) for n, name in enumerate(["mug.jpg", "bowl.jpg"])
        }
        made = await account.call(
            "POST",
            "/batches",
            files={
                "manifest": ("products.csv", manifest.encode(), "text/csv"),
                "photos": ("photos.zip", zipped(photos), "application/zip"),
            },
            data={"variants": '[{"aspect_ratio": "9:16", "duration": 3}]'},
        )
        assert made.status_code == 202, made.text
        batch = made.json()
        mug, bowl = [job["id"] for row in batch["rows"] for job in row["jobs"]]
        # The workers end its jobs: one clip made, one failed.
        for status, progress in HAPPY_PATH:
            await driver.step(mug, status, progress)
        await driver.pipeline.fail(bowl, code="provider_error", detail="It broke.")

        [request] = await receiver.wait_for(1)
        payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
        assert payload["type"] == "batch.completed"
        data = payload["data"]
        assert data["id"] == batch["id"] and data["status"] == "completed"
        assert data["jobs_total"] == 2 and data["cost_usd"] == 0
        assert data["counts"]["completed"] == 1 and data["counts"]["failed"] == 1
        assert sum(data["counts"].values()) == 2
        assert "rows" not in data and account.email not in request.body.decode()
        exported = await account.http.get(data["export_url"], headers=account.headers)
        assert exported.status_code == 200, exported.text
        assert len(exported.text.strip().splitlines()) == 3  # the header and one line per job

        [delivery] = await eventually(
            lambda: account.deliveries(endpoint["id"]),
            lambda d: d and d[0]["status"] == "delivered",
        )
        assert delivery["batch_id"] == batch["id"] and delivery["job_id"] is None
        # The job endpoint got the jobs' own events, not the batch's.
        got = await jobs_only.wait_for(2)
        assert sorted(r.json()["type"] for r in got) == ["job.completed", "job.failed"]
        await asyncio.sleep(1.5)  # a second batch.completed would have come by now
        assert len(receiver.received) == 1 and len(jobs_only.received) == 2


async def test_retries_after_500s_and_a_hang_keep_one_webhook_id(
    account, driver, notifier_for_webhooks
):
    answers = iter([Answer(500), Answer(200, delay=30), Answer(503), Answer(200)])
    async with Receiver(lambda _: next(answers)) as receiver:
        endpoint = await account.endpoint(receiver.url)
        await notifier_for_webhooks(webhook_timeout_seconds=1.5)
        await complete(driver, account.email)

        requests = await receiver.wait_for(4)
        assert len({r.headers["webhook-id"] for r in requests}) == 1
        for request in requests:  # re-signed with a fresh timestamp each time
            Webhook(endpoint["secret"]).verify(request.body, request.headers)
        [delivery] = await eventually(
            lambda: account.deliveries(endpoint["id"]),
            lambda d: d[0]["status"] == "delivered",
        )
        codes = [a["status_code"] for a in delivery["attempts"]]
        assert codes == [500, None, 503, 200]
        assert "within" in delivery["attempts"][1]["error"]  # the hang timed out


async def test_a_jobs_events_arrive_in_order_and_a_slow_endpoint_holds_up_no_other(
    account, driver, notifier_for_webhooks
):
    fast_got_it = asyncio.Event()

    async def slow(_: Any) -> Answer:
        await fast_got_it.wait()  # answers only once the other endpoint was served
        return Answer(200)

    flaky = iter([Answer(500), Answer(500)])
    async with (
        Receiver(lambda _: next(flaky, Answer(200))) as ordered,
        Receiver(slow) as slow_receiver,
        Receiver() as fast,
    ):
        await account.endpoint(ordered.url)
        await account.endpoint(slow_receiver.url, ["job.failed"])
        await notifier_for_webhooks()
        job = await driver.new_job(account.email)
        await driver.pipeline.fail(job["_id"], code="provider_error", detail="It broke.")
        await slow_receiver.wait_for(1)  # the slow endpoint now holds a request open
        fast_endpoint = await account.endpoint(fast.url)
        await driver.pipeline.retry(job["_id"])
        for status, progress in HAPPY_PATH:
            await driver.step(job["_id"], status, progress)

        await fast.wait_for(1)  # job.completed reached it while the slow one still waits
        fast_got_it.set()
        assert fast.received[0].json()["type"] == "job.completed"
        requests = await ordered.wait_for(4)
        assert [r.json()["type"] for r in requests] == ["job.failed"] * 3 + ["job.completed"]
        assert len({r.headers["webhook-id"] for r in requests}) == 2
        assert (await account.deliveries(fast_endpoint["id"]))[0]["type"] == "job.completed"


async def test_redeliver_sends_the_same_event_again(account, driver, notifier_for_webhooks):
    async with Receiver() as receiver:
        endpoint = await account.endpoint(receiver.url)
        await notifier_for_webhooks()
        await complete(driver, account.email)
        [first] = await receiver.wait_for(1)
        [delivery] = await eventually(
            lambda: account.deliveries(endpoint["id"]), lambda d: d[0]["status"] == "delivered"
        )
        path = f"/webhook-endpoints/{endpoint['id']}/deliveries/{delivery['id']}/redeliver"
        response = await account.call("POST", path)
        assert response.status_code == 202 and response.json()["status"] == "pending"
        _, again = await receiver.wait_for(2)
        assert again.headers["webhook-id"] == first.headers["webhook-id"]
        assert again.json()["data"] == first.json()["data"] | {
            "video": again.json()["data"]["video"]  # fresh short-lived links
        }
        [delivery] = await eventually(
            lambda: account.deliveries(endpoint["id"]),
            lambda d: len(d[0]["attempts"]) == 2 and d[0]["status"] == "delivered",
        )
        missing = await account.call(
            "POST", f"/webhook-endpoints/{endpoint['id']}/deliveries/msg_x/redeliver"
        )
        assert missing.status_code == 404


async def test_an_endpoint_failing_all_along_is_disabled_and_can_be_enabled(
    account, driver, notifier_for_webhooks
):
    async with Receiver(lambda _: Answer(500)) as receiver:
        endpoint = await account.endpoint(receiver.url)
        ops = await notifier_for_webhooks(webhook_disable_after_seconds=1)
        disabled_before = sample(await metrics_of(ops), DISABLED)
        await complete(driver, account.email)
        disabled = await eventually(
            lambda: account.call("GET", f"/webhook-endpoints/{endpoint['id']}"),
            lambda r: not r.json()["enabled"],
        )
        assert "500" in disabled.json()["disabled_reason"]
        [delivery] = await account.deliveries(endpoint["id"])
        assert delivery["status"] == "failed" and len(delivery["attempts"]) >= 2
        assert sample(await metrics_of(ops), DISABLED) == disabled_before + 1
        # Nothing is sent to a disabled endpoint; enabling it again clears its failures.
        seen = len(receiver.received)
        await complete(driver, account.email)
        await asyncio.sleep(1)
        assert len(receiver.received) == seen
        enabled = await account.call(
            "PATCH", f"/webhook-endpoints/{endpoint['id']}", json={"enabled": True}
        )
        assert enabled.json()["enabled"] and enabled.json()["disabled_reason"] is None


async def test_a_rotated_secret_signs_beside_the_new_one(account, driver, notifier_for_webhooks):
    async with Receiver() as receiver:
        endpoint = await account.endpoint(receiver.url)
        rotated = await account.call("POST", f"/webhook-endpoints/{endpoint['id']}/rotate-secret")
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret != endpoint["secret"] and rotated.json()["previous_expires_at"]
        await notifier_for_webhooks()
        await complete(driver, account.email)
        [request] = await receiver.wait_for(1)
        assert len(request.headers["webhook-signature"].split(" ")) == 2
        for secret in (endpoint["secret"], new_secret):
            Webhook(secret).verify(request.body, request.headers)


async def test_the_ssrf_guard_holds_at_registration_and_at_sending(
    account, driver, start_notifier, mongo_db
):
    strict = create_gateway(GatewaySettings(outbound_allow_private=False))
    async with strict.router.lifespan_context(strict):
        transport = httpx.ASGITransport(app=strict)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            for url, reason in [
                ("http://shop.example.com/hook", "insecure_url"),
                ("https://127.0.0.1/hook", "private_address"),
                ("https://169.254.169.254/latest/meta-data/", "private_address"),
                ("https://[::1]/hook", "private_address"),
                ("https://localhost/hook", "private_address"),  # a name that resolves to one
            ]:
                response = await http.post(
                    f"{API}/webhook-endpoints",
                    json={"url": url, "events": ["job.completed"]},
                    headers=account.headers,
                )
                assert response.status_code == 422, (url, response.text)
                assert response.json()["error"]["details"][0]["reason"] == reason, url

    async with Receiver() as receiver:
        # Registered while private targets were allowed; the notifier does not allow them.
        endpoint = await account.endpoint(f"http://localhost:{receiver.port}/")
        await mongo_db["webhook_endpoints"].update_one(
            {"_id": endpoint["id"]}, {"$set": {"url": f"https://localhost:{receiver.port}/"}}
        )
        await start_notifier(**FAST)
        await complete(driver, account.email)
        [delivery] = await eventually(
            lambda: account.deliveries(endpoint["id"]), lambda d: d and d[0]["attempts"]
        )
        assert "not a public address" in delivery["attempts"][0]["error"]
        assert receiver.received == []


async def test_api_keys_manage_webhooks_only_with_the_scope(account):
    async def key(scopes: list[str]) -> dict[str, str]:
        response = await account.call("POST", "/api-keys", json={"name": "k", "scopes": scopes})
        return user.auth(response.json()["key"])

    without = await key(["jobs:read"])
    response = await account.call("GET", "/webhook-endpoints", headers=without)
    assert response.status_code == 403
    assert response.json()["error"]["details"] == {"scope": "webhooks:manage"}
    with_scope = await key(["webhooks:manage"])
    created = await account.call(
        "POST",
        "/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/x", "events": ["job.failed"]},
        headers=with_scope,
    )
    assert created.status_code == 201, created.text
    removed = await account.call(
        "DELETE", f"/webhook-endpoints/{created.json()['id']}", headers=with_scope
    )
    assert removed.status_code == 204
    assert (await account.call("GET", "/webhook-endpoints")).json()["endpoints"] == []


@settings(max_examples=200)
@given(st.integers(1, 200))
def test_the_default_retry_schedule_starts_quick_grows_and_spans_a_day(attempt):
    delays = NotifierSettings().webhook_retry_delays
    first, second = retry_delay(delays, 1), retry_delay(delays, 2)
    assert first <= 5 and second <= 30
    assert retry_delay(delays, attempt) <= delays[min(attempt, len(delays)) - 1]
    assert delays == sorted(delays)
    # A day of retries is a dozen or so tries, not hundreds.
    tries, elapsed = 0, 0.0
    while elapsed <= 24 * 3600:
        tries += 1
        elapsed += delays[min(tries, len(delays)) - 1]
    assert 10 <= tries <= 20


async def test_secrets_are_sealed_at_rest_and_sign_all_the_same(
    account, driver, notifier_for_webhooks, mongo_db, settings
):
    """The database holds no signing secret in the clear (sealed under SIGNING_KEY). A
    secret an older version stored in the clear is sealed when the gateway starts, and
    signs as before; a notifier with another SIGNING_KEY sends nothing unsigned: the
    attempt fails saying why."""
    async with Receiver() as receiver:
        endpoint = await account.endpoint(receiver.url)
        stored = await mongo_db.webhook_endpoints.find_one({"_id": endpoint["id"]})
        assert endpoint["secret"] not in str(stored)
        assert [set(s) for s in stored["secrets"]] == [{"sealed", "created_at", "expires_at"}]

        # As an older version stored it: in the clear. The next start seals it.
        plain = [{"secret": endpoint["secret"], "created_at": stored["created_at"],
                  "expires_at": None}]  # fmt: skip
        await mongo_db.webhook_endpoints.update_one(
            {"_id": endpoint["id"]}, {"$set": {"secrets": plain}}
        )
        restarted = create_gateway(GatewaySettings(outbound_allow_private=True))
        async with restarted.router.lifespan_context(restarted):
            resealed = await mongo_db.webhook_endpoints.find_one({"_id": endpoint["id"]})
        assert endpoint["secret"] not in str(resealed) and "sealed" in resealed["secrets"][0]

        await notifier_for_webhooks()
        await complete(driver, account.email)
        [request] = await receiver.wait_for(1)
        Webhook(endpoint["secret"]).verify(request.body, request.headers)


async def test_a_secret_sealed_under_another_key_sends_nothing_until_rotated(
    account, driver, notifier_for_webhooks, mongo_db
):
    """The deployment's SIGNING_KEY changed: the endpoint's secret does not open, so
    nothing is sent and the attempt says why; a rotation gives a secret that signs alone
    (the old one, unreadable, is not kept beside it)."""
    async with Receiver() as receiver:
        endpoint = await account.endpoint(receiver.url)
        earlier_key = Sealer("an-earlier-signing-key-0123456789abcdef")
        await mongo_db.webhook_endpoints.update_one(
            {"_id": endpoint["id"]},
            {"$set": {"secrets.0.sealed": earlier_key.seal(endpoint["secret"], endpoint["id"])}},
        )
        await notifier_for_webhooks()
        job_id = await complete(driver, account.email)
        [delivery] = await eventually(
            lambda: account.deliveries(endpoint["id"]),
            lambda d: bool(d and d[0]["attempts"]),
        )
        assert delivery["job_id"] == job_id and delivery["status"] != "delivered"
        assert "sealed under another SIGNING_KEY" in delivery["attempts"][0]["error"]
        assert receiver.received == []

        rotated = await account.call("POST", f"/webhook-endpoints/{endpoint['id']}/rotate-secret")
        assert rotated.json()["previous_expires_at"] is None  # nothing kept to sign beside it
        await complete(driver, account.email)
        request = (await receiver.wait_for(1))[-1]
        assert len(request.headers["webhook-signature"].split(" ")) == 1
        Webhook(rotated.json()["secret"]).verify(request.body, request.headers)
