"""What the gateway connects to, started and stopped by the app's lifespan."""

from dataclasses import dataclass

from faststream.rabbit import RabbitBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

import common.db as database
from common.jobs import JobRepository
from common.messaging import Publishers, make_broker
from common.pipeline import Pipeline
from common.storage import S3Storage, Storage, storage_from_settings
from common.tokens import Signer
from common.topology import Topology
from gateway.core.config import GatewaySettings


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

    @classmethod
    async def start(cls, settings: GatewaySettings) -> "Services":
        broker = make_broker(settings)
        topology = Topology(settings)
        # Publishers must exist before the broker starts, so they are set up with it.
        publishers = Publishers(broker, topology)
        client, db = database.connect(settings)
        storage = storage_from_settings(settings)
        try:
            await broker.start()
            await topology.declare(broker)
            await database.ensure_indexes(db)
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
            signer=Signer(settings),
        )

    async def stop(self) -> None:
        await self.broker.stop()
        await self.client.close()
