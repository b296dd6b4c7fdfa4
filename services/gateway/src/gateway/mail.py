"""Sending the sign-in code: over SMTP (aiosmtplib), or into the log in development.

Neither the code nor the SMTP password is ever logged, except the one line of
the development mailer, whose whole purpose is to show the code.
"""

import logging
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from gateway.core.config import GatewaySettings

log = logging.getLogger(__name__)


class MailUnavailable(Exception):
    """The mail server refused or could not be reached."""


class Mailer(Protocol):
    async def send_code(self, email: str, code: str, valid_minutes: int) -> None: ...


def code_message(sender: str, email: str, code: str, valid_minutes: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email
    message["Subject"] = f"Your Product Videos sign-in code: {code}"
    message.set_content(
        f"Your sign-in code is {code}\n\n"
        f"It is valid for {valid_minutes} minutes. If you did not ask for it, ignore this email.\n"
    )
    return message


class SmtpMailer:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings

    async def send_code(self, email: str, code: str, valid_minutes: int) -> None:
        s = self.settings
        message = code_message(s.mail_from, email, code, valid_minutes)
        try:
            await aiosmtplib.send(
                message,
                recipients=[email],  # exactly this address, whatever the header parses to
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                use_tls=s.smtp_tls,
                start_tls=s.smtp_starttls,
                timeout=s.smtp_timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            # The exception's text may quote the server, never our credentials.
            log.warning("could not send a sign-in code via %s: %s", s.smtp_host, type(e).__name__)
            raise MailUnavailable from e
        log.info("sign-in code sent")


class LogMailer:
    """Development without SMTP: the code goes to the gateway's log (`make run` says so)."""

    async def send_code(self, email: str, code: str, valid_minutes: int) -> None:
        log.warning(
            "sign-in code for %s: %s (valid %d min; no SMTP_HOST is set, so it is logged "
            "instead of sent)",
            email,
            code,
            valid_minutes,
        )


def mailer_from_settings(settings: GatewaySettings) -> Mailer:
    if settings.smtp_host:
        return SmtpMailer(settings)
    # Said once at startup, loudly: a production gateway without SMTP "works" silently.
    log.warning(
        "SMTP_HOST is not set: sign-in codes are written to this log instead of being "
        "emailed. That is for development only; set SMTP_HOST in production."
    )
    return LogMailer()
