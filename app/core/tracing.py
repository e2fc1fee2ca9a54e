"""OpenTelemetry traces: off unless the `OTEL_*` variables name an endpoint; one-line spans.

`OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) turns tracing on; the
SDK reads the rest itself: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`
and its `_ARG`, `OTEL_EXPORTER_OTLP_HEADERS` and `_TIMEOUT`; `app.core.span_export` reads
`OTEL_BSP_*`. Spans go out as OTLP/HTTP protobuf in batches. The spans are `app.core.spans`'
lean ones, and so is the record of which span is current (the SDK's spans and OpenTelemetry's
context API cost most of a millisecond a chat).

While tracing is off every helper here returns at once, with no span, context or allocation:
`span()` is a shared null context, `traced_stream()` hands its iterator back unchanged. The
state is per process, like the logging configuration: the first app or worker that starts
tracing owns it and flushes it when it stops.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, INVALID_SPAN_CONTEXT, SpanContext, Status, StatusCode
from opentelemetry.trace import Span as Span  # re-exported: call sites import this module only
from opentelemetry.trace import SpanKind as SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from app.core.spans import CURRENT, Current, RecordingSpan, Tracer

if TYPE_CHECKING:
    from app.core.span_export import BatchExport

P = ParamSpec("P")
T = TypeVar("T")
Attributes = Mapping[str, AttributeValue]

# The standard switch of GenAI instrumentations: prompts and answers go into spans only then.
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
DEFAULT_SERVICE_NAME = "llamarada"

_NOOP: AbstractContextManager[Span] = contextlib.nullcontext(INVALID_SPAN)
_PROPAGATOR = TraceContextTextMapPropagator()  # W3C traceparent / tracestate only
_tracer: Tracer | None = None
_capture_content = False


def tracing_wanted(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces (an OTLP endpoint, and not switched off)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


class Tracing:
    """Tracing started by this process: `shutdown` sends what is left and turns it off."""

    def __init__(self, processor: BatchExport) -> None:
        self._processor = processor

    def shutdown(self) -> None:
        """Flush the spans still queued, stop the exporter, and return to no tracing."""
        global _tracer, _capture_content
        self._processor.shutdown()
        _tracer, _capture_content = None, False


def start_tracing(env: Mapping[str, str] = os.environ) -> Tracing | None:
    """Turn tracing on as the environment says; None when off or started already."""
    global _tracer, _capture_content
    if _tracer is not None or not tracing_wanted(env):
        return None
    # Imported only when wanted: with tracing off the SDK and the exporter are never loaded.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from app.core.span_export import BatchExport

    name = env.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    # The provider is read for what the environment configures: no sampler given, it takes
    # OTEL_TRACES_SAMPLER (default: parent-based, always on); the spans are this project's own.
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: name}), shutdown_on_exit=False
    )
    processor = BatchExport(OTLPSpanExporter(), env)
    _tracer = Tracer(provider, processor, InstrumentationScope("llamarada"))
    _capture_content = env.get(CAPTURE_CONTENT_ENV, "").strip().lower() == "true"
    return Tracing(processor)


@contextlib.contextmanager
def suspended() -> Iterator[None]:
    """A block in which no span is made, as if tracing were off; what `bench.tracing_overhead`
    alternates with tracing on, request by request, in one process."""
    global _tracer
    kept, _tracer = _tracer, None
    try:
        yield
    finally:
        _tracer = kept


def enabled() -> bool:
    """Whether spans are being made."""
    return _tracer is not None


def capture_content() -> bool:
    """Whether prompts and answers may go into spans (off unless the setting says so)."""
    return _capture_content


def span(
    name: str,
    attributes: Attributes | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: SpanContext | None = None,
) -> AbstractContextManager[Span]:
    """A span, current inside the block (never across a `yield`: use `traced_stream`).

    Without `parent` it is made only inside a trace, as a child: work outside any request
    (start-up, health checks) makes no stray traces. `parent` starts one: under a remote
    parent's ids (`context_from`), or a new trace (`root_context()`)."""
    started = _tracer.start(name, parent, kind, attributes) if _tracer is not None else None
    if type(started) is RecordingSpan:
        return started  # its own block
    return _NOOP if started is None else Current(started, owned=True)


def start_span(
    name: str, attributes: Attributes | None = None, *, kind: SpanKind = SpanKind.INTERNAL
) -> Span:
    """A span that outlives the block that starts it (inside a trace only); the caller ends it."""
    started = _tracer.start(name, None, kind, attributes) if _tracer is not None else None
    return INVALID_SPAN if started is None else started


def activate(current: Span) -> AbstractContextManager[Span]:
    """Make a started span current inside the block, without ending it."""
    if type(current) is not RecordingSpan or not current.is_recording():
        return _NOOP
    return Current(current, owned=False)


def current_span() -> Span:
    """The span current here (a no-op one when there is none)."""
    current = CURRENT.get() if _tracer is not None else None
    return INVALID_SPAN if current is None else current


def fail(target: Span, exc: BaseException) -> None:
    """Record an error on a span that is not ended by a `with` block."""
    if target.is_recording():
        target.record_exception(exc)
        target.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def traced(
    name: str, attributes: Attributes | None = None
) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Decorate a coroutine function: each call is a span inside the current trace."""

    def decorate(
        function: Callable[P, Coroutine[Any, Any, T]],
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(function)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            if _tracer is None:
                return await function(*args, **kwargs)
            with span(name, attributes):
                return await function(*args, **kwargs)

        return wrapper

    return decorate


def traced_stream(
    name: str,
    source: AsyncGenerator[T, None],
    attributes: Attributes | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
) -> AsyncGenerator[T, None]:
    """A stream inside one span that lasts until it ends; the span is current while the stream
    computes each item, not while the consumer holds it (a context must not cross a `yield`)."""
    started = start_span(name, attributes, kind=kind)
    if type(started) is not RecordingSpan:
        return source
    return _spanned(started, source)


async def _spanned(
    target: RecordingSpan, source: AsyncGenerator[T, None]
) -> AsyncGenerator[T, None]:
    try:
        while True:
            token = CURRENT.set(target)
            try:
                item = await anext(source)
            except StopAsyncIteration:
                return
            except BaseException as exc:
                fail(target, exc)
                raise
            finally:
                CURRENT.reset(token)
            yield item
    finally:
        token = CURRENT.set(target)
        try:
            await source.aclose()
        finally:
            CURRENT.reset(token)
            target.end()


def outgoing_headers() -> dict[str, str] | None:
    """`traceparent` (and `tracestate`) for a call to another service; None without a trace."""
    current = CURRENT.get() if _tracer is not None else None
    if current is None:
        return None
    if type(current) is RecordingSpan:
        trace_id, span_id, flags, state = current.ids
    else:
        ids = current.get_span_context()
        trace_id, span_id, flags, state = (
            ids.trace_id,
            ids.span_id,
            ids.trace_flags,
            ids.trace_state,
        )
    headers = {"traceparent": f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"}  # W3C form
    if state:
        headers["tracestate"] = state.to_header()
    return headers


def carrier() -> dict[str, str]:
    """The current trace context as strings, to store with work another process will do."""
    return outgoing_headers() or {}


def context_from(headers: Mapping[str, str] | None) -> SpanContext | None:
    """The remote parent a client or a stored record carried (None: none given, a malformed
    one, or tracing off)."""
    if _tracer is None or not headers:
        return None
    carried = trace.get_current_span(_PROPAGATOR.extract(headers)).get_span_context()
    return carried if carried.is_valid else None


def log_ids() -> tuple[str, str] | None:
    """The current trace and span ids as log lines show them, or None."""
    current = CURRENT.get() if _tracer is not None else None
    if current is None:
        return None
    if type(current) is RecordingSpan:
        return current.log_ids()  # formatted once a span, not once a line
    ids = current.get_span_context()
    return trace.format_trace_id(ids.trace_id), trace.format_span_id(ids.span_id)


def root_context() -> SpanContext:
    """No parent: what a span started under it is the root of a new trace."""
    return INVALID_SPAN_CONTEXT
