"""The semantic cache's guards: near-misses vetoed whatever their similarity, paraphrases kept."""

from __future__ import annotations

import pytest

from app.core.paraphrase import traits, veto


@pytest.mark.parametrize(
    ("first", "second", "reason"),
    [
        ("Convert 5 miles to kilometers.", "Convert 50 miles to kilometers.", "number"),
        ("List three benefits of exercise.", "List 3 benefits of exercise.", None),
        ("Is coffee good for you?", "Isn't coffee good for you?", "negation"),
        ("¿Qué frutas tienen vitamina C?", "¿Qué frutas no tienen vitamina C?", "negation"),
        ("Who wrote Hamlet?", "Who wrote Macbeth?", "entity"),
        ("How many grams are in a pound?", "How many grams are in an ounce?", "entity"),
        ("Convert 30 Celsius to Fahrenheit.", "Convert 30 Fahrenheit to Celsius.", "direction"),
        ("Traduce hola del español al inglés.", "Traduce hola del inglés al español.", "direction"),
        ("What is the fastest land animal?", "What is the slowest land animal?", "polarity"),
        ("What is the capital of France?", "¿Cuál es la capital de Francia?", "language"),
        ("What is the capital of France?", "Which city is the capital of France?", None),
        ("¿Cómo hiervo un huevo?", "¿Cuál es la forma de hervir un huevo?", None),
    ],
)
def test_veto_names_the_guard_that_objects(first: str, second: str, reason: str | None) -> None:
    assert veto(traits(first), traits(second)) == reason
    assert veto(traits(second), traits(first)) == reason


def test_traits_reads_numbers_in_words_and_digits_alike() -> None:
    assert traits("three apples").numbers == traits("3 apples").numbers == ("3",)
    assert traits("tres manzanas").numbers == ("3",)
