"""Manual page sources (troff with the man macros) to plain text in sections and option entries.

Enough of troff for the pages Debian ships: `.TH` names the page, `.SH`/`.SS` open sections,
`.TP` and `.IP` open tagged entries (each option becomes its own section), font macros and
escapes become plain text, and other requests are dropped.
"""

from __future__ import annotations

import re
import shlex

from app.rag.markup import HEADING_SEPARATOR

_REQUEST = re.compile(r"^[.'][ \t]*(\w+|\\\")[ \t]*(.*)$")
_FONT_ALTERNATING = frozenset({"BR", "BI", "IB", "IR", "RB", "RI"})
_FONT_SINGLE = frozenset({"B", "I", "SM", "SB"})
_PARAGRAPH = frozenset({"PP", "LP", "P", "sp", "HP"})
_NAMED = {
    "aq": "'", "dq": '"', "em": "—", "en": "\u2013", "hy": "-", "lq": "“", "rq": "”",
    "oq": "\u2018", "cq": "\u2019", "bu": "•", "co": "©", "rg": "®", "tm": "™", "mi": "-",
    "ga": "`", "ti": "~", "ha": "^", "rs": "\\", "pc": "·", "mu": "\u00d7", "de": "°",
    "<=": "≤", ">=": "≥", "->": "→",
}  # fmt: skip
_ESCAPE = re.compile(
    r"\\(?:f(?:\[[^\]]*\]|\(..|.)"  # font changes
    r"|\*(?:\[[^\]]*\]|\(..|.)"  # strings
    r"|\((..)|\[([^\]]*)\]"  # named characters
    r"|[sv](?:[-+]?\d+|'[^']*')"  # size and vertical moves
    r"|(.))"  # one-character escapes
)
_SIMPLE = {
    "-": "-", "e": "\\", "&": "", "|": "", "^": "", " ": " ", "~": " ", "0": " ", "c": "",
    "/": "", ",": "", ":": "", "%": "",
}  # fmt: skip

TroffSection = tuple[str, str]  # heading path, text


def is_troff(text: str) -> bool:
    """Whether text is a manual page's source: a `.TH` line and `.SH` sections."""
    head = text[:50_000]
    return bool(re.search(r"^\.TH\s", head, re.M)) and len(re.findall(r"^\.SH\b", head, re.M)) >= 2


def plain(text: str) -> str:
    """Troff escapes of one line as the characters they print."""

    def replace(match: re.Match[str]) -> str:
        two, bracketed, single = match.group(1), match.group(2), match.group(3)
        if two is not None or bracketed is not None:
            return _NAMED.get(two or bracketed or "", "")
        if single is not None:
            return _SIMPLE.get(single, single)
        return ""  # fonts, strings, sizes

    return _ESCAPE.sub(replace, text)


def troff_sections(source: str) -> list[TroffSection]:
    """The page's text, section by section: `PAGE(1) > SECTION > -a, --all` and its text."""
    page = ""
    path: list[str] = []
    tag: str | None = None
    awaiting_tag = False
    bare = False  # only a section's title so far: it stays with the entry that follows
    lines: list[str] = []
    sections: list[TroffSection] = []

    def close() -> None:
        if bare:
            return
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
        if text:
            titles = [page, *path, *([tag] if tag else [])]
            sections.append((HEADING_SEPARATOR.join(t for t in titles if t), text))
        lines.clear()

    for raw in source.splitlines():
        request, args = _split(raw)
        if request is None:
            text = plain(raw)
        elif request in ('\\"', "de", "ig"):
            continue
        elif request == "TH":
            words = _args(args)
            page = f"{words[0]}({words[1]})" if len(words) > 1 else (words[0] if words else "")
            continue
        elif request in ("SH", "SS"):
            close()
            title = " ".join(plain(word) for word in _args(args))
            path = [title] if request == "SH" else [*path[:1], title]
            tag, awaiting_tag, bare = None, False, True
            lines.append(title)
            continue
        elif request == "TP":
            close()
            tag, awaiting_tag, bare = None, True, False
            continue
        elif request == "IP":
            words = _args(args)
            if words and words[0].strip():
                close()
                tag, bare = plain(words[0]), False
                lines.append(tag)
            continue
        elif request in _PARAGRAPH:
            if tag is not None and request != "sp":
                close()  # the tagged entry is over: the section's prose again
                tag = None
            lines.append("")
            continue
        elif request == "br":
            lines.append("")
            continue
        elif request in _FONT_SINGLE:
            text = " ".join(plain(word) for word in _args(args))
        elif request in _FONT_ALTERNATING:
            text = "".join(plain(word) for word in _args(args))
        else:
            continue  # layout requests (.RS, .nf, .in, ...) print nothing
        if awaiting_tag:
            tag, awaiting_tag = text.strip(), False
        bare = bare and not text.strip()
        lines.append(text)
    close()
    return sections


def _split(line: str) -> tuple[str | None, str]:
    """(request name, its arguments) for a control line, (None, "") for text."""
    match = _REQUEST.match(line)
    if not match:
        return None, ""
    name, rest = match.group(1), match.group(2)
    if name in ("if", "ie", "el"):
        # `.if COND .BR -d ", " --debug`: keep what the condition guards when it is a request.
        guarded = rest.split(None, 1)[1] if name != "el" and " " in rest.strip() else rest
        guarded = guarded.strip()
        return _split(guarded) if guarded.startswith(".") else ("ignored", "")
    return name, rest


def _args(text: str) -> list[str]:
    """A request's arguments, quoted ones kept whole."""
    try:
        return shlex.split(text.replace("\\", "\\\\"), posix=True)
    except ValueError:  # an unbalanced quote: split on blanks
        return text.split()
