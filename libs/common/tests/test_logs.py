"""FastStream's own lines about a message ("Received", "Processed", a handler's exception)
name the job of that message, as the handlers' lines do, with the broker the services
build (`make_broker`), alone or inside an app (whose context FastStream then uses)."""

import json
import logging

import pytest
from faststream import FastStream
from faststream._internal.logger.logger_proxy import RealLoggerObject
from faststream.rabbit import RabbitBroker, TestRabbitBroker

from common.events import JobSubmitted
from common.logs import BROKER_LOGGER, JsonFormatter, job_id_var
from common.messaging import make_broker
from common.settings import CommonSettings


def build(in_app: bool) -> RabbitBroker:
    broker = make_broker(CommonSettings())

    @broker.subscriber("test-logs.jobs")
    async def handle(event: JobSubmitted) -> None:
        if event.job_id == "job-crash":
            raise RuntimeError("boom")

    @broker.subscriber("test-logs.other")
    async def other(body: dict[str, object]) -> None:
        pass

    if in_app:
        FastStream(broker)
    return broker


def lines(records: list[logging.LogRecord]) -> list[dict[str, object]]:
    formatter = JsonFormatter("test")
    return [json.loads(formatter.format(r)) for r in records]


@pytest.mark.parametrize("in_app", [False, True], ids=["broker", "app"])
async def test_broker_lines_about_a_message_carry_its_job_id(
    in_app: bool, caplog: pytest.LogCaptureFixture
) -> None:
    broker = build(in_app)
    with caplog.at_level(logging.INFO):
        async with TestRabbitBroker(broker) as test_broker:
            # The test broker swaps the logger for a mock: put the real one back.
            broker.config.logger.logger = RealLoggerObject(BROKER_LOGGER)
            await test_broker.publish(JobSubmitted(job_id="job-1"), queue="test-logs.jobs")
            with pytest.raises(RuntimeError):
                await test_broker.publish(JobSubmitted(job_id="job-crash"), queue="test-logs.jobs")
            await test_broker.publish({"no": "job"}, queue="test-logs.other")

    entries = lines([r for r in caplog.records if r.name == BROKER_LOGGER.name])
    by_job: dict[object, list[object]] = {}
    for entry in entries:
        by_job.setdefault(entry.get("job_id"), []).append(entry["message"])
    assert by_job["job-1"] == ["Received", "Processed"]
    assert by_job["job-crash"] == ["Received", "RuntimeError: boom", "Processed"]
    assert by_job[None] == ["Received", "Processed"]
    assert all(e.get("message_id") for e in entries)
    assert job_id_var.get() is None
