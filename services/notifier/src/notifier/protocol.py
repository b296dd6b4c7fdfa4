"""The WebSocket protocol at `/ws`: what clients send and what the server answers.

Client → `subscribe` (job id, the owner's session token or the job's token,
optional `after_seq`; or a batch id and the owner's session token), `unsubscribe`,
`ping`. Server → `snapshot`, `status`, `batch_snapshot`, `batch_progress`,
`unsubscribed`, `pong`, `ping` (heartbeat) and `error`.
"""

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, TypeAdapter, ValidationError


class Subscribe(BaseModel):
    op: Literal["subscribe"]
    job_id: str = Field(min_length=1, max_length=64)
    token: str = Field(min_length=1, max_length=1024)
    # The last seq the client has seen; the server replays every later step.
    after_seq: int | None = Field(default=None, ge=0)


class SubscribeBatch(BaseModel):
    """A subscription to a whole batch: one, however many jobs it has."""

    op: Literal["subscribe"]
    batch_id: str = Field(min_length=1, max_length=64)
    token: str = Field(min_length=1, max_length=1024)
    # The last batch seq the client has seen; the jobs that ended since come with the snapshot.
    after_seq: int | None = Field(default=None, ge=0)


class Unsubscribe(BaseModel):
    op: Literal["unsubscribe"]
    job_id: str = Field(min_length=1, max_length=64)


class UnsubscribeBatch(BaseModel):
    op: Literal["unsubscribe"]
    batch_id: str = Field(min_length=1, max_length=64)


class ClientPing(BaseModel):
    op: Literal["ping"]


def _op_tag(value: Any) -> str | None:
    """`subscribe` / `unsubscribe` name a batch when the message has `batch_id`."""
    if not isinstance(value, dict):
        return None
    op = value.get("op")
    if op in ("subscribe", "unsubscribe") and "batch_id" in value:
        return f"{op}_batch"
    return op if isinstance(op, str) else None


ClientOp = Annotated[
    Annotated[Subscribe, Tag("subscribe")]
    | Annotated[SubscribeBatch, Tag("subscribe_batch")]
    | Annotated[Unsubscribe, Tag("unsubscribe")]
    | Annotated[UnsubscribeBatch, Tag("unsubscribe_batch")]
    | Annotated[ClientPing, Tag("ping")],
    Discriminator(_op_tag),
]
_CLIENT_OPS: TypeAdapter[ClientOp] = TypeAdapter(ClientOp)


class BadRequest(Exception):
    pass


def parse_op(
    raw: str | bytes,
) -> Subscribe | SubscribeBatch | Unsubscribe | UnsubscribeBatch | ClientPing:
    try:
        return _CLIENT_OPS.validate_json(raw)
    except ValidationError as e:
        error = e.errors()[0]
        if error["type"] == "json_invalid":
            raise BadRequest("The message is not valid JSON.") from e
        if error["type"] in ("union_tag_invalid", "union_tag_not_found", "model_attributes_type"):
            raise BadRequest("Expected an object with op subscribe, unsubscribe or ping.") from e
        field = ".".join(str(p) for p in error["loc"][1:])
        raise BadRequest(f"{field}: {error['msg']}" if field else error["msg"]) from e


class Snapshot(BaseModel):
    """The job as stored, sent first after a subscribe."""

    type: Literal["snapshot"] = "snapshot"
    job: dict[str, Any]


class Status(BaseModel):
    """One step of the job's history; the newest step also carries the whole job."""

    type: Literal["status"] = "status"
    job_id: str
    seq: int
    status: str
    progress: int
    at: str
    job: dict[str, Any] | None = None


class BatchSnapshot(BaseModel):
    """The batch as stored and its progress, sent first after a batch subscribe. `jobs`:
    the jobs that have ended (all of them; with `after_seq`, those that ended or were
    retried since, give or take a few seconds)."""

    type: Literal["batch_snapshot"] = "batch_snapshot"
    batch_id: str
    seq: int
    counts: dict[str, int]
    cost_usd: float
    batch: dict[str, Any]
    jobs: list[dict[str, Any]]


class BatchProgress(BaseModel):
    """The batch's progress now, and the jobs that ended (or were retried) since the
    last message; at most one every BATCH_INTERVAL seconds per subscription."""

    type: Literal["batch_progress"] = "batch_progress"
    batch_id: str
    seq: int
    counts: dict[str, int]
    cost_usd: float
    jobs: list[dict[str, Any]]


class Unsubscribed(BaseModel):
    type: Literal["unsubscribed"] = "unsubscribed"
    job_id: str | None = None
    batch_id: str | None = None


class Pong(BaseModel):
    type: Literal["pong"] = "pong"


class Heartbeat(BaseModel):
    type: Literal["ping"] = "ping"


ErrorCode = Literal[
    "bad_request",
    "invalid_token",
    "forbidden",
    "job_not_found",
    "batch_not_found",
    "too_many_subscriptions",
    "rate_limited",  # more messages than the socket may send; it is closed (1008)
    "too_many_connections",  # this address has MAX_CONNECTIONS_PER_IP open; closed (1008)
    "unavailable",  # the database did not answer; subscribing again later may work
]


class Error(BaseModel):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    job_id: str | None = None
    batch_id: str | None = None


ServerMessage = (
    Snapshot | Status | BatchSnapshot | BatchProgress | Unsubscribed | Pong | Heartbeat | Error
)


def _encode(message: ServerMessage) -> str:
    data = message.model_dump(mode="json")
    return json.dumps({k: v for k, v in data.items() if v is not None}, separators=(",", ":"))


# Messages without fields, encoded once: every open socket gets a heartbeat each period.
_FIXED = {Heartbeat: _encode(Heartbeat()), Pong: _encode(Pong())}


def encode(message: ServerMessage) -> str:
    fixed = _FIXED.get(type(message))
    return fixed if fixed is not None else _encode(message)
