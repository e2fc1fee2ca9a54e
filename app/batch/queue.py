"""Where submitted jobs wait: in this process (embedded mode), or on saq's Redis queue for workers.

saq (a maintained asyncio job queue on Redis) carries one small task per item, so items spread
over every worker, plus one `batch_dispatch` task per job that enqueues them (idempotently: item
task keys are `JOB:INDEX`), which keeps a 50,000-item submission a quick request.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from saq import Job, Status
from saq.queue.redis import RedisQueue

from app.batch.runner import JobRunner
from app.core.config import BatchSettings
from app.core.errors import Overloaded, QueueUnavailable

logger = logging.getLogger(__name__)

QUEUE_NAME = "llamarada-batch"
DISPATCH = "batch_dispatch"
ITEM = "batch_item"
SWEEP_ABORT_WAIT = 1.0  # seconds the sweep waits for a presumed-dead worker to stop an item


def quiet_saq(log_level: str) -> None:
    """saq logs several lines per task at INFO: keep them for DEBUG."""
    if log_level != "DEBUG":
        logging.getLogger("saq").setLevel(logging.WARNING)


class JobQueue(Protocol):
    """Takes submitted jobs to whatever runs their items."""

    name: str

    async def admit(self, items: int) -> None:
        """Raise Overloaded when `items` more would not fit (before the job is stored)."""

    async def submit(self, job_id: str, total: int) -> None:
        """Have the job's items run."""

    async def aclose(self) -> None:
        """Stop and close."""


class InProcessQueue:
    """Runs items in this process, `concurrency` at a time; they don't survive a restart."""

    name = "in-process"

    def __init__(
        self,
        runner: JobRunner,
        concurrency: int,
        maintain_every: float,
        on_depth: Callable[[float], None],
        max_waiting: int = 200_000,
        retry_after: int = 30,
    ) -> None:
        self.runner = runner
        self.concurrency = concurrency
        self.maintain_every = maintain_every
        self.max_waiting = max_waiting
        self.retry_after = retry_after
        self._on_depth = on_depth
        self._waiting: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def admit(self, items: int) -> None:
        """Raise Overloaded when `items` more would pass `max_waiting` (memory stays bounded)."""
        if self._waiting.qsize() + items > self.max_waiting:
            raise Overloaded(
                f"{self._waiting.qsize()} batch items are waiting, at most {self.max_waiting}; "
                "submit again later",
                retry_after=self.retry_after,
            )

    async def submit(self, job_id: str, total: int) -> None:
        """Queue the job's items that have no result yet."""
        self._start()
        for index in await self.runner.store.pending(job_id, started=False):
            self._waiting.put_nowait((job_id, index))
        self._on_depth(self._waiting.qsize())

    async def aclose(self) -> None:
        """Stop every item in progress (embedded jobs end with the process)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def _start(self) -> None:
        if self._tasks:
            return
        # A fresh context: the consumers outlive the request that starts them, and must not
        # carry its request id or its usage meter into every later job.
        context = contextvars.Context()
        self._tasks = [
            asyncio.create_task(self._consume(), context=context) for _ in range(self.concurrency)
        ]
        self._tasks.append(asyncio.create_task(self._maintain(), context=context))

    async def _consume(self) -> None:
        while True:
            job_id, index = await self._waiting.get()
            self._on_depth(self._waiting.qsize())
            try:
                await self.runner.run_item(job_id, index)
            except Exception:
                logger.exception("batch item failed to run", extra={"job": job_id, "index": index})

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self.maintain_every)
            try:
                await self.runner.maintain()
            except Exception:
                logger.exception("batch maintenance failed")


# The active list with each task's record, read atomically, by one sweeper at a time (saq's).
_LIST_ACTIVE = """
local found = {}
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SETEX', KEYS[1], ARGV[1], 1)
  for i, id in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
    found[i] = {id, redis.call('GET', id)}
  end
end
return found
"""


class BatchRedisQueue(RedisQueue):
    """saq's Redis queue, whose sweep leaves alone the tasks a live worker has just dequeued.

    A worker moves a task to the active list, then marks it active: saq's own sweep takes a
    task caught between the two for abandoned, aborts it and queues it again while it runs, so
    it runs twice, or is lost when its worker honours the abort. Here a task not marked active
    is swept only when a later sweep finds its record unchanged; one whose heartbeat stopped is
    swept at once, as in saq.
    """

    def __init__(self, redis: aioredis.Redis, name: str) -> None:
        super().__init__(redis, name=name)
        self._list_active = self.redis.register_script(_LIST_ACTIVE)
        self._unmarked: set[tuple[bytes, bytes]] = set()  # (id, record) seen by the last sweep

    async def sweep(self, lock: int = 60, abort: float = SWEEP_ABORT_WAIT) -> list[str]:
        """Requeue (retry) tasks whose worker stopped sending heartbeats or never started them."""
        found = await self._list_active(keys=[self.namespace("sweep"), self._active], args=[lock])
        if not found:  # another worker sweeps now, or nothing runs
            return []
        unmarked: set[tuple[bytes, bytes]] = set()
        swept: list[str] = []
        for job_id, record in found:
            job = self.deserialize(record)
            if job is None:  # its record is gone (as in saq)
                swept.append(_str(job_id))
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.lrem(self._active, 0, job_id)
                    pipe.zrem(self._incomplete, job_id)
                    await pipe.execute()
                continue
            marked = job.status in (Status.ACTIVE, Status.ABORTING)
            if marked and not job.stuck:
                continue  # its worker's heartbeat is fresh
            if not marked and (job_id, record) not in self._unmarked:
                unmarked.add((job_id, record))  # maybe dequeued a moment ago: look again
                continue
            logger.warning("batch task swept", extra={"task": job.key, "status": job.status})
            swept.append(_str(job_id))
            await self.abort(job, error=self.swept_error_message)
            try:
                await job.refresh(abort)
            except (TimeoutError, RuntimeError):
                pass  # RuntimeError: its record is gone, it ended meanwhile (or was aborted)
            finally:
                # Off every list now: requeued even when this worker is being stopped. Running
                # an item again is safe, the store keeps its first result only.
                if job.retryable:
                    await self.retry(job, error=self.swept_error_message)
                else:
                    await self.finish(job, Status.ABORTED, error=self.swept_error_message)
        self._unmarked = unmarked
        return swept


def item_task(settings: BatchSettings, job_id: str, index: int) -> Job:
    """The saq task that runs one item: retried when its worker is lost."""
    return Job(
        function=ITEM,
        kwargs={"job_id": job_id, "index": index},
        key=f"{job_id}:{index}",
        # The item's own timeout records a failure first; this one only catches a stuck worker.
        timeout=int(settings.item_timeout) + 60,
        heartbeat=settings.heartbeat,
        # One more than the store allows: the last attempt records the failure.
        retries=settings.max_attempts + 1,
        ttl=-1,
    )


def dispatch_task(settings: BatchSettings, job_id: str, total: int) -> Job:
    """The saq task that enqueues a job's items."""
    return Job(
        function=DISPATCH,
        kwargs={"job_id": job_id, "total": total},
        key=f"dispatch:{job_id}",
        timeout=0,
        heartbeat=settings.heartbeat,
        retries=settings.max_attempts + 1,
        ttl=-1,
    )


class SaqJobQueue:
    """Puts jobs on the Redis queue that `llamarada worker` processes serve."""

    name = "redis"

    def __init__(self, url: str, settings: BatchSettings, log_level: str = "INFO") -> None:
        self.settings = settings
        quiet_saq(log_level)
        # Bounded waits: an unreachable or stalled Redis is a quick 503, not a hung request.
        client = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
        self.queue = BatchRedisQueue(client, name=QUEUE_NAME)

    async def admit(self, items: int) -> None:
        """Workers on Redis take any number: jobs wait in Redis, not in this process."""

    async def submit(self, job_id: str, total: int) -> None:
        """Queue the job's dispatch task."""
        async with guard():
            await self.queue.enqueue(dispatch_task(self.settings, job_id, total))

    async def aclose(self) -> None:
        """Close the queue's connections (Redis being down must not stop the app stopping)."""
        try:
            await self.queue.disconnect()
        except (RedisError, OSError) as exc:
            logger.warning("batch queue closed uncleanly", extra={"error": str(exc)})


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@contextlib.asynccontextmanager
async def guard() -> AsyncIterator[None]:
    """Redis errors as `QueueUnavailable`."""
    try:
        yield
    except RedisError as exc:
        raise QueueUnavailable(f"the batch queue (Redis) is unavailable: {exc}") from exc
