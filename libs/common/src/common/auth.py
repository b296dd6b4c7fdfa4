"""Who is asking: a signed-in user (a session token) or the holder of one job's
read token. Shared by the gateway (REST) and the notifier (WebSocket), so both
grant exactly the same access.

A session is a signed token plus its record in `sessions` (TTL index on
`expires_at`): signing out deletes the record, which revokes the token at once
in every replica of every service.
"""

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import SignatureExpired
from pymongo.asynchronous.database import AsyncDatabase

from common.jobs import Job
from common.tokens import InvalidToken, Signer


def mailbox(owner: str) -> str:
    """The mailbox an address reaches, for counting use per person: `me+anything@x` is
    delivered to `me@x` by most providers, so it shares that address's allowance (the
    gateway's free tier, the video worker's paid clips). `anon:<ip>` owners stay as they are."""
    local, at, domain = owner.partition("@")
    if not at:
        return owner
    return f"{local.split('+', 1)[0] or local}@{domain}"


def token_version(job: Job) -> int:
    """Which job tokens of this job are valid: those signed with this version."""
    return int(job.get("token_version", 0))


@dataclass(frozen=True)
class Principal:
    """A signed-in user (`email`, `session_id`), an owner's API key (`email`,
    `api_key_id`, `scopes`) or one job's token holder (`job_id`)."""

    email: str | None = None
    session_id: str | None = None
    job_id: str | None = None
    api_key_id: str | None = None
    # What an API key may do; None for a session, which may do everything its owner may.
    scopes: frozenset[str] | None = None

    @property
    def is_api_key(self) -> bool:
        return self.api_key_id is not None

    def allows(self, scope: str) -> bool:
        return self.scopes is None or scope in self.scopes

    # A job token's version: it reads the job while the job's `token_version` is this.
    token_version: int = 0

    @property
    def signed_in(self) -> bool:
        return self.email is not None

    def can_read(self, job: Job) -> bool:
        """The owner reads all of their jobs; a job token reads its one job until the
        owner revokes the job's tokens."""
        if self.email is not None:
            return bool(job.get("owner") == self.email)
        return job["_id"] == self.job_id and token_version(job) == self.token_version

    def owns(self, job: Job) -> bool:
        """Changing a job (cancel, retry) takes its owner's session, never a shared job token."""
        return self.email is not None and job.get("owner") == self.email


@dataclass(frozen=True)
class Session:
    session_id: str
    email: str
    token: str
    expires_at: datetime


class SessionStore:
    def __init__(self, db: AsyncDatabase, signer: Signer) -> None:
        self.sessions = db["sessions"]
        self.signer = signer

    async def ensure_indexes(self) -> None:
        await self.sessions.create_index("expires_at", expireAfterSeconds=0, name="expires")
        await self.sessions.create_index("email", name="email")

    async def create(self, email: str, ttl_seconds: int) -> Session:
        session_id = secrets.token_urlsafe(18)
        now = datetime.now(UTC)
        expires_at = now + timedelta(seconds=ttl_seconds)
        await self.sessions.insert_one(
            {"_id": session_id, "email": email, "created_at": now, "expires_at": expires_at}
        )
        token = self.signer.session_token(session_id, email, expires_at.timestamp())
        return Session(session_id, email, token, expires_at)

    async def revoke(self, session_id: str) -> None:
        await self.sessions.delete_one({"_id": session_id})

    async def of_user(self, email: str) -> list[dict[str, Any]]:
        """The user's unexpired sessions, newest first."""
        cursor = self.sessions.find(
            {"email": email, "expires_at": {"$gt": datetime.now(UTC)}}
        ).sort([("created_at", -1), ("_id", 1)])
        return [record async for record in cursor]

    async def revoke_all(self, email: str) -> int:
        """Sign the user out everywhere: every session token of theirs stops working."""
        result = await self.sessions.delete_many({"email": email})
        return result.deleted_count

    async def live(self, session_ids: list[str]) -> set[str]:
        """Which of these sessions are still signed in and unexpired (one query)."""
        cursor = self.sessions.find(
            {"_id": {"$in": session_ids}, "expires_at": {"$gt": datetime.now(UTC)}}, {"_id": 1}
        )
        return {record["_id"] async for record in cursor}

    async def resolve(self, token: str) -> Principal:
        """The principal a token stands for; InvalidToken when it grants nothing.
        Job tokens are checked first: they need no database read."""
        try:
            job_id, version = self.signer.job_grant(token)
            return Principal(job_id=job_id, token_version=version)
        except InvalidToken as e:
            job_error = e
        try:
            session_id, email = self.signer.session_from_token(token, now=time.time())
        except InvalidToken as session_error:
            # A genuine job token that is too old says so; anything else is a bad session.
            expired_job_token = isinstance(job_error.__cause__, SignatureExpired)
            raise (job_error if expired_job_token else session_error) from None
        # The TTL monitor deletes expired records only about once a minute: check the time too.
        record = await self.sessions.find_one(
            {"_id": session_id, "email": email, "expires_at": {"$gt": datetime.now(UTC)}}
        )
        if record is None:
            raise InvalidToken("the session has ended; sign in again")
        return Principal(email=email, session_id=session_id)
