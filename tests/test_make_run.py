"""`make run` for real: it starts the four services, says where to open the web client and
where to read the sign-in code, a job goes through both OpenRouter providers (pointed at
the fake) to a stored clip, and Ctrl-C stops everything cleanly.

It uses the test's broker, database and folder (AMQP_URL, MONGODB_URL, STORAGE_URL) and
moves the services off 8000-8003 (RUN_BASE_PORT), so it runs beside a developer's own."""

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import client as user
from tests.support.backends import port_open
from tests.support.fake_openrouter import FakeOpenRouter

ROOT = Path(__file__).resolve().parent.parent
API = user.API


class Output:
    """make run's output, read line by line in a thread so the test can wait for a line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if found := re.search(pattern, line):
                        return found
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(self.lines[-40:])
                    raise AssertionError(f"make run never said {pattern!r}; it said:\n{tail}")
                self._changed.wait(left)


# The four services' ports and the gateway's and notifier's ops ports, from the base.
OFFSETS = (0, 1, 2, 3, 100, 101)


def free_base_port() -> int:
    """A port with the three after it (and the two ops ports) free as well."""
    for base in range(18000, 19000, 10):
        if not any(port_open("127.0.0.1", base + i) for i in OFFSETS):
            return base
    raise RuntimeError("no four free ports in 18000-19000")


@pytest.fixture
def make_run(
    service_env: dict[str, str], fake: FakeOpenRouter
) -> Iterator[tuple[subprocess.Popen[str], Output, int]]:
    base = free_base_port()
    env = {k: v for k, v in {**os.environ, **service_env}.items() if not k.startswith("SMTP_")}
    env.update(fake.env(), RUN_BASE_PORT=str(base), PROMPT_PROVIDER="", VIDEO_PROVIDER="")
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # Ctrl-C goes to the whole group, as in a terminal
    )
    output = Output(process)
    try:
        yield process, output, base
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def test_make_run_makes_a_clip_through_openrouter_and_stops_on_ctrl_c(
    make_run: tuple[subprocess.Popen[str], Output, int], fake: FakeOpenRouter
) -> None:
    process, output, base = make_run
    output.wait_for(rf"Open http://localhost:{base}\b")
    output.wait_for(r"Sign-in codes: no SMTP_HOST is set")

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{base}", timeout=30) as api:
        page = await api.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()

        # The sign-in code is read where make run said it would be: the gateway's log.
        email = user.new_email()
        asked = await api.post(f"{API}/auth/email", json={"email": email})
        assert asked.status_code == 202, asked.text
        code = output.wait_for(rf"gateway.*sign-in code for {re.escape(email)}: (\d{{6}})")[1]
        verified = await api.post(f"{API}/auth/verify", json={"email": email, "code": code})
        assert verified.status_code == 200, verified.text
        token = verified.json()["token"]

        accepted = await user.submitted(api, user.product_photo(7), headers=user.auth(token))
        followed = await user.follow(
            f"ws://127.0.0.1:{base + 1}/ws", accepted["id"], token, within=120
        )
        assert followed.final_status == "completed", followed.final
        job = await user.get_job(api, accepted["id"], token)
        assert job["prompt"]["source"] == "llm", job["prompt"]
        clip = await api.get(job["video"]["url"])
        assert clip.status_code == 200 and clip.content[4:8] == b"ftyp"
        # Metrics on the gateway's ops port, not on the port the browser uses.
        assert (await api.get("/metrics")).status_code == 404
        ops = await api.get(f"http://127.0.0.1:{base + 100}/metrics")
        assert "pv_jobs_submitted_total" in ops.text

    # Both steps really went through OpenRouter: one chat reply, one paid video job.
    assert len(fake.calls("POST /chat/completions")) == 1
    assert len(fake.calls("POST /videos")) == 1

    os.killpg(process.pid, signal.SIGINT)
    # make itself dies of the SIGINT once its recipe is done, as make does in a terminal.
    assert process.wait(60) in (0, -signal.SIGINT), "\n".join(output.lines[-40:])
    output.wait_for(r"^run: stopped$", timeout=5)
    assert not any(port_open("127.0.0.1", base + i) for i in OFFSETS)
