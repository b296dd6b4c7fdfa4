"""Property-based fuzzing of the gateway's public API from its own OpenAPI document
(schemathesis), against a real gateway process on the real broker, database and
storage: no answer is a 5xx, every error has the one JSON shape, and every
documented response matches its schema."""

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from pymongo import MongoClient

from tests.support import backends, processes
from tests.support import client as user
from tests.support.mail import MailSink

pytestmark = pytest.mark.timeout(180)

# Examples per operation: enough to reach every status of every route, and the whole
# run stays well under a minute.
MAX_EXAMPLES = 25


class Fuzzed:
    def __init__(self, url: str, session: str) -> None:
        self.url = url
        self.session = session


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
        **mail_sink.env,
    }
    try:
        with processes.running(env, Path(tmp / "logs"), ("gateway",)) as system:
            async with httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as client:
                session = await user.sign_in(client, mail=mail_sink)
            yield Fuzzed(system.gateway.url, session)
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


def fuzz(operation: Any, session: str, statuses: Counter[int]) -> None:
    # Signed in, so the fuzzing reaches past authentication; signing out is fuzzed with
    # whatever the generator sends, so the shared session stays valid.
    headers = {} if operation.path.endswith("/logout") else user.auth(session)

    @given(case=operation.as_strategy())
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
        try:
            fuzz(operation, fuzzed.session, statuses)
        except Exception as e:  # collect every operation's failure, then report them all
            failed.append(f"{operation.label}: {e}")
    assert not failed, "\n\n".join(failed)
    print(f"schemathesis: {sum(statuses.values())} requests, statuses {sorted(statuses.items())}")
    # Valid requests were made as well as refused ones.
    assert sum(statuses.values()) >= 5 * len(operations)
    assert any(s < 300 for s in statuses) and any(s in (401, 404, 422) for s in statuses)
