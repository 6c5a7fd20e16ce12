"""What the anti-abuse rules compare: text normalised across tricks, and letter soup.

Rules never judge raw strings. `normalise` undoes the cheap ways of making one text look
new: compatibility forms (NFKC: full-width, ligatures, mathematical letters), invisible
and filler code points (zero-width characters, U+3164 HANGUL FILLER, U+115F/U+1160,
U+FFA0, variation selectors, tags, bidi controls: all of Unicode's format characters),
accents, case, and look-alike letters from other scripts (Unicode's confusable skeleton,
UTS #39, toward Latin: Cyrillic "а" and Latin "a" compare equal). Runs of punctuation,
emoji and spaces collapse to one space. `comparable` also ignores word order in short
texts, so a shuffled spam line is the same line.

Letter soup (random letters, in any script the bot has statistics for) is told from text
by how likely its letter pairs are in real writing: a bigram model per language, from
`text_tables` (GnuPG's help texts and MariaDB's messages in 18 languages). A message is
soup when even its best-fitting language finds its pairs, on average, about as unlikely
as chance. Short messages are never judged: "ok", "да", "sí" stay what they are, and so
does anything in a script without a model (CJK, Arabic, ...).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from itertools import repeat

from plugins.gamification.domain.text_tables import BIGRAMS, CONFUSABLES

# Fillers that are letters by category, yet show nothing.
FILLERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5")
_SKELETON = {ord(CONFUSABLES[i]): CONFUSABLES[i + 1] for i in range(0, len(CONFUSABLES), 2)}
# ASCII look-alikes of the skeleton too (UTS #39 maps 0 to O and 1 to l).
_SKELETON |= {ord("0"): "o", ord("1"): "l"}
_RUNS = re.compile(r"[\W_]+", re.UNICODE)
_WORDS = re.compile(r"[^\W\d_]+", re.UNICODE)
# Links, mentions, hashtags and tokens with digits are names and ids, not language.
_NAMES = re.compile(r"\S*(?:://|www\.|\.[a-z]{2,6}/|@|#)\S*|\S*\d\S*", re.IGNORECASE)
# Texts of at most this many words are compared as a bag of words.
SHORT_WORDS = 24
# Fewer letters than this in a modelled script: too short to call soup.
SOUP_MIN_LETTERS = 12
# Mean level (half nats of -log p per letter pair) above which text is soup. Measured
# (tests/gamification/test_text.py): uniform random letters score 6.0-11 (median 8.5; 99.8%
# above 6.5), random letters weighted toward vowels 80% above; 2,000 dictionary sentences
# and slang in English, Russian, Spanish and German at most 6.1.
SOUP_LEVEL = 6.5
# Level of a pair with a letter of the script that the language's model never saw.
_UNSEEN = 14


def _ignorable(ch: str) -> bool:
    if ch in FILLERS:
        return True
    category = unicodedata.category(ch)
    if category == "Cf":  # zero-width, bidi controls, tags, soft hyphen, word joiner...
        return True
    code = ord(ch)
    # Variation selectors (emoji style and the supplement) and Mongolian free ones.
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF or 0x180B <= code <= 0x180F


@functools.lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    """One non-ASCII character as the rules see it: '' if invisible, else its skeleton."""
    if _ignorable(ch):
        return ""
    out = []
    for part in unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", ch).casefold()):
        if unicodedata.combining(part) or _ignorable(part):
            continue
        out.append(_SKELETON.get(ord(part), part))
    return "".join(out)


def normalise(text: str) -> str:
    """Lower-case words separated by single spaces, after every trick above is undone."""
    text = text[:2000]
    if text.isascii():
        folded = text.lower().translate(_SKELETON)
    else:
        folded = "".join(ch.lower() if ch.isascii() else _fold_char(ch) for ch in text)
        folded = folded.translate(_SKELETON)
    return _RUNS.sub(" ", folded).strip()


def comparable(text: str) -> str:
    """The normalised text without spaces, its words sorted when the text is short."""
    words = normalise(text).split()
    if len(words) <= SHORT_WORDS:
        words.sort()
    return "".join(words)


def content_length(text: str) -> int:
    """Letters and digits of the normalised text, a run of one repeated character once."""
    length, previous = 0, ""
    for ch in normalise(text):
        if ch == " ":
            continue
        if ch != previous:
            length += 1
        previous = ch
    return length


def _script(ch: str) -> str | None:
    if "a" <= ch <= "z":
        return "latin"
    name = unicodedata.name(ch, "")
    if name.startswith("LATIN"):
        return "latin"
    if name.startswith("CYRILLIC"):
        return "cyrillic"
    return None


class _Model:
    """One language's letter-pair levels, looked up by the pair itself ("^" starts a
    word, "$" ends it): a pair with a letter the model never saw is _UNSEEN."""

    __slots__ = ("pairs", "script")

    def __init__(self, script: str, alphabet: str, levels: str) -> None:
        self.script = script
        symbols = "^" + alphabet + "$"
        width = len(symbols)
        table = bytes(int(level, 36) for level in levels)
        self.pairs = {
            a + b: table[i * width + j]
            for i, a in enumerate(symbols)
            for j, b in enumerate(symbols)
        }

    def level(self, pairs: list[str]) -> int:
        """Sum of the levels of `pairs` (see `_pairs`), in one pass in C."""
        return sum(map(self.pairs.get, pairs, repeat(_UNSEEN)))


_MODELS = tuple(_Model(script, alphabet, levels) for _, script, alphabet, levels in BIGRAMS)
# Per script, its models with the one that last made sense of a text first: a chat mostly
# writes one language, so `is_letter_soup` usually stops after the first model.
_BY_SCRIPT: dict[str, tuple[_Model, ...]] = {}
for _model in _MODELS:
    _BY_SCRIPT[_model.script] = (*_BY_SCRIPT.get(_model.script, ()), _model)


class _Visible(dict[int, int | None]):
    """str.translate table that drops ignorable code points, filled as they are met."""

    def __missing__(self, code: int) -> int | None:
        kept = None if _ignorable(chr(code)) else code
        if len(self) < 65_536:
            self[code] = kept
        return kept


_VISIBLE = _Visible()


def _pairs(text: str) -> tuple[dict[str, list[str]], int]:
    """The letter pairs of the text's words per modelled script, each word framed by "^"
    and "$", and how many letters those words have."""
    by_script: dict[str, list[str]] = {}
    letters = 0
    plain = _NAMES.sub(" ", unicodedata.normalize("NFKC", text[:2000]).casefold())
    ascii_only = plain.isascii()
    for word in _WORDS.findall(plain):
        if not ascii_only:
            word = word.translate(_VISIBLE)
            if not word:
                continue
        script = _script(word[0])
        if script is None:
            continue
        framed = "^" + word + "$"
        by_script.setdefault(script, []).extend(map(str.__add__, framed[:-1], framed[1:]))
        letters += len(word)
    return by_script, letters


def soup_level(text: str) -> float | None:
    """Mean pair level of the text under its best-fitting language; None when there are
    too few letters of a modelled script to judge."""
    by_script, letters = _pairs(text)
    if letters < SOUP_MIN_LETTERS:
        return None
    means = [
        model.level(pairs) / len(pairs)
        for script, pairs in by_script.items()
        for model in _BY_SCRIPT[script]
    ]
    return min(means) if means else None


def is_letter_soup(text: str) -> bool:
    """True when the text has enough letters to judge and no language makes sense of it
    (the same answer as comparing `soup_level` with SOUP_LEVEL, mostly from one model)."""
    by_script, letters = _pairs(text)
    if letters < SOUP_MIN_LETTERS:
        return False
    judged = False
    for script, pairs in by_script.items():
        models = _BY_SCRIPT[script]
        for position, model in enumerate(models):
            judged = True
            if model.level(pairs) / len(pairs) <= SOUP_LEVEL:
                if position:
                    # A new tuple, not a change in place: another thread judging at the
                    # same time goes on through the order it started with.
                    _BY_SCRIPT[script] = (model, *(m for m in models if m is not model))
                return False
    return judged
