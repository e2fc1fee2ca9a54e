"""Spanish or English: which analysis a chunk or a query gets, from its commonest words."""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Language = Literal["en", "es"]
LANGUAGES: tuple[Language, ...] = ("en", "es")

_WORD = re.compile(r"\w+")
# Function words of each language (folded); the share of them tells the language of a text.
_STOPWORDS: dict[Language, str] = {
    "en": """
        a about above after again all also am an and any are as at be because been before
        being below between both but by can could did do does doing down during each few for
        from further had has have having he her here hers him his how i if in into is it its
        itself just me more most my no nor not now of off on once only or other our out over own
        same she should so some such than that the their them then there these they this those
        through to too under until up very was we were what when where which while who whom why
        will with would you your
    """,
    "es": """
        a al algo algun alguna algunas alguno algunos ante antes aquel aquella aquellos aqui asi
        cada como con contra cual cuales cuando cuanto cuantos de del desde donde dos durante e
        el ella ellas ellos en entre era eran eres es esa esas ese eso esos esta estan estas este
        esto estos fue fueron ha habia han has hasta hay he la las le les lo los mas me mi mis
        mucho muy nada ni no nos nosotros o os otra otras otro otros para pero poco por porque
        puede pueden que quien quienes se sea segun ser si sido sin sobre son su sus tambien te
        tiene tienen todo todos tu tus un una unas uno unos usted y ya yo
    """,
}
STOPWORDS: dict[Language, frozenset[str]] = {
    language: frozenset(words.split()) for language, words in _STOPWORDS.items()
}
# Words of one language only: "de", "a", "no" and "me" say nothing on their own.
_MARKERS = {
    "en": STOPWORDS["en"] - STOPWORDS["es"],
    "es": STOPWORDS["es"] - STOPWORDS["en"],
}


# The accented letters of Spanish and its neighbours, folded without decomposing (fast path).
_LATIN = str.maketrans("áéíóúüñàèìòùâêîôûäëïöç", "aeiouunaeiouaeiouaeioc")


def fold(text: str) -> str:
    """Lower case without accents: "Canción" -> "cancion" (ñ becomes n too)."""
    lowered = text.casefold().translate(_LATIN)
    if lowered.isascii():
        return lowered
    decomposed = unicodedata.normalize("NFKD", lowered)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def detect(text: str) -> Language:
    """Spanish when its marks or function words outnumber English ones; English when unsure."""
    if any(mark in text for mark in "¿¡ñÑ"):
        return "es"
    words = _WORD.findall(fold(text))
    spanish = sum(word in _MARKERS["es"] for word in words)
    spanish += 2 * sum(text.count(vowel) for vowel in "áéíóú")
    english = sum(word in _MARKERS["en"] for word in words)
    return "es" if spanish > english else "en"
