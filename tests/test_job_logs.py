"""The services log JSON, one object a line, and every line about a job names it in
`job_id`, so an operator finds a job's whole story with one query (`job_id="..."`):
the services' own lines, and FastStream's lines about each of the job's messages."""

import json
from pathlib import Path

import httpx
import pytest

from tests.support import client as user
from tests.support.processes import System

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def system_env(system_env: dict[str, str]) -> dict[str, str]:
    return {**system_env, "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}


def log_entries(system: System) -> dict[str, list[dict[str, object]]]:
    """Each service's log, parsed; a line that is not a JSON object fails the test."""
    entries: dict[str, list[dict[str, object]]] = {}
    for name, service in system.services.items():
        parsed = []
        for number, line in enumerate(service.log().splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                raise AssertionError(f"{name} line {number} is not JSON: {line!r}") from None
            assert isinstance(entry, dict), (name, number, line)
            assert {"time", "level", "service", "message"} <= entry.keys(), entry
            parsed.append(entry)
        entries[name] = parsed
    return entries


async def test_every_line_about_a_job_carries_its_id(
    system: System, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    accepted = await user.submitted(api, user.product_photo(seed=71))
    job_id, token = accepted["id"], accepted["token"]
    followed = await user.follow(system.ws_url, job_id, token, after_seq=accepted["job"]["seq"])
    assert followed.final_status == "completed", followed.final
    job = await user.get_job(api, job_id, token)
    await user.download(api, job["video"]["url"], tmp_path / "clip.mp4")
    for service in system.services.values():
        service.stop()  # every line written and flushed

    entries = log_entries(system)
    about_the_job = {
        name: [e for e in lines if job_id in json.dumps(e)] for name, lines in entries.items()
    }
    for name in ("gateway", "prompt", "video"):
        assert about_the_job[name], f"{name} logged nothing about the job"
    unnamed = [
        (name, entry["message"])
        for name, lines in about_the_job.items()
        for entry in lines
        if entry.get("job_id") != job_id
    ]
    assert unnamed == []
    # FastStream's own lines about a message ("Received", "Processed") name only its
    # message_id. Every message of this run is one of the job's events: each such line
    # must name the job as well, in every service that consumes them. The notifier, which
    # gets every status event of the system, writes them at DEBUG only.
    broker_lines = [
        (name, entry) for name, lines in entries.items() for entry in lines if "message_id" in entry
    ]
    for name in ("prompt", "video"):
        said = {e["message"] for n, e in broker_lines if n == name and e.get("job_id") == job_id}
        assert {"Received", "Processed"} <= said, (name, said)
    assert [e["message"] for n, e in broker_lines if n == "notifier"] == []
    without_job = [
        (name, entry["message"], entry["message_id"])
        for name, entry in broker_lines
        if entry.get("job_id") != job_id
    ]
    assert without_job == []
    # The download (a signed link, no id in its path) is logged under the job too.
    assert any(
        "/api/v1/files/" in str(e["message"])
        for e in entries["gateway"]
        if e.get("job_id") == job_id
    )
