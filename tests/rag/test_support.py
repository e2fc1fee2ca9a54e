"""Unheld words: a question naming what no chunk holds, told from one in other words."""

from __future__ import annotations

import pytest

from app.rag.lexical import LexicalIndex
from app.rag.support import everyday, unheld_share, unheld_words

INDEX = LexicalIndex(
    [
        "logrotate rota, comprime y envía por correo los archivos de registro del sistema.",
        "The tmpfs filesystem keeps all its files in virtual memory.",
    ]
)


def test_a_rare_name_no_chunk_holds_is_unheld() -> None:
    content, unheld = unheld_words("How do I renew a certificate with certbot?", INDEX)
    assert unheld == ["certbot"]
    assert "renew" in content
    assert "how" not in content  # function words are not content


def test_everyday_words_the_documents_lack_are_not_unheld() -> None:
    # Other words than the documents', in either language: a paraphrase, not another topic.
    assert unheld_share("¿Cuánto espacio ocupa un disco lleno?", INDEX) == 0.0
    assert unheld_share("Where does a RAM-backed mount keep its data?", INDEX) == 0.0


def test_a_word_held_under_the_other_language_analysis_is_held() -> None:
    # "logrotate" is stemmed differently by each language; the Spanish chunk holds one form.
    assert unheld_share("What does logrotate compress?", INDEX) == 0.0


def test_the_share_counts_content_words() -> None:
    assert unheld_share("tmpfs timedatectl", INDEX) == pytest.approx(0.5)
    assert unheld_share("the of a", INDEX) == 0.0


def test_everyday_reads_both_languages() -> None:
    assert everyday("reloj")  # Spanish
    assert everyday("clock")  # English
    assert not everyday("timedatectl")


def test_a_name_in_capitals_or_with_digits_counts_whole_even_when_it_spells_a_word() -> None:
    # "TRIM" and "SSD" name things no chunk holds; "trim" alone would pass as everyday English.
    _, unheld = unheld_words("Which mount option turns on TRIM for an SSD?", INDEX)
    assert unheld == ["trim", "ssd"]
    assert unheld_share("How do I trim a log file?", INDEX) == 0.0
    _, unheld = unheld_words("What does mkfs.ext4 write first?", INDEX)
    assert unheld == ["mkfs.ext4"]  # one name, not two words


def test_a_name_the_documents_hold_is_held() -> None:
    assert unheld_words("Is TMPFS kept in memory?", INDEX)[1] == []
