"""Normalised text and letter soup: tricks undone, real short words kept, soup refused."""

from __future__ import annotations

import random

import pytest

from plugins.gamification.domain.anti_abuse import fingerprint, similarity
from plugins.gamification.domain.text import (
    SOUP_LEVEL,
    comparable,
    content_length,
    is_letter_soup,
    normalise,
    soup_level,
)

SPAM = "Join my channel for free points every day and invite your friends"


@pytest.mark.parametrize(
    "variant",
    [
        "Jоіn mу сhаnnеl fоr frее роіnts еvеrу dау аnd іnvіtе уоur frіеnds",  # Cyrillic
        "Join\u3164my channel\u200b for free\u115f points every\ufe0f day and invite your friends",
        "friends your invite and day every points free for channel my Join",  # shuffled
        "ＪＯＩＮ ＭＹ ＣＨＡＮＮＥＬ for free points every day and invite your friends!!! 🔥🔥🔥",
        "J\u2060o\u2060i\u2060n my channel for free points every day and invite your friends",
    ],
)
def test_tricks_do_not_make_a_line_new(variant: str) -> None:
    assert comparable(variant) == comparable(SPAM)
    assert similarity(fingerprint(variant), fingerprint(SPAM)) == 1.0


def test_normalise_collapses_runs_and_drops_fillers() -> None:
    assert normalise("Hello!!!   🔥🔥 world...") == "hello world"
    assert normalise("\u3164\u200b") == ""
    assert content_length("o\u200b\u200bk") == 2
    assert content_length("a a a a a a") == 1
    assert content_length("ok") == 2


def test_long_texts_keep_their_word_order() -> None:
    words = [f"w{n}" for n in range(40)]
    assert comparable(" ".join(words)) != comparable(" ".join(reversed(words)))


@pytest.mark.parametrize(
    "text",
    [
        "ok",
        "lol",
        "да",
        "sí",
        "hola",
        "привет",
        "yes!",
        "+1",
        "nvm",
        "Привет всем, как дела? Сегодня отличная погода для прогулки",
        "Кто-нибудь знает, где купить хороший кофе в центре города?",
        "Hola a todos, ¿qué tal el fin de semana? Creo que mañana vamos a la playa",
        "No entiendo por qué el tren siempre llega tarde",
        "Guten Morgen zusammen, wie geht es euch heute?",
        "lmao that's hilarious, brb in 5 mins",
        "omg yesss finally the update is out!!",
        "lol xD nvm, figured it out myself",
        "check https://youtu.be/dQw4w9WgXcQ it is great",
        "Did you see the match last night? Crazy stuff",
        "ahahahaha no way",
        "我们明天去公园散步吧",
    ],
)
def test_real_text_is_not_soup(text: str) -> None:
    assert not is_letter_soup(text)


def test_random_letters_are_soup_in_latin_and_cyrillic() -> None:
    rng = random.Random(7)
    latin = "abcdefghijklmnopqrstuvwxyz"
    cyrillic = "абвгдежзийклмнопрстуфхцчшщъыьэюяё"
    for alphabet in (latin, cyrillic):
        soups = [
            "".join(rng.choice(alphabet) for _ in range(rng.randint(15, 40))) for _ in range(300)
        ]
        caught = sum(is_letter_soup(s) for s in soups) / len(soups)
        assert caught >= 0.97, f"{alphabet[:3]}: {caught:.1%}"


def test_dictionary_sentences_stay_below_the_soup_level() -> None:
    from benchmarks.farming import sentence

    rng = random.Random(3)
    levels = [soup_level(sentence(rng)) or 0.0 for _ in range(2000)]
    assert max(levels) < SOUP_LEVEL  # measured: 6.2 at most


def test_the_quick_soup_verdict_is_the_level_compared_with_the_threshold() -> None:
    """is_letter_soup stops at the first language that makes sense of a text, trying the
    last one that did first; whatever the order, its answer is soup_level's."""
    from benchmarks.farming import sentence

    rng = random.Random(11)
    letters = "abcdefghijklmnopqrstuvwxyzéñöабвгдежзийклмнопрстуфхцчшщыэюяієї"
    texts = [sentence(rng) for _ in range(300)]
    texts += [
        "".join(rng.choice(letters + "  ") for _ in range(rng.randint(5, 60))) for _ in range(600)
    ]
    texts += [
        "Ich habe heute keine Zeit, aber morgen gerne",
        "¿Dónde está la biblioteca? Necesito un libro",
        "Привет всем, кто идёт сегодня на встречу?",
        "Добрий вечір, ми з України",
        "mixed: hello друзья, comment ça va? x\u200by\u3164z",
    ]
    rng.shuffle(texts)  # the languages come in any order
    for text in texts:
        level = soup_level(text)
        assert is_letter_soup(text) == (level is not None and level > SOUP_LEVEL), text
