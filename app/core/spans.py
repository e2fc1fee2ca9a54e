"""Lean recording spans: what the OTLP exporter reads, at a small part of the SDK span's cost.

An OpenTelemetry SDK span costs 30-80 us to start and end here (locks, bounded attribute maps,
a copy for the processors, decorated context managers); with the four or five spans of a chat
that came to about a millisecond a request. A `RecordingSpan` keeps in plain fields what the
OTLP exporter reads of an SDK span (the public fields of `ReadableSpan`), and everything around
it stays the SDK's: the sampler, ids and resource that the `OTEL_*` variables configure, the
batching of `BatchSpanProcessor`, and the OTLP exporter's encoding and sending.

Sampling: the sampler decides for a trace's first span in this process (a root, or a child of
a remote parent); a local child inherits its parent's decision, which is what every standard
sampler decides for it (parent-based, or by trace id alone).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.util.types import AttributeValue

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

_UNSET = Status(StatusCode.UNSET)


_PLAIN = frozenset((str, bool, int, float))


def _clean(value: Any) -> Any:
    """A value the OTLP encoder takes (it fails a whole batch on one it does not)."""
    if type(value) in _PLAIN or value is None:
        return value
    if isinstance(value, list | tuple):  # arrays are of one type: mixed ones become text
        kinds = {type(v) for v in value}
        return tuple(value) if len(kinds) <= 1 and kinds <= _PLAIN else tuple(map(str, value))
    return str(value)


class RecordingSpan(Span):
    """A sampled span being recorded; handed to the span processor when it ends.

    The request's thread only stores; what the exporter reads is made in the exporter's thread
    (attribute values it takes, the resource), where it costs no request any time."""

    # What the exporter reads of a ReadableSpan and this span never drops or links.
    dropped_attributes = dropped_events = dropped_links = 0
    links: Sequence[trace.Link] = ()
    # Until set: a class default costs a new span nothing.
    end_time: int | None = None
    events: Sequence[Event] = ()
    status = _UNSET
    _log_ids: tuple[str, str] | None = None

    def __init__(
        self,
        tracer: Tracer,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: Mapping[str, Any] | None,
    ) -> None:
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self._tracer = tracer
        self.start_time = time.time_ns()
        self._values: dict[str, Any] = dict(attributes) if attributes else {}

    @property
    def attributes(self) -> dict[str, AttributeValue]:
        """The attributes, as the OTLP encoder takes them (a None value is no attribute)."""
        return {k: _clean(v) for k, v in self._values.items() if v is not None}

    @property
    def resource(self) -> Resource:
        """The process's resource (service name and the rest)."""
        return self._tracer.resource

    @property
    def instrumentation_scope(self) -> InstrumentationScope:
        """The scope that made the span: the project."""
        return self._tracer.scope

    def get_span_context(self) -> SpanContext:
        """The span's ids and flags."""
        return self.context

    def log_ids(self) -> tuple[str, str]:
        """The trace and span ids as log lines show them (formatted once)."""
        if self._log_ids is None:
            ids = self.context
            self._log_ids = trace.format_trace_id(ids.trace_id), trace.format_span_id(ids.span_id)
        return self._log_ids

    def is_recording(self) -> bool:
        """Whether the span still takes attributes and events (until it ends)."""
        return self.end_time is None

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Set several attributes; a None value sets nothing."""
        if self.end_time is None:
            self._values.update(attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        """Set one attribute; a None value sets nothing."""
        if self.end_time is None:
            self._values[key] = value

    def add_event(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
    ) -> None:
        """Note a moment in the span."""
        if self.end_time is None:
            cleaned = {k: _clean(v) for k, v in (attributes or {}).items() if v is not None}
            event = self._tracer.event(name, cleaned, timestamp or time.time_ns())
            self.events = [*self.events, event]

    def add_link(
        self, context: SpanContext, attributes: Mapping[str, AttributeValue] | None = None
    ) -> None:
        """Links are not used by this project; they are not recorded."""

    def update_name(self, name: str) -> None:
        """Rename the span (a route is known only once the request is routed)."""
        self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """Set the status (an OK set earlier is kept, as the SDK does)."""
        if self.end_time is not None or self.status.status_code is StatusCode.OK:
            return
        self.status = status if isinstance(status, Status) else Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, AttributeValue] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """An `exception` event with the attributes OpenTelemetry names for it."""
        kind = type(exception)
        module = kind.__module__
        recorded: dict[str, Any] = {
            "exception.type": kind.__qualname__
            if module in ("builtins", "")
            else f"{module}.{kind.__qualname__}",
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
            **(attributes or {}),
        }
        self.add_event("exception", recorded, timestamp)

    def end(self, end_time: int | None = None) -> None:
        """End the span (once) and hand it to the span processor for export."""
        if self.end_time is not None:
            return
        self.end_time = end_time or time.time_ns()
        # The processor and the exporter read only ReadableSpan's public fields, all of them here.
        self._tracer.processor.on_end(cast("ReadableSpan", self))


class Tracer:
    """Starts lean spans, with the sampler, ids and resource of an SDK `TracerProvider`."""

    def __init__(
        self, provider: TracerProvider, processor: SpanProcessor, scope: InstrumentationScope
    ) -> None:
        # The SDK is imported only once tracing starts (see app.core.tracing).
        from opentelemetry.sdk.trace import Event
        from opentelemetry.sdk.trace.sampling import Decision

        self.event = Event
        self._sampled, self._dropped = Decision.RECORD_AND_SAMPLE, Decision.DROP
        self._sampler = provider.sampler
        self._ids = provider.id_generator
        self.resource: Resource = provider.resource
        self.scope = scope
        self.processor = processor

    def start(
        self,
        name: str,
        parent: Context | None,
        kind: SpanKind,
        attributes: Mapping[str, Any] | None,
    ) -> Span | None:
        """A span under `parent` (a context: empty for a new trace) or under the current span.

        None when there is neither: work outside any request makes no stray traces."""
        current = trace.get_current_span(parent).get_span_context()
        if current.is_valid and not current.is_remote:  # a local child: its parent's decision
            if not current.trace_flags.sampled:
                return NonRecordingSpan(current)
            ids = SpanContext(
                current.trace_id,
                self._ids.generate_span_id(),
                is_remote=False,
                trace_flags=current.trace_flags,
                trace_state=current.trace_state,
            )
            return RecordingSpan(self, name, ids, current, kind, attributes)
        if not current.is_valid and parent is None:
            return None
        above = current if current.is_valid else None
        # A trace's first span here: the sampler decides, as the SDK's own tracer asks it.
        trace_id = above.trace_id if above else self._ids.generate_trace_id()
        result = self._sampler.should_sample(parent, trace_id, name, kind, attributes)
        random = above.trace_flags.random_trace_id if above else self._ids.is_trace_id_random()
        flags = TraceFlags.SAMPLED if result.decision is self._sampled else TraceFlags.DEFAULT
        ids = SpanContext(
            trace_id,
            self._ids.generate_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(flags | TraceFlags.RANDOM_TRACE_ID if random else flags),
            trace_state=result.trace_state,
        )
        if result.decision is self._dropped:
            return NonRecordingSpan(ids)
        span = RecordingSpan(self, name, ids, above, kind, attributes)
        if result.attributes:
            span.set_attributes(result.attributes)
        return span


class Current:
    """A block in which a span is current; `owned`: the block also ends it, failed by an
    exception that leaves the block."""

    __slots__ = ("_owned", "_span", "_token")

    def __init__(self, span: Span, *, owned: bool) -> None:
        self._span = span
        self._owned = owned

    def __enter__(self) -> Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        otel_context.detach(self._token)
        if self._owned:
            if exc is not None and self._span.is_recording():
                self._span.record_exception(exc)
                self._span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            self._span.end()
