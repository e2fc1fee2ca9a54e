"""Guards for the semantic cache: what two questions must share, whatever their similarity.

An embedding puts "5 km in miles" next to "50 km in miles" and "is it safe" next to "is it not
safe". These guards veto such pairs on surface facts an embedding blurs: the numbers, a negation,
the names and units and their order when a direction is stated, and the language. They are
deliberately strict: a vetoed paraphrase is only a miss, a wrong hit is a wrong answer.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WORD = re.compile(r"\d+(?:[.,:/]\d+)*%?|[^\W\d_]+(?:['\u2019][^\W\d_]+)?")
_SENTENCE_END = re.compile(r"[.!?¿¡:;\n]")

_NUMBER_WORDS = {
    **dict.fromkeys(("zero", "cero"), "0"),
    **dict.fromkeys(("one", "uno"), "1"),
    **dict.fromkeys(("two", "dos", "twice", "double", "doble"), "2"),
    **dict.fromkeys(("three", "tres", "thrice", "triple"), "3"),
    **dict.fromkeys(("four", "cuatro"), "4"),
    **dict.fromkeys(("five", "cinco"), "5"),
    **dict.fromkeys(("six", "seis"), "6"),
    **dict.fromkeys(("seven", "siete"), "7"),
    **dict.fromkeys(("eight", "ocho"), "8"),
    **dict.fromkeys(("nine", "nueve"), "9"),
    **dict.fromkeys(("ten", "diez"), "10"),
    **dict.fromkeys(("eleven",), "11"),
    **dict.fromkeys(("twelve", "doce", "dozen", "docena"), "12"),
    **dict.fromkeys(("fifteen", "quince"), "15"),
    **dict.fromkeys(("twenty", "veinte"), "20"),
    **dict.fromkeys(("thirty", "treinta"), "30"),
    **dict.fromkeys(("fifty", "cincuenta"), "50"),
    **dict.fromkeys(("hundred", "cien", "ciento"), "100"),
    **dict.fromkeys(("thousand", "mil"), "1000"),
    **dict.fromkeys(("million", "millón", "millon", "millones"), "1000000"),
    **dict.fromkeys(("half", "medio", "media", "mitad"), "0.5"),
    **dict.fromkeys(("first", "primer", "primero", "primera"), "#1"),
    **dict.fromkeys(("third", "tercer", "tercero", "tercera"), "#3"),
    **dict.fromkeys(("last", "último", "ultimo", "última", "ultima"), "#-1"),
}
# Left out: "un"/"una" (Spanish articles far more often than numbers), "once" (English "one
# time", Spanish "eleven").

_NEGATIONS = _words(
    "not no never none nobody nothing neither nor without cannot isn't aren't wasn't weren't "
    "don't doesn't didn't won't wouldn't can't couldn't shouldn't mustn't hasn't haven't "
    "nunca jamás jamas ni ningún ningun ninguno ninguna nada nadie sin tampoco"
)

_UNITS = {
    "km": "kilometer kilometers kilometre kilometres kilómetro kilómetros kilometro kilometros "
    "km kms",
    "mile": "mile miles milla millas",
    "m": "meter meters metre metres metro metros",
    "cm": "centimeter centimeters centímetro centímetros centimetro centimetros cm",
    "mm": "millimeter millimeters milímetro milímetros mm",
    "inch": "inch inches pulgada pulgadas",
    "foot": "foot feet pie pies ft",
    "yard": "yard yards yarda yardas",
    "kg": "kilogram kilograms kilogramo kilogramos kilo kilos kg",
    "g": "gram grams gramo gramos",
    "lb": "pound pounds libra libras lb lbs",
    "oz": "ounce ounces onza onzas oz",
    "l": "liter liters litre litres litro litros",
    "ml": "milliliter milliliters mililitro mililitros ml",
    "gal": "gallon gallons galón galones galon",
    "c": "celsius centigrade centígrados centigrados",
    "f": "fahrenheit",
    "k": "kelvin kelvins",
    "s": "seconds segundos",
    "min": "minute minutes minuto minutos",
    "h": "hour hours hora horas",
    "day": "day days día días dia dias",
    "week": "week weeks semana semanas",
    "month": "month months mes meses",
    "year": "year years año años",
    "usd": "dollar dollars dólar dólares dolar dolares usd",
    "eur": "euro euros eur",
    "gbp": "sterling gbp",
    "mxn": "peso pesos mxn",
    "jpy": "yen jpy",
    "%": "percent percentage porcentaje",
    "byte": "byte bytes",
    "kb": "kilobyte kilobytes kb",
    "mb": "megabyte megabytes mb",
    "gb": "gigabyte gigabytes gb",
    "tb": "terabyte terabytes tb",
    "mph": "mph",
    "kmh": "kmh",
    "w": "watt watts vatio vatios",
    "v": "volt volts voltio voltios",
    "cal": "calorie calories caloría calorías caloria calorias kcal",
}
_UNIT_OF = {word: unit for unit, words in _UNITS.items() for word in words.split()}

# Named languages count as names, in both languages ("from English to French", "del español
# al inglés").
_LANGUAGE_NAMES = {
    "en": "english inglés ingles",
    "es": "spanish español espanol castellano",
    "fr": "french francés frances",
    "de": "german alemán aleman",
    "it": "italian italiano",
    "pt": "portuguese portugués portugues",
    "zh": "chinese chino mandarin mandarín",
    "ja": "japanese japonés japones",
    "ru": "russian ruso",
    "ar": "arabic árabe arabe",
}
_LANGUAGE_OF = {word: code for code, words in _LANGUAGE_NAMES.items() for word in words.split()}

# Opposite ends of one scale: "the fastest" and "the slowest" embed almost alike, and "lower"
# and "raise", "benefits" and "risks". A question keeps its ends, or is another question.
_POLES = {
    "amount+": "increase increases raise higher more most up rise grow gain aumentar aumento "
    "subir subo sube más mayor incrementar",
    "amount-": "decrease decreases lower less least fewer down fall reduce lose bajar bajo baja "
    "menos menor reducir disminuir",
    "speed+": "fast faster fastest quick quickly rápido rápida rápidos rapido",
    "speed-": "slow slower slowest lento lenta lentos",
    "size+": "big bigger biggest large larger largest huge grande grandes enorme",
    "size-": "small smaller smallest little tiny pequeño pequeña pequeños chico",
    "quality+": "good better best bueno buena mejor mejores",
    "quality-": "bad worse worst malo mala peor peores",
    "price+": "expensive pricey caro cara costoso",
    "price-": "cheap cheaper cheapest barato barata económico",
    "heat+": "hot hotter warm caliente calor cálido",
    "heat-": "cold colder cool frío fría frio",
    "change+": "add create install insert añadir añado agregar agrego crear creo instalar",
    "change-": "delete remove uninstall drop borrar borro eliminar elimino quitar quito "
    "desinstalar",
    "sense+": "synonym synonyms sinónimo sinónimos sinonimo",
    "sense-": "antonym antonyms antónimo antónimos antonimo opposite contrario",
    "outcome+": "benefit benefits advantage advantages pros beneficio beneficios ventaja ventajas",
    "outcome-": "risk risks disadvantage disadvantages cons danger dangers riesgo riesgos "
    "desventaja desventajas peligro peligros",
    "time+": "after later después despues",
    "time-": "before earlier antes",
}
_POLE_OF = {word: pole for pole, words in _POLES.items() for word in words.split()}

# Words that mark a direction: with one present, names and units count in their order.
_DIRECTIONS = _words(
    "from to into than vs versus before after de desde a al hacia hasta en que antes después "
    "despues"
)

# Capitalised at a sentence's start for grammar's sake, not because they name something.
_COMMON = _words(
    "what whats what's how who whom whose why when where which is are was were do does did can "
    "could would should will shall may might tell give list write explain describe name show "
    "please the a an in on at of for to and or but if i my me we our you your it its this that "
    "these those there here translate summarize compare define find convert calculate help let "
    "qué que cómo como quién quien quiénes cuál cual cuáles cuales cuándo cuando dónde donde "
    "por porque cuánto cuanto cuánta cuanta cuántos cuantos cuántas cuantas es son fue era hay "
    "puedes podrías podrias dime dame haz escribe explica explícame explicame describe nombra "
    "muestra el la los las lo un una unos unas en de del para y o pero si yo mi me nosotros tu "
    "tú usted este esta estos estas eso esa ese traduce resume compara define encuentra "
    "convierte calcula ayúdame ayudame necesito quiero sabes"
)

_ENGLISH = _words(
    "the is are was what how who why when where which do does can you of and to in it this that "
    "with for on my your a an be have has there not"
)
_SPANISH = _words(
    "el la los las es son qué que cómo como quién por cuál cuando dónde de y en un una para con "
    "mi tu se lo del al hay no más está están puedo puedes"
)


@dataclass(frozen=True)
class Traits:
    """The surface facts of a question that its answer depends on."""

    numbers: tuple[str, ...]
    negated: bool
    names: tuple[str, ...]  # named entities, languages and units, in the order they appear
    poles: tuple[str, ...]  # ends of scales named (fastest, lower, risks...), sorted
    directed: bool
    language: str  # "en", "es" or "" when it cannot tell


def _fold(word: str) -> str:
    return unicodedata.normalize("NFC", word.casefold())


def traits(text: str) -> Traits:
    """The traits of a question."""
    numbers: list[str] = []
    names: list[str] = []
    poles: set[str] = set()
    negated = directed = False
    english = spanish = 0
    marks = sum(text.count(c) for c in "ñ¿¡áéíóú")
    for sentence in _SENTENCE_END.split(text):
        for index, match in enumerate(_WORD.finditer(sentence)):
            word = match.group()
            folded = _fold(word)
            english += folded in _ENGLISH
            spanish += folded in _SPANISH
            if word[0].isdigit():
                numbers.append(word.replace(",", "."))
            elif folded in _NUMBER_WORDS:
                numbers.append(_NUMBER_WORDS[folded])
            elif folded.endswith("n't") or folded.endswith("n\u2019t") or folded in _NEGATIONS:
                negated = True
            elif folded in _UNIT_OF:
                names.append("unit:" + _UNIT_OF[folded])
            elif folded in _LANGUAGE_OF:
                names.append("language:" + _LANGUAGE_OF[folded])
            elif word[0].isupper() and (index > 0 or folded not in _COMMON):
                names.append(folded)
            if folded in _DIRECTIONS:
                directed = True
            if folded in _POLE_OF:
                poles.add(_POLE_OF[folded])
    spanish += marks
    language = "en" if english > spanish else "es" if spanish > english else ""
    return Traits(
        tuple(sorted(numbers)), negated, tuple(names), tuple(sorted(poles)), directed, language
    )


def veto(a: Traits, b: Traits) -> str | None:
    """Why two questions must not share an answer, or None when no guard objects."""
    if a.language != b.language:
        return "language"
    if a.numbers != b.numbers:
        return "number"
    if a.negated != b.negated:
        return "negation"
    if set(a.names) != set(b.names):
        return "entity"
    if a.poles != b.poles:
        return "polarity"
    if (a.directed or b.directed) and a.names != b.names:
        return "direction"
    return None
