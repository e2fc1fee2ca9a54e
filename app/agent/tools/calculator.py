"""The `calculator` tool: arithmetic on Python's parse tree, walked by hand, never `eval`.

The work is bounded before it is done: the text is short, the tree small, integer powers are
sized before they are computed and every intermediate result is range-checked, so no input can
run long or grow huge. The tree is walked with an explicit stack, so nesting cannot exhaust
Python's recursion limit.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.agent.tools.base import Tool, ToolError

Number = int | float

MAX_EXPRESSION_LENGTH = 500
MAX_NODES = 200
MAX_EXPONENT = 1000
MAX_INT = 10**300
MAX_FACTORIAL = 500
MAX_ROUND_DIGITS = 300
_MAX_INT_BITS = MAX_INT.bit_length()

_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


@dataclass(frozen=True)
class _Function:
    call: Callable[..., Number]
    min_args: int
    max_args: int | None  # None: any number


def _factorial(n: Number) -> int:
    if not isinstance(n, int) or not 0 <= n <= MAX_FACTORIAL:
        raise ToolError(f"factorial needs a whole number from 0 to {MAX_FACTORIAL}")
    return math.factorial(n)


def _round(x: Number, digits: Number | None = None) -> Number:
    if digits is None:
        return round(x)
    # round(5, -10**9) would compute 10**(10**9): bound the digits first.
    if not isinstance(digits, int) or abs(digits) > MAX_ROUND_DIGITS:
        raise ToolError(
            f"round's digits must be a whole number from -{MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS}"
        )
    return round(x, digits)


def _log(x: Number, base: Number | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


_FUNCTIONS: dict[str, _Function] = {
    "sqrt": _Function(math.sqrt, 1, 1),
    "sin": _Function(math.sin, 1, 1),
    "cos": _Function(math.cos, 1, 1),
    "tan": _Function(math.tan, 1, 1),
    "asin": _Function(math.asin, 1, 1),
    "acos": _Function(math.acos, 1, 1),
    "atan": _Function(math.atan, 1, 1),
    "log": _Function(_log, 1, 2),
    "log10": _Function(math.log10, 1, 1),
    "log2": _Function(math.log2, 1, 1),
    "exp": _Function(math.exp, 1, 1),
    "floor": _Function(math.floor, 1, 1),
    "ceil": _Function(math.ceil, 1, 1),
    "abs": _Function(abs, 1, 1),
    "round": _Function(_round, 1, 2),
    "min": _Function(lambda *xs: min(xs), 1, None),
    "max": _Function(lambda *xs: max(xs), 1, None),
    "factorial": _Function(_factorial, 1, 1),
    "hypot": _Function(math.hypot, 1, None),
    "degrees": _Function(math.degrees, 1, 1),
    "radians": _Function(math.radians, 1, 1),
}


def _power(base: Number, exponent: Number) -> Number:
    if abs(exponent) > MAX_EXPONENT:
        raise ToolError(
            f"exponent too large: powers take exponents from -{MAX_EXPONENT} to {MAX_EXPONENT}"
        )
    if isinstance(base, int) and isinstance(exponent, int) and exponent >= 0:
        # |base| ** exponent >= 2 ** ((bits - 1) * exponent): refuse before computing.
        if abs(base) > 1 and (abs(base).bit_length() - 1) * exponent >= _MAX_INT_BITS:
            raise ToolError(_TOO_LARGE)
        result: int = base**exponent  # typeshed says Any: an int to a non-negative int is an int
        return result
    if base == 0 and exponent < 0:
        raise ZeroDivisionError
    if base < 0 and not float(exponent).is_integer():
        raise ToolError("a negative number to a fractional power is not a real number")
    return math.pow(base, exponent)


_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _power,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_SYMBOLS: dict[type[ast.AST], str] = {
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
    ast.Invert: "~",
    ast.Not: "not",
}
_TOO_LARGE = f"result too large (more than {len(str(MAX_INT)) - 1} digits)"
_KNOWN_NAMES = f"known functions: {', '.join(_FUNCTIONS)}; constants: {', '.join(_CONSTANTS)}"


def evaluate(expression: str) -> Number:
    """Evaluate an arithmetic expression safely, or raise ToolError saying what is wrong."""
    text = expression.strip()
    if not text:
        raise ToolError("the expression is empty")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ToolError(
            f"the expression is too long ({len(text)} characters; at most {MAX_EXPRESSION_LENGTH})"
        )
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as error:
        raise ToolError(f"not a valid expression: {error.msg}") from None
    except (ValueError, MemoryError, RecursionError):
        raise ToolError("not a valid expression") from None
    _check(tree.body)
    return _run(tree.body)


def format_number(value: Number) -> str:
    """Format a result for reading: integers in full, floats to 12 significant digits."""
    if isinstance(value, int):
        return str(value)
    return format(value + 0.0, ".12g")  # + 0.0 turns -0.0 into 0.0


def calculator_tool() -> Tool:
    """Build the `calculator` tool."""

    async def calculate(arguments: dict[str, Any]) -> str:
        return format_number(evaluate(arguments["expression"]))

    names = ", ".join(_FUNCTIONS)
    return Tool(
        name="calculator",
        description=(
            "Evaluate an arithmetic expression, for example 'sqrt(2) * (3 + 4) ** 2'. "
            f"Operators: + - * / // % ** and parentheses. Functions: {names}. "
            "Constants: pi, e, tau."
        ),
        parameters={
            "type": "object",
            "properties": {
                "expression": {
                    "type": "string",
                    "description": "The arithmetic expression, using ** for powers.",
                    "maxLength": MAX_EXPRESSION_LENGTH,
                }
            },
            "required": ["expression"],
            "additionalProperties": False,
        },
        function=calculate,
    )


def _check(root: ast.expr) -> None:
    """Refuse the whole tree before any work if any node is not plain arithmetic."""
    pending = [root]
    seen = 0
    while pending:
        seen += 1
        if seen > MAX_NODES:
            raise ToolError(f"the expression is too complex (more than {MAX_NODES} parts)")
        pending.extend(_operands(pending.pop()))


def _operands(node: ast.expr) -> list[ast.expr]:
    """Return a node's operands, or raise ToolError if the node is not allowed."""
    match node:
        case ast.Constant(value=bool()):
            raise ToolError("True and False are not numbers here")
        case ast.Constant(value=int() | float()):
            return []
        case ast.Constant(value=complex()):
            raise ToolError("complex numbers are not supported")
        case ast.Constant(value=str() | bytes()) | ast.JoinedStr():
            raise ToolError("strings are not allowed, only numbers")
        case ast.Name(id=name):
            if name in _FUNCTIONS:
                raise ToolError(f"{name} is a function: call it, as in {name}(2)")
            if name not in _CONSTANTS:
                raise ToolError(f"unknown name {name!r}; {_KNOWN_NAMES}")
            return []
        case ast.BinOp(left=left, op=op, right=right):
            if isinstance(op, ast.BitXor):
                raise ToolError("'^' is bitwise XOR in Python, not supported: use ** for powers")
            if type(op) not in _BINARY:
                raise ToolError(f"operator {_SYMBOLS.get(type(op), '?')} is not supported")
            return [left, right]
        case ast.UnaryOp(op=op, operand=operand):
            if type(op) not in _UNARY:
                raise ToolError(f"operator {_SYMBOLS.get(type(op), '?')} is not supported")
            return [operand]
        case ast.Call(func=ast.Name(id=name), args=args, keywords=keywords):
            return _call_operands(name, args, keywords)
        case ast.Call():
            raise ToolError(f"only the named functions can be called; {_KNOWN_NAMES}")
        case ast.Attribute():
            raise ToolError("attribute access (.name) is not allowed")
        case ast.Subscript():
            raise ToolError("indexing ([...]) is not allowed")
        case ast.ListComp() | ast.SetComp() | ast.DictComp() | ast.GeneratorExp():
            raise ToolError("comprehensions are not allowed")
        case ast.Lambda():
            raise ToolError("lambda is not allowed")
        case ast.List() | ast.Tuple() | ast.Set() | ast.Dict():
            raise ToolError("lists, tuples, sets and dicts are not allowed, only numbers")
        case ast.Compare() | ast.BoolOp() | ast.IfExp():
            raise ToolError("comparisons, and/or and if-else are not supported")
        case ast.Constant():
            raise ToolError("only numbers are allowed as values")
    raise ToolError(f"{type(node).__name__} is not allowed in an arithmetic expression")


def _call_operands(name: str, args: list[ast.expr], keywords: list[ast.keyword]) -> list[ast.expr]:
    function = _FUNCTIONS.get(name)
    if function is None:
        raise ToolError(f"unknown function {name!r}; {_KNOWN_NAMES}")
    if keywords:
        raise ToolError(f"{name}() takes no keyword arguments")
    if any(isinstance(arg, ast.Starred) for arg in args):
        raise ToolError(f"{name}() takes no *arguments")
    most = function.max_args
    if len(args) < function.min_args or (most is not None and len(args) > most):
        wanted = (
            f"at least {function.min_args}"
            if most is None
            else str(most)
            if most == function.min_args
            else f"{function.min_args} or {most}"
        )
        raise ToolError(f"{name}() takes {wanted} argument(s), got {len(args)}")
    return args


def _run(root: ast.expr) -> Number:
    """Evaluate a checked tree in post-order with an explicit stack."""
    values: list[Number] = []
    # (node, None): operands still to push; (node, n): its n operand values are on `values`.
    pending: list[tuple[ast.expr, int | None]] = [(root, None)]
    while pending:
        node, count = pending.pop()
        if count is None:
            operands = _operands(node)
            pending.append((node, len(operands)))
            pending.extend((operand, None) for operand in reversed(operands))
            continue
        start = len(values) - count
        result = _apply(node, values[start:])
        del values[start:]
        values.append(_checked(result))
    return values[0]


def _apply(node: ast.expr, operands: list[Number]) -> Number:
    try:
        match node:
            case ast.Constant(value=int() | float() as number):
                return number
            case ast.Name(id=name):
                return _CONSTANTS[name]
            case ast.BinOp(op=op):
                return _BINARY[type(op)](operands[0], operands[1])
            case ast.UnaryOp(op=op):
                return _UNARY[type(op)](operands[0])
            case ast.Call(func=ast.Name(id=name)):
                return _call(name, operands)
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except OverflowError:
        raise ToolError(_TOO_LARGE) from None
    raise AssertionError(f"unchecked node {type(node).__name__}")  # _check lets none through


def _call(name: str, operands: list[Number]) -> Number:
    try:
        return _FUNCTIONS[name].call(*operands)
    except (ValueError, TypeError):
        shown = ", ".join(format_number(x) for x in operands)
        shown = shown if len(shown) <= 60 else shown[:59] + "…"
        raise ToolError(f"{name}({shown}) is not defined (outside the function's domain)") from None


def _checked(value: Number) -> Number:
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise ToolError(_TOO_LARGE)
    elif math.isinf(value) or math.isnan(value):
        raise ToolError(_TOO_LARGE if math.isinf(value) else "the result is not a number")
    return value
