"""Users through the real services: the code arrives at a real SMTP server, jobs
belong to the email that made them, and nobody else can see, download or watch
them, by REST or WebSocket. One job's token shares that job read-only."""

import json
from typing import Any

import httpx
import pytest
import websockets

from tests.support import client as user
from tests.support.mail import MailSink
from tests.support.processes import System

pytestmark = pytest.mark.timeout(240)


async def first_ws_answer(ws_url: str, job_id: str, token: str) -> dict[str, Any]:
    async with websockets.connect(ws_url, open_timeout=10) as ws:
        # The client offers compression; the notifier, started as in production
        # (`--ws-per-message-deflate false`), declines it.
        assert ws.request is not None and ws.response is not None
        assert "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await ws.send(json.dumps({"op": "subscribe", "job_id": job_id, "token": token}))
        while True:
            message = json.loads(await ws.recv())
            if message["type"] != "ping":
                return message  # type: ignore[no-any-return]


async def test_only_the_owner_sees_downloads_and_watches_a_job(
    system: System, mail_sink: MailSink
) -> None:
    async with (
        httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as alice,
        httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as mallory,
        httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as friend,
    ):
        alice_email = user.new_email()
        alice_session = await user.sign_in(alice, alice_email, mail=mail_sink)
        assert mail_sink.to(alice_email)[0].message["To"] == alice_email
        mallory_session = await user.sign_in(mallory, mail=mail_sink)

        accepted = await user.submitted(alice, user.product_photo(seed=11), duration=3)
        job_id, job_token = accepted["id"], accepted["token"]

        # The owner watches with her session; the job completes.
        followed = await user.follow(system.ws_url, job_id, alice_session)
        assert followed.final_status == "completed", followed.final
        mine = await alice.get(f"{user.API}/jobs", headers=user.auth(alice_session))
        assert [j["id"] for j in mine.json()["jobs"]] == [job_id]

        # Mallory: not in her list, not readable, not downloadable, not watchable.
        theirs = await mallory.get(f"{user.API}/jobs", headers=user.auth(mallory_session))
        assert theirs.json() == {"jobs": [], "next_cursor": None}
        for path in ("", "/video", "/poster"):
            response = await mallory.get(
                f"{user.API}/jobs/{job_id}{path}", headers=user.auth(mallory_session)
            )
            assert response.status_code == 404, (path, response.text)
        refused = await first_ws_answer(system.ws_url, job_id, mallory_session)
        assert refused["type"] == "error" and refused["code"] == "job_not_found"
        for action in ("cancel", "retry"):
            response = await mallory.post(
                f"{user.API}/jobs/{job_id}/{action}", headers=user.auth(mallory_session)
            )
            assert response.status_code == 404, response.text

        # A friend with the job token (shared by Alice) may watch and play it, nothing more.
        shared = await friend.get(f"{user.API}/jobs/{job_id}", headers=user.auth(job_token))
        assert shared.status_code == 200 and shared.json()["status"] == "completed"
        video = await friend.get(f"{user.API}/jobs/{job_id}/video", headers=user.auth(job_token))
        assert video.status_code == 302
        assert (await first_ws_answer(system.ws_url, job_id, job_token))["type"] == "snapshot"
        retry = await friend.post(f"{user.API}/jobs/{job_id}/retry", headers=user.auth(job_token))
        assert retry.status_code == 401

        # Signing out ends the session in the gateway and the notifier alike.
        out = await alice.post(f"{user.API}/auth/logout", headers=user.auth(alice_session))
        assert out.status_code == 204
        again = await alice.get(f"{user.API}/jobs", headers=user.auth(alice_session))
        assert again.status_code == 401
        ended = await first_ws_answer(system.ws_url, job_id, alice_session)
        assert ended["type"] == "error" and ended["code"] == "invalid_token"

    # Codes, tokens and the signing key never reach any service's log.
    logs = system.logs()
    code = mail_sink.to(alice_email)[0].code
    for secret in (code, alice_session, job_token, system.env["SIGNING_KEY"]):
        assert secret not in logs
