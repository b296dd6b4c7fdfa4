"""Storage failures sorted into retryable (the service or network is down, throttled or
failing) and permanent (refused: wrong bucket, no permission), as job errors."""

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

from common.errors import JobError
from common.storage import ObjectNotFound

_RETRYABLE_CODES = {"SlowDown", "Throttling", "RequestTimeout", "ServiceUnavailable"}


@contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Turn storage failures inside the block into JobErrors; `action` says what failed
    ("download the product photo"). ObjectNotFound passes through for the caller."""
    try:
        yield
    except ObjectNotFound:
        raise
    except ClientError as e:
        error = e.response.get("Error", {})
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code = str(error.get("Code", "unknown"))
        message = f"Could not {action}: storage answered {code} ({status or 'no status'})."
        retryable = status >= 500 or status in (408, 429) or code in _RETRYABLE_CODES
        raise JobError(
            "storage_unavailable" if retryable else "storage_refused", message, retryable=retryable
        ) from e
    except (BotoCoreError, OSError) as e:  # endpoint unreachable, timeouts, a full disk
        raise JobError(
            "storage_unavailable", f"Could not {action}: {type(e).__name__}: {e}", retryable=True
        ) from e
