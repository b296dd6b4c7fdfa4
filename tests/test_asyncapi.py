"""docs/asyncapi.yaml is the event contract as the code has it: generated from the real
subscribers and publishers, and never out of date (`make asyncapi` regenerates it)."""

import subprocess
import sys
from pathlib import Path

import yaml

from common.events import RoutingKey

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "asyncapi.yaml"


def test_the_committed_document_is_what_the_code_generates() -> None:
    # A process of its own: generating configures logging the way the services do.
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "asyncapi.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_document_describes_every_event_and_who_consumes_it() -> None:
    document = yaml.safe_load(DOCUMENT.read_text())
    channels = document["channels"]
    published = {c["address"] for name, c in channels.items() if name.endswith(":publish")}
    assert published == {key.value for key in RoutingKey}
    consumed = {
        c["bindings"]["amqp"]["queue"]["name"]: c["address"]
        for name, c in channels.items()
        if name.endswith(":consume")
    }
    assert consumed == {
        "prompt.jobs": "job.submitted",
        "video.jobs": "prompt.ready",
        "notifier.{replica_id}": "job.status",
        "notifier.webhooks": "job.completed",  # and job.failed: bound to both
    }
    schemas = document["components"]["schemas"]
    assert {"event_id", "job_id", "occurred_at", "type"} <= set(
        schemas["JobCompleted"]["properties"]
    )
    assert {"seq", "status", "progress"} <= set(schemas["JobStatusChanged"]["required"])
    assert "error_code" in schemas["JobFailed"]["required"]
