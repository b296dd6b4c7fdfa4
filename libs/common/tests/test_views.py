"""`PUBLIC_JOB_FIELDS` asks the database for everything `public_job` shows: a job with
every field the view reads looks the same read whole or read with the projection."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from common.settings import CommonSettings
from common.storage import FileStorage
from common.tokens import Signer
from common.views import PRODUCT_LINKS, PUBLIC_JOB_FIELDS, public_job


def full_job(job_id: str) -> dict[str, Any]:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return {
        "_id": job_id,
        "owner": "owner@example.com",
        "client_ip": "203.0.113.9",
        "token_version": 2,
        "title": "Stoneware Mug",
        "description": "Hand-thrown mug.",
        "options": {"aspect_ratio": "9:16", "duration": 5},
        "image": {
            "key": f"uploads/{job_id}/source.png",
            "sha256": "0" * 64,
            "width": 600,
            "height": 900,
            "content_type": "image/png",
        },
        "status": "completed",
        "progress": 100,
        "seq": 3,
        "attempts": 1,
        "history": [
            {"seq": 1, "status": "queued", "progress": 0, "at": at},
            {"seq": 2, "status": "generating", "progress": 50, "at": at},
            {"seq": 3, "status": "completed", "progress": 100, "at": at},
        ],
        "prompt": {
            "text": "Slow push in.",
            "source": "llm",
            "model": "m",
            "cost": 0.01,
            "key": "k",
        },
        "brief": {"hook": "Warm mornings", "cta": "Shop now"},
        "notes": ["reused the prompt"],
        "provider_job": {"provider": "local", "id": "p1", "cost": 0.25},
        "video": {
            "key": f"videos/{job_id}/video.mp4",
            "poster_key": f"videos/{job_id}/poster.jpg",
            "duration": 5.0,
            "width": 720,
            "height": 1280,
            "size": 12345,
            "codec": "h264",
            "finished": True,
            "audio": "music",
            "fidelity": 0.9,
            "fidelity_warning": False,
            "reused_from": None,
        },
        "error": {"code": "none", "message": "kept for the view", "retryable": False},
        **{link: f"{link}-1" for link in PRODUCT_LINKS},
        "created_at": at,
        "updated_at": at,
    }


async def test_the_projection_keeps_every_field_the_view_shows(
    mongo_db: Any, tmp_path: Path
) -> None:
    storage = FileStorage(tmp_path)
    signer = Signer(CommonSettings(signing_key=SecretStr("test-key")))
    await mongo_db.jobs.insert_one(full_job("j1"))

    whole = await mongo_db.jobs.find_one({"_id": "j1"})
    projected = await mongo_db.jobs.find_one({"_id": "j1"}, PUBLIC_JOB_FIELDS)

    assert "owner" not in projected and "key" not in projected["image"]  # it does leave some
    views = [await public_job(job, storage, signer) for job in (whole, projected)]
    for view in views:  # signed links carry the second they were made in: compared apart
        links = [view["video"].pop(name) for name in ("url", "poster_url", "download_url")]
        assert all(links)
    assert views[0] == views[1]
