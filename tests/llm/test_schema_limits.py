"""The bounds on `format` schemas: the crashing and memory-eating shapes refused, with the place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from app.core.config import LimitSettings, Settings
from app.core.errors import InvalidRequest
from app.llm.schema_limits import check_format, pattern_repeats
from app.main import create_app
from tests.conftest import app_client
from tests.fakes import ScriptedBackend
from tests.llm.schemas import EVERYDAY, json_values

LIMITS = LimitSettings()


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ({"type": "string", "maxLength": 2000}, "format.maxLength"),
        ({"type": "string", "maxLength": 1500}, "format.maxLength"),
        ({"type": "array", "items": {"type": "string"}, "maxItems": 3000}, "format.maxItems"),
        (
            {"type": "array", "items": {"type": "string"}, "minItems": 1_000_000_000},
            "format.minItems",
        ),
        (
            {"type": "object", "properties": {"tags": {"type": "array", "minItems": 10**6}}},
            "format.properties.tags.minItems",
        ),
        ({"anyOf": [{"type": "string"}, {"type": "string", "minLength": 501}]}, "format.anyOf.1"),
        ({"$defs": {"a": {"type": "object", "maxProperties": 10**9}}}, "format.$defs.a"),
        ({"type": "string", "pattern": "^a{1,100000}$"}, "format.pattern"),
        ({"type": "string", "pattern": "^a{9" + "9" * 5000 + "}$"}, "format.pattern"),
        ({"type": "string", "pattern": "^(a{0,30}){0,30}$"}, "format.pattern"),
        ({"type": "string", "pattern": "^((ab|[cd]){2,30}){2,30}(x{9}){9}$"}, "format.pattern"),
        ({"type": "string", "minLength": -1}, "format.minLength"),
        ({"type": "string", "maxLength": 10.5}, "format.maxLength"),
        ({"type": "string", "maxLength": True}, "format.maxLength"),
    ],
)
def test_schema_limits_refuse_each_count_with_its_place(schema: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_format(schema, LIMITS)
    assert caught.value.field is not None
    assert caught.value.field.startswith(field)
    assert caught.value.status_code == 422


def test_schema_limits_refuse_deep_and_big_schemas() -> None:
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        deep = {"type": "array", "items": deep}
    big = {"enum": [f"value number {i}" for i in range(5000)]}
    for schema in (deep, big):
        with pytest.raises(InvalidRequest) as caught:
            check_format(schema, LIMITS)
        assert caught.value.field == "format"


def test_schema_limits_read_data_and_names_as_data() -> None:
    """A property called `maxLength`, or a big number in an enum, is not a count."""
    schema = {
        "type": "object",
        "properties": {"maxLength": {"type": "integer"}, "minItems": {"type": "string"}},
        "enum": [{"maxItems": 10**9}],
        "default": {"minLength": 10**12},
    }
    check_format(schema, LIMITS)


@pytest.mark.parametrize("schema", EVERYDAY, ids=[s.get("title", "") for s in EVERYDAY])
def test_schema_limits_pass_everyday_schemas(schema: dict[str, Any]) -> None:
    check_format(schema, LIMITS)
    check_format("json", LIMITS)
    check_format(None, LIMITS)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_schema_limits_never_fail_on_any_json(value: Any) -> None:
    """Any JSON at all is either passed or refused as the caller's mistake."""
    field = "format"
    try:
        check_format(value, LimitSettings(max_schema_repeat=5, max_schema_depth=4))
    except InvalidRequest as exc:
        field = exc.field or ""
    assert field.startswith("format")


def test_schema_limits_follow_the_settings() -> None:
    schema = {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 20}
    check_format(schema, LIMITS)
    with pytest.raises(InvalidRequest):
        check_format(schema, LimitSettings(max_schema_repeat=30))
    with pytest.raises(InvalidRequest):
        check_format({"type": "array", "items": schema}, LimitSettings(max_schema_depth=2))
    with pytest.raises(InvalidRequest):
        check_format({**schema, "description": "x" * 300}, LimitSettings(max_schema_bytes=256))


@pytest.mark.parametrize(
    ("pattern", "repeats"),
    [
        ("^[a-z]+$", 1),
        ("^[A-Z]{3}-[0-9]{4}$", 4),
        ("^\\d{3}\\{99}$", 3),
        ("^(a{0,20}){0,20}$", 400),
        ("^((a{0,400}){0,400}){0,400}$", 400**3),
        ("^(x)(y{2}(z{3}){4}){5}$", 60),
        ("^a{1" + "0" * 30 + "}$", 10**9),
        ("^(((unclosed", 1),
    ],
)
def test_schema_limits_pattern_repeats_multiply_when_nested(pattern: str, repeats: int) -> None:
    assert pattern_repeats(pattern) == repeats


@pytest.mark.timeout(60)
async def test_schema_limits_stop_a_schema_before_any_backend(tmp_path: Path) -> None:
    """The pipeline checks: an Ollama upstream never sees the schema; a fine one goes through."""
    backend = ScriptedBackend()
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", default_model=backend.model)
    bomb = {"type": "array", "items": {"type": "string"}, "minItems": 10**9}
    fine = EVERYDAY[0]
    schema_body = {"type": "json_schema", "json_schema": {"name": "x", "schema": bomb}}
    async with app_client(create_app(settings, backend=backend)) as client:
        chat = {"messages": [{"role": "user", "content": "hi"}], "stream": False}
        refused = [
            await client.post("/api/chat", json={**chat, "format": bomb}),
            await client.post("/api/generate", json={"prompt": "hi", "format": bomb}),
            await client.post(
                "/v1/chat/completions",
                json={"model": backend.model, **chat, "response_format": schema_body},
            ),
        ]
        assert [response.status_code for response in refused] == [422, 422, 422]
        assert refused[0].json()["error"]["message"].startswith("format.minItems: ")
        assert refused[2].json()["error"]["param"] == "response_format.json_schema.schema.minItems"
        assert backend.requests == []
        assert (await client.post("/api/chat", json={**chat, "format": fine})).status_code == 200
    assert backend.requests[0].format == fine
