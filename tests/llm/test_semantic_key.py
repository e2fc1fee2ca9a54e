"""Which requests the semantic cache may answer, and how they are partitioned."""

from __future__ import annotations

from typing import Any

import pytest

from app.llm.base import ChatRequest, GenerateRequest
from app.llm.semantic_key import semantic_query


def chat(question: str, **extra: Any) -> ChatRequest:
    """A chat at temperature 0 unless told otherwise."""
    body: dict[str, Any] = {
        "model": "m:1b",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": question},
        ],
        "options": {"temperature": 0},
        **extra,
    }
    return ChatRequest.model_validate(body)


def query(request: ChatRequest | GenerateRequest, question: str | None = None) -> Any:
    return semantic_query("chat", request, None, max_temperature=0.3, question=question)


def test_semantic_query_partitions_by_everything_but_the_question() -> None:
    first, second = query(chat("What is HTTP?")), query(chat("What does HTTP mean?"))
    assert first.partition == second.partition
    assert (first.text, second.text) == ("What is HTTP?", "What does HTTP mean?")
    other_system = chat("What is HTTP?")
    other_system.messages[0].content = "Be thorough."
    assert query(other_system).partition != first.partition
    other_options = chat("What is HTTP?", options={"temperature": 0, "num_predict": 5})
    assert query(other_options).partition != first.partition


@pytest.mark.parametrize(
    "request_",
    [
        chat("Hi", options={"temperature": 0.5}),
        chat("Hi", options={}),  # the model's default temperature is above the bound
        chat("Hi", tools=[{"type": "function", "function": {"name": "f"}}]),
        ChatRequest.model_validate(
            {
                "model": "m:1b",
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "tool", "content": "42", "tool_name": "f"},
                ],
                "options": {"temperature": 0},
            }
        ),
        ChatRequest.model_validate(
            {
                "model": "m:1b",
                "messages": [{"role": "user", "content": "What is it?", "images": ["aGk="]}],
                "options": {"temperature": 0},
            }
        ),
        GenerateRequest(model="m:1b", prompt="Hi", images=["aGk="]),
    ],
)
def test_semantic_query_refuses_what_a_near_answer_must_not_serve(
    request_: ChatRequest | GenerateRequest,
) -> None:
    assert query(request_) is None


def test_semantic_query_of_a_knowledge_base_prompt_keeps_its_passages_in_the_partition() -> None:
    def prompt(passages: str, question: str) -> ChatRequest:
        return chat(f"Context:\n{passages}\n\nQuestion: {question}\n\nAnswer:")

    asked = "How do I restart nginx?"
    same = query(prompt("[1] systemctl restart nginx", asked), asked)
    reworded = query(
        prompt("[1] systemctl restart nginx", "How to restart nginx?"), "How to restart nginx?"
    )
    other = query(prompt("[1] service nginx reload", asked), asked)
    assert same.text == asked
    assert same.partition == reworded.partition
    assert same.partition != other.partition
