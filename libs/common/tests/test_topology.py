"""The work queues on the real broker: a message that keeps coming back (a handler that
crashes its worker every time) is dead-lettered after the delivery limit, not redelivered
for ever."""

import asyncio

from faststream.rabbit import RabbitBroker

from common.events import JobSubmitted
from common.messaging import Publishers, make_broker
from common.settings import CommonSettings
from common.topology import DELIVERY_LIMIT, Topology


async def test_a_message_returned_too_often_goes_to_the_dead_letter_queue(
    settings: CommonSettings,
) -> None:
    broker: RabbitBroker = make_broker(settings)
    topology = Topology(settings)
    async with broker:
        await broker.connect()
        await topology.declare(broker)
        try:
            work = topology.prompt_jobs
            await Publishers(broker, topology).job_submitted.publish(JobSubmitted(job_id="j1"))
            queue = await broker.declare_queue(work.queue)
            dead = await broker.declare_queue(work.dead_letter)

            deliveries = 0
            for _ in range(DELIVERY_LIMIT + 5):
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                deliveries += 1
                await message.nack(requeue=True)  # what a crashed consumer's channel does
                await asyncio.sleep(0.05)

            assert deliveries == DELIVERY_LIMIT + 1
            for _ in range(50):  # dead-lettering is asynchronous
                letter = await dead.get(no_ack=True, fail=False)
                if letter is not None:
                    break
                await asyncio.sleep(0.1)
            assert letter is not None
            assert JobSubmitted.model_validate_json(letter.body).job_id == "j1"
        finally:
            await topology.delete(broker)
