"""Ended spans sent in batches by one thread: what the SDK's `BatchSpanProcessor` does, with one
append a span on the request's side.

The SDK's processor asks each span for its OpenTelemetry ids and flags when it ends (about a
hundred Python steps a span with `app.core.spans`' spans, which make those ids only when read);
this queue takes the span as it is, and the OTLP exporter reads it in the sending thread. The
same `OTEL_BSP_*` variables set the delay between sends, the batch size, the queue's bound (a
full queue drops the oldest span, as the SDK's does) and the export timeout.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger(__name__)

# The SDK's defaults for the same variables (milliseconds, spans).
DEFAULTS = {
    "OTEL_BSP_SCHEDULE_DELAY": 5000,
    "OTEL_BSP_MAX_QUEUE_SIZE": 2048,
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": 512,
    "OTEL_BSP_EXPORT_TIMEOUT": 30000,
}


def _setting(env: Mapping[str, str], name: str) -> int:
    try:
        value = int(env.get(name, DEFAULTS[name]))
    except ValueError:
        value = 0
    if value <= 0:
        logger.warning("%s must be a positive integer; using %d", name, DEFAULTS[name])
        return DEFAULTS[name]
    return value


class BatchExport:
    """A bounded queue of ended spans and the thread that exports them."""

    def __init__(self, exporter: SpanExporter, env: Mapping[str, str] = os.environ) -> None:
        self._exporter = exporter
        self._delay = _setting(env, "OTEL_BSP_SCHEDULE_DELAY") / 1000
        self._batch = _setting(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
        self._timeout = _setting(env, "OTEL_BSP_EXPORT_TIMEOUT") / 1000
        self._queue: deque[Any] = deque(maxlen=_setting(env, "OTEL_BSP_MAX_QUEUE_SIZE"))
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="llamarada-spans", daemon=True)
        self._thread.start()

    def on_end(self, span: Any) -> None:
        """Queue an ended span (a full queue drops its oldest); a full batch wakes the sender."""
        queue = self._queue
        queue.append(span)
        if len(queue) >= self._batch:
            self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._delay)
            self._wake.clear()
            self._send()
        self._send()  # what ended before the stop

    def _send(self) -> None:
        queue = self._queue
        while queue:
            batch: Sequence[ReadableSpan] = [
                queue.popleft() for _ in range(min(self._batch, len(queue)))
            ]
            try:
                self._exporter.export(batch)
            except Exception:  # an exporter's bug must not end the thread
                logger.exception("exporting %d spans failed", len(batch))

    def shutdown(self) -> None:
        """Send what is queued (within the export timeout), then stop the exporter."""
        self._stopping = True
        self._wake.set()
        self._thread.join(self._timeout)
        self._exporter.shutdown()
