"""Regenerate plugins/gamification/text_tables.py: the confusables and letter-bigram tables.

Run on a Debian machine with gnupg and mysql-common's message files installed, and with
confusable-homoglyphs 3.3.1 unpacked at CONFUSABLES (its confusables.json is Unicode's
security data, confusables.txt, turned into JSON):

    python tools/make_text_tables.py /path/to/confusable_homoglyphs/confusables.json

Sources of the bigram statistics (only counts of letter pairs are kept, no text):
GnuPG's help texts (/usr/share/gnupg/help*.txt, one per language) and MariaDB's error
messages (/usr/share/mysql/errmsg-utf8.txt, one line per language per message).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "plugins/gamification/text_tables.py"
GNUPG = Path("/usr/share/gnupg")
ERRMSG = Path("/usr/share/mysql/errmsg-utf8.txt")
# Language of each source, and its script.
HELP = {
    "": "en", "de": "de", "es": "es", "fr": "fr", "it": "it", "pt": "pt", "pl": "pl",
    "cs": "cs", "sk": "sk", "sv": "sv", "fi": "fi", "hu": "hu", "ro": "ro", "tr": "tr",
    "id": "id", "ru": "ru",
}  # fmt: skip
# (The other help files of GnuPG are its English text untranslated.)
ERR = {"eng": "en", "spa": "es", "ger": "de", "rus": "ru", "ukr": "uk", "por": "pt",
       "ita": "it", "fre": "fr", "pol": "pl", "cze": "cs", "nla": "nl", "swe": "sv"}  # fmt: skip
LEVELS = "0123456789abcdefghijklmnopqrstuvwxyz"
_LINE = re.compile(r'^\s+([a-z]{3}) "(.*)"\s*$')


def script_of(ch: str) -> str | None:
    name = unicodedata.name(ch, "")
    for script in ("LATIN", "CYRILLIC", "GREEK"):
        if name.startswith(script):
            return script.lower()
    return None


def fold(text: str) -> str:
    """What the bot compares: NFKC, case folded, accents kept (they tell languages apart)."""
    return unicodedata.normalize("NFKC", text).casefold()


def texts() -> dict[str, list[str]]:
    out: defaultdict[str, list[str]] = defaultdict(list)
    for suffix, lang in HELP.items():
        path = GNUPG / (f"help.{suffix}.txt" if suffix else "help.txt")
        if path.exists():
            out[lang].append(path.read_text(encoding="utf-8", errors="ignore"))
    for line in ERRMSG.read_text(encoding="utf-8", errors="ignore").splitlines():
        match = _LINE.match(line)
        if match and match.group(1) in ERR:
            # Placeholders (%s, %d) are not words.
            out[ERR[match.group(1)]].append(re.sub(r"%[-.0-9]*[a-z]+", " ", match.group(2)))
    return out


def bigram_table(corpus: list[str], script: str) -> tuple[str, str]:
    """(alphabet, levels): a log-probability level per (previous, next) letter pair, with
    "^" for the start and "$" for the end of a word."""
    counts: Counter[tuple[str, str]] = Counter()
    letters: Counter[str] = Counter()
    for text in corpus:
        for word in re.findall(r"[^\W\d_]+", fold(text)):
            if len(word) < 2 or any(script_of(ch) != script for ch in word):
                continue
            letters.update(word)
            chars = ["^", *word, "$"]
            counts.update(itertools.pairwise(chars))
    alphabet = "".join(sorted(ch for ch, n in letters.items() if n >= 3))
    symbols = "^" + alphabet + "$"
    levels = []
    for a in symbols:
        row = sum(counts[(a, b)] for b in symbols) + len(symbols) * 0.5
        for b in symbols:
            p = (counts[(a, b)] + 0.5) / row
            # Levels of half a nat below certainty, 0 (likely) .. 35 (never seen).
            levels.append(LEVELS[min(35, round(-math.log(p) * 2))])
    return alphabet, "".join(levels)


def confusable_pairs(path: Path) -> str:
    """Non-ASCII characters (after NFKC and case folding) that look like one ASCII letter
    or digit, as pairs: the skeleton's mapping toward Latin."""
    data = json.loads(path.read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for source, looks in data.items():
        if len(source) != 1 or source.isascii():
            continue
        targets = sorted(
            h["c"].lower() for h in looks if len(h["c"]) == 1 and h["c"].isascii()
            and h["c"].isalnum()
        )  # fmt: skip
        key = unicodedata.normalize("NFKC", source).casefold()
        if targets and len(key) == 1 and not key.isascii():
            found.setdefault(key, targets[0])
    return "".join(k + v for k, v in sorted(found.items()))


def main() -> None:
    confusables = confusable_pairs(Path(sys.argv[1]))
    by_lang = texts()
    models = []
    for lang, corpus in sorted(by_lang.items()):
        scripts = Counter(s for text in corpus for ch in text if (s := script_of(ch)))
        script = scripts.most_common(1)[0][0]
        alphabet, levels = bigram_table(corpus, script)
        models.append(f"    ({lang!r}, {script!r}, {alphabet!r},\n     {levels!r}),")
    OUT.write_text(
        '"""Generated by tools/make_text_tables.py: do not edit.\n\n'
        "CONFUSABLES: pairs (character, ASCII look-alike) from Unicode's confusables.txt as\n"
        "shipped in confusable-homoglyphs 3.3.1 (January 2024; Unicode security data 15.1).\n"
        "BIGRAMS: per language, its alphabet and a level (0-35, half nats of -log p) for each\n"
        "letter pair, counted over GnuPG's help texts and MariaDB's error messages.\n"
        '"""\n\n# ruff: noqa: E501\n\n'
        f"CONFUSABLES = {confusables!r}\n\n"
        "# (language, script, alphabet, levels over (^ + alphabet + $) squared)\n"
        "BIGRAMS: tuple[tuple[str, str, str, str], ...] = (\n" + "\n".join(models) + "\n)\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
