"""Credentials that travel in URLs never reach the access log."""

import logging

from gateway.redaction import RedactUrls, redact


def test_tokens_and_file_signatures_are_redacted():
    line = (
        '127.0.0.1:5 - "GET /api/v1/jobs/abc/video?download=1&token=eyJqb2Ii.sig HTTP/1.1" 302 '
        '"GET /api/v1/files/eyJrZXkiOi.xyz?download=mug.mp4 HTTP/1.1"'
    )
    assert redact(line) == (
        '127.0.0.1:5 - "GET /api/v1/jobs/abc/video?download=1&token=[redacted] HTTP/1.1" 302 '
        '"GET /api/v1/files/[redacted]?download=mug.mp4 HTTP/1.1"'
    )


def test_the_access_log_record_is_redacted():
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/api/v1/jobs/x?token=secret-token", "1.1", 200),
        None,
    )
    assert RedactUrls().filter(record)
    assert "secret-token" not in record.getMessage()
    assert "token=[redacted]" in record.getMessage()


def test_api_keys_and_webhook_secrets_keep_only_their_prefix():
    key = "pv_live_" + "A1b2" * 10
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    line = f'"GET /api/v1/jobs?token={key} HTTP/1.1" Bearer {key} {secret}'
    redacted = redact(line)
    assert key not in redacted and secret not in redacted
    assert "Bearer pv_live_[redacted]" in redacted and "whsec_[redacted]" in redacted
