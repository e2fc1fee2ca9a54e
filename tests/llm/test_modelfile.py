"""Tests for app.llm.modelfile: Ollama's Modelfile grammar, typed parameters, errors, the loader."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.llm.modelfile import (
    Message,
    Modelfile,
    ModelfileError,
    load_models,
    parse_modelfile,
    read_modelfile,
)

REPO = Path(__file__).resolve().parents[2]
SEED_SYSTEM = (
    "\nEres un experto en derecho corporativo mexicano.\n"
    "Proporciona respuestas precisas, citando artículos cuando sea posible.\n"
    "Usa un tono profesional pero accesible.\n"
)


def test_modelfile_abogado_mx_is_the_seed_model() -> None:
    model = read_modelfile(REPO / "models" / "abogado-mx" / "Modelfile")
    assert model.base == "llama3.1:8b"
    assert model.parameters == {"temperature": 0.5, "num_ctx": 4096}
    assert model.num_ctx == 4096
    assert model.system == SEED_SYSTEM
    assert model.adapter is None
    assert model.warnings == ()


def test_load_models_names_models_after_their_folders() -> None:
    models = load_models(REPO / "models")
    assert {"abogado-mx", "asistente"} <= set(models)
    assert models["asistente"].base == "smollm2:135m"


def test_load_models_missing_folder_is_empty(tmp_path: Path) -> None:
    assert load_models(tmp_path / "nothing-here") == {}


def test_load_models_rejects_folder_that_is_no_model_name(tmp_path: Path) -> None:
    (tmp_path / "Mi Modelo").mkdir()
    (tmp_path / "Mi Modelo" / "Modelfile").write_text("FROM llama3.1:8b\n")
    with pytest.raises(ModelfileError, match="not a valid model name"):
        load_models(tmp_path)


def test_load_models_error_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "roto").mkdir()
    (tmp_path / "roto" / "Modelfile").write_text("FROM llama3.1:8b\n\nPARAMETER num_ctx mucho\n")
    with pytest.raises(ModelfileError) as caught:
        load_models(tmp_path)
    assert caught.value.line == 3
    assert str(caught.value).startswith(f"{tmp_path / 'roto' / 'Modelfile'}:3: ")
    assert "needs an integer, got 'mucho'" in str(caught.value)


def test_parse_modelfile_types_every_parameter_kind() -> None:
    model = parse_modelfile(
        "from llama3.1:8b\n"
        "parameter num_ctx 8192\n"
        "PARAMETER temperature 1\n"
        "PARAMETER top_p .9\n"
        "PARAMETER use_mmap false\n"
        'PARAMETER stop "<|eot_id|>"\n'
        "PARAMETER stop <|start_header_id|>\n"
    )
    assert model.parameters == {
        "num_ctx": 8192,
        "temperature": 1.0,
        "top_p": 0.9,
        "use_mmap": False,
        "stop": ("<|eot_id|>", "<|start_header_id|>"),
    }
    assert isinstance(model.parameters["temperature"], float)
    assert model.options()["stop"] == ["<|eot_id|>", "<|start_header_id|>"]


def test_parse_modelfile_keeps_every_instruction() -> None:
    model = parse_modelfile(
        "# comment\n"
        "  FROM ./base.gguf  \n"
        "ADAPTER ./lora.gguf\n"
        'TEMPLATE """{{ .System }}\n{{ .Prompt }}"""\n'
        "SYSTEM Eres breve.\n"
        'LICENSE """MIT\nline two"""\n'
        "LICENSE Apache-2.0\n"
        "MESSAGE user ¿Qué es una S.A.?\n"
        'MESSAGE assistant "Una sociedad anónima."\n'
        "REQUIRES 0.6.0\n"
    )
    assert model.base == "./base.gguf"
    assert model.base_is_local
    assert model.adapter == "./lora.gguf"
    assert model.template == "{{ .System }}\n{{ .Prompt }}"
    assert model.system == "Eres breve."
    assert model.licenses == ("MIT\nline two", "Apache-2.0")
    assert model.messages == (
        Message("user", "¿Qué es una S.A.?"),
        Message("assistant", "Una sociedad anónima."),
    )
    assert model.requires == "0.6.0"


def test_parse_modelfile_deprecated_parameter_is_dropped_with_warning() -> None:
    model = parse_modelfile("FROM m\nPARAMETER mirostat 1\n")
    assert model.parameters == {}
    assert model.warnings == ("line 2: parameter mirostat is deprecated and ignored",)


def test_parse_modelfile_repeated_system_keeps_last_with_warning() -> None:
    model = parse_modelfile("FROM m\nSYSTEM uno\nSYSTEM dos\n")
    assert model.system == "dos"
    assert "line 3: SYSTEM given again" in model.warnings[0]


def test_parse_modelfile_crlf_and_bom_are_accepted() -> None:
    model = parse_modelfile('\ufeffFROM m\r\nSYSTEM """a\r\nb"""\r\n')
    assert model.system == "a\nb"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", None, "no FROM line"),
        ("# only a comment\n", None, "no FROM line"),
        ("FROM m\nSISTEMA hola\n", 2, "unknown instruction 'SISTEMA'"),
        ("FROM m\nFROM n\n", 2, "FROM given twice"),
        ("FROM m\nADAPTER a\nADAPTER b\n", 3, "ADAPTER given twice"),
        ("FROM m\nSYSTEM\n", 2, "SYSTEM needs a value"),
        ("FROM m\nPARAMETER num_ctx\n", 2, "PARAMETER needs a name and a value"),
        ("FROM m\nPARAMETER num_ctx 4k\n", 2, "needs an integer, got '4k'"),
        ("FROM m\nPARAMETER num_ctx 1_000\n", 2, "needs an integer"),
        ("FROM m\nPARAMETER temperature caliente\n", 2, "needs a number"),
        ("FROM m\nPARAMETER temperature nan\n", 2, "needs a number"),
        ("FROM m\nPARAMETER use_mmap yes\n", 2, "needs true or false"),
        ("FROM m\nPARAMETER creatividad 9\n", 2, "unknown parameter 'creatividad'"),
        ("FROM m\nMESSAGE bot hola\n", 2, "MESSAGE role must be one of"),
        ("FROM m\nMESSAGE user\n", 2, "MESSAGE needs a role and a content"),
        ('FROM m\n\nSYSTEM """\nnunca se cierra\n', 3, 'SYSTEM opens """ that is never closed'),
        ('FROM m\nSYSTEM "abierto\n', 2, 'SYSTEM opens " that is never closed'),
        ("FROM m\nDRAFT ./d.gguf\n", 2, "not supported by Llamarada"),
    ],
)
def test_parse_modelfile_error_names_the_line(text: str, line: int | None, message: str) -> None:
    with pytest.raises(ModelfileError, match=message) as caught:
        parse_modelfile(text, source="Modelfile")
    assert caught.value.line == line
    assert caught.value.source == "Modelfile"


def test_modelfile_create_request_is_ollama_create_body() -> None:
    model = read_modelfile(REPO / "models" / "abogado-mx" / "Modelfile")
    assert model.create_request("abogado-mx") == {
        "model": "abogado-mx",
        "stream": True,
        "from": "llama3.1:8b",
        "system": SEED_SYSTEM,
        "parameters": {"temperature": 0.5, "num_ctx": 4096},
    }


def test_modelfile_create_request_with_uploaded_files() -> None:
    model = parse_modelfile("FROM ./base.gguf\nADAPTER ./lora.gguf\nMESSAGE user hola\n")
    body = model.create_request(
        "mio", files={"base.gguf": "sha256:aa"}, adapters={"lora.gguf": "sha256:bb"}
    )
    assert "from" not in body
    assert body["files"] == {"base.gguf": "sha256:aa"}
    assert body["adapters"] == {"lora.gguf": "sha256:bb"}
    assert body["messages"] == [{"role": "user", "content": "hola"}]


def test_modelfile_create_request_refuses_adapter_not_uploaded() -> None:
    model = parse_modelfile("FROM llama3.1:8b\nADAPTER ./lora.gguf\n")
    with pytest.raises(ModelfileError, match="must be uploaded"):
        model.create_request("mio")


def test_modelfile_render_refuses_triple_quotes() -> None:
    with pytest.raises(ModelfileError, match='containing """'):
        Modelfile(base="m", system='say """\nhere').render()


_TEXT = st.text(
    alphabet=st.characters(
        codec="utf-8", categories=("L", "N", "P", "S", "Zs"), include_characters="\n"
    ),
    max_size=40,
).filter(lambda s: '"""' not in s)
_WORD = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S")), min_size=1, max_size=20
).filter(lambda s: '"""' not in s)


@given(
    base=_WORD,
    system=st.none() | _TEXT,
    template=st.none() | _TEXT,
    stops=st.lists(_TEXT, max_size=3),
    num_ctx=st.none() | st.integers(min_value=1, max_value=1 << 20),
    temperature=st.none() | st.floats(min_value=0, max_value=5, allow_nan=False),
    messages=st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), _TEXT)),
)
def test_modelfile_render_then_parse_round_trips(
    base: str,
    system: str | None,
    template: str | None,
    stops: list[str],
    num_ctx: int | None,
    temperature: float | None,
    messages: list[tuple[str, str]],
) -> None:
    parameters: dict[str, int | float | tuple[str, ...]] = {}
    if num_ctx is not None:
        parameters["num_ctx"] = num_ctx
    if temperature is not None:
        parameters["temperature"] = temperature
    if stops:
        parameters["stop"] = tuple(stops)
    model = Modelfile(
        base=base,
        parameters=parameters,
        system=system,
        template=template,
        messages=tuple(Message(role, content) for role, content in messages),
    )
    assert parse_modelfile(model.render()) == model
