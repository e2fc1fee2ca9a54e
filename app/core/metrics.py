"""Prometheus metrics, correct under several uvicorn worker processes.

With PROMETHEUS_MULTIPROC_DIR set (`llamarada serve --workers N` sets it), prometheus-client
writes every value to per-process files and `/metrics` sums them across the workers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
AGENT_STEP_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 8, 10)


class Metrics:
    """The gateway's metrics, registered on their own registry (one per app)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "llama_requests", "Model requests by outcome", ["model", "status"], registry=r
        )
        self.request_duration = Histogram(
            "llama_request_duration_seconds",
            "Time from request to last byte",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.active_requests = Gauge(
            "llama_active_requests",
            "Requests being answered now",
            ["model"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.cache_requests = Counter(
            "llama_cache_requests", "Response cache look-ups by result", ["result"], registry=r
        )
        self.cache_hits = Counter(
            "llama_cache_hits", "Response cache hits by kind (exact|semantic)", ["kind"], registry=r
        )
        self.tokens = Counter(
            "llama_tokens",
            "Tokens processed, by kind (prompt|completion)",
            ["model", "kind"],
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "llama_time_to_first_token_seconds",
            "Time from request to the first generated token",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "llama_upstream_errors",
            "Errors from model backends",
            ["backend", "reason"],
            registry=r,
        )
        self.backend_up = Gauge(
            "llama_backend_up",
            "1 when the backend answered its last health check",
            ["backend"],
            multiprocess_mode="livemostrecent",
            registry=r,
        )
        self.in_flight = Gauge(
            "llama_backend_in_flight",
            "Requests an upstream server is answering now",
            ["backend"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.queue_waiting = Gauge(
            "llama_backend_queue_waiting",
            "Requests waiting for a model slot",
            ["backend"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.agent_steps = Histogram(
            "llama_agent_steps",
            "Tool calls made by one agent request",
            buckets=AGENT_STEP_BUCKETS,
            registry=r,
        )
        self.agent_tool_calls = Counter(
            "llama_agent_tool_calls",
            "Agent tool calls by outcome (ok|error|invalid_arguments|refused|timeout|crashed)",
            ["tool", "outcome"],
            registry=r,
        )
        self.agent_tool_duration = Histogram(
            "llama_agent_tool_duration_seconds",
            "Time an agent tool call took",
            ["tool"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.mcp_server_up = Gauge(
            "llama_mcp_server_up",
            "Whether the agent is connected to an MCP server of the operator's file (1) or not",
            ["server"],
            multiprocess_mode="livemin",  # 1 only if every worker is connected
            registry=r,
        )
        self.rag_documents = Counter(
            "llama_rag_documents",
            "Knowledge-base documents by outcome (indexed|duplicate|deleted)",
            ["status"],
            registry=r,
        )
        self.rag_chunks = Counter(
            "llama_rag_chunks_indexed", "Knowledge-base chunks embedded and stored", registry=r
        )
        self.rag_ingest_duration = Histogram(
            "llama_rag_ingest_duration_seconds",
            "Time to embed and store one document",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rag_retrieval_duration = Histogram(
            "llama_rag_retrieval_duration_seconds",
            "Time of one hybrid search (embedding the query included)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rag_queries = Counter(
            "llama_rag_queries",
            "Knowledge-base questions by outcome (answered|extracted|not_found)",
            ["outcome"],
            registry=r,
        )

        self.batch_items = Counter(
            "llama_batch_items",
            "Batch items recorded, by outcome (succeeded|failed|cancelled)",
            ["status"],
            registry=r,
        )
        self.batch_queue_depth = Gauge(
            "llama_batch_queue_depth",
            "Batch items waiting for a worker (every worker reports the shared queue: use max)",
            multiprocess_mode="livesum",
            registry=r,
        )

    def render(self) -> bytes:
        """The exposition text: this process's registry, or every worker's when multiprocess."""
        if os.environ.get(MULTIPROC_ENV):
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged)
        return generate_latest(self.registry)


def mark_worker_dead() -> None:
    """Drop this worker's live gauges from the multiprocess files when it exits."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
