"""Lean recording spans: what the OTLP exporter reads, at a small part of the SDK span's cost.

An OpenTelemetry SDK span costs 30-80 us to start and end here (locks, bounded attribute maps,
a copy for the processors, decorated context managers); with the four spans of a chat that came
to about a millisecond a request. A `RecordingSpan` stores what it is told in plain fields and
becomes what the OTLP exporter reads of an SDK span (the public fields of `ReadableSpan`) only
when the exporter reads it, in the sending thread (`app.core.span_export`). The SDK still
provides the sampler, the ids and the resource that the `OTEL_*` variables configure, and the
OTLP exporter's encoding and sending.

Which span is current is this module's own context variable, `CURRENT`, read and set in C: the
OpenTelemetry context API costs some fifty Python steps a read or a switch. Nothing in the
project reads that API; `app.core.tracing` writes `traceparent` and log ids from `CURRENT`.

Sampling: the sampler decides for a trace's first span in this process (a root, or a child of
a remote parent); a local child inherits its parent's decision, which is what every standard
sampler decides for it (parent-based, or by trace id alone). A trace that is not sampled has one
`NonRecordingSpan`, current for all of it, so that its ids still travel upstream.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Mapping, Sequence
from contextvars import ContextVar, Token
from random import getrandbits
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

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
    TraceState,
)
from opentelemetry.util.types import AttributeValue

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, TracerProvider
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

logger = logging.getLogger(__name__)
_UNSET = Status(StatusCode.UNSET)
_NO_STATE = TraceState()

# The span current in this task: a recording span, or an unsampled trace's one NonRecordingSpan.
CURRENT: ContextVar[RecordingSpan | NonRecordingSpan | None] = ContextVar(
    "llamarada_span", default=None
)
_PLAIN = frozenset((str, bool, int, float))


def _clean(value: Any) -> Any:
    """A value the OTLP encoder takes (it fails a whole batch on one it does not)."""
    if type(value) in _PLAIN or value is None:
        return value
    if isinstance(value, list | tuple):  # arrays are of one type: mixed ones become text
        kinds = {type(v) for v in value}
        return tuple(value) if len(kinds) <= 1 and kinds <= _PLAIN else tuple(map(str, value))
    return str(value)


def _random_span_id() -> int:
    return getrandbits(64) or 1


def _random_trace_id() -> int:
    return getrandbits(128) or 1


class RecordingSpan(Span):
    """A sampled span being recorded; handed to the span processor when it ends.

    The request's thread only stores; what the exporter reads is made in the exporter's thread
    (attribute values it takes, the resource), where it costs no request any time."""

    # What the exporter reads of a ReadableSpan and this span never drops or links.
    dropped_attributes = dropped_events = dropped_links = 0
    links: Sequence[trace.Link] = ()
    # Until set: a class default costs a new span nothing.
    end_time: int | None = None
    _noted: tuple[tuple[str, Mapping[str, Any] | None, int], ...] = ()
    status = _UNSET
    _log_ids: tuple[str, str] | None = None
    _context: SpanContext | None = None
    _token: Token[RecordingSpan | NonRecordingSpan | None]

    def __init__(
        self,
        tracer: Tracer,
        name: str,
        ids: tuple[int, int, int, TraceState],
        above: RecordingSpan | SpanContext | None,
        kind: SpanKind,
        attributes: Mapping[str, Any] | None,
    ) -> None:
        self.name = name
        self.ids = ids  # trace id, span id, trace flags, trace state
        self._above = above  # the parent span here, or a remote parent's ids
        self.kind = kind
        self._tracer = tracer
        self.start_time = time.time_ns()
        self._values: dict[str, Any] = dict(attributes) if attributes else {}

    @property
    def attributes(self) -> dict[str, AttributeValue]:
        """The attributes, as the OTLP encoder takes them (a None value is no attribute)."""
        return {k: _clean(v) for k, v in self._values.items() if v is not None}

    @property
    def context(self) -> SpanContext:
        """The span's ids and flags, as OpenTelemetry's API holds them (made when first read)."""
        if self._context is None:
            trace_id, span_id, flags, state = self.ids
            self._context = SpanContext(trace_id, span_id, False, TraceFlags(flags), state)
        return self._context

    @property
    def parent(self) -> SpanContext | None:
        """The parent's ids (None for a root)."""
        above = self._above
        return above.context if isinstance(above, RecordingSpan) else above

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
            self._log_ids = f"{self.ids[0]:032x}", f"{self.ids[1]:016x}"
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
            self._noted = (*self._noted, (name, attributes, timestamp or time.time_ns()))

    @property
    def events(self) -> list[Event]:
        """The moments noted, as the OTLP encoder takes them."""
        return [
            self._tracer.event(
                name, {k: _clean(v) for k, v in (values or {}).items() if v is not None}, at
            )
            for name, values, at in self._noted
        ]

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
        self._tracer.ended(self)

    # As its own block (`app.core.tracing.span`): current inside it, ended when it is left,
    # failed by an exception that leaves it. One object less a span than `Current`.
    def __enter__(self) -> RecordingSpan:
        self._token = CURRENT.set(self)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _leave(self._token)
        if exc is not None and self.end_time is None:
            self._fail(exc)
        self.end()

    def _fail(self, exc: BaseException) -> None:
        self.record_exception(exc)
        self.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


class Processor(Protocol):
    """Takes ended spans for export (`app.core.span_export.BatchExport`, or an SDK processor:
    both read only ReadableSpan's public fields, all of them a `RecordingSpan`'s)."""

    def on_end(self, span: Any) -> None:
        """Take an ended span."""


class Tracer:
    """Starts lean spans, with the sampler, ids and resource of an SDK `TracerProvider`."""

    def __init__(
        self, provider: TracerProvider, processor: Processor, scope: InstrumentationScope
    ) -> None:
        # The SDK is imported only once tracing starts (see app.core.tracing).
        from opentelemetry.sdk.trace import Event
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON, DEFAULT_ON, Decision

        self.event = Event
        self._sampled = Decision.RECORD_AND_SAMPLE
        self._sampler = sampler = provider.sampler
        # The two standard samplers that keep every new trace (always on, and parent-based
        # always on: the default) decide here without the SDK's Python. Code that runs once a
        # request is cold, and costs it several times what it costs in a loop: calling the
        # sampler measured 50 us a request, against 4 us in a loop.
        self._keeps_all = sampler is ALWAYS_ON or sampler is DEFAULT_ON
        self._follows_parent = sampler is DEFAULT_ON
        self._ids = ids = provider.id_generator
        # The default generator's ids without its Python loop (a zero id is never valid).
        random = type(ids) is RandomIdGenerator
        self._span_id = _random_span_id if random else ids.generate_span_id
        self._trace_id = _random_trace_id if random else ids.generate_trace_id
        self._random_trace_ids = ids.is_trace_id_random()
        self.resource: Resource = provider.resource
        self.scope = scope
        self.ended = processor.on_end

    def start(
        self,
        name: str,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: Mapping[str, Any] | None,
    ) -> RecordingSpan | NonRecordingSpan | None:
        """A span under the current one, or under `parent` when given: a remote parent's ids,
        or invalid ones for a new trace. None outside any trace without a `parent`: work
        outside any request makes no stray traces."""
        if parent is None:
            above = CURRENT.get()
            if type(above) is not RecordingSpan:
                return above  # no trace, or one not sampled: nothing to record
            trace_id, _, flags, state = above.ids  # a local child: its parent's decision
            ids = (trace_id, self._span_id(), flags, state)
            return RecordingSpan(self, name, ids, above, kind, attributes)
        # A trace's first span here: the sampler decides, as the SDK's own tracer asks it.
        remote = parent if parent.is_valid else None
        if remote is not None:
            trace_id, random = remote.trace_id, remote.trace_flags.random_trace_id
        else:
            trace_id, random = self._trace_id(), self._random_trace_ids
        added = None
        if self._keeps_all:  # what the standard sampler decides (its trace state: the parent's)
            sampled = remote is None or not self._follows_parent or remote.trace_flags.sampled
            state = _NO_STATE if remote is None else remote.trace_state
        else:
            asked = (
                Context() if remote is None else trace.set_span_in_context(NonRecordingSpan(remote))
            )
            result = self._sampler.should_sample(asked, trace_id, name, kind, attributes)
            sampled = result.decision is self._sampled  # "record only" is never exported: dropped
            state, added = result.trace_state or _NO_STATE, result.attributes
        flags = TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT
        ids = (
            trace_id,
            self._span_id(),
            flags | TraceFlags.RANDOM_TRACE_ID if random else flags,
            state,
        )
        if not sampled:
            return NonRecordingSpan(SpanContext(ids[0], ids[1], False, TraceFlags(ids[2]), state))
        span = RecordingSpan(self, name, ids, remote, kind, attributes)
        if added:
            span.set_attributes(added)
        return span


class Current:
    """A block in which a span is current: a started span made current again (`activate`), or
    an unsampled trace's one span; `owned`: the block also ends it. (A recording span started
    for a block is its own block.)"""

    __slots__ = ("_owned", "_span", "_token")

    def __init__(self, span: RecordingSpan | NonRecordingSpan, *, owned: bool) -> None:
        self._span = span
        self._owned = owned

    def __enter__(self) -> Span:
        self._token = CURRENT.set(self._span)
        return self._span

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _leave(self._token)
        if self._owned:
            self._span.end()


def _leave(token: Token[RecordingSpan | NonRecordingSpan | None]) -> None:
    try:
        CURRENT.reset(token)
    except ValueError:  # left in another context than entered: a bug, never the request's
        logger.warning("a span's block ended in another context than it began in")
