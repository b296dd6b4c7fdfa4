"""Property-based fuzzing of the gateway's public API from its own OpenAPI document
(schemathesis), against a real gateway process on the real broker, database and
storage, with valid and with invalid requests: no answer is a 5xx, every error has
the one JSON shape, and every documented response (its status, headers and body)
matches the document. The answers fuzzing rarely reaches (a created job, a session)
are checked against the document explicitly."""

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from pymongo import MongoClient
from schemathesis import GenerationMode

from tests.support import backends, processes
from tests.support import client as user
from tests.support.mail import MailSink

pytestmark = pytest.mark.timeout(180)

# Examples per operation and mode: enough to reach every status of every route, and
# the whole module stays well under a minute.
MAX_EXAMPLES = 25
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
# Low, so the contract of a 429 is checked too.
RUNNING_JOBS = 2


class Fuzzed:
    def __init__(self, url: str, session: str, mail: MailSink) -> None:
        self.url = url
        self.session = session
        self.mail = mail


@pytest.fixture(scope="module")
async def fuzzed(
    amqp_url: str,
    mongodb_url: str,
    mail_sink: MailSink,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Fuzzed]:
    """One gateway for the whole module (a process per operation would take minutes)."""
    run = uuid.uuid4().hex[:8]
    tmp = tmp_path_factory.mktemp("fuzz")
    env = {
        "AMQP_URL": amqp_url,
        "AMQP_PREFIX": f"test.{run}.",
        "AMQP_QUEUE_EXPIRES_SECONDS": "900",
        "RETRY_DELAYS": "[1,2,3]",
        "MONGODB_URL": mongodb_url,
        "MONGODB_DATABASE": f"pv_test_{run}",
        "STORAGE_URL": f"file://{tmp / 'objects'}",
        "SIGNING_KEY": f"test-signing-key-{run}",
        "LOG_FORMAT": "text",
        "CODE_RESEND_SECONDS": "0",
        "FREE_RUNNING_JOBS_PER_EMAIL": str(RUNNING_JOBS),
        **mail_sink.env,
    }
    try:
        with processes.running(env, Path(tmp / "logs"), ("gateway",)) as system:
            async with httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as client:
                session = await user.sign_in(client, mail=mail_sink)
            yield Fuzzed(system.gateway.url, session, mail_sink)
    finally:
        with MongoClient[dict[str, object]](mongodb_url) as client:
            client.drop_database(env["MONGODB_DATABASE"])
        backends.delete_topology(env)


def error_shape(response: Any) -> None:
    """Every error answers `{"error": {"code", "message", "details"?}}`."""
    if response.status_code < 400:
        return
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body
    assert set(error) <= {"code", "message", "details"}, body


CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]


def fuzz(operation: Any, mode: GenerationMode, session: str, statuses: Counter[int]) -> None:
    # Signed in, so the fuzzing reaches past authentication; signing out (here or
    # everywhere) is fuzzed with whatever the generator sends, so the shared session stays
    # valid.
    signs_out = operation.path.endswith("/logout") or (
        operation.path.endswith("/auth/sessions") and operation.method.upper() == "DELETE"
    )
    headers = {} if signs_out else user.auth(session)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,  # the same examples on every run: a failure is reproducible
        database=None,
    )
    def one(case: Any) -> None:
        response = case.call(headers=headers, allow_redirects=False, timeout=30)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)
        error_shape(response)

    one()


def test_the_api_keeps_its_contract(fuzzed: Fuzzed) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12, [op.label for op in operations]
    failed = []
    statuses: Counter[int] = Counter()
    for operation in operations:
        for mode in MODES:
            try:
                fuzz(operation, mode, fuzzed.session, statuses)
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE  # nothing to get wrong, e.g. /healthz
            # Collect every operation's failures (schemathesis groups them), report them all.
            except (Exception, BaseExceptionGroup) as e:
                failed.append(f"{operation.label} ({mode}): {e}")
    assert not failed, "\n\n".join(failed)
    print(f"schemathesis: {sum(statuses.values())} requests, statuses {sorted(statuses.items())}")
    # Valid requests were made as well as refused ones.
    assert sum(statuses.values()) >= 5 * len(operations)
    assert any(s < 300 for s in statuses) and any(s in (401, 404, 422) for s in statuses)


def conforms(schema: Any, response: httpx.Response, status: int) -> None:
    """The answer has `status` and matches what the document says of it: status,
    content type, headers and body."""
    assert response.status_code == status, response.text
    response.request.read()  # a form streams: schemathesis wants the request's bytes
    operation = schema[response.request.url.path][response.request.method]
    operation.Case().validate_response(response, checks=CHECKS)
    error_shape(response)


async def test_the_answers_fuzzing_rarely_reaches_keep_the_contract(fuzzed: Fuzzed) -> None:
    """A session, a created job, its replay and a 429 with its Retry-After, as a real
    client gets them."""
    schema = schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")
    async with httpx.AsyncClient(base_url=fuzzed.url, timeout=30) as api:
        email = user.new_email()
        conforms(schema, await api.post("/api/v1/auth/email", json={"email": email}), 202)
        code = await fuzzed.mail.next_code(email, seen=0)
        verified = await api.post("/api/v1/auth/verify", json={"email": email, "code": code})
        conforms(schema, verified, 200)

        session = user.auth(verified.json()["token"])
        photo = user.product_photo(seed=11, size=(400, 300))
        once = {**session, "Idempotency-Key": "once"}
        conforms(schema, await user.submit(api, photo, headers=once), 202)
        conforms(schema, await user.submit(api, photo, headers=once), 200)  # the replay
        conforms(schema, await user.submit(api, photo, headers=session), 202)
        # Only the gateway runs, so both jobs are still unfinished: the running limit.
        limited = await user.submit(api, photo, headers=session)
        conforms(schema, limited, 429)
        assert limited.json()["error"]["details"]["limit"] == "running_jobs_per_email"
