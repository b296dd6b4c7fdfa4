"""Sign-in by email: a one-time code, then a session.

The code is 6 random digits, stored only as an HMAC (keyed with SIGNING_KEY, so
a copy of the database does not reveal it), valid `CODE_TTL_SECONDS` and used once.
Asking again within `CODE_RESEND_SECONDS` is refused (429), and so is asking too often
per IP and per email, and trying codes too often per IP (the free-tier limiter). Users
are created when they first verify.

Nobody but the owner of a mailbox may lock its owner out, so every count that a
stranger could fill is also per requesting network: codes asked for a mailbox (its
plus-addresses included) count per mailbox and network, and a code takes
`CODE_MAX_ATTEMPTS` wrong tries from each network (and `CODE_NETWORKS` times that from
all together, against guessing from many networks). Wrong tries from elsewhere leave
the owner's newest code good for the owner's own network, and a code spent by wrong
tries does not hold back a new one.
"""

import hashlib
import hmac
import logging
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.auth import Session, SessionStore, mailbox
from common.client_ip import network_of
from common.errors import ApiError
from gateway.core.config import GatewaySettings
from gateway.limits import Limit, Limiter, rate_limited
from gateway.mail import Mailer, MailUnavailable

log = logging.getLogger(__name__)

CODE_DIGITS = 6
# A code takes CODE_MAX_ATTEMPTS wrong tries per network, and this many times that in all.
CODE_NETWORKS = 4
MAX_EMAIL_LENGTH = 254
# A plain mailbox: dot-atom local part and domain (any script), no quotes, comments,
# commas or brackets. Those would let one mailbox pose as many addresses (`"me"@x`,
# `(1)me@x` and `me@x` all reach me@x), each with its own free tier.
_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
_LABEL = r"[^\W_](?:(?:[^\W_]|-)*[^\W_])?"
_EMAIL = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+$")


def normalize_email(raw: str) -> str:
    """Lower-cased and stripped; 422 when it does not look like an address."""
    email = raw.strip().lower()
    local = email.partition("@")[0]
    if len(email) > MAX_EMAIL_LENGTH or len(local) > 64 or not _EMAIL.fullmatch(email):
        raise ApiError(
            422,
            "validation_error",
            "The request is not valid.",
            details=[{"field": "email", "message": "Enter a valid email address."}],
        )
    return email


def _now() -> datetime:
    return datetime.now(UTC)


def _network_key(client_ip: str) -> str:
    """The requesting network as a field name (no dots, no `$`)."""
    return hashlib.sha256(network_of(client_ip).encode()).hexdigest()[:16]


class SignIn:
    def __init__(
        self,
        db: AsyncDatabase,
        settings: GatewaySettings,
        mailer: Mailer,
        limiter: Limiter,
        sessions: SessionStore,
    ) -> None:
        self.codes = db["email_codes"]
        self.users = db["users"]
        self.settings = settings
        self.mailer = mailer
        self.limiter = limiter
        self.sessions = sessions
        self._key = hashlib.sha256(
            b"email-code:" + settings.signing_key.get_secret_value().encode()
        ).digest()

    async def ensure_indexes(self) -> None:
        await self.codes.create_index("expires_at", expireAfterSeconds=0, name="expires")

    def _hash(self, email: str, code: str) -> str:
        return hmac.new(self._key, f"{email}\0{code}".encode(), hashlib.sha256).hexdigest()

    @property
    def _max_tries(self) -> int:
        return self.settings.code_max_attempts * CODE_NETWORKS

    async def request_code(self, email: str, client_ip: str) -> dict[str, Any]:
        s = self.settings
        network = network_of(client_ip)
        taken = await self.limiter.take(
            [
                Limit("codes_per_ip", network, s.free_codes_per_ip),
                # Per mailbox *and* network: asking for victim+1@…, victim+2@… from
                # elsewhere uses up that network's allowance, not the owner's.
                Limit(
                    "codes_per_email", f"{mailbox(email)} from {network}", s.free_codes_per_email
                ),
            ]
        )
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        now = _now()
        try:
            # Matches only when no live code was sent within the cool-down (a code spent
            # by wrong tries holds nothing back); a recent one makes the upsert collide
            # with its _id instead (atomic across replicas).
            await self.codes.find_one_and_update(
                {
                    "_id": email,
                    "$or": [
                        {"sent_at": {"$lte": now - timedelta(seconds=s.code_resend_seconds)}},
                        {"attempts": {"$gte": self._max_tries}},
                    ],
                },
                {
                    "$set": {
                        "code_hash": self._hash(email, code),
                        "sent_at": now,
                        "expires_at": now + timedelta(seconds=s.code_ttl_seconds),
                        "attempts": 0,
                        "tries": {},
                    }
                },
                upsert=True,
            )
        except DuplicateKeyError:
            await self.limiter.give_back(taken)
            existing = await self.codes.find_one({"_id": email}, {"sent_at": 1})
            sent_at = existing["sent_at"] if existing else now
            wait = (sent_at + timedelta(seconds=s.code_resend_seconds) - now).total_seconds()
            raise rate_limited(
                "code_resend",
                1,
                "A code was sent to this address moments ago; check your inbox "
                "(and spam folder) or ask again shortly.",
                wait,
                None,
            ) from None
        try:
            await self.mailer.send_code(email, code, s.code_ttl_seconds // 60)
        except MailUnavailable:
            await self.codes.delete_one({"_id": email})
            await self.limiter.give_back(taken)
            raise ApiError(
                503, "mail_unavailable", "The email could not be sent; please try again shortly."
            ) from None
        return {
            "email": email,
            "expires_in": s.code_ttl_seconds,
            "resend_after": s.code_resend_seconds,
        }

    async def verify(self, email: str, code: str, client_ip: str) -> Session:
        s = self.settings
        # Every try counts, right or wrong: against guessing codes across many addresses.
        await self.limiter.take(
            [Limit("verifies_per_ip", network_of(client_ip), s.free_verifies_per_ip)]
        )
        now = _now()
        network = _network_key(client_ip)
        tries = f"tries.{network}"  # this network's tries of this code
        record = await self.codes.find_one_and_update(
            {
                "_id": email,
                "expires_at": {"$gt": now},
                "attempts": {"$lt": self._max_tries},
                tries: {"$not": {"$gte": s.code_max_attempts}},
            },
            {"$inc": {"attempts": 1, tries: 1}},
            return_document=ReturnDocument.AFTER,
        )
        if record is None:
            pending = await self.codes.find_one({"_id": email, "expires_at": {"$gt": now}})
            if pending is not None:
                raise ApiError(
                    400,
                    "too_many_attempts",
                    "Too many wrong codes; ask for a new code.",
                )
            raise ApiError(
                400, "code_expired", "This code has expired or was never sent; ask for a new one."
            )
        if not hmac.compare_digest(record["code_hash"], self._hash(email, code)):
            network_left = s.code_max_attempts - record["tries"][network]
            left = max(0, min(network_left, self._max_tries - record["attempts"]))
            raise ApiError(
                400,
                "invalid_code",
                "That code is not right." + (" Try again." if left else " Ask for a new code."),
                details={"attempts_left": left},
            )
        # Used once: of two requests racing with the right code, only one deletes it.
        used = await self.codes.delete_one({"_id": email, "code_hash": record["code_hash"]})
        if used.deleted_count != 1:
            raise ApiError(400, "code_expired", "This code was already used; ask for a new one.")
        await self.users.update_one(
            {"_id": email},
            {"$setOnInsert": {"created_at": now}, "$set": {"last_sign_in_at": now}},
            upsert=True,
        )
        session = await self.sessions.create(email, s.session_ttl_seconds)
        log.info("signed in")
        return session
