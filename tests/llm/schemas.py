"""JSON schemas for the `format` tests: everyday ones clients send, strategies for hostile ones."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# What clients really send: the openai SDK's `parse()` (pydantic, `strict: true`), Ollama's docs.
EVERYDAY: list[dict[str, Any]] = [
    {
        "title": "CalendarEvent",
        "type": "object",
        "properties": {
            "name": {"title": "Name", "type": "string", "maxLength": 30},
            "participants": {
                "title": "Participants",
                "type": "array",
                "items": {"type": "string", "maxLength": 20},
                "maxItems": 3,
            },
        },
        "required": ["name", "participants"],
        "additionalProperties": False,
    },
    {
        "title": "Sentiment",
        "type": "object",
        "properties": {
            "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
            "confidence": {"type": "number"},
        },
        "required": ["sentiment", "confidence"],
        "additionalProperties": False,
    },
    {
        "title": "Tags",
        "type": "object",
        "properties": {
            "tags": {
                "type": "array",
                "items": {"type": "string", "maxLength": 20},
                "minItems": 1,
                "maxItems": 3,
            }
        },
        "required": ["tags"],
        "additionalProperties": False,
    },
    {
        "title": "Order",
        "$defs": {
            "Item": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                    "qty": {"type": "integer"},
                },
                "required": ["sku", "qty"],
                "additionalProperties": False,
            }
        },
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "maxItems": 2},
            "paid": {"type": "boolean"},
        },
        "required": ["items", "paid"],
        "additionalProperties": False,
    },
    {
        "title": "Availability",
        "type": "object",
        "properties": {"age": {"type": "integer"}, "available": {"type": "boolean"}},
        "required": ["age", "available"],
    },
    {
        "title": "Person",
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 30},
            "nickname": {"anyOf": [{"type": "string", "maxLength": 10}, {"type": "null"}]},
        },
        "required": ["name", "nickname"],
        "additionalProperties": False,
    },
    {
        "title": "Summary",
        "type": "object",
        "properties": {"summary": {"type": "string", "maxLength": 500}},
        "required": ["summary"],
    },
]

# The shapes the issue reported, and their neighbours.
REPORTED: list[dict[str, Any]] = [
    {"type": "string", "maxLength": 2000},
    {"type": "string", "maxLength": 1500},
    {"type": "array", "items": {"type": "string"}, "maxItems": 3000},
    {"type": "array", "items": {"type": "string"}, "minItems": 1_000_000_000},
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["type", "items", "maxLength", "minItems", "enum", "pattern", "x"])
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)

# Counts around and far past every limit, and some that are not counts at all.
counts = (
    st.integers(min_value=0, max_value=40)
    | st.sampled_from([499, 500, 501, 1000, 1500, 2000, 3000, 10**6, 10**9, 10**15])
    | st.integers(min_value=-3, max_value=-1)
    | st.sampled_from([2.5, True, "10"])
)
patterns = st.sampled_from(
    [
        "^[a-z]+$",
        "^[A-Z]{3}-[0-9]{4}$",
        "^a{1,3000}$",
        "^((a{0,400}){0,400}){0,400}$",
        "^((((ab|cd){2,50}){2,50}){2,50})$",
        "^(x|y)*$",
        "no anchors",
        "^[$",
        "^(?P<name>a)$",
        "^\\d{3}$",
        "^é{2}ü+日本$",
    ]
)
leaves = st.one_of(
    st.sampled_from(
        [
            {},
            {"type": "string"},
            {"type": "integer"},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"},
            {"type": "object"},
            {"type": "array"},
            {"type": ["string", "null"]},
            {"type": "string", "format": "date-time"},
            {"type": "string", "format": "uuid"},
            {"type": "string", "format": "email"},
            {"type": "unknown"},
            {"type": 5},
            {"$ref": "#/$defs/missing"},
            {"$ref": "https://example.com/schema.json"},
            {"$ref": 7},
            {"enum": "not a list"},
            {"properties": []},
            {"items": "x"},
            {"required": "a"},
        ]
    ),
    st.builds(lambda n, m: {"type": "string", "minLength": n, "maxLength": m}, counts, counts),
    st.builds(lambda n: {"type": "string", "maxLength": n}, counts),
    st.builds(lambda p: {"type": "string", "pattern": p}, patterns),
    st.builds(lambda v: {"enum": v}, st.lists(st.text(max_size=12) | st.integers(), max_size=8)),
    st.builds(lambda n: {"enum": [f"v{i}" for i in range(n)]}, st.integers(0, 6000)),
    st.builds(lambda v: {"const": v}, json_values),
)


def _composite(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    names = st.text(min_size=1, max_size=10)
    return st.one_of(
        st.builds(
            lambda props, required, extra: {
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": extra,
            },
            st.dictionaries(names, children, max_size=6),
            st.lists(names, max_size=3),
            st.booleans() | children,
        ),
        st.builds(
            lambda items, low, high: {
                "type": "array",
                "items": items,
                "minItems": low,
                "maxItems": high,
            },
            children,
            counts,
            counts,
        ),
        st.builds(lambda items: {"type": "array", "prefixItems": items}, st.lists(children)),
        st.builds(lambda alts: {"anyOf": alts}, st.lists(children, min_size=1, max_size=4)),
        st.builds(lambda alts: {"oneOf": alts}, st.lists(children, min_size=1, max_size=4)),
        st.builds(lambda alts: {"allOf": alts}, st.lists(children, min_size=1, max_size=3)),
        st.builds(
            lambda defs, root: {"$defs": {"node": defs}, **root, "$ref": "#/$defs/node"},
            children,
            children,
        ),
        st.builds(
            lambda child: {
                "$defs": {"tree": {"type": "array", "items": {"$ref": "#/$defs/tree"}}},
                "anyOf": [child, {"$ref": "#/$defs/tree"}],
            },
            children,
        ),
    )


schemas = st.recursive(leaves, _composite, max_leaves=12)

# What a client may put in `format`: mostly schemas, and roots that are not one.
formats = schemas | st.sampled_from([[], [1, 2], "string", "json", 5, True, None, "yaml"])
