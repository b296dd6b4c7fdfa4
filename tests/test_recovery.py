"""Recovery through the four services as real processes, on the real broker and
database: a job whose event was never published is driven on by the reconciler, and a
job canceled mid-render stops without a clip while the worker goes on with the next."""

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from common.jobs import JobRepository, new_job_id
from common.settings import CommonSettings
from common.storage import storage_from_settings, upload_key, video_key
from tests.conftest import _run
from tests.support import client as user
from tests.support import processes
from tests.support.processes import System

pytestmark = pytest.mark.timeout(240)

QUICK_RECONCILER = {"RECONCILE_INTERVAL_SECONDS": "1", "RECONCILE_STALE_SECONDS": "2"}


@pytest.fixture
def reconciling(
    request: pytest.FixtureRequest, system_env: dict[str, str], tmp_path: Path
) -> Iterator[System]:
    env = {**system_env, **QUICK_RECONCILER}
    yield from _run(request, env, tmp_path / "logs", processes.ALL)


async def test_a_job_stored_without_its_event_is_driven_to_completion(
    reconciling: System, database: AsyncDatabase
) -> None:
    """What a gateway that crashed between its database write and its publish leaves
    behind: a queued job nobody was told about. The reconciler re-publishes its event."""
    env = reconciling.env
    settings = CommonSettings(storage_url=env["STORAGE_URL"])
    photo = user.product_photo(seed=7, size=(400, 300))
    job_id = new_job_id()
    key = upload_key(job_id, "jpg")
    await storage_from_settings(settings).put_bytes(key, photo, "image/jpeg")
    await JobRepository(database).create(
        {
            "_id": job_id,
            "owner": user.new_email(),
            "client_ip": "127.0.0.1",
            "title": "Walnut desk organiser",
            "description": "Three compartments, oiled walnut.",
            "options": {"aspect_ratio": "1:1", "duration": 3, "style": None},
            "image": {
                "key": key,
                "sha256": hashlib.sha256(photo).hexdigest(),
                "width": 400,
                "height": 300,
                "content_type": "image/jpeg",
            },
        }
    )

    async def finished() -> dict | None:
        job = await database["jobs"].find_one({"_id": job_id})
        return job if job and job["status"] in user.FINAL else None

    job = await user.wait_for(finished, within=90, what="the unannounced job to finish")
    assert job["status"] == "completed", job.get("error")
    assert user.stages([h["status"] for h in job["history"]]) == user.STAGES
    assert (settings.storage_root / video_key(job_id)).stat().st_size == job["video"]["size"]


async def test_a_job_canceled_mid_render_stops_and_the_worker_goes_on(
    system: System, api: httpx.AsyncClient, database: AsyncDatabase
) -> None:
    # A long clip, so the render is surely still running when the cancel arrives.
    slow = await user.submitted(api, user.product_photo(seed=8), aspect_ratio="16:9", duration=10)

    async def generating() -> bool:
        job = await database["jobs"].find_one({"_id": slow["id"]})
        return bool(job and job["status"] == "generating")

    await user.wait_for(generating, within=60, what="the render to start", interval=0.1)
    canceled = await api.post(f"{user.API}/jobs/{slow['id']}/cancel")
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"

    # The worker notices at its next progress report, stops, and takes the next job.
    quick = await user.submitted(api, user.product_photo(seed=9), aspect_ratio="1:1")
    followed = await user.follow(system.ws_url, quick["id"], quick["token"], within=120)
    assert followed.final_status == "completed", followed.final
    assert "no longer ours" in system["video"].log()

    job = await database["jobs"].find_one({"_id": slow["id"]})
    assert job["status"] == "canceled" and "video" not in job and "lease" not in job
    root = CommonSettings(storage_url=system.env["STORAGE_URL"]).storage_root
    assert not (root / video_key(slow["id"])).exists()
    # Canceled is final: a late progress report of the stopped render changed nothing.
    assert job["history"][-1]["status"] == "canceled"
