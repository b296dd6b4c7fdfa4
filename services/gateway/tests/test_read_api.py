"""Reading jobs and their files: who may see what, redirects, signed links, Range."""

import time
from typing import Any

import itsdangerous.timed
from pydantic import SecretStr

from common.storage import poster_key, video_key
from common.tokens import Signer

VIDEO = bytes(range(256)) * 40  # stands in for an MP4: the gateway never decodes it
POSTER = b"\xff\xd8\xff\xe0poster"


async def submitted(gateway: Any, **fields: Any) -> tuple[str, str]:
    response = await gateway.submit(**fields)
    assert response.status_code == 202, response.text
    return response.json()["id"], response.json()["token"]


async def complete(gateway: Any, job_id: str) -> None:
    """What the video worker leaves behind: the files stored, the job completed."""
    storage = gateway.services.storage
    await storage.put_bytes(video_key(job_id), VIDEO, "video/mp4")
    await storage.put_bytes(poster_key(job_id), POSTER, "image/jpeg")
    await gateway.services.db["jobs"].update_one(
        {"_id": job_id},
        {
            "$set": {
                "status": "completed",
                "progress": 100,
                "seq": 7,
                "video": {
                    "key": video_key(job_id),
                    "poster_key": poster_key(job_id),
                    "duration": 5.0,
                    "width": 720,
                    "height": 1280,
                    "size": len(VIDEO),
                    "codec": "h264",
                },
            }
        },
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])


async def test_the_job_token_reads_the_job(gateway):
    job_id, token = await submitted(gateway)

    by_header = await gateway.client.get(f"/api/v1/jobs/{job_id}", headers=bearer(token))

    assert by_header.status_code == 200
    assert by_header.json()["id"] == job_id and by_header.json()["status"] == "queued"
    assert by_header.json()["history"][0]["status"] == "queued"


async def test_missing_or_invalid_token_is_401(gateway):
    job_id, token = await submitted(gateway)
    forged = Signer(
        gateway.settings.model_copy(update={"signing_key": SecretStr("other")})
    ).job_token(job_id)

    for headers in ({}, bearer("not-a-token"), bearer(forged), {"Authorization": f"Basic {token}"}):
        response = await gateway.client.get(f"/api/v1/jobs/{job_id}", headers=headers)
        assert response.status_code == 401 and error_code(response) == "unauthorized", headers
        assert response.headers["www-authenticate"] == "Bearer"


async def test_other_jobs_and_missing_jobs_look_the_same_404(gateway):
    _, token_a = await submitted(gateway)
    job_b, _ = await submitted(gateway, title="Blue mug")
    ghost_token = gateway.services.signer.job_token("0" * 32)

    cross = await gateway.client.get(f"/api/v1/jobs/{job_b}", headers=bearer(token_a))
    ghost = await gateway.client.get(f"/api/v1/jobs/{'0' * 32}", headers=bearer(ghost_token))
    cross_video = await gateway.client.get(f"/api/v1/jobs/{job_b}/video", headers=bearer(token_a))

    for response in (cross, ghost, cross_video):
        assert response.status_code == 404 and error_code(response) == "job_not_found"
    assert cross.json() == ghost.json()
    assert job_b not in cross.text and "Blue mug" not in cross.text


async def test_video_and_poster_are_409_until_the_job_completes(gateway):
    job_id, token = await submitted(gateway)
    for which in ("video", "poster"):
        response = await gateway.client.get(f"/api/v1/jobs/{job_id}/{which}", headers=bearer(token))
        assert response.status_code == 409 and error_code(response) == "video_not_ready"
        assert response.json()["error"]["details"] == {"status": "queued"}


async def test_completed_video_redirects_to_a_file_that_streams_with_range(gateway):
    job_id, token = await submitted(gateway)
    await complete(gateway, job_id)

    redirect = await gateway.client.get(f"/api/v1/jobs/{job_id}/video", headers=bearer(token))
    assert redirect.status_code == 302
    location = redirect.headers["location"]
    assert location.startswith("/api/v1/files/") and "download" not in location
    assert redirect.headers["cache-control"] == "no-store"

    whole = await gateway.client.get(location)
    assert whole.status_code == 200 and whole.content == VIDEO
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    assert "content-disposition" not in whole.headers

    part = await gateway.client.get(location, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == VIDEO[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(VIDEO)}"

    # The public view links the same files, with links that live minutes.
    view = (await gateway.client.get(f"/api/v1/jobs/{job_id}", headers=bearer(token))).json()
    assert view["status"] == "completed" and view["video"]["codec"] == "h264"
    assert (await gateway.client.get(view["video"]["poster_url"])).content == POSTER
    saved = await gateway.client.get(view["video"]["download_url"])
    assert saved.content == VIDEO and "attachment" in saved.headers["content-disposition"]
    assert gateway.services.signer.download_ttl <= 15 * 60


async def test_download_flag_names_the_file_after_the_title(gateway):
    job_id, token = await submitted(gateway, title="  Tasse «Été» — Red / Mug!  ")
    await complete(gateway, job_id)

    video = await gateway.client.get(
        f"/api/v1/jobs/{job_id}/video", params={"download": "1"}, headers=bearer(token)
    )
    poster = await gateway.client.get(
        f"/api/v1/jobs/{job_id}/poster", params={"download": "true"}, headers=bearer(token)
    )

    file = await gateway.client.get(video.headers["location"])
    assert file.status_code == 200 and file.content == VIDEO
    assert file.headers["content-disposition"] == 'attachment; filename="tasse-ete-red-mug.mp4"'
    image = await gateway.client.get(poster.headers["location"])
    assert image.headers["content-type"] == "image/jpeg"
    assert image.headers["content-disposition"] == 'attachment; filename="tasse-ete-red-mug.jpg"'


async def test_download_name_from_a_tampered_link_is_sanitised(gateway):
    job_id, token = await submitted(gateway)
    await complete(gateway, job_id)
    redirect = await gateway.client.get(f"/api/v1/jobs/{job_id}/video", headers=bearer(token))

    file = await gateway.client.get(
        redirect.headers["location"], params={"download": '../"evil"\r\nX-Injected: 1.exe'}
    )

    assert file.status_code == 200
    assert file.headers["content-disposition"] == 'attachment; filename="evil-x-injected-1-exe.mp4"'
    assert "x-injected" not in file.headers


async def test_bad_expired_and_dangling_file_links(gateway, monkeypatch):
    signer = gateway.services.signer
    job_id, _ = await submitted(gateway)
    image_key = (await gateway.services.repo.get(job_id))["image"]["key"]

    good = await gateway.client.get(f"/api/v1/files/{signer.file_signature(image_key)}")
    assert good.status_code == 200 and good.headers["content-type"] == "image/jpeg"

    forged = Signer(gateway.settings.model_copy(update={"signing_key": SecretStr("x")}))
    bad = await gateway.client.get(f"/api/v1/files/{forged.file_signature(image_key)}")
    assert bad.status_code == 403 and error_code(bad) == "invalid_link"

    # A link signed longer ago than its lifetime.
    past = time.time() - signer.download_ttl - 60
    with monkeypatch.context() as m:
        m.setattr(
            itsdangerous.timed, "time", type("Clock", (), {"time": staticmethod(lambda: past)})
        )
        old = signer.file_signature(image_key)
    expired = await gateway.client.get(f"/api/v1/files/{old}")
    assert expired.status_code == 403 and error_code(expired) == "link_expired"

    missing = await gateway.client.get(f"/api/v1/files/{signer.file_signature('videos/x/y.mp4')}")
    assert missing.status_code == 404 and error_code(missing) == "file_not_found"
