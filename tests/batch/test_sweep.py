"""The queue's sweep on a real Redis: tasks a worker has just dequeued stay where they are."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from saq import Status
from saq.utils import now

from app.batch.queue import BatchRedisQueue, item_task
from app.core.config import BatchSettings
from tests.conftest import RedisProcess

# saq's abort (a step of every sweep) calls redis-py's `setex`, deprecated there.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")


async def dequeued(redis_server: RedisProcess) -> tuple[BatchRedisQueue, str]:
    """A queue holding one item task, moved to the active list and not marked active yet:
    what a worker that has just dequeued it, or died right after, leaves behind."""
    queue = BatchRedisQueue(aioredis.from_url(redis_server.url), name="sweep-test")
    task = await queue.enqueue(item_task(BatchSettings(), "job", 0))
    assert task is not None
    assert await queue.redis.lmove(queue._queued, queue._active) is not None
    return queue, task.id


async def sweep(queue: BatchRedisQueue, abort: float = 1.0) -> list[str]:
    """One sweep, as the next one a worker runs once the sweep lock expires."""
    await queue.redis.delete(queue.namespace("sweep"))
    return await queue.sweep(lock=60, abort=abort)


async def test_a_task_just_dequeued_is_left_to_its_worker(redis_server: RedisProcess) -> None:
    queue, task_id = await dequeued(redis_server)
    try:
        assert await sweep(queue) == []
        # Its worker marks it active before the next sweep: that one leaves it running too.
        task = await queue.job(queue.job_key_from_id(task_id))
        assert task is not None
        await queue.update(task, status=Status.ACTIVE, started=now())
        assert await sweep(queue) == []
        assert await queue.redis.lrange(queue._active, 0, -1) == [task_id.encode()]
        assert await queue.redis.llen(queue._queued) == 0
    finally:
        await queue.disconnect()


async def test_a_task_dequeued_and_never_started_goes_back(redis_server: RedisProcess) -> None:
    queue, task_id = await dequeued(redis_server)
    try:
        assert await sweep(queue) == []
        assert await sweep(queue, abort=0.1) == [task_id]  # unchanged since: abandoned
        assert await queue.redis.lrange(queue._queued, 0, -1) == [task_id.encode()]
        assert await queue.redis.llen(queue._active) == 0
        task = await queue.job(queue.job_key_from_id(task_id))
        assert task is not None
        assert task.status == Status.QUEUED
    finally:
        await queue.disconnect()
