"""The project's lean spans: what the SDK's processor and the OTLP encoder take of them."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_ON,
    Decision,
    ParentBased,
    Sampler,
    StaticSampler,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from app.core import spans, tracing

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """Tracing on, every ended span handed straight to an in-memory exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "unit"}))
    tracer = spans.Tracer(provider, SimpleSpanProcessor(exporter), InstrumentationScope("t"))
    monkeypatch.setattr(tracing, "_tracer", tracer)
    return exporter


def encoded(finished: tuple[ReadableSpan, ...]) -> ExportTraceServiceRequest:
    """The spans as the OTLP exporter sends them, read back."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(encode_spans(finished).SerializeToString())
    return request


def test_every_attribute_value_encodes_and_none_sets_nothing(
    exported: InMemorySpanExporter,
) -> None:
    odd: dict[str, Any] = {
        "n": None,
        "path": ["a", 1, None],
        "obj": object(),
        "ok": 1.5,
        "flag": True,
    }
    with tracing.span("root", odd, parent=tracing.root_context()) as root:
        root.set_attribute("later", None)
        root.set_attribute("counts", [1, 2])
        root.add_event("noted", {"gone": None, "kept": "yes"})
    request = encoded(exported.get_finished_spans())
    (span,) = request.resource_spans[0].scope_spans[0].spans
    values = {a.key: a.value for a in span.attributes}
    assert set(values) == {"path", "obj", "ok", "flag", "counts"}
    assert [v.int_value for v in values["counts"].array_value.values] == [1, 2]
    assert [v.string_value for v in values["path"].array_value.values] == ["a", "1", "None"]
    assert values["obj"].string_value.startswith("<object object")
    assert [(e.name, [a.key for a in e.attributes]) for e in span.events] == [("noted", ["kept"])]
    assert request.resource_spans[0].scope_spans[0].scope.name == "t"


def test_a_failing_block_records_the_exception_and_an_error_status(
    exported: InMemorySpanExporter,
) -> None:
    with (
        pytest.raises(KeyError),
        tracing.span("root", parent=tracing.root_context()),
        tracing.span("child"),
    ):
        raise KeyError("gone")
    child, root = exported.get_finished_spans()
    assert child.parent is not None
    assert root.context is not None
    assert child.parent.span_id == root.context.span_id
    for failed in (child, root):
        assert failed.status.status_code is StatusCode.ERROR
        (event,) = failed.events
        assert event.name == "exception"
        assert event.attributes is not None
        assert event.attributes["exception.type"] == "KeyError"
        assert "raise KeyError" in str(event.attributes["exception.stacktrace"])


def test_no_span_outside_a_trace_and_children_follow_their_parents_decision(
    exported: InMemorySpanExporter,
) -> None:
    with tracing.span("stray") as stray:
        assert not stray.is_recording()
    unsampled = tracing.context_from({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-00"})
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))  # parent-based, like the default
    assert tracing._tracer is not None
    tracing._tracer = spans.Tracer(provider, SimpleSpanProcessor(exported), tracing._tracer.scope)
    with tracing.span("root", parent=unsampled) as root, tracing.span("child") as child:
        assert not root.is_recording()
        assert not child.is_recording()
        assert format(child.get_span_context().trace_id, "032x") == TRACE
        headers = tracing.outgoing_headers()
        assert headers is not None
        assert headers["traceparent"].endswith("-00")
    assert exported.get_finished_spans() == ()


@pytest.mark.parametrize("standard", [ALWAYS_ON, DEFAULT_ON], ids=["always_on", "default"])
@pytest.mark.parametrize(
    "traceparent", [None, f"00-{TRACE}-00f067aa0ba902b7-01", f"00-{TRACE}-00f067aa0ba902b7-00"]
)
def test_the_standard_samplers_decide_as_the_sdk_does(
    standard: Sampler, traceparent: str | None
) -> None:
    """Decided without the sampler's Python: the same as asking an equal sampler object."""
    equal = (
        StaticSampler(Decision.RECORD_AND_SAMPLE)
        if standard is ALWAYS_ON
        else ParentBased(ALWAYS_ON)
    )
    carried = {"traceparent": traceparent, "tracestate": "vendor=1"} if traceparent else {}
    decided = []
    for sampler in (standard, equal):
        tracer = spans.Tracer(
            TracerProvider(sampler=sampler),
            SimpleSpanProcessor(InMemorySpanExporter()),
            InstrumentationScope("t"),
        )
        assert tracer._keeps_all is (sampler is standard)
        remote = trace.get_current_span(TraceContextTextMapPropagator().extract(carried))
        parent = remote.get_span_context() if traceparent else tracing.root_context()
        made = tracer.start("root", parent, SpanKind.SERVER, {"a": 1})
        assert made is not None
        ids = made.get_span_context()
        decided.append((made.is_recording(), ids.trace_flags, ids.trace_state.to_header()))
        if traceparent:
            assert format(ids.trace_id, "032x") == TRACE
    assert decided[0] == decided[1]


async def test_a_stream_is_current_while_it_computes_each_item_not_while_it_is_held(
    exported: InMemorySpanExporter,
) -> None:
    seen: list[int] = []
    held: list[int] = []

    async def steps() -> AsyncGenerator[str, None]:
        for step in ("a", "b", "c"):
            seen.append(tracing.current_span().get_span_context().span_id)
            yield step

    with tracing.span("request", parent=tracing.root_context()):
        stream = tracing.traced_stream("agent", steps(), kind=SpanKind.CLIENT)
        async for _ in stream:
            held.append(tracing.current_span().get_span_context().span_id)
    finished = exported.get_finished_spans()
    names = {s.context.span_id: s.name for s in finished if s.context is not None}
    assert [names[span_id] for span_id in seen] == ["agent", "agent", "agent"]
    assert [names[span_id] for span_id in held] == ["request", "request", "request"]
    assert finished[0].kind is SpanKind.CLIENT
    assert finished[0].end_time is not None
