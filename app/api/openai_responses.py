"""OpenAI's Responses API, stateless: one conversation in, one `response` (or its events) out."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.api.deps import ModelCallDep
from app.api.errors import streamed
from app.api.responses import JSON, streamed_reply
from app.api.routing import JsonBodyRoute
from app.core.errors import InvalidRequest
from app.wire.openai import format_named
from app.wire.responses import ResponsesRequest
from app.wire.responses_reply import events, response, sse_error
from app.wire.stream import SSE, guarded

router = APIRouter(prefix="/v1", tags=["openai"], route_class=JsonBodyRoute)


@router.post(
    "/responses",
    response_model=None,
    responses=streamed(SSE, "response.created, output deltas, then response.completed"),
)
async def create_response(body: ResponsesRequest, call: ModelCallDep) -> Response:
    """Answer `input` (`kb:<collection>`: a cited answer); Server-Sent Events when `stream`."""
    try:
        reply = await call.chat.chat(body.to_chat_request(), call.policy, caller=call.caller)
    except InvalidRequest as exc:  # named as the Responses request names the field
        raise format_named(exc, "text.format.schema") from None
    if body.stream:
        return streamed_reply(reply, guarded(events(reply, body), sse_error), SSE)
    return JSON(await response(reply, body), headers={"X-Cache": reply.cache.value})
