"""`llamarada worker`: runs batch items from the Redis queue, with /metrics on its own port.

Any number of workers share the queue. Each running item sends a heartbeat every third of
`LLAMARADA_BATCH__HEARTBEAT`; a worker that stops sending them (killed, frozen, cut off) has its
items swept back onto the queue by the other workers and run again there. The store records each
item's first result only, so an item run twice is still recorded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from prometheus_client import start_http_server
from redis.exceptions import RedisError
from saq import Worker
from saq.types import Context

from app.batch.build import batch_redis_url
from app.batch.items import ItemRunner
from app.batch.queue import DISPATCH, ITEM, QUEUE_NAME, BatchRedisQueue, item_task, quiet_saq
from app.batch.records import STOPPING
from app.batch.redis_store import RedisBatchStore
from app.batch.runner import JobRunner
from app.core.cache import build_cache
from app.core.config import Settings
from app.core.errors import LlamaradaError
from app.core.metrics import Metrics
from app.core.quota import Quotas
from app.core.tracing import start_tracing
from app.llm.build import build_backend, build_completions
from app.rag.build import build_rag

logger = logging.getLogger(__name__)

DISPATCH_PAGE = 200  # item tasks enqueued at once


async def run_worker(
    settings: Settings, *, concurrency: int, metrics_port: int, metrics_host: str = "0.0.0.0"
) -> None:
    """Process batch items until SIGTERM or SIGINT; items in progress then go back to the queue."""
    url = batch_redis_url(settings)
    if url is None:
        raise LlamaradaError("the worker needs LLAMARADA_REDIS_URL (or LLAMARADA_BATCH__REDIS_URL)")
    batch = settings.batch
    quiet_saq(settings.log_level)
    tracing = start_tracing()
    metrics = Metrics()
    backend = build_backend(settings, metrics)
    await backend.start()
    cache = build_cache(settings)
    completions = build_completions(settings, backend, cache, metrics)
    rag = build_rag(settings, completions, metrics)  # items may ask `kb:` models
    store = RedisBatchStore(url, batch.retention)
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    quotas = Quotas(  # the keys' budgets, shared with the API
        settings.quota, redis_url, max_connections=settings.redis_max_connections
    )
    runner = JobRunner(store, ItemRunner(rag.chat, batch, quotas), batch, metrics)
    queue = BatchRedisQueue(aioredis.from_url(url), name=QUEUE_NAME)
    beat = max(batch.heartbeat / 3, 0.2)

    async def batch_item(ctx: Context, *, job_id: str, index: int) -> None:
        async with heartbeat(ctx, beat):
            await runner.run_item(job_id, index)

    async def batch_dispatch(ctx: Context, *, job_id: str, total: int) -> None:
        async with heartbeat(ctx, beat):
            pending = await store.pending(job_id, started=True)
            for start in range(0, len(pending), DISPATCH_PAGE):
                job = await store.get_job(job_id)
                if job is None or job.final or job.status in STOPPING:
                    return  # whoever stops a job records its items not started
                page = pending[start : start + DISPATCH_PAGE]
                await asyncio.gather(*(queue.enqueue(item_task(batch, job_id, i)) for i in page))

    server = None
    if metrics_port:
        server, _ = start_http_server(metrics_port, metrics_host, registry=metrics.registry)
    worker = Worker(
        queue,
        functions=[(ITEM, batch_item), (DISPATCH, batch_dispatch)],
        id=f"{socket.gethostname()}:{os.getpid()}",
        concurrency=concurrency,
        timers={"sweep": batch.sweep_interval, "abort": 1, "schedule": 1, "worker_info": 10},
        dequeue_timeout=1,
        # Items still running at the drain deadline go back to the queue for other workers.
        shutdown_grace_period_s=math.ceil(settings.server.drain_timeout),
    )
    upkeep = asyncio.create_task(_upkeep(runner, queue, metrics, batch.sweep_interval))
    logger.info(
        "batch worker started",
        extra={"worker": worker.id, "concurrency": concurrency, "backend": backend.name},
    )
    try:
        await worker.start()
    finally:
        upkeep.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await upkeep
        if server is not None:
            server.shutdown()
            server.server_close()
        await queue.disconnect()
        await store.aclose()
        await rag.aclose()
        await quotas.aclose()
        await backend.aclose()
        if cache is not None:
            await cache.aclose()
        logger.info("batch worker stopped", extra={"worker": worker.id})
        if tracing is not None:
            tracing.shutdown()  # sends the spans still queued


@contextlib.asynccontextmanager
async def heartbeat(ctx: Context, every: float) -> AsyncIterator[None]:
    """Tell the queue this worker still runs the task, every `every` seconds, until it ends."""
    job = ctx.get("job")

    async def beat() -> None:
        while job is not None:
            await asyncio.sleep(every)
            try:
                await job.update()
            except RedisError as exc:
                logger.warning("heartbeat failed", extra={"error": str(exc)})

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        # Stopped before the task ends, so no heartbeat can overwrite saq's final status.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _upkeep(runner: JobRunner, queue: BatchRedisQueue, metrics: Metrics, every: int) -> None:
    """Publish the queue's depth; expire jobs past their window; drop index entries of old ones."""
    while True:
        try:
            metrics.batch_queue_depth.set(await queue.count("queued"))
            await runner.maintain()
        except (RedisError, LlamaradaError) as exc:
            logger.warning("batch upkeep failed", extra={"error": str(exc)})
        await asyncio.sleep(every)
