"""The span queue and its sending thread: batches, the bound, a failing exporter, shutdown."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from app.core.span_export import BatchExport

LONG = {"OTEL_BSP_SCHEDULE_DELAY": "600000"}  # ten minutes: only a full batch or a stop sends


class Recorder(SpanExporter):
    """Keeps each batch it is given; fails the batches listed in `failing`."""

    def __init__(self, failing: int = 0) -> None:
        self.batches: list[list[object]] = []
        self.failing = failing
        self.stopped = False
        self.sent = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.failing:
            self.failing -= 1
            raise RuntimeError("the collector is down")
        self.batches.append(list(spans))
        self.sent.set()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.stopped = True


def test_a_full_batch_is_sent_at_once_and_the_rest_at_shutdown() -> None:
    recorder = Recorder()
    queue = BatchExport(recorder, {**LONG, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "3"})
    for span in range(4):
        queue.on_end(span)
    assert recorder.sent.wait(5)
    assert recorder.batches[0] == [0, 1, 2]
    queue.shutdown()
    assert [span for batch in recorder.batches for span in batch] == [0, 1, 2, 3]
    assert recorder.stopped


def test_a_full_queue_drops_the_oldest_spans() -> None:
    recorder = Recorder()
    queue = BatchExport(recorder, {**LONG, "OTEL_BSP_MAX_QUEUE_SIZE": "5"})
    for span in range(8):
        queue.on_end(span)
    queue.shutdown()
    assert [span for batch in recorder.batches for span in batch] == [3, 4, 5, 6, 7]


def test_a_failing_export_loses_that_batch_only(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(failing=1)
    queue = BatchExport(recorder, {**LONG, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2"})
    for span in range(4):
        queue.on_end(span)
    queue.shutdown()
    assert recorder.batches == [[2, 3]]
    assert "exporting 2 spans failed" in caplog.text


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_a_bad_setting_falls_back_to_the_default(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    queue = BatchExport(recorder, {**LONG, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": value})
    for span in range(3):
        queue.on_end(span)
    assert not recorder.sent.wait(0.2)  # the default batch, 512, is not full
    queue.shutdown()
    assert recorder.batches == [[0, 1, 2]]
    assert "OTEL_BSP_MAX_EXPORT_BATCH_SIZE must be a positive integer" in caplog.text
