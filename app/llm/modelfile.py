"""Ollama Modelfiles: parse them into typed values, write them back, load `models/*/Modelfile`.

The grammar follows Ollama's own parser: one instruction per line (case-insensitive), `#`
comments, values bare to the end of the line, in `"..."` or in `\"\"\"...\"\"\"` (both may span
lines; the text between the quotes is kept exactly). Where Ollama would accept a file but
Llamarada cannot act on it (two FROM lines, two ADAPTERs, DRAFT/RENDERER/PARSER) the parser
says so instead of silently dropping lines.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

ParameterValue = int | float | bool | tuple[str, ...]

INT_PARAMETERS: Final = frozenset(
    {
        "num_keep",
        "seed",
        "num_predict",
        "top_k",
        "repeat_last_n",
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "num_thread",
    }
)
FLOAT_PARAMETERS: Final = frozenset(
    {
        "temperature",
        "top_p",
        "min_p",
        "typical_p",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
    }
)
BOOL_PARAMETERS: Final = frozenset({"use_mmap"})
LIST_PARAMETERS: Final = frozenset({"stop"})
# Ollama still reads these but ignores them with a warning; so do we.
DEPRECATED_PARAMETERS: Final = frozenset(
    {
        "penalize_newline",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
    }
)
MESSAGE_ROLES: Final = ("system", "user", "assistant")
MODEL_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

_INSTRUCTIONS: Final = frozenset(
    {"FROM", "PARAMETER", "SYSTEM", "TEMPLATE", "ADAPTER", "LICENSE", "MESSAGE", "REQUIRES"}
)
_UNSUPPORTED: Final = frozenset({"DRAFT", "RENDERER", "PARSER"})
_INSTRUCTION_LINE: Final = re.compile(r"([A-Za-z]+)(?:[ \t]+(.*))?")
_WORD_THEN_REST: Final = re.compile(r"(\S+)(?:[ \t]+(.*))?")
_INT: Final = re.compile(r"[+-]?\d+")
_FLOAT: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_NEWLINE: Final = re.compile(r"\r\n|\r|\n")


class ModelfileError(ValueError):
    """A Modelfile that cannot be used, with the file and line where the problem is."""

    def __init__(self, message: str, *, line: int | None = None, source: str | None = None):
        self.message = message
        self.line = line
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ":".join(str(part) for part in (self.source, self.line) if part is not None)
        return f"{where}: {self.message}" if where else self.message


@dataclass(frozen=True, slots=True)
class Message:
    """One MESSAGE line: a turn of example conversation stored with the model."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Modelfile:
    """What a Modelfile says: the base model and what is layered on top of it."""

    base: str
    parameters: Mapping[str, ParameterValue] = field(default_factory=dict)
    system: str | None = None
    template: str | None = None
    adapter: str | None = None
    licenses: tuple[str, ...] = ()
    messages: tuple[Message, ...] = ()
    requires: str | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def num_ctx(self) -> int | None:
        """The context window the Modelfile sets, if any."""
        value = self.parameters.get("num_ctx")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def base_is_local(self) -> bool:
        """Whether FROM names a file or folder rather than a model in a registry."""
        return is_local_path(self.base)

    def options(self) -> dict[str, Any]:
        """The parameters as an Ollama `options` object (lists for `stop`)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.parameters.items()}

    def create_request(
        self,
        model: str,
        *,
        files: Mapping[str, str] | None = None,
        adapters: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The JSON body of Ollama's `POST /api/create` for this Modelfile.

        `files` and `adapters` map file names to the `sha256:` digests of blobs already
        uploaded; they are required when FROM or ADAPTER point at local files.
        """
        if self.base_is_local and not files:
            raise ModelfileError(f"FROM {self.base} is a local file: upload it and pass files")
        if self.adapter is not None and not adapters:
            raise ModelfileError(f"ADAPTER {self.adapter} must be uploaded: pass adapters")
        body: dict[str, Any] = {"model": model, "stream": True}
        if files:
            body["files"] = dict(files)
        else:
            body["from"] = self.base
        if adapters:
            body["adapters"] = dict(adapters)
        if self.system is not None:
            body["system"] = self.system
        if self.template is not None:
            body["template"] = self.template
        if self.parameters:
            body["parameters"] = self.options()
        if self.messages:
            body["messages"] = [{"role": m.role, "content": m.content} for m in self.messages]
        if self.licenses:
            body["license"] = list(self.licenses)
        if self.requires is not None:
            body["requires"] = self.requires
        return body

    def render(self) -> str:
        """Write this Modelfile back as text that parses to an equal value."""
        lines = [f"FROM {_quote(self.base)}"]
        if self.adapter is not None:
            lines.append(f"ADAPTER {_quote(self.adapter)}")
        for name, value in self.parameters.items():
            values = value if isinstance(value, tuple) else (value,)
            lines.extend(f"PARAMETER {name} {_format_parameter(v)}" for v in values)
        if self.template is not None:
            lines.append(f"TEMPLATE {_quote(self.template)}")
        if self.system is not None:
            lines.append(f"SYSTEM {_quote(self.system)}")
        lines.extend(f"LICENSE {_quote(text)}" for text in self.licenses)
        lines.extend(f"MESSAGE {m.role} {_quote(m.content)}" for m in self.messages)
        if self.requires is not None:
            lines.append(f"REQUIRES {_quote(self.requires)}")
        return "\n".join(lines) + "\n"


def is_local_path(reference: str) -> bool:
    """Whether a FROM/ADAPTER value names a file (as Ollama decides) rather than a model."""
    return reference.startswith(("/", "./", "../", "~", "\\")) or reference.lower().endswith(
        (".gguf", ".bin", ".safetensors")
    )


def parse_modelfile(text: str, *, source: str | None = None) -> Modelfile:
    """Parse Modelfile text; raise ModelfileError naming the line of the first problem."""
    parser = _Parser(_NEWLINE.split(text.removeprefix("\ufeff")), source)
    return parser.parse()


def read_modelfile(path: Path) -> Modelfile:
    """Read and parse one Modelfile from disk."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelfileError(f"cannot read: {exc}", source=str(path)) from exc
    return parse_modelfile(text, source=str(path))


def load_models(models_dir: Path) -> dict[str, Modelfile]:
    """Parse every `<models_dir>/<name>/Modelfile` into `{name: Modelfile}`, sorted by name."""
    models: dict[str, Modelfile] = {}
    if not models_dir.is_dir():
        return models
    for path in sorted(models_dir.glob("*/Modelfile")):
        name = path.parent.name
        if not MODEL_NAME.fullmatch(name):
            raise ModelfileError(
                f"folder name {name!r} is not a valid model name "
                "(lowercase letters, digits, '.', '_' and '-')",
                source=str(path),
            )
        models[name] = read_modelfile(path)
    return models


class _Parser:
    def __init__(self, lines: list[str], source: str | None) -> None:
        self.lines = lines
        self.source = source
        self.index = 0
        self.base: str | None = None
        self.parameters: dict[str, ParameterValue] = {}
        self.system: str | None = None
        self.template: str | None = None
        self.adapter: str | None = None
        self.licenses: list[str] = []
        self.messages: list[Message] = []
        self.requires: str | None = None
        self.warnings: list[str] = []

    def error(self, message: str, line: int) -> ModelfileError:
        return ModelfileError(message, line=line, source=self.source)

    def parse(self) -> Modelfile:
        while self.index < len(self.lines):
            number = self.index + 1
            line = self.lines[self.index].lstrip()
            self.index += 1
            if line.strip() and not line.startswith("#"):
                self.instruction(line, number)
        if self.base is None:
            raise ModelfileError("no FROM line: a Modelfile needs a base model", source=self.source)
        return Modelfile(
            base=self.base,
            parameters=self.parameters,
            system=self.system,
            template=self.template,
            adapter=self.adapter,
            licenses=tuple(self.licenses),
            messages=tuple(self.messages),
            requires=self.requires,
            warnings=tuple(self.warnings),
        )

    def instruction(self, line: str, number: int) -> None:
        match = _INSTRUCTION_LINE.fullmatch(line)
        word = line.split(maxsplit=1)[0]
        if match is None or match.group(1).upper() not in _INSTRUCTIONS | _UNSUPPORTED:
            known = ", ".join(sorted(_INSTRUCTIONS))
            raise self.error(f"unknown instruction {word!r}; expected one of {known}", number)
        name, rest = match.group(1).upper(), match.group(2) or ""
        if name in _UNSUPPORTED:
            raise self.error(f"{name} is valid for Ollama but not supported by Llamarada", number)
        if name in {"PARAMETER", "MESSAGE"}:
            head = _WORD_THEN_REST.fullmatch(rest)
            if head is None or not head.group(2):
                what = "a name and a value" if name == "PARAMETER" else "a role and a content"
                raise self.error(f"{name} needs {what}", number)
            key, value = head.group(1), self.value(head.group(2), name, number)
            if name == "PARAMETER":
                self.parameter(key, value, number)
            elif key not in MESSAGE_ROLES:
                raise self.error(f"MESSAGE role must be one of {', '.join(MESSAGE_ROLES)}", number)
            else:
                self.messages.append(Message(key, value))
            return
        value = self.value(rest, name, number)
        if name == "FROM":
            if self.base is not None:
                raise self.error("FROM given twice: one base model per Modelfile", number)
            self.base = value
        elif name == "ADAPTER":
            if self.adapter is not None:
                raise self.error("ADAPTER given twice: Llamarada applies one adapter", number)
            self.adapter = value
        elif name in {"SYSTEM", "TEMPLATE"}:
            if getattr(self, name.lower()) is not None:
                self.warnings.append(f"line {number}: {name} given again; the last one is used")
            setattr(self, name.lower(), value)
        elif name == "LICENSE":
            self.licenses.append(value)
        else:
            self.requires = value

    def value(self, rest: str, name: str, number: int) -> str:
        """Read a value that starts on the current line, following quotes over lines."""
        buffer = rest.lstrip()
        if not buffer.strip():
            raise self.error(f"{name} needs a value", number)
        quote = '"""' if buffer.startswith('"""') else '"' if buffer.startswith('"') else ""
        if not quote:
            return buffer.rstrip()
        # Like Ollama: the value ends at the first line after which the text ends in the quote.
        while not ((closed := buffer.rstrip()).endswith(quote) and len(closed) >= 2 * len(quote)):
            if self.index >= len(self.lines):
                raise self.error(f"{name} opens {quote} that is never closed", number)
            buffer = f"{buffer}\n{self.lines[self.index]}"
            self.index += 1
        return closed[len(quote) : -len(quote)]

    def parameter(self, key: str, raw: str, number: int) -> None:
        if key in DEPRECATED_PARAMETERS:
            self.warnings.append(f"line {number}: parameter {key} is deprecated and ignored")
            return
        value: ParameterValue
        if key in INT_PARAMETERS and _INT.fullmatch(raw):
            value = int(raw)
        elif key in FLOAT_PARAMETERS and _FLOAT.fullmatch(raw):
            value = float(raw)
        elif key in BOOL_PARAMETERS and raw in _TRUE | _FALSE:
            value = raw in _TRUE
        elif key in LIST_PARAMETERS:
            previous = self.parameters.get(key, ())
            value = (*previous, raw) if isinstance(previous, tuple) else (raw,)
        else:
            kind = (
                "an integer"
                if key in INT_PARAMETERS
                else "a number"
                if key in FLOAT_PARAMETERS
                else "true or false"
                if key in BOOL_PARAMETERS
                else None
            )
            if kind is None:
                raise self.error(f"unknown parameter {key!r}", number)
            raise self.error(f"PARAMETER {key} needs {kind}, got {raw!r}", number)
        self.parameters[key] = value


def _quote(value: str) -> str:
    if value and "\n" not in value and value == value.strip() and not value.startswith('"'):
        return value
    if "\n" not in value and not value.startswith('"'):
        return f'"{value}"'
    if '"""' in value:
        raise ModelfileError('a value containing """ cannot be written to a Modelfile')
    return f'"""{value}"""'


def _format_parameter(value: int | float | bool | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    return repr(value)
