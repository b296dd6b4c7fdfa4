"""A product in three variants through the whole system (the four services as real
processes, the real broker, database and storage, a fake OpenRouter counting calls): one
chat call for the product, one clip per variant at its own ratio and length; the same
product again reuses every clip."""

import asyncio
import json
from fractions import Fraction
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.support import client as user
from tests.support.fake_openrouter import FakeOpenRouter
from tests.support.processes import System
from tests.test_openrouter_pipeline import CHAT, CREATE, openrouter_env

pytestmark = pytest.mark.timeout(300)

VARIANTS = [
    {"preset": "reels", "duration": 3},
    {"aspect_ratio": "1:1", "duration": 4},
    {"preset": "youtube", "duration": 5},
]
RATIOS = ["9:16", "1:1", "16:9"]


@pytest.fixture
def system_env(service_env: dict[str, str], fake: FakeOpenRouter) -> dict[str, str]:
    return {**service_env, **openrouter_env(fake)}


async def submit_product(api: httpx.AsyncClient, photo: bytes) -> dict[str, Any]:
    response = await api.post(
        "/api/v1/jobs",
        files={"image": ("teapot.jpg", photo, "image/jpeg")},
        data={
            "title": "Cast-iron teapot",
            "description": "Keeps tea hot for an hour.",
            "variants": json.dumps(VARIANTS),
        },
    )
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


async def finished(system: System, api: httpx.AsyncClient, accepted: dict[str, Any]) -> list:
    async def one(job: dict[str, Any]) -> dict[str, Any]:
        await user.follow(system.ws_url, job["id"], job["token"], within=150)
        return await user.get_job(api, job["id"], job["token"])

    return list(await asyncio.gather(*(one(job) for job in accepted["jobs"])))


async def test_variants_share_one_chat_call_and_each_gets_its_own_clip(
    system: System, api: httpx.AsyncClient, database: AsyncDatabase, fake: FakeOpenRouter
) -> None:
    photo = user.product_photo(seed=43)
    accepted = await submit_product(api, photo)

    jobs = await finished(system, api, accepted)

    assert [j["status"] for j in jobs] == ["completed"] * 3, [j["error"] for j in jobs]
    assert len(fake.calls(CHAT)) == 1
    prompts = sorted((j["prompt"]["source"], j["prompt"]["cost"]) for j in jobs)
    assert prompts == [("llm", pytest.approx(fake.chat_cost)), ("product", 0), ("product", 0)]
    assert len({j["prompt"]["text"] for j in jobs}) == 1
    # One paid video job per variant, each at its own ratio and length.
    creates = sorted((c.json["aspect_ratio"], c.json["duration"]) for c in fake.calls(CREATE))
    assert creates == sorted(zip(RATIOS, [3, 4, 5], strict=True))
    for job, ratio, variant in zip(jobs, RATIOS, VARIANTS, strict=True):
        assert job["product_id"] == accepted["product_id"]
        assert job["options"]["aspect_ratio"] == ratio
        assert job["options"]["duration"] == variant["duration"]
        width, height = (int(n) for n in ratio.split(":"))
        assert Fraction(job["video"]["width"], job["video"]["height"]) == Fraction(width, height)
    product = await database["products"].find_one({"_id": accepted["product_id"]})
    stored = [await database["jobs"].find_one({"_id": j["id"]}) for j in jobs]
    assert {s["image"]["key"] for s in stored} == {product["image"]["key"]}

    # The same product again: every variant completes at once with its earlier clip.
    again = await finished(system, api, await submit_product(api, photo))

    assert [j["status"] for j in again] == ["completed"] * 3
    assert [j["video"]["reused_from"] for j in again] == [j["id"] for j in jobs]
    assert len(fake.calls(CHAT)) == 1 and len(fake.calls(CREATE)) == 3
