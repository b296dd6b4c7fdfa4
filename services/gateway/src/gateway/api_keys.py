"""API keys: a second kind of credential beside session tokens, for shop systems.

A key is `pv_live_` + 40 random base62 characters (the prefix lets secret scanners
spot a leaked one). Only its SHA-256 is stored: a copy of the database holds no key,
and a key's 238 random bits make a plain hash as strong as a keyed one. Its owner's
session creates, lists and revokes keys; a key acts as its owner within its scopes
and can never create keys itself (gateway.api.deps resolves both credentials).
"""

import hashlib
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from common.auth import Principal
from common.errors import ApiError
from common.tokens import InvalidToken

KEY_PREFIX = "pv_live_"
_ALPHABET = string.ascii_letters + string.digits
_SECRET_LENGTH = 40
KEY_PATTERN = re.compile(rf"^{KEY_PREFIX}[A-Za-z0-9]{{{_SECRET_LENGTH}}}$")
# What the list shows of a key: enough to tell keys apart, far too little to use one.
SHOWN_CHARS = len(KEY_PREFIX) + 6
# `last_used_at` is written at most this often per key (not one write per request).
LAST_USED_RESOLUTION = timedelta(seconds=60)


class Scope(StrEnum):
    JOBS_READ = "jobs:read"
    JOBS_WRITE = "jobs:write"
    BATCHES_WRITE = "batches:write"
    WEBHOOKS_MANAGE = "webhooks:manage"


def looks_like_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedKey:
    key: str  # shown once
    record: dict[str, Any]


class ApiKeyStore:
    def __init__(self, db: AsyncDatabase, max_per_owner: int) -> None:
        self.keys = db["api_keys"]
        self.max_per_owner = max_per_owner

    async def ensure_indexes(self) -> None:
        await self.keys.create_index("hash", unique=True, name="hash")
        await self.keys.create_index([("owner", 1), ("created_at", -1)], name="owner")

    async def create(self, owner: str, name: str, scopes: list[Scope]) -> CreatedKey:
        if await self.keys.count_documents({"owner": owner}) >= self.max_per_owner:
            raise ApiError(
                409,
                "too_many_api_keys",
                f"You have {self.max_per_owner} API keys already; revoke one first.",
            )
        key = KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_SECRET_LENGTH))
        record = {
            "_id": f"key_{secrets.token_hex(8)}",
            "owner": owner,
            "name": name,
            "scopes": sorted(set(scopes)),
            "hash": _hash(key),
            "shown": key[:SHOWN_CHARS],
            "created_at": datetime.now(UTC),
            "last_used_at": None,
        }
        await self.keys.insert_one(record)
        return CreatedKey(key, record)

    async def list(self, owner: str) -> list[dict[str, Any]]:
        cursor = self.keys.find({"owner": owner}).sort([("created_at", -1), ("_id", -1)])
        return [record async for record in cursor]

    async def revoke(self, owner: str, key_id: str) -> bool:
        result = await self.keys.delete_one({"_id": key_id, "owner": owner})
        return result.deleted_count == 1

    async def resolve(self, key: str) -> Principal:
        """The owner and scopes a key stands for; InvalidToken when it grants nothing."""
        if not KEY_PATTERN.fullmatch(key):
            raise InvalidToken("the API key is not valid")
        record = await self.keys.find_one({"hash": _hash(key)})
        if record is None:
            raise InvalidToken("the API key is not valid or was revoked")
        now = datetime.now(UTC)
        await self.keys.update_one(
            {
                "_id": record["_id"],
                "$or": [
                    {"last_used_at": None},
                    {"last_used_at": {"$lt": now - LAST_USED_RESOLUTION}},
                ],
            },
            {"$set": {"last_used_at": now}},
        )
        return Principal(
            email=record["owner"], api_key_id=record["_id"], scopes=frozenset(record["scopes"])
        )


def public_key(record: dict[str, Any]) -> dict[str, Any]:
    last_used = record.get("last_used_at")
    return {
        "id": record["_id"],
        "name": record["name"],
        "scopes": record["scopes"],
        "prefix": record["shown"],
        "created_at": record["created_at"].isoformat(),
        "last_used_at": last_used.isoformat() if last_used else None,
    }
