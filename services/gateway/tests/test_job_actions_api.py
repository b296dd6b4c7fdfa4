"""Cancel and retry over HTTP: the owner's session decides who may act, the status machine
decides what applies, and a retry publishes the work event of the stage that failed."""

import pytest

from common.events import JobSubmitted, PromptReady


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _submitted(gateway) -> tuple[str, dict[str, str]]:
    response = await gateway.submit()
    assert response.status_code == 202, response.text
    return response.json()["id"], await gateway.auth()  # the owner's session


async def test_cancel_a_queued_job(gateway) -> None:
    job_id, auth = await _submitted(gateway)
    response = await gateway.client.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth)
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "canceled"
    assert [h["status"] for h in job["history"]] == ["queued", "canceled"]

    again = await gateway.client.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_final"
    assert again.json()["error"]["details"] == {"status": "canceled"}


async def test_only_the_owner_may_act(gateway) -> None:
    job_id, _ = await _submitted(gateway)
    job_token = {"Authorization": f"Bearer {gateway.services.signer.job_token(job_id)}"}
    other = {"Authorization": f"Bearer {await gateway.sign_in()}"}  # another user
    for action in ("cancel", "retry"):
        refused = await gateway.client.post(f"/api/v1/jobs/{job_id}/{action}", headers=other)
        assert refused.status_code == 404, refused.text
        assert refused.json()["error"]["code"] == "job_not_found"
        # The job token shares the job read-only.
        shared = await gateway.client.post(f"/api/v1/jobs/{job_id}/{action}", headers=job_token)
        assert shared.status_code == 401, shared.text
        anonymous = await gateway.client.post(f"/api/v1/jobs/{job_id}/{action}")
        assert anonymous.status_code == 401
    read = await gateway.client.get(f"/api/v1/jobs/{job_id}", headers=other)
    assert read.status_code == 404
    shared_read = await gateway.client.get(f"/api/v1/jobs/{job_id}", headers=job_token)
    assert shared_read.status_code == 200


async def test_the_owner_revokes_every_job_token_of_a_job(gateway) -> None:
    job_id, auth = await _submitted(gateway)
    shared = gateway.services.signer.job_token(job_id)  # in a link sent to a friend
    url = f"/api/v1/jobs/{job_id}"
    assert (await gateway.client.get(url, headers=bearer(shared))).status_code == 200

    # Nobody but the owner's session may revoke them.
    for headers in (bearer(shared), {}):
        refused = await gateway.client.post(f"{url}/token", headers=headers)
        assert refused.status_code == 401, refused.text
    stranger = {"Authorization": f"Bearer {await gateway.sign_in()}"}
    assert (await gateway.client.post(f"{url}/token", headers=stranger)).status_code == 404

    replaced = await gateway.client.post(f"{url}/token", headers=auth)
    assert replaced.status_code == 200, replaced.text
    fresh = replaced.json()["token"]
    revoked = await gateway.client.get(url, headers=bearer(shared))
    assert revoked.status_code == 404 and revoked.json()["error"]["code"] == "job_not_found"
    assert (await gateway.client.get(url, headers=bearer(fresh))).status_code == 200
    # The owner's list hands out the new token, not a revoked one: the same grant (job and
    # version), signed anew, so its time stamp may be a second later than `fresh`'s.
    listed = (await gateway.client.get("/api/v1/jobs", headers=auth)).json()["jobs"]
    signer = gateway.services.signer
    tokens = [j["token"] for j in listed if j["id"] == job_id]
    assert [signer.job_grant(t) for t in tokens] == [signer.job_grant(fresh)]
    assert signer.job_grant(fresh) != signer.job_grant(shared)


async def test_only_a_failed_job_is_retried(gateway) -> None:
    job_id, auth = await _submitted(gateway)
    response = await gateway.client.post(f"/api/v1/jobs/{job_id}/retry", headers=auth)
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "job_not_failed",
        "message": "Only a failed job can be retried; this one is queued.",
        "details": {"status": "queued"},
    }


@pytest.mark.parametrize("has_prompt", [False, True])
async def test_retry_restarts_from_the_stage_that_failed(gateway, has_prompt: bool) -> None:
    job_id, auth = await _submitted(gateway)
    services = gateway.services
    # Drain the submission's own event: only the retry's event is looked at below.
    assert await gateway.next_message(gateway.prompt_queue) is not None
    if has_prompt:
        await services.db["jobs"].update_one(
            {"_id": job_id}, {"$set": {"prompt": {"text": "Slow zoom.", "source": "template"}}}
        )
    await services.pipeline.fail(job_id, code="render_failed", detail="ffmpeg broke")

    response = await gateway.client.post(f"/api/v1/jobs/{job_id}/retry", headers=auth)
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["error"] is None
    assert [h["status"] for h in job["history"]][-2:] == [
        "failed",
        "prompt_ready" if has_prompt else "queued",
    ]
    if has_prompt:
        assert job["status"] == "prompt_ready" and job["prompt"]["text"] == "Slow zoom."
        queue = services.topology.video_jobs.queue.name
        event = PromptReady.model_validate_json((await gateway.next_message(queue)).body)
    else:
        assert job["status"] == "queued"
        event = JobSubmitted.model_validate_json(
            (await gateway.next_message(gateway.prompt_queue)).body
        )
    assert event.job_id == job_id


async def test_retries_count_against_the_free_tier_and_run_out(start_gateway) -> None:
    async with start_gateway(
        free_running_jobs_per_email=1, free_jobs_per_email=3, retries_per_job=2
    ) as gateway:
        job_id, auth = await _submitted(gateway)
        retry = f"/api/v1/jobs/{job_id}/retry"
        pipeline = gateway.services.pipeline

        await pipeline.fail(job_id, code="render_failed", detail="ffmpeg broke")
        busy_id, _ = await _submitted(gateway)  # now one job runs: the limit of one
        refused = await gateway.client.post(retry, headers=auth)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["details"]["limit"] == "running_jobs_per_email"

        await gateway.client.post(f"/api/v1/jobs/{busy_id}/cancel", headers=auth)
        assert (await gateway.client.post(retry, headers=auth)).status_code == 200
        await pipeline.fail(job_id, code="render_failed", detail="again")
        # Two jobs and one retry made: the third video of the day is the last one.
        limited = await gateway.client.post(retry, headers=auth)
        assert limited.status_code == 429, limited.text
        assert limited.json()["error"]["details"]["limit"] == "jobs_per_email"


async def test_a_job_is_retried_only_so_many_times(start_gateway) -> None:
    async with start_gateway(retries_per_job=1) as gateway:
        job_id, auth = await _submitted(gateway)
        retry = f"/api/v1/jobs/{job_id}/retry"
        await gateway.services.pipeline.fail(job_id, code="render_failed", detail="broke")
        assert (await gateway.client.post(retry, headers=auth)).status_code == 200
        await gateway.services.pipeline.fail(job_id, code="render_failed", detail="again")
        used_up = await gateway.client.post(retry, headers=auth)
        assert used_up.status_code == 409
        assert used_up.json()["error"]["code"] == "retries_used_up"
