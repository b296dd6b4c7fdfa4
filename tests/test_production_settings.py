"""ENVIRONMENT=production refuses unsafe settings at startup, each with a message that
says what to set; development (the default, `make run`) starts with none of them."""

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from common.settings import DEV_SIGNING_KEY, CommonSettings
from gateway.core.config import GatewaySettings

GOOD_KEY = "k" * 64
SAFE_MAIL = {"smtp_host": "smtp.example.com", "smtp_starttls": True}


def refusal(settings_class: type[CommonSettings], **values: object) -> str:
    with pytest.raises(ValidationError) as refused:
        settings_class(environment="production", **values)
    return str(refused.value)


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (DEV_SIGNING_KEY, "SIGNING_KEY is the development key"),
        ("", "SIGNING_KEY is empty"),
        ("short-but-not-empty", "SIGNING_KEY is too short"),
    ],
)
def test_production_refuses_a_weak_signing_key(key: str, says: str) -> None:
    assert says in refusal(CommonSettings, signing_key=key)
    assert says in refusal(GatewaySettings, signing_key=key, **SAFE_MAIL)


@pytest.mark.parametrize(
    ("mail", "says"),
    [
        ({}, "SMTP_HOST is not set"),
        ({"smtp_host": "smtp.example.com"}, "SMTP without encryption"),
        ({"smtp_host": "smtp.example.com", "smtp_starttls": False}, "SMTP without encryption"),
    ],
)
def test_production_gateway_refuses_mail_that_is_not_sent_safely(
    mail: dict[str, object], says: str
) -> None:
    message = refusal(GatewaySettings, signing_key=GOOD_KEY, **mail)
    assert says in message
    assert "SMTP_STARTTLS=true" in message or "SMTP_HOST" in message


def test_every_problem_is_named_at_once() -> None:
    message = refusal(GatewaySettings, signing_key=DEV_SIGNING_KEY)
    assert "SIGNING_KEY" in message and "SMTP_HOST" in message


@pytest.mark.parametrize("mail", [SAFE_MAIL, {"smtp_host": "smtp.example.com", "smtp_tls": True}])
def test_production_starts_with_safe_settings(mail: dict[str, object]) -> None:
    assert GatewaySettings(environment="production", signing_key=GOOD_KEY, **mail)
    assert CommonSettings(environment="production", signing_key=GOOD_KEY)


def test_development_needs_none_of_it() -> None:
    settings = GatewaySettings(signing_key=DEV_SIGNING_KEY, smtp_host=None)
    assert settings.environment == "development"


def test_every_service_refuses_to_start_unsafe_in_production() -> None:
    """What an operator sees: the process exits at once and says why."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SIGNING_KEY", "SMTP_"))
    }
    env["ENVIRONMENT"] = "production"
    modules = ("gateway.main", "notifier.main", "prompt.main", "video.main")
    processes = {
        module: subprocess.Popen(
            [sys.executable, "-c", f"import {module}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for module in modules
    }
    outputs = {}
    for module, process in processes.items():
        output, _ = process.communicate(timeout=120)
        outputs[module] = output
        assert process.returncode != 0, (module, output)
        assert "refuses to start with ENVIRONMENT=production" in output, (module, output)
        assert "SIGNING_KEY is the development key" in output, (module, output)
    assert "SMTP_HOST is not set" in outputs["gateway.main"]


def test_the_ssrf_escape_hatch_is_refused_in_production_once_it_exists() -> None:
    """OUTBOUND_ALLOW_PRIVATE (the webhooks' SSRF guard) is reserved: any service settings
    that grow it are refused with it on in production, by the common rule."""

    class WithWebhooks(CommonSettings):
        outbound_allow_private: bool = False

    assert "OUTBOUND_ALLOW_PRIVATE=true" in refusal(
        WithWebhooks, signing_key=GOOD_KEY, outbound_allow_private=True
    )
    assert WithWebhooks(environment="production", signing_key=GOOD_KEY)
    assert WithWebhooks(outbound_allow_private=True).outbound_allow_private
