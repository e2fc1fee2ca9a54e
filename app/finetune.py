"""Fine-tuning data: (prompt, response) pairs from CSV or JSONL into chat-template training JSONL.

Bad rows (an empty field, a missing role, text over the context window, a duplicate, a stray
special token) are skipped and reported one line each, so one typo does not cost the whole
file; `strict=True` refuses to write anything instead.
"""

import csv
import json
import math
import os
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

from app.llm.modelfile import read_modelfile

TemplateName = Literal["llama3", "chatml"]
TokenCounter = Callable[[str], int]
ROLES: Final = ("system", "user", "assistant")
DEFAULT_NUM_CTX: Final = 4096
# Text that would break the template if a row contained it.
SPECIAL_TOKENS: Final = re.compile(
    r"<\|(?:begin_of_text|end_of_text|start_header_id|end_header_id|eot_id|im_start|im_end)\|>"
)


class FinetuneError(ValueError):
    """Input that cannot be turned into training data at all (not just a bad row)."""


@dataclass(frozen=True, slots=True)
class Example:
    """One training conversation and the input line it came from."""

    line: int
    messages: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """Why the row on `line` of the input was left out."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(slots=True)
class PrepareReport:
    """What `prepare` read, wrote and left out."""

    input_path: Path
    template: TemplateName
    num_ctx: int
    rows: int = 0
    train: int = 0
    validation: int = 0
    problems: list[Problem] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        """Rows left out for any reason."""
        return len(self.problems)

    def summary(self) -> str:
        """A short human report: counts, where the files went, and each problem."""
        lines = [
            f"{self.input_path}: {self.rows} rows read, {self.train} train, "
            f"{self.validation} validation, {self.skipped} skipped "
            f"(template {self.template}, num_ctx {self.num_ctx})",
            *(f"  wrote {path}" for path in self.outputs),
            *(f"  {problem}" for problem in self.problems),
        ]
        return "\n".join(lines)


def estimate_tokens(text: str) -> int:
    """A conservative token count for when no tokenizer is at hand.

    One token per special token, one per 3 other characters: real tokenizers give about 4
    characters per token in English and a little fewer in Spanish, so this errs long.
    """
    specials = len(SPECIAL_TOKENS.findall(text))
    return specials + math.ceil(len(SPECIAL_TOKENS.sub("", text)) / 3)


def render(example: Example, template: TemplateName) -> str:
    """The example's conversation in the chat template, as a model is trained on it."""
    if template == "llama3":
        turns = "".join(
            f"<|start_header_id|>{role}<|end_header_id|>\n\n{text}<|eot_id|>"
            for role, text in example.messages
        )
        return f"<|begin_of_text|>{turns}"
    return "\n".join(f"<|im_start|>{role}\n{text}<|im_end|>" for role, text in example.messages)


def read_examples(
    path: Path, default_system: str | None = None
) -> tuple[list[Example], list[Problem]]:
    """Read conversations from CSV or JSONL (by extension); bad rows become problems."""
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".jsonl", ".ndjson"}:
        raise FinetuneError(f"{path}: expected a .csv or .jsonl file")
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = _csv_rows(handle, path) if suffix == ".csv" else _jsonl_rows(handle)
            examples: list[Example] = []
            problems: list[Problem] = []
            for line, row in rows:
                if isinstance(row, str):
                    problems.append(Problem(line, row))
                    continue
                try:
                    examples.append(Example(line, _conversation(row, default_system)))
                except ValueError as exc:
                    problems.append(Problem(line, str(exc)))
    except OSError as exc:
        raise FinetuneError(f"cannot read {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise FinetuneError(f"{path} is not UTF-8 text: {exc}") from exc
    return examples, problems


def check(
    examples: Sequence[Example], template: TemplateName, num_ctx: int, count_tokens: TokenCounter
) -> tuple[list[Example], list[Problem]]:
    """Keep the examples that fit in `num_ctx` tokens and are not duplicates of earlier ones."""
    seen: dict[str, int] = {}
    kept: list[Example] = []
    problems: list[Problem] = []
    for example in examples:
        key = "\x00".join(
            f"{role}:{' '.join(text.split()).casefold()}" for role, text in example.messages
        )
        tokens = count_tokens(render(example, template))
        if key in seen:
            problems.append(Problem(example.line, f"duplicate of line {seen[key]}"))
        elif tokens > num_ctx:
            problems.append(Problem(example.line, f"{tokens} tokens, over num_ctx {num_ctx}"))
        else:
            seen[key] = example.line
            kept.append(example)
    return kept, problems


def split(
    examples: Sequence[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Split into (train, validation) at random but reproducibly, keeping the input order."""
    if not 0 <= fraction < 1:
        raise FinetuneError(f"validation fraction must be in [0, 1), got {fraction}")
    count = round(len(examples) * fraction)
    if fraction > 0 and len(examples) >= 2:
        count = min(max(count, 1), len(examples) - 1)
    chosen = set(random.Random(seed).sample(range(len(examples)), count))
    train = [e for i, e in enumerate(examples) if i not in chosen]
    return train, [e for i, e in enumerate(examples) if i in chosen]


def prepare(
    input_path: Path,
    output_path: Path,
    *,
    template: TemplateName = "llama3",
    num_ctx: int = DEFAULT_NUM_CTX,
    default_system: str | None = None,
    validation_fraction: float = 0.0,
    validation_path: Path | None = None,
    seed: int = 42,
    count_tokens: TokenCounter = estimate_tokens,
    strict: bool = False,
) -> PrepareReport:
    """Validate the input and write `{"text": ...}` JSONL for training (and validation)."""
    if template not in get_args(TemplateName):
        raise FinetuneError(f"unknown template {template!r}; use llama3 or chatml")
    report = PrepareReport(input_path, template, num_ctx)
    examples, problems = read_examples(input_path, default_system)
    kept, more_problems = check(examples, template, num_ctx, count_tokens)
    report.rows = len(examples) + len(problems)
    report.problems = sorted(problems + more_problems, key=lambda p: p.line)
    if strict and report.problems:
        raise FinetuneError(
            f"{len(report.problems)} bad rows, nothing written:\n{report.summary()}"
        )
    if not kept:
        raise FinetuneError(f"no usable rows in {input_path}\n{report.summary()}")
    train, validation = split(kept, validation_fraction, seed)
    _write_jsonl(output_path, (render(e, template) for e in train))
    report.train, report.outputs = len(train), [output_path]
    if validation:
        target = validation_path or output_path.with_suffix(".validation.jsonl")
        _write_jsonl(target, (render(e, template) for e in validation))
        report.validation = len(validation)
        report.outputs.append(target)
    return report


def run_prepare(
    input_path: str | Path,
    output: str | Path,
    *,
    template: str = "llama3",
    validation: float = 0.0,
    seed: int = 42,
    num_ctx: int | None = None,
    system: str | None = None,
    modelfile: str | Path | None = None,
    strict: bool = False,
    count_tokens: TokenCounter = estimate_tokens,
) -> PrepareReport:
    """`llamarada finetune prepare`; a Modelfile, if given, supplies num_ctx and system prompt."""
    if modelfile is not None:
        model = read_modelfile(Path(modelfile))
        num_ctx = num_ctx or model.num_ctx
        if system is None and model.system is not None:
            system = model.system.strip()
    return prepare(
        Path(input_path),
        Path(output),
        template=cast(TemplateName, template),  # prepare() checks the name
        num_ctx=num_ctx or DEFAULT_NUM_CTX,
        default_system=system,
        validation_fraction=validation,
        seed=seed,
        count_tokens=count_tokens,
        strict=strict,
    )


def _csv_rows(handle: Iterator[str], path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    lines = _CountedLines(handle)
    reader = csv.reader(lines)
    header = [name.strip() for name in next(reader, [])]
    missing = {"prompt", "response"} - set(header)
    if missing:
        found = ", ".join(header) or "nothing"
        raise FinetuneError(f"{path}: missing columns {', '.join(sorted(missing))} (found {found})")
    while True:
        start = lines.count + 1  # csv reads no further than the record it returns
        row = next(reader, None)
        if row is None:
            return
        if not row:
            continue
        if len(row) != len(header):
            yield start, f"{len(row)} fields where the header has {len(header)}"
        else:
            yield start, dict(zip(header, row, strict=True))


class _CountedLines:
    """Lines of a file, counting how many have been handed out."""

    def __init__(self, handle: Iterator[str]) -> None:
        self.handle = handle
        self.count = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self.handle)
        self.count += 1
        return line


def _jsonl_rows(handle: Iterator[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            yield line, f"invalid JSON: {exc.msg} at column {exc.colno}"
            continue
        yield line, row if isinstance(row, dict) else "expected a JSON object"


def _conversation(row: dict[str, Any], default_system: str | None) -> tuple[tuple[str, str], ...]:
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list")
        turns = [_message(i, m) for i, m in enumerate(messages)]
    else:
        missing = [key for key in ("prompt", "response") if key not in row]
        if missing:
            raise ValueError(f"missing field {', '.join(missing)} (or give 'messages')")
        turns = [("user", _text(row, "prompt")), ("assistant", _text(row, "response"))]
        if row.get("system") not in (None, ""):
            turns.insert(0, ("system", _text(row, "system")))
    if turns[0][0] != "system" and default_system:
        turns.insert(0, ("system", default_system))
    if any(role == "system" for role, _ in turns[1:]):
        raise ValueError("a system message may only come first")
    roles = [role for role, _ in turns if role != "system"]
    if not roles or roles != ["user", "assistant"] * (len(roles) // 2):
        raise ValueError("turns must alternate user, assistant and end with the assistant")
    return tuple(turns)


def _message(index: int, message: Any) -> tuple[str, str]:
    if not isinstance(message, dict) or message.get("role") not in ROLES:
        raise ValueError(f"messages[{index}] needs a role of {', '.join(ROLES)}")
    return message["role"], _text(message, "content", f"messages[{index}].content")


def _text(row: dict[str, Any], key: str, name: str | None = None) -> str:
    value, name = row.get(key), name or key
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} is empty")
    if match := SPECIAL_TOKENS.search(value):
        raise ValueError(f"{name} contains the special token {match.group()}")
    return value.strip()


def _write_jsonl(path: Path, texts: Iterator[str]) -> None:
    # Written beside the target and renamed, so a failed run never leaves half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", encoding="utf-8") as handle:
        for text in texts:
            handle.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    os.replace(partial, path)
