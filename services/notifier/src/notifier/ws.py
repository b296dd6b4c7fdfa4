"""The `/ws` endpoint: reads client ops, checks who may watch which job, and hands
subscriptions to the hub. One reader loop per socket, so a socket's ops are
handled in the order they were sent.

Sockets do not go through FastAPI (`SocketsFirst`): an open socket keeps its whole
call stack for its life, and FastAPI's (middleware, routing, dependency solving) was
~20 coroutines with their closures a socket, a third of its memory at 10,000.

A subscription carries the owner's session token (any of their jobs and batches) or
the job's own token (that job only), checked again while it lasts (`notifier.upkeep`). Sockets
that flood, send oversized or malformed frames, sit idle with nothing left to wait
for, or come from an address that has too many open already are closed; half-open
ones are found by uvicorn's protocol pings (`--ws-ping-interval` /
`--ws-ping-timeout`, 20 s each by default).
"""

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pymongo.errors import PyMongoError
from starlette.types import Receive, Scope, Send

from common.auth import Principal, SessionStore
from common.client_ip import client_ip, network_of
from common.metrics import WS_CONNECTIONS
from common.tokens import InvalidToken, Signer
from notifier.batches import BatchHub
from notifier.config import NotifierSettings
from notifier.hub import Connection, ConnectionGone, Grant, Hub
from notifier.protocol import (
    BadRequest,
    ClientPing,
    Error,
    Heartbeat,
    Pong,
    Subscribe,
    SubscribeBatch,
    Unsubscribe,
    UnsubscribeBatch,
    Unsubscribed,
    encode,
    parse_op,
)

log = logging.getLogger(__name__)

PATH = "/ws"

REVOKED = "the job's owner revoked this job token"
# Refused requests (bad JSON, bad tokens) a socket may send before it is closed.
MAX_REFUSALS = 10
CLOSE_NORMAL = 1000
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009


class OpenPerAddress:
    """Open sockets per client address, against MAX_CONNECTIONS_PER_IP."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: Counter[str] = Counter()

    def take(self, address: str) -> bool:
        if self.open[address] >= self.limit:
            return False
        self.open[address] += 1
        return True

    def give_back(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]


@dataclass
class Session:
    """What the endpoint needs from the app (set on `app.state.session`)."""

    settings: NotifierSettings
    hub: Hub
    batches: BatchHub
    signer: Signer
    sessions: SessionStore
    per_address: OpenPerAddress = field(init=False)
    heartbeats: "Heartbeats" = field(init=False)
    # Jobs whose token version the upkeep read, oldest first (`upkeep.longest_unchecked`).
    token_checks: dict[str, None] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.per_address = OpenPerAddress(self.settings.max_connections_per_ip)
        self.heartbeats = Heartbeats(self.settings.heartbeat_seconds)


class Refused(Exception):
    def __init__(self, error: Error) -> None:
        super().__init__(error.message)
        self.error = error


class Heartbeats:
    """Pings every open socket every `every` seconds, each from when it opened, from one
    task for the replica (not a sleeping task per socket: memory counts at 10,000)."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._due: deque[tuple[float, Connection]] = deque()  # in order of due time
        self._open = 0
        self._task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def add(self, conn: Connection) -> None:
        self._open += 1
        self._due.append((asyncio.get_running_loop().time() + self.every, conn))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    def remove(self, conn: Connection) -> None:
        """After the socket closed (`conn.gone`); its entry is dropped when due."""
        self._open -= 1
        if self._open == 0 and self._task is not None:
            self._task.cancel()  # nothing left to ping: no task outlives the sockets
            self._task = None
            self._due.clear()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._due:
            due, conn = self._due[0]
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
                continue
            self._due.popleft()
            if conn.gone:
                continue
            self._due.append((due + self.every, conn))
            # Not awaited here: a slow socket must not hold up the others' pings.
            sending = asyncio.create_task(_ping(conn))
            self._sending.add(sending)
            sending.add_done_callback(self._sending.discard)


async def _ping(conn: Connection) -> None:
    with contextlib.suppress(ConnectionGone):
        await conn.send(Heartbeat())


async def _authorize(session: Session, op: Subscribe) -> Principal:
    """Refuses unless the token is the job's own or a session of the job's owner."""
    try:
        principal = await session.sessions.resolve(op.token)
    except InvalidToken as e:
        raise Refused(Error(code="invalid_token", message=str(e), job_id=op.job_id)) from e
    if principal.job_id is not None and principal.job_id != op.job_id:
        raise Refused(
            Error(
                code="forbidden",
                message="This token does not grant access to this job.",
                job_id=op.job_id,
            )
        )
    job = await session.hub.repo.get(op.job_id)
    if job is not None and principal.job_id is not None and not principal.can_read(job):
        raise Refused(Error(code="invalid_token", message=REVOKED, job_id=op.job_id))
    # Someone else's job and a missing one look the same, as in the REST API.
    if job is None or not principal.can_read(job):
        raise Refused(
            Error(code="job_not_found", message="You have no such job.", job_id=op.job_id)
        )
    return principal


async def _subscribe(session: Session, conn: Connection, op: Subscribe) -> None:
    try:
        principal = await _authorize(session, op)
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
    if op.job_id not in conn.watching:
        _check_room(session, conn, job_id=op.job_id)
    try:
        found = await session.hub.subscribe(
            conn, op.job_id, op.after_seq, Grant(principal, op.token)
        )
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


def _check_room(
    session: Session, conn: Connection, *, job_id: str | None = None, batch_id: str | None = None
) -> None:
    """A socket watches at most MAX_SUBSCRIPTIONS_PER_SOCKET jobs and batches together."""
    limit = session.settings.max_subscriptions_per_socket
    if len(conn.watching) + len(conn.batches) >= limit:
        raise Refused(
            Error(
                code="too_many_subscriptions",
                message=f"A socket may watch at most {limit} jobs and batches.",
                job_id=job_id,
                batch_id=batch_id,
            )
        )


async def _authorize_batch(session: Session, op: SubscribeBatch) -> tuple[Principal, dict]:
    """Only the owner's session opens a batch; a job token never does."""
    try:
        principal = await session.sessions.resolve(op.token)
    except InvalidToken as e:
        raise Refused(Error(code="invalid_token", message=str(e), batch_id=op.batch_id)) from e
    if principal.email is None:
        raise Refused(
            Error(
                code="forbidden",
                message="A job token does not grant access to a batch.",
                batch_id=op.batch_id,
            )
        )
    batch = await session.batches.find(op.batch_id)
    # Someone else's batch and a missing one look the same.
    if batch is None or batch.get("owner") != principal.email:
        raise Refused(
            Error(code="batch_not_found", message="You have no such batch.", batch_id=op.batch_id)
        )
    return principal, batch


async def _subscribe_batch(session: Session, conn: Connection, op: SubscribeBatch) -> None:
    unavailable = Error(
        code="unavailable",
        message="The batch cannot be read right now; subscribe again shortly.",
        batch_id=op.batch_id,
    )
    try:
        principal, batch = await _authorize_batch(session, op)
        if op.batch_id not in conn.batches:
            _check_room(session, conn, batch_id=op.batch_id)
        await session.batches.subscribe(conn, batch, op.after_seq, Grant(principal, op.token))
    except PyMongoError as e:
        log.warning("cannot read batch %s for a subscription: %s", op.batch_id, e)
        await conn.send(unavailable)


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
        try:
            # Not asyncio.wait_for: on Python 3.11 it wraps the wait in a task of its own,
            # one more per open socket.
            async with asyncio.timeout(settings.idle_timeout_seconds):
                message = await websocket.receive()
        except TimeoutError:
            # Silent for the idle limit. A socket watching nothing, or only jobs that are
            # final, waits for nothing more (heartbeats would keep it open forever): close it.
            if conn.waiting:
                continue
            await websocket.close(CLOSE_NORMAL, "idle: nothing left to watch")
            return
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("text")
        data = raw.encode() if raw is not None else message.get("bytes") or b""
        del message, raw  # not kept for the socket's life between its messages
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
        if not await _handle(session, conn, data):
            refusals += 1
            if refusals >= MAX_REFUSALS:
                await websocket.close(CLOSE_POLICY_VIOLATION, "too many refused requests")
                return


async def _handle(session: Session, conn: Connection, data: bytes) -> bool:
    """One client op; False when it was refused. (A function of its own, so the op
    is not kept alive in the loop's frame until the socket's next message.)"""
    try:
        op = parse_op(data)
        match op:
            case Subscribe():
                await _subscribe(session, conn, op)
            case SubscribeBatch():
                await _subscribe_batch(session, conn, op)
            case Unsubscribe():
                session.hub.unsubscribe(conn, op.job_id)
                await conn.send(Unsubscribed(job_id=op.job_id))
            case UnsubscribeBatch():
                session.batches.unsubscribe(conn, op.batch_id)
                await conn.send(Unsubscribed(batch_id=op.batch_id))
            case ClientPing():
                await conn.send(Pong())
    except (BadRequest, Refused) as e:
        error = e.error if isinstance(e, Refused) else Error(code="bad_request", message=str(e))
        await conn.send(error)
        return False
    return True


def _client_address(websocket: WebSocket, settings: NotifierSettings) -> str:
    """The client's address (X-Forwarded-For only from TRUSTED_PROXIES), as counted."""
    peer = websocket.client.host if websocket.client else None
    forwarded = websocket.headers.getlist("x-forwarded-for")
    return network_of(client_ip(peer, forwarded, settings.trusted_proxies))


async def _refuse_connection(websocket: WebSocket, limit: int) -> None:
    """Accepted only to say why: a refused handshake shows a browser no reason."""
    await websocket.accept()
    error = Error(
        code="too_many_connections",
        message=f"At most {limit} open connections per address; close one first.",
    )
    await websocket.send_text(encode(error))
    await websocket.close(CLOSE_POLICY_VIOLATION, "too many connections from this address")


class SocketsFirst:
    """The notifier's ASGI app: sockets at PATH straight to `websocket_endpoint`, all
    else (HTTP, the lifespan, sockets elsewhere, refused there) to the FastAPI app."""

    def __init__(self, api: FastAPI) -> None:
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == PATH:
            await websocket_endpoint(WebSocket(scope, receive, send), self.api.state.session)
        else:
            await self.api(scope, receive, send)


async def websocket_endpoint(websocket: WebSocket, session: Session) -> None:
    address = _client_address(websocket, session.settings)
    if not session.per_address.take(address):
        await _refuse_connection(websocket, session.per_address.limit)
        return
    try:
        await websocket.accept()
        await _connected(websocket, session)
    finally:
        session.per_address.give_back(address)


async def _connected(websocket: WebSocket, session: Session) -> None:
    conn = Connection(websocket.send_text)
    WS_CONNECTIONS.inc()
    session.heartbeats.add(conn)
    try:
        await _serve(websocket, session, conn)
    except (WebSocketDisconnect, ConnectionGone):
        pass  # the client went away; nothing to answer
    finally:
        conn.gone = True  # no more pings
        session.heartbeats.remove(conn)
        session.hub.drop(conn)
        session.batches.drop(conn)
        WS_CONNECTIONS.dec()
