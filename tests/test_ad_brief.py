"""The creative brief end to end: a photo submitted over HTTP with a preset, a CTA and a
price comes back with its brief in the job JSON, written by the real prompt worker (the
offline template, or OpenRouter through the fake), both services as real processes on the
real broker and database."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from tests.support import client as user
from tests.support import processes
from tests.support.fake_openrouter import FakeOpenRouter

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=["template", "openrouter"])
def prompted(
    request: pytest.FixtureRequest, system_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[processes.System, FakeOpenRouter | None]]:
    """The gateway and the prompt worker (no video worker: jobs stop at prompt_ready)."""
    env, fake = dict(system_env), None
    if request.param == "openrouter":
        fake = request.getfixturevalue("fake")
        env |= {**fake.env(), "PROMPT_PROVIDER": "openrouter"}
    try:
        with processes.running(env, tmp_path / "logs", ("gateway", "prompt")) as system:
            yield system, fake
    finally:
        with MongoClient[dict[str, object]](env["MONGODB_URL"]) as client:
            client.drop_database(env["MONGODB_DATABASE"])


async def test_the_job_json_shows_the_brief_written_with_the_prompt(
    prompted: tuple[processes.System, FakeOpenRouter | None],
) -> None:
    system, fake = prompted
    async with httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as api:
        api.headers["Authorization"] = f"Bearer {await user.sign_in(api)}"
        fields = {
            "title": "Stoneware Mug",
            "description": "Hand-thrown mug with a speckled glaze. Holds 350 ml, dishwasher safe.",
            "preset": "reels",
            "cta": "Visit our Etsy shop",
            "price": "€24",
        }
        response = await api.post(
            f"{user.API}/jobs",
            files={"image": ("mug.jpg", user.product_photo(seed=7), "image/jpeg")},
            data=fields,
        )
        assert response.status_code == 202, response.text
        accepted = response.json()
        job_id, token = accepted["id"], accepted["token"]
        assert accepted["job"]["brief"] is None and accepted["job"]["notes"] == []
        assert accepted["job"]["options"]["aspect_ratio"] == "9:16"

        async def prompted_job() -> dict[str, Any] | None:
            job = await user.get_job(api, job_id, token)
            return job if job["status"] in ("prompt_ready", "failed") else None

        job = await user.wait_for(prompted_job, within=60, what="the prompt and its brief")
        assert job["status"] == "prompt_ready", job["error"]
        brief = job["brief"]
        # The owner's CTA and price; the rest from their words and their photo.
        assert brief["cta"] == "Visit our Etsy shop" and brief["price"] == "€24"
        assert brief["benefits"][0] == "Hand-thrown mug with a speckled glaze"
        assert all(
            line.casefold() in fields["description"].casefold() for line in brief["benefits"]
        )
        assert 2 <= len(brief["palette"]) <= 3
        assert all(len(c) == 7 and c.startswith("#") for c in brief["palette"])
        assert [s["kind"] for s in brief["shots"]] == ["detail", "hero", "end_card"]
        if fake is None:
            assert brief["hook"] == "Stoneware Mug" and job["prompt"]["source"] == "template"
        else:
            assert brief["hook"] == "Meet Stoneware Mug" and brief["mood"] == "calm"
            assert job["prompt"]["source"] == "llm"
            assert len(fake.calls("POST /chat/completions")) == 1  # prompt and brief at once
