"""Bounds on a JSON schema asked for as `format`, checked before any grammar is built from it.

A schema becomes a llama.cpp grammar (in process, or in an upstream Ollama), and the converters
expand every count: `minItems: 1000000000` writes a billion rule references, `maxLength: 2000`
nests 2000 groups, which llama.cpp refuses and then crashes on. So every count, every regex
quantifier, the nesting and the size are bounded here, for every backend, before a converter
sees the schema; what still needs building is built in a child process (`app.llm.grammar`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from app.core.config import LimitSettings
from app.core.errors import InvalidRequest

# Keywords whose whole-number value turns into that many repetitions of a grammar rule.
COUNTS = frozenset(
    {
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minProperties",
        "maxProperties",
        "minContains",
        "maxContains",
    }
)
# Keywords whose values are JSON data, not schemas: only their nesting and size count.
DATA = frozenset({"const", "enum", "default", "examples"})
# Keywords holding a map of names to schemas: the names are not keywords.
NAMED = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
# `{m}`, `{m,}` and `{m,n}` in a `pattern`: each becomes up to that many grammar rules, and a
# quantified group inside another multiplies them (and makes llama.cpp's matching crawl).
QUANTIFIER = re.compile(r"\{\s*(\d+)\s*(?:,\s*(\d*)\s*)?\}")


def check_format(json_format: Any, limits: LimitSettings, field: str = "format") -> None:
    """Refuse, with a 422 naming the place, a schema too deep, too big or too repetitive."""
    if not isinstance(json_format, dict):
        return  # None, or "json": a fixed grammar
    _check_nesting(json_format, limits.max_schema_depth, field)
    size = len(json.dumps(json_format))  # ASCII-escaped: a lone surrogate cannot fail here
    if size > limits.max_schema_bytes:
        raise InvalidRequest(
            f"the schema is {size} characters of JSON, at most {limits.max_schema_bytes} allowed",
            field=field,
        )
    _check_counts(json_format, limits.max_schema_repeat, field)


def _check_nesting(value: Any, most: int, field: str) -> None:
    """Depth first, without recursion: the schema is as deep as the client made it."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > most:
            raise InvalidRequest(
                f"the schema nests deeper than {most} levels of objects and arrays", field=field
            )
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def _check_counts(schema: dict[str, Any], most: int, field: str) -> None:
    """Every count keyword and regex quantifier in every subschema, with its path if too big."""
    stack: list[tuple[Any, str]] = [(schema, field)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, list):
            stack.extend((item, f"{path}.{index}") for index, item in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            where = f"{path}.{key}"
            if key in DATA:
                continue
            if key in COUNTS:
                _check_count(value, most, where)
            elif key == "pattern" and isinstance(value, str):
                repeats = pattern_repeats(value)
                if repeats > most:
                    raise InvalidRequest(
                        f"the quantifiers repeat up to {repeats} times, nested ones multiplied; "
                        f"this server allows {most}",
                        field=where,
                    )
            elif key in NAMED and isinstance(value, dict):
                stack.extend((sub, f"{where}.{name}") for name, sub in value.items())
            elif isinstance(value, dict | list):
                stack.append((value, where))


def _check_count(value: Any, most: int, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequest("must be a whole number, 0 or more", field=where)
    if value > most:
        raise InvalidRequest(f"{value} is more than this server allows ({most})", field=where)


def pattern_repeats(pattern: str) -> int:
    """The most repetitions any part of a regex can make: nested quantifiers multiply."""
    levels = [1]  # per open group: the most repetitions inside it so far
    index = 0
    while index < len(pattern):
        char = pattern[index]
        index += 1
        inner = 1
        if char == "\\":
            index += 1
        elif char == "[":  # a class is one atom; `]` first in it is literal
            index = pattern.find("]", index + 1)
            index = len(pattern) if index < 0 else index + 1
        elif char == "(":
            levels.append(1)
            continue
        elif char == ")" and len(levels) > 1:
            inner = levels.pop()
        match = QUANTIFIER.match(pattern, index)
        if match is not None:
            index = match.end()
            counts = [number for number in match.groups() if number]
            if any(len(number) > 9 for number in counts):
                return 10**9
            inner *= max(int(number) for number in counts)
        levels[-1] = max(levels[-1], inner)
    return max(levels)
