"""JSON in and out, with orjson; values JSON's grammar allows but no field can hold are 4xx.

orjson refuses `NaN`, `Infinity`, numbers that overflow a double (`1e400`), lone UTF-16
surrogates (`"\\ud800"`); such a body is read again with the standard library only to name the
field that holds the bad value. Nesting is bounded too (`MAX_DEPTH`): deeper values would exhaust
the recursion of whatever walks them next (validation, the cache key, an upstream's encoder).
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from app.core.errors import InvalidRequest

MAX_DEPTH = 64  # arrays and objects inside each other; JSON schemas in real use stay far below


def dumps(data: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return orjson.dumps(data)


def loads(data: bytes | str, where: str = "") -> Any:
    """The parsed value, or InvalidRequest naming what is wrong, and where: in the field (after
    `where`, which names the value itself, such as a JSONL line) that holds a bad value."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        reason = str(exc)
    else:
        # Counting brackets is quick; only a body with enough of them is walked.
        raw = data.encode() if isinstance(data, str) else data
        brackets = raw.count(b"[") + raw.count(b"{")
        if brackets > MAX_DEPTH and _depth(value) > MAX_DEPTH:
            raise InvalidRequest(f"nests deeper than {MAX_DEPTH} levels", field=where or None)
        return value
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise InvalidRequest(f"not valid JSON: {reason}", field=where or None) from None
    path, problem = _first_unrepresentable(value, "")
    raise InvalidRequest(problem, field=": ".join(part for part in (where, path) if part) or "body")


def _first_unrepresentable(value: Any, path: str) -> tuple[str, str]:
    """The path of the first non-finite number or lone surrogate, and what it is."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return where, "must be a finite number (NaN, Infinity and overflowing numbers are not)"
        if isinstance(item, str) and _has_lone_surrogate(item):
            return where, "holds a lone UTF-16 surrogate, which is not text"
        if isinstance(item, dict):
            for key, child in reversed(item.items()):
                if _has_lone_surrogate(key):
                    return where, "has a key with a lone UTF-16 surrogate"
                stack.append((f"{where}.{key}" if where else key, child))
        elif isinstance(item, list):
            stack.extend(
                (f"{where}.{i}" if where else str(i), c) for i, c in reversed(list(enumerate(item)))
            )
    return path, "is not valid JSON"


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed value (iteratively: no recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
