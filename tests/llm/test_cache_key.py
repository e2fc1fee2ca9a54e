"""Property tests of the response cache key."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.llm.base import ChatRequest, GenerateRequest
from app.llm.completions import request_key

texts = st.text(max_size=30)
option_values: dict[str, st.SearchStrategy[Any]] = {
    "temperature": st.floats(0, 2, allow_nan=False),
    "top_k": st.integers(0, 100),
    "top_p": st.floats(0, 1, allow_nan=False),
    "seed": st.integers(-(2**31), 2**31),
    "num_predict": st.integers(1, 4096),
    "stop": st.lists(texts, max_size=3),
    "repeat_penalty": st.floats(0, 2, allow_nan=False),
}
options = st.fixed_dictionaries({}, optional=option_values)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant"]), "content": texts}
    ),
    min_size=1,
    max_size=4,
)
tools = st.none() | st.just([{"type": "function", "function": {"name": "f", "parameters": {}}}])
chat_bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(["a:1b", "b:7b", "smollm2:135m"]), "messages": messages},
    optional={
        "options": options,
        "format": st.none() | st.just("json") | st.just({"type": "object"}),
        "tools": tools,
        "think": st.none() | st.booleans(),
    },
)


def reordered(value: Any) -> Any:
    """The same JSON value with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {key: reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(item) for item in value]
    return value


def chat_key(body: dict[str, Any]) -> str:
    """The key of a chat body, parsed from JSON as the API would."""
    return request_key("chat", ChatRequest.model_validate_json(json.dumps(body)))


@given(chat_bodies)
def test_key_ignores_json_key_order(body: dict[str, Any]) -> None:
    assert chat_key(body) == chat_key(reordered(body))


@given(chat_bodies, st.booleans(), st.sampled_from(["5m", 0, None]))
def test_key_ignores_stream_and_keep_alive(
    body: dict[str, Any], stream: bool, keep_alive: str | int | None
) -> None:
    assert chat_key(body) == chat_key({**body, "stream": stream, "keep_alive": keep_alive})


@settings(max_examples=200)
@given(chat_bodies, st.data())
def test_key_changes_with_every_output_field(body: dict[str, Any], data: st.DataObject) -> None:
    changed = json.loads(json.dumps(body))
    field = data.draw(
        st.sampled_from(["model", "content", "role", "extra_message", "option", "format", "tools"])
    )
    if field == "model":
        changed["model"] = body["model"] + "-other"
    elif field == "content":
        changed["messages"][-1]["content"] += "!"
    elif field == "role":
        last = changed["messages"][-1]
        last["role"] = "user" if last["role"] != "user" else "assistant"
    elif field == "extra_message":
        changed["messages"].append({"role": "user", "content": ""})
    elif field == "option":
        name = data.draw(st.sampled_from(sorted(option_values)))
        current = body.get("options", {}).get(name)
        new = data.draw(option_values[name].filter(lambda value: value != current))
        changed.setdefault("options", {})[name] = new
    elif field == "format":
        changed["format"] = {"type": "array"} if body.get("format") != {"type": "array"} else None
    else:
        changed["tools"] = None if body.get("tools") else [{"type": "function"}]
    assert chat_key(body) != chat_key(changed)


@given(texts, st.none() | texts)
def test_key_separates_routes_and_generate_fields(prompt: str, system: str | None) -> None:
    generate = GenerateRequest(model="a:1b", prompt=prompt, system=system)
    chat = ChatRequest.model_validate(
        {"model": "a:1b", "messages": [{"role": "user", "content": prompt}]}
    )
    assert request_key("generate", generate) != request_key("chat", chat)
    other_system = generate.model_copy(update={"system": (system or "") + "x"})
    assert request_key("generate", generate) != request_key("generate", other_system)
    raw = generate.model_copy(update={"raw": True})
    assert request_key("generate", generate) != request_key("generate", raw)
