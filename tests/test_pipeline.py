"""A photo goes in over HTTP and a playable clip comes out, with every step
pushed over the WebSocket: the four services as real processes, on the real
broker and database, with filesystem storage and with S3."""

from pathlib import Path

import httpx
import pytest

from common.storage import video_key
from tests.support import client as user
from tests.support.processes import System

pytestmark = pytest.mark.timeout(240)


@pytest.mark.parametrize(("aspect_ratio", "duration"), [("9:16", 4)])
async def test_photo_becomes_a_clip_followed_live(
    system_on: System, tmp_path: Path, aspect_ratio: str, duration: int
) -> None:
    async with httpx.AsyncClient(base_url=system_on.gateway.url, timeout=30) as api:
        config = (await api.get(f"{user.API}/config")).json()
        assert config["ws_url"] == system_on.ws_url

        accepted = await user.submitted(
            api, user.product_photo(seed=1), aspect_ratio=aspect_ratio, duration=duration
        )
        job_id, token = accepted["id"], accepted["token"]
        assert accepted["status"] == "queued" and accepted["job"]["id"] == job_id

        # Subscribing with the seq the job had when accepted: every later step is pushed.
        after_seq = accepted["job"]["seq"]
        followed = await user.follow(config["ws_url"], job_id, token, after_seq=after_seq)
        assert followed.final_status == "completed", followed.final
        assert followed.snapshot["id"] == job_id
        user.assert_followed_in_order(followed, after_seq=after_seq)
        assert user.stages(["queued"] + [s["status"] for s in followed.statuses]) == user.STAGES
        assert followed.final["job"]["status"] == "completed"  # the newest step carries the job

        job = await user.get_job(api, job_id, token)
        assert job["status"] == "completed" and job["progress"] == 100
        assert job["prompt"]["text"] and job["prompt"]["source"] in ("template", "llm")
        video = job["video"]

        # The API's download link, and the link in the job, serve the same clip.
        redirect = await api.get(f"{user.API}/jobs/{job_id}/video", headers=user.auth(token))
        assert redirect.status_code == 302, redirect.text
        via_endpoint = await user.download(
            api, redirect.headers["location"], tmp_path / "via-endpoint.mp4"
        )
        via_url = await user.download(api, video["url"], tmp_path / "via-url.mp4")
        assert via_endpoint.read_bytes() == via_url.read_bytes()
        assert via_url.stat().st_size == video["size"]

    info = user.probe(via_url)
    user.assert_playable_clip(info, aspect_ratio=aspect_ratio, duration=duration)
    assert (info.width, info.height) == (video["width"], video["height"])
    assert abs(video["duration"] - duration) <= 0.1


async def test_the_clip_is_stored_under_its_key(system: System, api: httpx.AsyncClient) -> None:
    """The filesystem backend keeps the clip where the design says, in one folder
    shared by every service."""
    accepted = await user.submitted(api, user.product_photo(seed=2), aspect_ratio="16:9")
    followed = await user.follow(system.ws_url, accepted["id"], accepted["token"])
    assert followed.final_status == "completed", followed.final

    root = Path(system.env["STORAGE_URL"].removeprefix("file://"))
    clip = root / video_key(accepted["id"])
    info = user.probe(clip)
    user.assert_playable_clip(info, aspect_ratio="16:9", duration=3)
