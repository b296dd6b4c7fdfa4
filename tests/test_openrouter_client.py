"""The shared OpenRouter client against a fake OpenRouter over real HTTP: every failure
becomes a JobError that says whether to try again and why, in words a person understands."""

import base64
import email.utils
import io
import time
from urllib.parse import parse_qs, urlparse

import pytest
from PIL import Image

from common.errors import JobError
from common.openrouter import (
    PRESIGNED_URL_TTL,
    OpenRouter,
    OpenRouterConfig,
    image_data_url,
    image_url,
    reachable_from_outside,
    retry_after_seconds,
)
from common.settings import CommonSettings
from common.storage import S3Storage
from tests.support.fake_openrouter import FakeOpenRouter, Fault


def config(fake: FakeOpenRouter, **changes: object) -> OpenRouterConfig:
    options: dict = {"api_key": fake.api_key, "base_url": fake.base_url, **changes}
    return OpenRouterConfig(**options)


async def failure(fake: FakeOpenRouter, method: str = "GET", **changes: object) -> JobError:
    async with OpenRouter(config(fake, **changes)) as api:
        with pytest.raises(JobError) as caught:
            await api.call(method, "/videos/models", idempotent=method == "GET")
    return caught.value


@pytest.mark.parametrize(
    ("status", "code", "retryable", "says"),
    [
        (400, "provider_bad_request", False, "OpenRouter: the request was refused (400)"),
        (401, "provider_unauthorized", False, "OpenRouter: the API key was refused (401)"),
        (402, "insufficient_credits", False, "OpenRouter: insufficient credits (402)"),
        (403, "provider_forbidden", False, "blocked by moderation (403)"),
        (404, "provider_not_found", False, "OpenRouter: not found (404)"),
        (413, "provider_payload_too_large", False, "the request is too large (413)"),
        (408, "provider_unavailable", True, "OpenRouter: the request timed out (408)"),
        (429, "provider_rate_limited", True, "OpenRouter: rate limited (429)"),
        (500, "provider_unavailable", True, "(500)"),
        (502, "provider_unavailable", True, "OpenRouter: the model is down (502)"),
        (503, "provider_unavailable", True, "OpenRouter: no provider is available (503)"),
    ],
)
async def test_error_answers_become_job_errors(
    fake: FakeOpenRouter, status: int, code: str, retryable: bool, says: str
) -> None:
    fake.fail("GET /videos/models", Fault(status, message=f"upstream said {status}"))
    error = await failure(fake)
    assert (error.code, error.retryable) == (code, retryable)
    # What went wrong for a person, then OpenRouter's own words.
    assert says in error.message
    assert error.message.endswith(f": upstream said {status}")
    assert len(fake.calls("GET /videos/models")) == 1, "no retry inside the call"


async def test_a_refused_key_says_so(fake: FakeOpenRouter) -> None:
    error = await failure(fake, api_key="sk-or-v1-wrong")
    assert error.message == ("OpenRouter: the API key was refused (401): No auth credentials found")
    assert not error.retryable


async def test_retry_after_is_kept_for_the_delayed_retry(fake: FakeOpenRouter) -> None:
    fake.fail("GET /videos/models", Fault(429, retry_after=7), Fault(503, retry_after=2))
    assert (await failure(fake)).retry_after == 7
    assert (await failure(fake)).retry_after == 2


def test_retry_after_as_seconds_or_a_date() -> None:
    assert retry_after_seconds("12") == 12
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (retry_after_seconds(later) or 0) <= 31


async def test_a_dropped_connection_is_resent_once(fake: FakeOpenRouter) -> None:
    fake.fail("GET /videos/models", Fault(drop=True))
    async with OpenRouter(config(fake)) as api:
        answer = await api.call("GET", "/videos/models")
    assert answer["data"][0]["id"] == "bytedance/seedance-2.0"
    assert len(fake.calls("GET /videos/models")) == 2

    fake.fail("GET /videos/models", Fault(drop=True), Fault(drop=True))
    error = await failure(fake)
    assert (error.code, error.retryable) == ("provider_unavailable", True)
    assert "the connection failed" in error.message


async def test_a_request_that_may_have_started_a_paid_job_is_not_resent(
    fake: FakeOpenRouter,
) -> None:
    fake.fail("POST /videos", Fault(drop=True))
    async with OpenRouter(config(fake)) as api:
        with pytest.raises(JobError) as caught:
            await api.call("POST", "/videos", json_body={"model": "x"}, idempotent=False)
    # Nobody knows whether OpenRouter started the job: not resent, not retried.
    assert (caught.value.code, caught.value.retryable) == ("provider_unconfirmed", False)
    assert len(fake.calls("POST /videos")) == 1


HTML_502 = Fault(502, body=b"<html><h1>502 Bad Gateway</h1></html>", content_type="text/html")


@pytest.mark.parametrize(
    ("fault", "unconfirmed"),
    [
        (HTML_502, True),  # a proxy's page: the request may have reached OpenRouter
        (Fault(200, body=b"<html>ok</html>", content_type="text/html"), True),
        (Fault(502), False),  # OpenRouter's own JSON error: it made no job
        (Fault(503, retry_after=3), False),
    ],
)
async def test_a_submission_is_unconfirmed_unless_openrouter_itself_refused_it(
    fake: FakeOpenRouter, fault: Fault, unconfirmed: bool
) -> None:
    fake.fail("POST /videos", fault)
    async with OpenRouter(config(fake)) as api:
        with pytest.raises(JobError) as caught:
            await api.call("POST", "/videos", json_body={"model": "x"}, idempotent=False)
    error = caught.value
    if unconfirmed:
        assert (error.code, error.retryable) == ("provider_unconfirmed", False)
        assert "it may have started a paid job" in error.message
    else:
        assert (error.code, error.retryable) == ("provider_unavailable", True)
    assert len(fake.calls("POST /videos")) == 1


async def test_a_proxy_page_or_garbled_answer_to_a_read_is_retried(fake: FakeOpenRouter) -> None:
    fake.fail("GET /videos/models", HTML_502)
    error = await failure(fake)
    assert (error.code, error.retryable) == ("provider_unavailable", True)
    assert "<html>" not in error.message  # no HTML page in a person's error message
    fake.fail("GET /videos/models", Fault(200, body=b"{not json", content_type="text/plain"))
    error = await failure(fake)
    assert (error.code, error.retryable) == ("provider_unavailable", True)
    assert "not JSON" in error.message


async def test_no_answer_in_time_is_retryable(fake: FakeOpenRouter) -> None:
    fake.fail("GET /videos/models", Fault(delay=2))
    error = await failure(fake, timeout=0.3)
    assert (error.code, error.retryable) == ("provider_unavailable", True)
    assert "no answer in time" in error.message


async def test_the_key_and_attribution_headers_are_sent(fake: FakeOpenRouter) -> None:
    async with OpenRouter(
        config(fake, referer="https://shop.example", title="Product Videos")
    ) as api:
        await api.call("GET", "/videos/models")
    headers = fake.calls("GET /videos/models")[0].headers
    assert headers["authorization"] == f"Bearer {fake.api_key}"
    assert headers["http-referer"] == "https://shop.example"
    assert headers["x-title"] == "Product Videos"


def test_photos_are_sent_as_downscaled_jpeg_data_urls() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (3000, 2000), (10, 200, 30, 255)).save(buffer, "PNG")
    url = image_data_url(buffer.getvalue(), max_side=1024)
    assert url.startswith("data:image/jpeg;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert (image.format, image.size) == ("JPEG", (1024, 683))


@pytest.mark.parametrize(
    ("url", "reachable"),
    [
        ("https://bucket.s3.eu-west-1.amazonaws.com/uploads/x.jpg?X-Amz-Signature=1", True),
        ("https://abc.r2.cloudflarestorage.com/b/uploads/x.jpg", True),
        ("http://127.0.0.1:9000/bucket/uploads/x.jpg", False),
        ("http://localhost:9000/bucket/uploads/x.jpg", False),
        ("http://10.1.2.3:9000/bucket/uploads/x.jpg", False),
        ("http://minio:9000/bucket/uploads/x.jpg", False),
    ],
)
def test_only_links_openrouter_can_open_are_sent(url: str, reachable: bool) -> None:
    assert reachable_from_outside(url) is reachable


@pytest.mark.parametrize(
    ("endpoint", "presigned"),
    [("https://acct.r2.cloudflarestorage.com", True), ("http://127.0.0.1:9000", False)],
)
async def test_a_photo_in_s3_is_sent_as_a_presigned_link_openrouter_can_open(
    endpoint: str, presigned: bool
) -> None:
    """Presigning is local (no request to S3): R2 gets a signed link that expires, a local
    MinIO a data URL, since OpenRouter cannot reach into this network."""
    settings = CommonSettings(
        storage_url="s3://shop-photos",
        s3_endpoint_url=endpoint,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
    )
    photo = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(photo, "JPEG")
    url = await image_url(
        S3Storage("shop-photos", settings), "uploads/j1/source.jpg", photo.getvalue(), max_side=512
    )
    if presigned:
        parsed = urlparse(url)
        query = parse_qs(parsed.query)
        assert url.startswith(f"{endpoint}/shop-photos/uploads/j1/source.jpg?")
        assert query["X-Amz-Expires"] == [str(PRESIGNED_URL_TTL)] and query["X-Amz-Signature"]
    else:
        assert url.startswith("data:image/jpeg;base64,")
