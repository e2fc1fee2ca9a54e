"""Anthropic-compatible routes: Messages (SSE events when streaming) and token counting."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.api.deps import ModelCallDep
from app.api.errors import ANTHROPIC, streamed
from app.api.responses import JSON, cache_headers, streamed_reply
from app.api.routing import JsonBodyRoute
from app.core.errors import InvalidRequest
from app.wire.anthropic import CountTokensRequest, MessagesRequest
from app.wire.anthropic_reply import events, message, sse_error
from app.wire.openai import named_as
from app.wire.stream import SSE, guarded

# The pipeline's fields that a refusal may name, as a Messages request names them.
FIELDS = {"format": "output_config.format.schema", "options.num_predict": "max_tokens"}

router = APIRouter(prefix=ANTHROPIC, tags=["anthropic"], route_class=JsonBodyRoute)


@router.post(
    "",
    response_model=None,
    responses=streamed(SSE, "message_start, content blocks, message_delta, message_stop"),
)
async def messages(body: MessagesRequest, call: ModelCallDep) -> Response:
    """Send a conversation, get the model's next turn (`kb:<collection>`: a cited answer)."""
    estimated = body.estimated_tokens()
    request = body.to_chat_request(call.chat.completions.limits.max_num_predict)
    try:
        reply = await call.chat.chat(request, call.policy, caller=call.caller)
    except InvalidRequest as exc:  # named as the Anthropic request names the field
        raise named_as(exc, FIELDS) from None
    if body.stream:
        return streamed_reply(reply, guarded(events(reply, estimated), sse_error), SSE)
    return JSON(await message(reply, estimated), headers=cache_headers(reply))


@router.post("/count_tokens")
async def count_tokens(body: CountTokensRequest, call: ModelCallDep) -> dict[str, int]:
    """About how many input tokens the same `/v1/messages` request would use."""
    await call.chat.resolve_model(body.model, caller=call.caller)
    return {"input_tokens": body.estimated_tokens()}
