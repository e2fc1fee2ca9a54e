"""Tests for app.finetune: reading CSV/JSONL pairs, validating them, writing training JSONL."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.finetune import (
    Example,
    FinetuneError,
    Problem,
    estimate_tokens,
    prepare,
    read_examples,
    render,
    run_prepare,
    split,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "finetune"
PAIR = Example(
    1,
    (
        ("user", "¿Qué es un contrato de arrendamiento?"),
        ("assistant", "Un contrato de arrendamiento es un acuerdo legal..."),
    ),
)


def written(path: Path) -> list[str]:
    """The `text` of each line of a training JSONL file."""
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_render_llama3_is_the_seed_template() -> None:
    assert render(PAIR, "llama3") == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
        "¿Qué es un contrato de arrendamiento?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
        "Un contrato de arrendamiento es un acuerdo legal...<|eot_id|>"
    )


def test_render_llama3_puts_the_system_header_first() -> None:
    example = Example(1, (("system", "Eres abogado."), *PAIR.messages))
    assert render(example, "llama3").startswith(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEres abogado.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n"
    )


def test_render_chatml() -> None:
    example = Example(1, (("system", "Eres abogado."), *PAIR.messages))
    assert render(example, "chatml") == (
        "<|im_start|>system\nEres abogado.<|im_end|>\n"
        "<|im_start|>user\n¿Qué es un contrato de arrendamiento?<|im_end|>\n"
        "<|im_start|>assistant\nUn contrato de arrendamiento es un acuerdo legal...<|im_end|>"
    )


def test_prepare_good_csv_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    report = prepare(DATA / "good.csv", out)
    assert (report.rows, report.train, report.validation, report.skipped) == (3, 3, 0, 0)
    assert report.outputs == [out]
    texts = written(out)
    assert texts[0] == render(
        Example(
            2,
            (
                ("user", "¿Qué es un contrato de arrendamiento?"),
                (
                    "assistant",
                    "Un contrato de arrendamiento es un acuerdo legal entre un arrendador y un "
                    "arrendatario...",
                ),
            ),
        ),
        "llama3",
    )
    assert "<|start_header_id|>system" not in texts[1]
    assert texts[2].startswith(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Eres un experto en derecho corporativo mexicano.<|eot_id|>"
    )
    assert "Está regulada por la Ley General" in texts[2]
    assert "México" in out.read_text(encoding="utf-8")  # written as UTF-8, not \\u escapes


def test_prepare_bad_csv_reports_each_row_by_line(tmp_path: Path) -> None:
    report = prepare(DATA / "bad.csv", tmp_path / "train.jsonl")
    assert [str(p) for p in report.problems] == [
        "line 3: prompt is empty",
        "line 4: response is empty",
        "line 8: duplicate of line 2",
        "line 9: 3 fields where the header has 2",
        "line 10: response contains the special token <|eot_id|>",
    ]
    assert (report.rows, report.train, report.skipped) == (8, 3, 5)
    assert "¿Qué es un\npagaré?" in written(tmp_path / "train.jsonl")[1]


def test_prepare_csv_without_the_columns_names_them(tmp_path: Path) -> None:
    with pytest.raises(FinetuneError, match=r"missing columns prompt, response \(found pregunta"):
        prepare(DATA / "missing_columns.csv", tmp_path / "train.jsonl")


def test_prepare_good_jsonl_accepts_pairs_and_messages(tmp_path: Path) -> None:
    report = prepare(DATA / "good.jsonl", tmp_path / "train.jsonl", template="chatml")
    assert (report.rows, report.train, report.skipped) == (4, 4, 0)
    texts = written(tmp_path / "train.jsonl")
    assert texts[1].startswith("<|im_start|>system\nResponde en una línea.<|im_end|>\n")
    assert texts[2].count("<|im_start|>assistant\n") == 2
    assert texts[2].endswith(
        "<|im_start|>assistant\nUna sociedad de responsabilidad limitada.<|im_end|>"
    )


def test_prepare_bad_jsonl_reports_each_row_by_line(tmp_path: Path) -> None:
    report = prepare(DATA / "bad.jsonl", tmp_path / "train.jsonl")
    assert [str(p) for p in report.problems] == [
        "line 2: invalid JSON: Expecting value at column 43",
        "line 3: expected a JSON object",
        "line 4: missing field response (or give 'messages')",
        "line 5: response is empty",
        "line 6: messages[0] needs a role of system, user, assistant",
        "line 7: turns must alternate user, assistant and end with the assistant",
        "line 8: a system message may only come first",
        "line 9: 'messages' must be a non-empty list",
        "line 10: prompt must be text, got int",
        "line 11: duplicate of line 1",
    ]
    assert report.train == 2


def test_prepare_rejects_rows_over_num_ctx(tmp_path: Path) -> None:
    report = prepare(
        DATA / "good.csv",
        tmp_path / "t.jsonl",
        num_ctx=70,
        count_tokens=lambda text: len(text) // 4,
    )
    assert report.train == 2
    assert [str(p) for p in report.problems] == ["line 4: 101 tokens, over num_ctx 70"]


def test_prepare_strict_writes_nothing_when_a_row_is_bad(tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    with pytest.raises(FinetuneError, match="5 bad rows, nothing written") as caught:
        prepare(DATA / "bad.csv", out, strict=True)
    assert "line 3: prompt is empty" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_prepare_without_usable_rows_fails(tmp_path: Path) -> None:
    source = tmp_path / "empty.csv"
    source.write_text("prompt,response\n,\n")
    with pytest.raises(FinetuneError, match="no usable rows"):
        prepare(source, tmp_path / "train.jsonl")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("data.txt", b"prompt,response\n", "expected a .csv or .jsonl file"),
        ("data.csv", "prompt,response\ná,b\n".encode("latin-1"), "is not UTF-8 text"),
        ("missing.csv", None, "cannot read"),
    ],
)
def test_prepare_unreadable_input_fails(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(FinetuneError, match=message):
        prepare(tmp_path / name, tmp_path / "train.jsonl")


def test_prepare_splits_train_and_validation_reproducibly(tmp_path: Path) -> None:
    source = tmp_path / "many.jsonl"
    rows = [{"prompt": f"pregunta {n}", "response": f"respuesta {n}"} for n in range(50)]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = prepare(source, tmp_path / "train.jsonl", validation_fraction=0.2, seed=7)
    again = prepare(source, tmp_path / "again.jsonl", validation_fraction=0.2, seed=7)
    other = prepare(source, tmp_path / "other.jsonl", validation_fraction=0.2, seed=8)
    validation = tmp_path / "train.validation.jsonl"
    assert report.outputs == [tmp_path / "train.jsonl", validation]
    assert (report.train, report.validation) == (40, 10)
    assert written(validation) == written(tmp_path / "again.validation.jsonl")
    assert written(validation) != written(tmp_path / "other.validation.jsonl")
    assert (again.train, other.validation) == (40, 10)
    everything = written(tmp_path / "train.jsonl") + written(validation)
    assert sorted(everything) == sorted(written(tmp_path / "again.jsonl") + written(validation))
    assert len(set(everything)) == 50
    numbers = [int(t.split("pregunta ")[1].split("<")[0]) for t in written(validation)]
    assert numbers == sorted(numbers)  # input order is kept


@pytest.mark.parametrize(
    ("count", "fraction", "expected"), [(2, 0.1, 1), (10, 0.5, 5), (3, 0.99, 2)]
)
def test_split_keeps_at_least_one_row_on_each_side(
    count: int, fraction: float, expected: int
) -> None:
    examples = [Example(n, PAIR.messages) for n in range(count)]
    train, validation = split(examples, fraction, seed=1)
    assert len(validation) == expected
    assert len(train) == count - expected


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_split_rejects_fraction_outside_zero_one(fraction: float) -> None:
    with pytest.raises(FinetuneError, match="validation fraction"):
        split([PAIR], fraction, seed=1)


def test_run_prepare_takes_num_ctx_and_system_from_a_modelfile(tmp_path: Path) -> None:
    report = run_prepare(
        DATA / "good.jsonl",
        tmp_path / "out.jsonl",
        modelfile=REPO / "models" / "abogado-mx" / "Modelfile",
    )
    assert report.num_ctx == 4096
    texts = written(tmp_path / "out.jsonl")
    system_header = (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Eres un experto en derecho corporativo mexicano.\nProporciona respuestas precisas"
    )
    assert texts[0].startswith(system_header)
    assert "Responde en una línea." in texts[1]  # a row's own system prompt wins
    summary = report.summary()
    assert summary.startswith(
        f"{DATA / 'good.jsonl'}: 4 rows read, 4 train, 0 validation, 0 skipped"
    )
    assert f"wrote {tmp_path / 'out.jsonl'}" in summary


def test_run_prepare_explicit_values_beat_the_modelfile(tmp_path: Path) -> None:
    report = run_prepare(
        DATA / "good.csv",
        tmp_path / "out.jsonl",
        template="chatml",
        num_ctx=100,
        system="Sé breve.",
        validation=0.5,
        seed=3,
        modelfile=REPO / "models" / "abogado-mx" / "Modelfile",
    )
    assert (report.num_ctx, report.template) == (100, "chatml")
    assert report.train + report.validation + report.skipped == 3


def test_run_prepare_rejects_unknown_template(tmp_path: Path) -> None:
    with pytest.raises(FinetuneError, match="unknown template 'alpaca'"):
        run_prepare(DATA / "good.csv", tmp_path / "out.jsonl", template="alpaca")


def test_estimate_tokens_counts_special_tokens_once() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("<|eot_id|>") == 1
    assert estimate_tokens("abcd<|im_end|>") == 3


def test_read_examples_reports_problems_without_raising(tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text('{"prompt": "a", "response": "b"}\nnot json\n')
    examples, problems = read_examples(source, default_system="S")
    assert examples == [Example(1, (("system", "S"), ("user", "a"), ("assistant", "b")))]
    assert problems == [Problem(2, "invalid JSON: Expecting value at column 1")]


_CELL = st.text(
    alphabet=st.characters(
        codec="utf-8", categories=("L", "N", "P", "Zs"), include_characters='\n,"'
    ),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip() and "<|" not in s)


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_CELL, _CELL), min_size=1, max_size=8))
def test_read_examples_csv_round_trips_any_quoted_text(
    tmp_path: Path, rows: list[tuple[str, str]]
) -> None:
    source = tmp_path / "rows.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "response"])
        writer.writerows(rows)
    examples, problems = read_examples(source)
    assert problems == []
    assert [e.messages for e in examples] == [
        (("user", p.strip()), ("assistant", r.strip())) for p, r in rows
    ]
    # Each example's line is where its record starts: fields may hold newlines.
    starts = [2]
    for prompt, response in rows[:-1]:
        starts.append(starts[-1] + 1 + prompt.count("\n") + response.count("\n"))
    assert [e.line for e in examples] == starts
