"""GenAI spans for the pipeline: one span per model answer, with OpenTelemetry's GenAI attributes.

The span starts when the answer is asked for and ends with its last chunk, so it holds the
usage and finish reason; the first chunk is an event (time to first token). It is the upstream
call too, as the GenAI conventions model one: the pool puts the server that answered on it
(`server.address`) and each failover before the first chunk as an event, and the upstream gets
it as its parent. Prompts and answers go in only when
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` is true.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any

import orjson

from app.core import tracing
from app.llm.base import ChatRequest, Chunk, GenerateRequest

if TYPE_CHECKING:  # the pipeline imports this module
    from app.llm.completions import Reply

OPERATIONS = {"chat": "chat", "generate": "text_completion"}


async def traced_reply(
    route: str,
    request: ChatRequest | GenerateRequest,
    serving: Awaitable[Reply],
    provider: str,
) -> Reply:
    """`serving` inside a GenAI span that lasts until the reply's last chunk."""
    if not tracing.enabled():
        return await serving
    operation = OPERATIONS[route]
    span = tracing.start_span(
        f"{operation} {request.model}",
        _request_attributes(operation, request, provider),
        kind=tracing.SpanKind.CLIENT,
    )
    if not span.is_recording():  # outside a trace, or not sampled
        return await serving
    started = time.perf_counter()
    try:
        with tracing.activate(span):
            reply = await serving
    except BaseException as exc:
        tracing.fail(span, exc)
        span.end()
        raise
    ttft_ms = round((time.perf_counter() - started) * 1000, 3)
    span.add_event("gen_ai.first_token")  # its time is the time to first token
    span.set_attributes(
        {
            "gen_ai.response.model": reply.model,
            "llamarada.time_to_first_token_ms": ttft_ms,
            "llamarada.cache": reply.cache.value,
        }
    )
    reply.chunks = _observed(span, reply.chunks)
    return reply


def _request_attributes(
    operation: str, request: ChatRequest | GenerateRequest, provider: str
) -> dict[str, Any]:
    options = request.options
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": request.model,
    }
    if options is not None:  # an option not given is None: a span drops it
        attributes |= {
            "gen_ai.request.max_tokens": options.num_predict,
            "gen_ai.request.temperature": options.temperature,
            "gen_ai.request.top_p": options.top_p,
            "gen_ai.request.top_k": options.top_k,
            "gen_ai.request.seed": options.seed,
        }
    if tracing.capture_content():
        if isinstance(request, ChatRequest):
            messages = [m.model_dump(exclude_none=True) for m in request.messages]
        else:
            messages = [{"role": "user", "content": request.prompt}]
        attributes["gen_ai.input.messages"] = orjson.dumps(messages).decode()
    return attributes


async def _observed(span: tracing.Span, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    """The chunks; the last one's usage and finish reason go on the span, which ends here."""
    capture = tracing.capture_content()
    parts: list[str] = []
    try:
        async for chunk in chunks:
            if chunk.done:
                span.set_attributes(
                    {
                        "gen_ai.usage.input_tokens": chunk.prompt_eval_count,
                        "gen_ai.usage.output_tokens": chunk.eval_count,
                        "gen_ai.response.finish_reasons": [chunk.done_reason or "stop"],
                    }
                )
                if capture:
                    output = [{"role": "assistant", "content": "".join(parts) + chunk.content}]
                    span.set_attribute("gen_ai.output.messages", orjson.dumps(output).decode())
            elif capture:
                parts.append(chunk.content)
            yield chunk
    except Exception as exc:
        tracing.fail(span, exc)
        raise
    finally:
        close = getattr(chunks, "aclose", None)  # the pipeline's own clean-up runs now
        if close is not None:
            await close()
        span.end()
