"""The `/ws` endpoint: reads client ops, checks who may watch which job, and hands
subscriptions to the hub. One reader loop per socket, so a socket's ops are
handled in the order they were sent.

A subscription carries the owner's session token (any of their jobs) or the job's
own token (that job only). Sockets that flood, send oversized or malformed frames,
or sit idle watching nothing are closed; half-open ones are found by uvicorn's
protocol pings (`--ws-ping-interval` / `--ws-ping-timeout`, 20 s each by default).
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pymongo.errors import PyMongoError

from common.auth import SessionStore
from common.metrics import WS_CONNECTIONS
from common.tokens import InvalidToken, Signer
from notifier.config import NotifierSettings
from notifier.hub import Connection, ConnectionGone, Hub
from notifier.protocol import (
    BadRequest,
    ClientPing,
    Error,
    Heartbeat,
    Pong,
    Subscribe,
    Unsubscribe,
    Unsubscribed,
    parse_op,
)

log = logging.getLogger(__name__)

router = APIRouter()

# Refused requests (bad JSON, bad tokens) a socket may send before it is closed.
MAX_REFUSALS = 10
CLOSE_NORMAL = 1000
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009


@dataclass
class Session:
    """What the endpoint needs from the app (set on `app.state.session`)."""

    settings: NotifierSettings
    hub: Hub
    signer: Signer
    sessions: SessionStore


class Refused(Exception):
    def __init__(self, error: Error) -> None:
        super().__init__(error.message)
        self.error = error


async def _heartbeat(conn: Connection, every: float) -> None:
    with contextlib.suppress(ConnectionGone):
        while True:
            await asyncio.sleep(every)
            await conn.send(Heartbeat())


async def _authorize(session: Session, op: Subscribe) -> None:
    """Refuses unless the token is the job's own or a session of the job's owner."""
    try:
        principal = await session.sessions.resolve(op.token)
    except InvalidToken as e:
        raise Refused(Error(code="invalid_token", message=str(e), job_id=op.job_id)) from e
    if principal.job_id is not None:
        if principal.job_id != op.job_id:
            raise Refused(
                Error(
                    code="forbidden",
                    message="This token does not grant access to this job.",
                    job_id=op.job_id,
                )
            )
        return
    job = await session.hub.repo.get(op.job_id)
    # Someone else's job and a missing one look the same, as in the REST API.
    if job is None or not principal.can_read(job):
        raise Refused(
            Error(code="job_not_found", message="You have no such job.", job_id=op.job_id)
        )


async def _subscribe(session: Session, conn: Connection, op: Subscribe) -> None:
    try:
        await _authorize(session, op)
    except PyMongoError as e:
        log.warning("cannot check a subscription to job %s: %s", op.job_id, e)
        await conn.send(
            Error(
                code="unavailable",
                message="The job cannot be read right now; subscribe again shortly.",
                job_id=op.job_id,
            )
        )
        return
    limit = session.settings.max_subscriptions_per_socket
    if op.job_id not in conn.watching and len(conn.watching) >= limit:
        raise Refused(
            Error(
                code="too_many_subscriptions",
                message=f"A socket may watch at most {limit} jobs.",
                job_id=op.job_id,
            )
        )
    try:
        found = await session.hub.subscribe(conn, op.job_id, op.after_seq)
    except PyMongoError as e:
        log.warning(
            "cannot read job %s for a subscription: %s", op.job_id, e, extra={"job_id": op.job_id}
        )
        await conn.send(
            Error(
                code="unavailable",
                message="The job cannot be read right now; subscribe again shortly.",
                job_id=op.job_id,
            )
        )
        return
    if not found:
        await conn.send(
            Error(code="job_not_found", message="There is no such job.", job_id=op.job_id)
        )


class MessageRate:
    """A token bucket: `rate` messages a second on average, bursts of up to twice that."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = 2 * rate
        self.tokens = self.capacity
        self.at = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


async def _serve(websocket: WebSocket, session: Session, conn: Connection) -> None:
    settings = session.settings
    limit = settings.max_message_bytes
    rate = MessageRate(settings.max_messages_per_second)
    refusals = 0
    while True:
        # A socket that watches nothing has nothing to wait for: it may idle only so long.
        idle_limit = None if conn.watching else settings.idle_timeout_seconds
        try:
            message = await asyncio.wait_for(websocket.receive(), idle_limit)
        except TimeoutError:
            await websocket.close(CLOSE_NORMAL, "idle: no subscription")
            return
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("text")
        data = raw.encode() if raw is not None else message.get("bytes") or b""
        if len(data) > limit:
            await conn.send(
                Error(code="bad_request", message=f"Messages are limited to {limit} bytes.")
            )
            await websocket.close(CLOSE_TOO_BIG, "message too big")
            return
        if not rate.allow():
            await conn.send(
                Error(
                    code="rate_limited",
                    message=f"At most {settings.max_messages_per_second:g} messages a second.",
                )
            )
            await websocket.close(CLOSE_POLICY_VIOLATION, "too many messages")
            return
        try:
            op = parse_op(data)
            match op:
                case Subscribe():
                    await _subscribe(session, conn, op)
                case Unsubscribe():
                    session.hub.unsubscribe(conn, op.job_id)
                    await conn.send(Unsubscribed(job_id=op.job_id))
                case ClientPing():
                    await conn.send(Pong())
        except (BadRequest, Refused) as e:
            error = e.error if isinstance(e, Refused) else Error(code="bad_request", message=str(e))
            await conn.send(error)
            refusals += 1
            if refusals >= MAX_REFUSALS:
                await websocket.close(CLOSE_POLICY_VIOLATION, "too many refused requests")
                return


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    session: Session = websocket.app.state.session
    await websocket.accept()
    conn = Connection(websocket.send_text)
    WS_CONNECTIONS.inc()
    heartbeat = asyncio.create_task(_heartbeat(conn, session.settings.heartbeat_seconds))
    try:
        await _serve(websocket, session, conn)
    except (WebSocketDisconnect, ConnectionGone):
        pass  # the client went away; nothing to answer
    finally:
        heartbeat.cancel()
        session.hub.drop(conn)
        WS_CONNECTIONS.dec()
