"""Every code a job can fail with has its own stable message for the job's owner."""

import re
from pathlib import Path

from common.errors import DEFAULT_USER_MESSAGE, USER_MESSAGES, user_message
from common.openrouter import PERMANENT, RETRYABLE

ROOT = Path(__file__).parents[3]
# `JobError("code", ...)`, also split over lines, and `code="..."` given to Pipeline.fail.
_RAISED = re.compile(r'JobError\(\s*"([a-z_]+)"|\bcode="([a-z_]+)"')


def _codes_in_source() -> set[str]:
    sources = [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("libs/common/src/**/*.py")]
    found = set()
    for path in sources:
        for match in _RAISED.finditer(path.read_text()):
            found.add(match.group(1) or match.group(2))
    return found


def test_every_job_error_code_has_its_own_message() -> None:
    codes = _codes_in_source() | {code for code, _ in [*PERMANENT.values(), *RETRYABLE.values()]}
    # The notifier's WebSocket refusals use the same `code=` spelling; they are not jobs'.
    ws_codes = {"invalid_token", "forbidden", "job_not_found", "batch_not_found", "unavailable"}
    ws_codes |= {"too_many_subscriptions", "bad_request", "rate_limited", "too_many_connections"}
    missing = sorted(codes - ws_codes - set(USER_MESSAGES))
    assert missing == []
    # What OpenRouter can end a clip with (`provider_{status}`).
    for status in ("failed", "cancelled", "expired"):
        assert f"provider_{status}" in USER_MESSAGES


def test_an_unknown_code_still_reads_as_a_sentence() -> None:
    assert user_message("something_new") == DEFAULT_USER_MESSAGE
    assert all(m.endswith((".", ")")) and "OpenRouter" not in m for m in USER_MESSAGES.values())
