"""The work queues on the real broker: a message that keeps coming back (a handler that
crashes its worker every time) is dead-lettered after the delivery limit, not redelivered
for ever."""

import asyncio

from faststream.rabbit import RabbitBroker
from hypothesis import given
from hypothesis import settings as settings_of_hypothesis
from hypothesis import strategies as st

from common.events import JobSubmitted
from common.messaging import Publishers, make_broker
from common.settings import CommonSettings
from common.topology import (
    DELIVERY_LIMIT,
    LONGEST_DELAY,
    Topology,
    delay_bucket,
    delay_bucket_below,
    delay_buckets,
)


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


@settings_of_hypothesis(max_examples=300, deadline=None)
@given(st.floats(min_value=0, max_value=3 * LONGEST_DELAY, allow_nan=False))
def test_a_delay_goes_to_a_queue_never_shorter_and_little_longer(seconds: float) -> None:
    """A wait is never cut short, rounded up by at most its step (a tenth of it or a
    second), and every bucket it may choose has its queue."""
    bucket = delay_bucket(seconds)
    assert bucket in delay_buckets()
    if seconds <= LONGEST_DELAY:
        assert bucket >= seconds
        assert bucket - seconds <= max(1.0, 0.25 * seconds)
    else:
        assert bucket == LONGEST_DELAY  # the rest after going round it (x-not-before)
    work = Topology(CommonSettings(amqp_prefix="t.")).video_jobs
    assert work.delay_queue(seconds)[1].name == f"t.video.jobs.delay.{bucket}s"


@settings_of_hypothesis(max_examples=300, deadline=None)
@given(st.floats(min_value=0, max_value=3 * LONGEST_DELAY, allow_nan=False))
def test_a_wait_of_our_own_rounds_down_to_a_queue_it_leaves_exactly(seconds: float) -> None:
    """The longest queue not longer than the wait (the shortest for less): sent there, the
    wait is exactly the queue's length, not rounded up again."""
    below = delay_bucket_below(seconds)
    buckets = delay_buckets()
    assert below in buckets
    assert delay_bucket(below) == below
    if seconds >= buckets[0]:
        assert below <= seconds + 1e-6
        assert not [b for b in buckets if below < b <= seconds]
    else:
        assert below == buckets[0]
