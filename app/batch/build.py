"""The batch services the lifespan builds: Redis store and queue when set, else in-process."""

from __future__ import annotations

from dataclasses import dataclass

from app.batch.items import ItemRunner
from app.batch.jobs import BatchService
from app.batch.openai_batch import OpenAIBatchService
from app.batch.queue import InProcessQueue, JobQueue, SaqJobQueue
from app.batch.redis_store import RedisBatchStore
from app.batch.runner import JobRunner
from app.batch.store import BatchStore, MemoryBatchStore
from app.core.config import Settings
from app.core.metrics import Metrics
from app.core.quota import Quotas
from app.rag.chat import ChatService


@dataclass
class Batch:
    """What the batch routes use, and what the lifespan closes."""

    jobs: BatchService
    openai: OpenAIBatchService
    store: BatchStore
    queue: JobQueue

    async def aclose(self) -> None:
        """Stop in-process items and close connections."""
        await self.queue.aclose()
        await self.store.aclose()


def batch_redis_url(settings: Settings) -> str | None:
    """The Redis that holds batch jobs: the batch section's own, or the shared one."""
    url = settings.batch.redis_url or settings.redis_url
    return url.get_secret_value() if url else None


def build_batch(
    settings: Settings, chat: ChatService, metrics: Metrics, quotas: Quotas | None = None
) -> Batch:
    """Jobs on Redis for `llamarada worker` processes, or run by this process without Redis;
    each item counts against its key's `quotas`."""
    config = settings.batch
    url = batch_redis_url(settings)
    store: BatchStore = (
        RedisBatchStore(url, config.retention) if url else MemoryBatchStore(config.retention)
    )
    runner = JobRunner(store, ItemRunner(chat, config, quotas), config, metrics)
    queue: JobQueue
    if url:
        queue = SaqJobQueue(url, config, settings.log_level)
    else:
        gauge = metrics.batch_queue_depth
        queue = InProcessQueue(
            runner,
            config.worker_concurrency,
            config.sweep_interval,
            gauge.set,
            max_waiting=config.max_queued_items,
        )
    jobs = BatchService(store, queue, runner, config, metrics)
    return Batch(jobs, OpenAIBatchService(jobs, store, config), store, queue)
