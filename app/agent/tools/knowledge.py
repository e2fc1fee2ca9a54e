"""`knowledge_search`: the passages of a knowledge base that best match a query."""

from __future__ import annotations

from typing import Any

from app.agent.tools.base import Tool, ToolError, ToolFunction, ToolResult
from app.core.auth import Principal
from app.core.errors import LlamaradaError
from app.rag.schemas import SearchRequest
from app.rag.service import KnowledgeBase

MAX_PASSAGE_CHARS = 600  # each passage fed back to the model; the loop caps the whole output too


def knowledge_tool(knowledge: KnowledgeBase) -> Tool:
    """The tool over the knowledge bases of the caller it is `bound` to."""

    def search_for(caller: Principal) -> ToolFunction:
        async def search(arguments: dict[str, Any]) -> ToolResult:
            name = arguments.get("collection") or await _only_collection(knowledge, caller)
            request = SearchRequest(query=arguments["query"], k=arguments.get("k", 3))
            try:
                found = await knowledge.search(name, request, caller=caller)
            except LlamaradaError as exc:
                raise ToolError(f"knowledge_search: {exc.message}") from None
            if not found.results:
                return f"No passage of {name!r} matches {request.query!r}."
            return "\n\n".join(
                f"[{index}] {hit.source}: {hit.text[:MAX_PASSAGE_CHARS]}"
                for index, hit in enumerate(found.results, start=1)
            )

        return search

    async def unbound(arguments: dict[str, Any]) -> ToolResult:
        raise ToolError("knowledge_search: no caller to search for")

    return Tool(
        name="knowledge_search",
        description=(
            "Search the user's documents (a knowledge base) for passages about a question. "
            "Input: the question or key words; optionally the collection's name."
        ),
        parameters={
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": 1000},
                "collection": {"type": "string", "minLength": 3, "maxLength": 512},
                "k": {"type": "integer", "minimum": 1, "maximum": 10},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        function=unbound,
        for_caller=search_for,
    )


async def _only_collection(knowledge: KnowledgeBase, caller: Principal) -> str:
    """The collection to search when the model names none: the caller's only one."""
    try:
        names = [info.name for info in await knowledge.list_collections(caller=caller)]
    except LlamaradaError as exc:
        raise ToolError(f"knowledge_search: {exc.message}") from None
    if len(names) == 1:
        return names[0]
    if not names:
        raise ToolError("knowledge_search: there is no knowledge base yet")
    raise ToolError(f"knowledge_search: name the collection, one of: {', '.join(sorted(names))}")
