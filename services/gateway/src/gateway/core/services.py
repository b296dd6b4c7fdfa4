"""What the gateway connects to, started and stopped by the app's lifespan."""

from dataclasses import dataclass

from faststream.rabbit import RabbitBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

import common.db as database
from common import webhooks
from common.auth import SessionStore
from common.batches import BatchRepository
from common.jobs import JobRepository
from common.messaging import Publishers, make_broker
from common.outbound import OutboundClient
from common.pipeline import Pipeline
from common.sealing import Sealer
from common.storage import S3Storage, Storage, storage_from_settings
from common.tokens import Signer
from common.topology import Topology
from common.video_models import ModelCatalog
from gateway.api_keys import ApiKeyStore
from gateway.core.config import GatewaySettings
from gateway.images import Decoder, ImageLimits
from gateway.limits import Limiter
from gateway.mail import mailer_from_settings
from gateway.users import SignIn


@dataclass
class Services:
    settings: GatewaySettings
    broker: RabbitBroker
    topology: Topology
    publishers: Publishers
    client: AsyncMongoClient
    db: AsyncDatabase
    repo: JobRepository
    pipeline: Pipeline
    storage: Storage
    signer: Signer
    sessions: SessionStore
    api_keys: ApiKeyStore
    limiter: Limiter
    sign_in: SignIn
    decoder: Decoder
    video_models: ModelCatalog  # OpenRouter's video models and prices, for quotes
    outbound: OutboundClient  # a catalogue's photo links, through the SSRF guard
    batches: BatchRepository
    sealer: Sealer  # webhook secrets, sealed at rest under SIGNING_KEY

    @classmethod
    async def start(cls, settings: GatewaySettings) -> "Services":
        broker = make_broker(settings)
        topology = Topology(settings)
        # Publishers must exist before the broker starts, so they are set up with it.
        publishers = Publishers(broker, topology)
        client, db = database.connect(settings)
        storage = storage_from_settings(settings)
        signer = Signer(settings)
        sessions = SessionStore(db, signer)
        api_keys = ApiKeyStore(db, settings.api_keys_per_owner)
        limiter = Limiter(db, settings.free_window_seconds)
        sign_in = SignIn(db, settings, mailer_from_settings(settings), limiter, sessions)
        batches = BatchRepository(db)
        sealer = Sealer(settings.signing_key.get_secret_value())
        try:
            await broker.start()
            await topology.declare(broker)
            await database.ensure_indexes(db)
            await sessions.ensure_indexes()
            await api_keys.ensure_indexes()
            await webhooks.ensure_indexes(db)
            await webhooks.seal_stored_secrets(db, sealer)
            await limiter.ensure_indexes()
            await sign_in.ensure_indexes()
            await batches.ensure_indexes()
            if isinstance(storage, S3Storage):
                await storage.ensure_bucket()
        except BaseException:
            await broker.stop()
            await client.close()
            raise
        repo = JobRepository(db)
        return cls(
            settings=settings,
            broker=broker,
            topology=topology,
            publishers=publishers,
            client=client,
            db=db,
            repo=repo,
            pipeline=Pipeline(repo, publishers),
            storage=storage,
            signer=signer,
            sessions=sessions,
            api_keys=api_keys,
            limiter=limiter,
            sign_in=sign_in,
            decoder=Decoder(
                settings.decode_concurrency,
                ImageLimits(
                    max_bytes=settings.max_upload_bytes,
                    max_pixels=settings.max_image_pixels,
                    min_side=settings.min_image_side,
                ),
            ),
            video_models=ModelCatalog(settings.openrouter_models_ttl_seconds),
            outbound=OutboundClient(
                allow_private=settings.outbound_allow_private,
                timeout=settings.batch_link_timeout_seconds,
                max_bytes=settings.max_upload_bytes,
                max_connections=settings.batch_links_concurrency,
            ),
            batches=batches,
            sealer=sealer,
        )

    async def stop(self) -> None:
        await self.outbound.aclose()
        await self.broker.stop()
        await self.client.close()
