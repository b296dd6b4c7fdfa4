"""Nobody locks a mailbox's owner out of signing in: a stranger on another network asks
for codes to every plus-address of the mailbox, and tries wrong codes on the owner's,
and the owner still gets a code and signs in with it."""

import httpx

from tests.support import client as user
from tests.support.mail import MailSink

API = "/api/v1"
OWNER = "203.0.113.20"
STRANGER = "198.51.100.7"


def client_from(gateway, peer: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=gateway.app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def ask_code(client: httpx.AsyncClient, email: str, sink: MailSink) -> str:
    seen = len(sink.to(email))
    response = await client.post(f"{API}/auth/email", json={"email": email})
    assert response.status_code == 202, response.text
    return await sink.next_code(email, seen=seen)


async def verify(client: httpx.AsyncClient, email: str, code: str) -> httpx.Response:
    return await client.post(f"{API}/auth/verify", json={"email": email, "code": code})


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


async def test_codes_for_every_plus_address_do_not_lock_the_owner_out(start_gateway, mail_sink):
    victim = user.new_email()
    local, domain = victim.split("@")
    # The default allowances (the test environment lifts them).
    async with (
        start_gateway(free_codes_per_email=10, free_codes_per_ip=50) as gateway,
        client_from(gateway, STRANGER) as stranger,
        client_from(gateway, OWNER) as owner,
    ):
        for n in range(1, 11):
            plus = {"email": f"{local}+{n}@{domain}"}
            assert (await stranger.post(f"{API}/auth/email", json=plus)).status_code == 202
        # The mailbox's allowance is used up, for the stranger's network only.
        more = await stranger.post(f"{API}/auth/email", json={"email": f"{local}+11@{domain}"})
        assert more.status_code == 429, more.text
        assert more.json()["error"]["details"]["limit"] == "codes_per_email"

        code = await ask_code(owner, victim, mail_sink)
        assert (await verify(owner, victim, code)).status_code == 200


async def test_wrong_tries_from_elsewhere_leave_the_owners_code_good(gateway, mail_sink):
    victim = user.new_email()
    async with client_from(gateway, STRANGER) as stranger, client_from(gateway, OWNER) as owner:
        code = await ask_code(owner, victim, mail_sink)
        for _ in range(gateway.settings.code_max_attempts):
            assert error_code(await verify(stranger, victim, wrong(code))) == "invalid_code"
        # The stranger's network is done with this code, even with the right one...
        assert error_code(await verify(stranger, victim, code)) == "too_many_attempts"
        # ...the owner's is not.
        assert (await verify(owner, victim, code)).status_code == 200


async def test_a_code_spent_from_many_networks_is_replaced_at_once(gateway, mail_sink):
    """Against guessing from many networks a code takes a bounded number of wrong tries
    in all; once it is spent, the owner gets a new one without waiting for the cool-down."""
    victim = user.new_email()
    async with client_from(gateway, OWNER) as owner:
        code = await ask_code(owner, victim, mail_sink)
        for network in range(1, 5):
            async with client_from(gateway, f"198.51.100.{network}") as stranger:
                for _ in range(gateway.settings.code_max_attempts):
                    await verify(stranger, victim, wrong(code))
        assert error_code(await verify(owner, victim, code)) == "too_many_attempts"

        fresh = await ask_code(owner, victim, mail_sink)
        assert (await verify(owner, victim, fresh)).status_code == 200
