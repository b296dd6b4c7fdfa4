"""Sign-in by email through a real SMTP server: codes, sessions, sign-out, and
secrets that never reach the log."""

import asyncio
import logging
import re
import time

import pytest
from pydantic import SecretStr

from services.gateway.tests.support import MIB, MULTIPART, Stream
from tests.support import client as user
from tests.support.mail import MailSink

API = "/api/v1"


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"], error
    return error


async def ask_code(gateway, email: str, sink: MailSink) -> str:
    seen = len(sink.to(email))
    response = await gateway.client.post(f"{API}/auth/email", json={"email": email})
    assert response.status_code == 202, response.text
    return await sink.next_code(email, seen=seen)


async def verify(gateway, email: str, code: str):
    return await gateway.client.post(f"{API}/auth/verify", json={"email": email, "code": code})


async def test_the_code_arrives_by_email_and_becomes_a_session(gateway, mail_sink):
    email = user.new_email()
    response = await gateway.client.post(f"{API}/auth/email", json={"email": f"  {email.upper()} "})
    assert response.status_code == 202, response.text
    assert response.json() == {"email": email, "expires_in": 600, "resend_after": 60}
    assert response.headers["cache-control"] == "no-store"
    code = await mail_sink.next_code(email, seen=0)
    mail = mail_sink.to(email)[0].message
    assert mail["To"] == email and code in mail.get_content()

    # Only a keyed hash of the code is stored.
    stored = await gateway.services.db["email_codes"].find_one({"_id": email})
    assert stored["attempts"] == 0 and code not in str(stored)

    session = await verify(gateway, email, code)
    assert session.status_code == 200, session.text
    body = session.json()
    assert body["email"] == email and body["token"] and body["expires_at"]
    assert await gateway.services.db["users"].find_one({"_id": email}) is not None
    me = await gateway.client.get(f"{API}/auth/me", headers=user.auth(body["token"]))
    assert me.json() == {"email": email, "credential": "session", "scopes": None}

    # A code works once.
    error_of(await verify(gateway, email, code), 400, "code_expired")


async def test_wrong_codes_use_up_the_attempts(gateway, mail_sink):
    email = user.new_email()
    code = await ask_code(gateway, email, mail_sink)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for left in (4, 3, 2, 1, 0):
        error = error_of(await verify(gateway, email, wrong), 400, "invalid_code")
        assert error["details"] == {"attempts_left": left}
    # Even the right code is refused now: the next guess would be the sixth.
    error_of(await verify(gateway, email, code), 400, "too_many_attempts")


async def test_an_expired_code_fails(start_gateway, mail_sink):
    async with start_gateway(code_ttl_seconds=1, code_resend_seconds=0) as gateway:
        email = user.new_email()
        code = await ask_code(gateway, email, mail_sink)
        await asyncio.sleep(1.2)  # the code's lifetime passes
        error_of(await verify(gateway, email, code), 400, "code_expired")
        # A new code works.
        fresh = await ask_code(gateway, email, mail_sink)
        assert (await verify(gateway, email, fresh)).status_code == 200


async def test_asking_again_too_soon_is_429_with_retry_after(gateway, mail_sink):
    email = user.new_email()
    await ask_code(gateway, email, mail_sink)
    again = await gateway.client.post(f"{API}/auth/email", json={"email": email})
    error = error_of(again, 429, "rate_limited")
    assert error["details"]["limit"] == "code_resend"
    assert 1 <= int(again.headers["retry-after"]) <= 60
    assert len(mail_sink.to(email)) == 1  # no second mail


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-address"},
        {"email": "a@b"},
        {"email": "x" * 400 + "@example.com"},
        {"email": "a\r\nBcc: victim@example.com@example.com"},
        # Quotes, comments and lists reach another mailbox than the string names.
        {"email": '"victim"@example.com'},
        {"email": "(1)victim@example.com"},
        {"email": "victim(2)@example.com"},
        {"email": "x,victim@example.com"},
        {"email": "<victim@example.com>"},
        {"email": "a..b@example.com"},
        {"email": "a@-example.com"},
        {},
        {"email": 42},
    ],
)
async def test_bad_addresses_are_422(gateway, body):
    response = await gateway.client.post(f"{API}/auth/email", json=body)
    error_of(response, 422, "validation_error")


async def test_sign_out_revokes_the_session_everywhere(gateway):
    token = await gateway.sign_in()
    assert (await gateway.client.get(f"{API}/auth/me", headers=user.auth(token))).status_code == 200
    out = await gateway.client.post(f"{API}/auth/logout", headers=user.auth(token))
    assert out.status_code == 204
    for response in (
        await gateway.client.get(f"{API}/auth/me", headers=user.auth(token)),
        await gateway.submit(headers=user.auth(token)),
        await gateway.client.get(f"{API}/jobs", headers=user.auth(token)),
    ):
        error_of(response, 401, "unauthorized")


async def test_creating_a_job_needs_a_session(gateway):
    accepted = await gateway.submit()
    job_token = accepted.json()["token"]
    for headers in ({"Authorization": ""}, user.auth("forged"), user.auth(job_token)):
        response = await gateway.client.post(
            f"{API}/jobs",
            data={"title": "Mug", "description": "A mug."},
            files={"image": ("p.jpg", b"\xff\xd8\xff", "image/jpeg")},
            headers=headers,
        )
        error_of(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
    assert await gateway.job_count() == 1


async def test_an_upload_without_a_session_is_refused_before_its_body_is_read(gateway):
    """A form is parsed before the route's dependencies run: without the early check an
    anonymous client could make the gateway read and spool a whole upload for a 401.
    A client that waits for "100 Continue" (as curl does) is never asked for a byte; one
    that sends at once has its body drained unparsed (tests/test_early_refusals.py)."""
    accepted = await gateway.submit()
    signer = gateway.services.signer
    expired = signer.session_token("sid", "someone@example.com", time.time() - 1)
    for headers in (
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        user.auth("forged"),
        user.auth(accepted.json()["token"]),  # a job token reads, never uploads
        user.auth(expired),
    ):
        body = Stream(15 * MIB)
        response = await gateway.client.post(
            f"{API}/jobs",
            content=body,
            headers={**MULTIPART, "Expect": "100-continue", **headers},
        )
        error_of(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["connection"] == "close"
        assert body.yielded == 0, (headers, body.yielded)
    assert await gateway.job_count() == 1


async def test_without_smtp_the_code_is_in_the_log(start_gateway, capfd):
    async with start_gateway(smtp_host=None) as gateway:
        # Said at startup, before anyone signs in: this is for development only.
        started = capfd.readouterr().out
        assert "SMTP_HOST is not set: sign-in codes are written to this log" in started
        assert "set SMTP_HOST in production" in started
        email = user.new_email()
        response = await gateway.client.post(f"{API}/auth/email", json={"email": email})
        assert response.status_code == 202
        logged = capfd.readouterr().out
        found = re.search(rf"sign-in code for {re.escape(email)}: (\d{{6}})", logged)
        assert found, logged
        assert (await verify(gateway, email, found.group(1))).status_code == 200


async def test_smtp_failure_is_503_and_does_not_block_a_retry(start_gateway, mail_sink):
    dead_port = MailSink().port  # nothing listens there
    async with start_gateway(smtp_port=dead_port, smtp_timeout_seconds=2) as gateway:
        email = user.new_email()
        response = await gateway.client.post(f"{API}/auth/email", json={"email": email})
        error_of(response, 503, "mail_unavailable")
        assert await gateway.services.db["email_codes"].count_documents({}) == 0
    async with start_gateway() as gateway:
        code = await ask_code(gateway, email, mail_sink)  # no cool-down after a failed send
        assert (await verify(gateway, email, code)).status_code == 200


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_secrets_never_reach_the_log(start_gateway, capfd):
    """SMTP password, signing key, codes and session tokens stay out of every log line."""
    password = "smtp-pa55word-never-logged"
    # The test's own SMTP server logs what it receives: that is the inbox, not our log.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    sink = MailSink(credentials=("mailer", password)).start()
    try:
        async with start_gateway(
            smtp_port=sink.port,
            smtp_username="mailer",
            smtp_password=SecretStr(password),
            log_level="DEBUG",
        ) as gateway:
            email = user.new_email()
            token = await user.sign_in(gateway.client, email, mail=sink)
            code = sink.to(email)[0].code
            gateway.session = token  # submit as this user
            assert (await gateway.submit()).status_code == 202
            await gateway.client.post(f"{API}/auth/verify", json={"email": email, "code": "000000"})
            await gateway.client.post(f"{API}/auth/logout", headers=user.auth(token))
            key = gateway.settings.signing_key.get_secret_value()
    finally:
        sink.stop()
    assert sink.logins == ["mailer"]  # the password was used...
    logged = capfd.readouterr().out
    assert "sign-in code sent" in logged  # ...and the log was captured
    for secret in (password, key, code, token):
        assert secret not in logged
