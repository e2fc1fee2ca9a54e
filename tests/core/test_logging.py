"""JSON log lines: fixed fields, extras kept, request id, exceptions."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from app.core.logging import JsonFormatter, request_id_var


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing through JsonFormatter into a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.json")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Each logged line, parsed."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_formatter_has_the_fixed_fields(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    logger.info("hello %s", "world")
    (entry,) = lines(stream)
    assert entry["message"] == "hello world"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "tests.json"
    assert entry["module"] == "test_logging"
    assert entry["function"] == "test_json_formatter_has_the_fixed_fields"
    assert entry["request_id"] is None
    assert entry["timestamp"].endswith("+00:00")


def test_json_formatter_keeps_extra_fields(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    logger.warning("slow", extra={"duration_ms": 12.5, "model": "m", "tags": ["a"], "obj": object})
    (entry,) = lines(stream)
    assert entry["duration_ms"] == 12.5
    assert entry["model"] == "m"
    assert entry["tags"] == ["a"]
    assert "class 'object'" in entry["obj"]  # not JSON-able: written as text, not dropped


def test_json_formatter_carries_the_request_id(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    token = request_id_var.set("req-42")
    try:
        logger.info("inside")
    finally:
        request_id_var.reset(token)
    assert lines(stream)[0]["request_id"] == "req-42"


def test_json_formatter_puts_the_exception_in_one_line(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    assert len(stream.getvalue().splitlines()) == 1
    (entry,) = lines(stream)
    assert "ValueError: boom" in entry["exception"]
