"""This replica's subscription to every `job.status` event."""

from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker

from common.events import JobStatusChanged
from common.logs import job_id_var
from common.topology import Topology
from notifier.batches import BatchHub
from notifier.hub import Hub

# Events handled at once (each waits for its push before its ack): enough for the hub to
# read the jobs of many events together at a high event rate, instead of PREFETCH at a time.
STATUS_PREFETCH = 256


def subscribe_status(
    broker: RabbitBroker, topology: Topology, replica_id: str, hub: Hub, batches: BatchHub
) -> None:
    """Bind this replica's own queue to `job.status` and feed the hubs from it."""

    # Acked even when a push or the job's read fails: the hub's resync catches the sockets
    # up within RESYNC_SECONDS, and a requeued event would only loop while the database is away.
    @broker.subscriber(
        topology.status_queue(replica_id),
        topology.exchange,
        ack_policy=AckPolicy.ACK,
        channel=Channel(prefetch_count=STATUS_PREFETCH),
        title="notifier.status:consume",
        description="Pushes the job's new history steps to the sockets watching it.",
    )
    async def on_job_status(event: JobStatusChanged) -> None:
        token = job_id_var.set(event.job_id)  # the pushes' log lines name the job
        try:
            batches.on_status(event)  # no read: the batch is read on its next tick
            await hub.on_status(event)
        finally:
            job_id_var.reset(token)
