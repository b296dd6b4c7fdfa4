"""The notifier app: `uvicorn notifier.main:app --port 8001 --no-proxy-headers
--ws-per-message-deflate false` (scripts/run.py has the full command line).

A plain FastStream broker runs inside the FastAPI lifespan (the FastAPI plugin is
deprecated); each replica consumes its own exclusive queue bound to `job.status`, and
the shared `notifier.webhooks` queue, whose events the webhook worker
(`notifier.webhooks`) turns into signed deliveries to customers' endpoints.
Beside it runs the upkeep loop (`notifier.upkeep`), woken early when the broker
connection comes back, since events published while it was down never arrive.
"""

import asyncio
import contextlib
import gc
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

import common.db as database
from common import ops
from common import webhooks as webhook_store
from common.auth import SessionStore
from common.errors import install_error_handlers
from common.health import readiness
from common.jobs import Job, JobRepository
from common.logs import configure_logging
from common.messaging import make_broker
from common.ops import Readiness
from common.outbound import OutboundClient
from common.request_metrics import RequestMetrics
from common.storage import storage_from_settings
from common.tokens import Signer
from common.topology import Topology
from common.views import PUBLIC_JOB_FIELDS, public_job
from notifier import ws
from notifier.batches import BatchHub
from notifier.config import NotifierSettings
from notifier.events import subscribe_status
from notifier.hub import Hub
from notifier.upkeep import maintain
from notifier.webhooks import DeliveryWorker, subscribe_webhook_events

# Young objects collected after this many allocations (CPython: 700). A full collection
# walks every live object, ~100 a socket (seconds at 10,000 sockets on a busy machine), and
# comes after enough objects have outlived two young ones: with 700, every event's objects
# did while it waited a few ms for its job's read, and a full pass came every few seconds.
GC_YOUNG_THRESHOLD = 20_000


def tune_gc() -> None:
    """Fewer full collections, each over the sockets' objects only: the ones from the
    imports and the start-up (~100,000) are set aside for good (`gc.freeze`)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def create_app(settings: NotifierSettings | None = None) -> ws.SocketsFirst:
    settings = settings or NotifierSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    replica_id = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The ops port answers from the start, so probes see a notifier that is starting.
        async with (
            ops.serving(app.state.ops, settings.ops_host, settings.ops_port),
            connected(app) as ready,
        ):
            app.state.readiness = ready
            tune_gc()
            try:
                yield
            finally:
                app.state.readiness = None

    @asynccontextmanager
    async def connected(app: FastAPI) -> AsyncIterator[Readiness]:
        # Every status event of the system comes here: two lines about each at INFO were
        # an eighth of the notifier's CPU at 1,000 events/s (LOG_LEVEL=DEBUG shows them).
        broker = make_broker(settings, access_log_level=logging.DEBUG)
        topology = Topology(settings)
        client, db = database.connect(settings)
        storage = storage_from_settings(settings)
        signer = Signer(settings)

        async def view(job: Job) -> dict[str, Any]:
            return await public_job(job, storage, signer)

        hub = Hub(JobRepository(db), view, settings.resync_max_jobs, PUBLIC_JOB_FIELDS)
        batches = BatchHub(db)
        subscribe_status(broker, topology, replica_id, hub, batches)
        outbound = OutboundClient(
            allow_private=settings.outbound_allow_private,
            timeout=settings.webhook_timeout_seconds,
        )
        deliveries = DeliveryWorker(db, settings, storage, outbound)
        subscribe_webhook_events(broker, topology, db, settings, deliveries.wake)
        session = ws.Session(
            settings=settings,
            hub=hub,
            batches=batches,
            signer=signer,
            sessions=SessionStore(db, signer),
        )
        app.state.session = session
        await broker.start()
        await topology.declare(broker)
        await webhook_store.ensure_indexes(db)
        sender = asyncio.create_task(deliveries.run())
        wake = asyncio.Event()
        connection = await broker.connect()  # the robust connection broker.start() opened
        connection.reconnect_callbacks.add(lambda _connection: wake.set())
        upkeep = asyncio.create_task(maintain(session, wake))
        try:
            yield lambda: readiness(broker, db, storage)
        finally:
            upkeep.cancel()
            sender.cancel()
            for task in (upkeep, sender):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await broker.stop()
            await deliveries.stop()
            await outbound.aclose()
            await client.close()

    app = FastAPI(title="Product Videos notifier", lifespan=lifespan, docs_url=None)
    install_error_handlers(app)
    app.add_middleware(RequestMetrics)

    async def current_readiness() -> tuple[bool, dict[str, str]]:
        ready: Readiness | None = getattr(app.state, "readiness", None)
        if ready is None:
            return False, {"startup": "not started"}
        return await ready()

    # /readyz with detail and /metrics only on OPS_PORT; the public port says ready or not.
    app.state.ops = ops.ops_app(current_readiness)
    public = ops.PublicReadiness(current_readiness)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        return public.response(await public())

    return ws.SocketsFirst(app)


app = create_app()
