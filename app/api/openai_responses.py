"""OpenAI's Responses API, stateless: one conversation in, one `response` (or its events) out."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.api.deps import ModelCallDep
from app.api.errors import streamed
from app.api.responses import JSON, cache_headers, streamed_reply
from app.api.routing import JsonBodyRoute
from app.core.errors import InvalidRequest
from app.wire.openai import named_as
from app.wire.responses import ResponsesRequest
from app.wire.responses_reply import Numbered, events, response
from app.wire.stream import SSE, guarded

# The pipeline's fields that a refusal may name, as a Responses request names them.
FIELDS = {
    "format": "text.format.schema",
    "options.num_predict": "max_output_tokens",
    "messages": "input",
}

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
        raise named_as(exc, FIELDS) from None
    if body.stream:
        numbered = Numbered()
        return streamed_reply(reply, guarded(events(reply, body, numbered), numbered.error), SSE)
    return JSON(await response(reply, body), headers=cache_headers(reply))
