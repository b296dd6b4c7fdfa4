"""POST /api/v1/jobs with `variants`: one product, one stored photo, a job per variant,
on the real broker, database and storage (gateway/products.py)."""

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import ApiError
from common.presets import DURATION_MAX, DURATION_MIN, PRESETS
from gateway.core.config import GatewaySettings
from gateway.products import validate_product_request, variant_options
from gateway.submission import OptionFields
from services.gateway.tests.conftest import photo
from services.gateway.tests.test_jobs_api import assert_error

THREE = json.dumps(
    [
        {"preset": "reels"},
        {"aspect_ratio": "1:1", "duration": 6},
        {"preset": "youtube", "duration": 8},
    ]
)


SETTINGS = GatewaySettings()


@given(
    presets=st.lists(st.sampled_from(list(PRESETS)), min_size=1, max_size=6, unique=True),
    durations=st.lists(st.integers(DURATION_MIN, DURATION_MAX), min_size=6, max_size=6),
    cta=st.sampled_from([None, "Buy now", "今すぐ購入"]),
    music=st.sampled_from(["on", "off"]),
)
def test_each_variant_gets_its_cut_and_keeps_the_shared_options(
    presets: list[str], durations: list[int], cta: str | None, music: Any
) -> None:
    variants = [{"preset": p, "duration": d} for p, d in zip(presets, durations, strict=False)]
    create, resolved = validate_product_request(
        SETTINGS,
        variants=json.dumps(variants),
        title="Teapot",
        description="Cast iron.",
        style=None,
        options=OptionFields(cta=cta, music=music),
    )
    assert len(resolved) == len(presets)
    for variant, asked in zip(resolved, variants, strict=True):
        options = variant_options(create.options, variant)
        assert options.preset == asked["preset"] and options.duration == asked["duration"]
        assert options.aspect_ratio == PRESETS[asked["preset"]].aspect_ratio
        assert (options.cta, options.music) == (cta, music)


@given(st.sampled_from(["aspect_ratio", "duration", "preset"]))
def test_a_cut_beside_the_variants_is_a_problem_listed_with_the_others(name: str) -> None:
    beside = {"aspect_ratio": "1:1", "duration": 5, "preset": "feed"}[name]
    with pytest.raises(ApiError) as caught:
        validate_product_request(
            SETTINGS,
            variants="[{}]",
            title=" ",
            description="Cast iron.",
            style=None,
            options=OptionFields(**{name: beside}),  # type: ignore[arg-type]
        )
    fields = {d["field"] for d in caught.value.details}
    assert {"title", name, "variants[0]"} <= fields


async def _queued_job_ids(gateway: Any) -> list[str]:
    ids = []
    while (message := await gateway.next_message(gateway.prompt_queue)) is not None:
        ids.append(json.loads(message.body)["job_id"])
    return ids


async def test_variants_make_one_product_with_a_job_each_and_the_photo_stored_once(gateway):
    upload = photo()
    response = await gateway.submit(upload, variants=THREE, cta="Buy now", style="warm")

    assert response.status_code == 202, response.text
    body = response.json()
    product_id = body["product_id"]
    jobs = body["jobs"]
    assert [j["job"]["variant"] for j in jobs] == [0, 1, 2]
    assert body["id"] == jobs[0]["id"] and body["job"] == jobs[0]["job"]
    options = [j["job"]["options"] for j in jobs]
    assert [(o["aspect_ratio"], o["duration"]) for o in options] == [
        ("9:16", PRESETS["reels"].default_duration),
        ("1:1", 6),
        ("16:9", 8),
    ]
    assert [o["preset"] for o in options] == ["reels", None, "youtube"]
    for j in jobs:
        assert j["status"] == "queued" and j["token"]
        assert j["job"]["product_id"] == product_id
        assert j["job"]["options"]["cta"] == "Buy now" and j["job"]["options"]["style"] == "warm"

    product = await gateway.services.db["products"].find_one({"_id": product_id})
    assert product["owner"] == gateway.email
    assert product["job_ids"] == [j["id"] for j in jobs]
    assert product["options"]["cta"] == "Buy now" and "aspect_ratio" not in product["options"]
    key = f"uploads/{product_id}/source.jpg"
    assert product["image"]["key"] == key
    assert product["image"]["sha256"] == hashlib.sha256(upload).hexdigest()
    for j in jobs:
        stored = await gateway.services.db["jobs"].find_one({"_id": j["id"]})
        assert stored["image"] == product["image"]  # every variant names the one photo
    assert gateway.stored_files() == [gateway.settings.storage_root / key]
    assert sorted(await _queued_job_ids(gateway)) == sorted(j["id"] for j in jobs)

    # Each variant is a job of its own to read.
    read = await gateway.client.get(f"/api/v1/jobs/{jobs[1]['id']}", headers=await gateway.auth())
    assert read.status_code == 200 and read.json()["variant"] == 1


async def test_a_request_without_variants_keeps_its_answer(gateway):
    response = await gateway.submit(photo())
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"id", "status", "token", "job"}
    assert "product_id" not in body["job"] and "variant" not in body["job"]
    assert await gateway.services.db["products"].count_documents({}) == 0


async def test_bad_variants_are_refused_with_every_problem_and_nothing_stored(gateway):
    variants = json.dumps(
        [
            {"preset": "reels", "aspect_ratio": "16:9"},
            {"duration": 99},
            {"aspect_ratio": "1:1"},
            {"aspect_ratio": "1:1", "duration": 5},
        ]
    )
    response = await gateway.submit(photo(), variants=variants, title="   ", duration="5")

    error = assert_error(response, 422, "validation_error")
    fields = [d["field"] for d in error["details"]]
    assert "title" in fields and "duration" in fields  # beside the variants
    assert "variants[0]" in fields
    assert any(f.startswith("variants[1]") for f in fields)
    assert all(d["message"] for d in error["details"])
    await gateway.assert_nothing_left()
    assert await gateway.services.db["products"].count_documents({}) == 0

    for bad, message in (
        ("not json", "A JSON list of variants."),
        (json.dumps([{"preset": "feed"}] * 7), None),
        (json.dumps([{"preset": "feed"}, {"preset": "feed"}]), "variant 1 repeats an earlier one"),
    ):
        error = assert_error(await gateway.submit(photo(), variants=bad), 422, "validation_error")
        assert error["details"][0]["field"] == "variants"
        if message:
            assert message in error["details"][0]["message"]
    await gateway.assert_nothing_left()


async def test_limits_refuse_the_whole_product_when_not_every_variant_fits(start_gateway):
    async with start_gateway(free_jobs_per_email=4) as gateway:
        assert (await gateway.submit(photo(), variants=THREE)).status_code == 202
        await _queued_job_ids(gateway)
        before = await gateway.job_count()

        refused = await gateway.submit(photo(), variants=THREE)

        error = assert_error(refused, 429, "rate_limited")
        assert "3 variants" in error["message"] and "nothing was made" in error["message"]
        assert error["details"]["limit"] == "jobs_per_email"
        assert error["details"]["videos_asked"] == 3
        assert refused.headers["Retry-After"]
        assert await gateway.job_count() == before
        assert await gateway.services.db["products"].count_documents({}) == 1
        assert await _queued_job_ids(gateway) == []
        # The units of the refused request were given back: one video still fits.
        single = await gateway.submit(photo(), variants=json.dumps([{"preset": "feed"}]))
        assert single.status_code == 202, single.text


async def test_running_jobs_count_one_per_variant(start_gateway):
    async with start_gateway(free_running_jobs_per_email=2) as gateway:
        refused = await gateway.submit(photo(), variants=THREE)
        error = assert_error(refused, 429, "rate_limited")
        assert error["details"]["limit"] == "running_jobs_per_email"
        await gateway.assert_nothing_left()
        two = json.dumps([{"preset": "feed"}, {"preset": "reels"}])
        assert (await gateway.submit(photo(), variants=two)).status_code == 202
        running = await gateway.services.db["running_jobs"].find_one({"_id": gateway.email})
        assert len(running["jobs"]) == 2


async def test_an_idempotency_key_replays_the_product(gateway):
    headers = {"Idempotency-Key": "product-1"}
    first = await gateway.submit(photo(), variants=THREE, headers=headers)
    again = await gateway.submit(photo(), variants=THREE, headers=headers)

    assert first.status_code == 202 and again.status_code == 200, again.text
    assert again.json()["product_id"] == first.json()["product_id"]
    assert [j["id"] for j in again.json()["jobs"]] == [j["id"] for j in first.json()["jobs"]]
    assert await gateway.job_count() == 3
    other = json.dumps([{"preset": "feed"}])
    assert_error(
        await gateway.submit(photo(), variants=other, headers=headers),
        409,
        "idempotency_key_reused",
    )
    # The key names the product: a single job cannot take it.
    assert_error(await gateway.submit(photo(), headers=headers), 409, "idempotency_key_reused")


async def test_one_variant_is_canceled_or_retried_alone(gateway):
    jobs = (await gateway.submit(photo(), variants=THREE)).json()["jobs"]
    first, second, third = (j["id"] for j in jobs)
    auth = await gateway.auth()

    canceled = await gateway.client.post(f"/api/v1/jobs/{second}/cancel", headers=auth)
    assert canceled.status_code == 200, canceled.text
    await gateway.services.pipeline.fail(third, code="render_failed", detail="ffmpeg broke")
    retried = await gateway.client.post(f"/api/v1/jobs/{third}/retry", headers=auth)
    assert retried.status_code == 200, retried.text

    async def status(job_id: str) -> str:
        read = await gateway.client.get(f"/api/v1/jobs/{job_id}", headers=auth)
        return str(read.json()["status"])

    assert [await status(j) for j in (first, second, third)] == ["queued", "canceled", "queued"]
    assert retried.json()["product_id"] == jobs[0]["job"]["product_id"]
    # The retried variant is queued again; the others are not announced twice.
    queued = await _queued_job_ids(gateway)
    assert [queued.count(j) for j in (first, second, third)] == [1, 1, 2]
