"""The S3 storage path: photos go to the bucket, downloads are presigned URLs."""

import uuid

import httpx
import pytest

from common.storage import poster_key, video_key

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(5000)


@pytest.fixture
def s3_settings(settings, s3_env, monkeypatch):
    """Runs after `settings`, so its STORAGE_URL wins."""
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("STORAGE_URL", f"s3://pv-test-{uuid.uuid4().hex[:8]}")


async def test_s3_upload_and_presigned_download(s3_settings, start_gateway):
    async with start_gateway() as gateway:
        storage = gateway.services.storage
        response = await gateway.submit()
        assert response.status_code == 202, response.text
        job_id, token = response.json()["id"], response.json()["token"]
        image_key = f"uploads/{job_id}/source.jpg"
        assert await storage.exists(image_key)

        await storage.put_bytes(video_key(job_id), VIDEO, "video/mp4")
        await storage.put_bytes(poster_key(job_id), b"\xff\xd8\xffposter", "image/jpeg")
        await gateway.services.db["jobs"].update_one(
            {"_id": job_id},
            {
                "$set": {
                    "status": "completed",
                    "progress": 100,
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

        auth = {"Authorization": f"Bearer {token}"}
        redirect = await gateway.client.get(f"/api/v1/jobs/{job_id}/video", headers=auth)
        download = await gateway.client.get(
            f"/api/v1/jobs/{job_id}/video", params={"download": "1"}, headers=auth
        )
        # The gateway serves nothing itself with S3 storage.
        signed = gateway.services.signer.file_signature(video_key(job_id))
        served = await gateway.client.get(f"/api/v1/files/{signed}")
        endpoint = gateway.settings.s3_endpoint_url

    assert redirect.status_code == 302
    location = redirect.headers["location"]
    assert location.startswith(endpoint) and "Signature" in location
    async with httpx.AsyncClient() as outside:
        fetched = await outside.get(location)
        assert fetched.status_code == 200 and fetched.content == VIDEO
        saved = await outside.get(download.headers["location"])
        assert saved.status_code == 200 and saved.content == VIDEO
        assert saved.headers["content-disposition"] == 'attachment; filename="red-mug.mp4"'
    assert served.status_code == 404
