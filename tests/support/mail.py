"""A real SMTP server for tests (aiosmtpd, in a thread of its own): the gateway
sends its sign-in codes here, and tests read them the way a user reads their inbox."""

import asyncio
import re
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.backends import free_port

_CODE = re.compile(r"\b(\d{6})\b")


@dataclass(frozen=True)
class Mail:
    to: tuple[str, ...]
    message: EmailMessage

    @property
    def code(self) -> str:
        found = _CODE.search(str(self.message["Subject"]))
        assert found, f"no code in {self.message['Subject']!r}"
        return found.group(1)


class MailSink:
    """Collects every message; with `credentials` it also demands SMTP AUTH."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.mails: list[Mail] = []
        self.logins: list[str] = []
        self._lock = threading.Lock()
        self.port = free_port()
        auth: dict[str, Any] = {}
        if credentials is not None:
            auth = {
                "authenticator": self._authenticator(credentials),
                "auth_required": True,
                "auth_require_tls": False,
            }
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **auth)

    def _authenticator(self, credentials: tuple[str, str]) -> Any:
        def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
            ok = (
                isinstance(data, LoginPassword)
                and (
                    data.login.decode(),
                    data.password.decode(),
                )
                == credentials
            )
            if ok:
                self.logins.append(data.login.decode())
            return AuthResult(success=ok, handled=False)

        return check

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.mails.append(Mail(tuple(r.lower() for r in envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def start(self) -> "MailSink":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    @property
    def env(self) -> dict[str, str]:
        """What the gateway needs to send here."""
        return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.port)}

    def to(self, email: str) -> list[Mail]:
        with self._lock:
            return [m for m in self.mails if email.lower() in m.to]

    async def next_code(self, email: str, *, seen: int, within: float = 15) -> str:
        """The code of the first message to `email` after the `seen` ones already there."""
        deadline = time.monotonic() + within
        while True:
            mails = self.to(email)
            if len(mails) > seen:
                return mails[seen].code
            if time.monotonic() > deadline:
                raise TimeoutError(f"no sign-in code for {email} after {within}s")
            await asyncio.sleep(0.05)


_shared: MailSink | None = None


def shared_sink() -> MailSink:
    """The one sink of this test session, which every gateway under test sends to."""
    global _shared
    if _shared is None:
        _shared = MailSink().start()
    return _shared


def stop_shared_sink() -> None:
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None
