"""The message catalogs match the code: every text the code marks is translated in every
language, none is left over, plural forms are complete, and each committed .mo is what
compiling its .po gives, byte for byte (tools/i18n.py extract|update|compile)."""

from __future__ import annotations

import gettext
import io
from pathlib import Path

import pytest

import tools.i18n as tool

ROOT = Path(__file__).resolve().parents[1]
CATALOGS = [
    pytest.param(package, language, id=f"{package.domain}-{language}")
    for package in tool.PACKAGES
    for language in package.languages()
]


def test_every_package_ships_the_same_languages() -> None:
    shipped = {tuple(package.languages()) for package in tool.PACKAGES}
    assert len(shipped) == 1
    assert {"en", "es", "ru"} <= set(shipped.pop())


@pytest.mark.parametrize(("package", "language"), CATALOGS)
def test_the_catalog_matches_the_code(package: tool.Package, language: str) -> None:
    assert list(tool.differences(package, language)) == []


@pytest.mark.parametrize(("package", "language"), CATALOGS)
def test_the_committed_mo_is_the_compiled_po(package: tool.Package, language: str) -> None:
    po = package.po(language)
    assert po.with_suffix(".mo").read_bytes() == tool.render_mo(tool.read(po))


def translations(language: str) -> gettext.GNUTranslations:
    path = ROOT / "plugins/gamification/locales" / language / "LC_MESSAGES/gamification.mo"
    return gettext.GNUTranslations(io.BytesIO(path.read_bytes()))


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("ru", {1: "балл", 2: "балла", 5: "баллов", 11: "баллов", 21: "балл", 22: "балла"}),
        ("es", {1: "punto", 2: "puntos", 5: "puntos", 21: "puntos"}),
        ("en", {1: "point", 2: "points", 21: "points"}),
    ],
)
def test_plural_forms_follow_the_language(language: str, expected: dict[int, str]) -> None:
    catalog = translations(language)
    for n, word in expected.items():
        text = catalog.ngettext("<b>{points}</b> point", "<b>{points}</b> points", n)
        assert text == f"<b>{{points}}</b> {word}", (language, n)


def test_the_check_names_a_missing_an_unused_and_an_untranslated_text(tmp_path: Path) -> None:
    (tmp_path / "texts.py").write_text(
        'from x import _, ngettext\n_("kept")\n_("new")\nngettext("{n} cat", "{n} cats", 2)\n',
        encoding="utf-8",
    )
    package = tool.Package(tmp_path, "demo")
    po = package.po("ru")
    po.parent.mkdir(parents=True)
    po.write_text(
        'msgid ""\nmsgstr ""\n"Language: ru\\n"\n'
        '"Plural-Forms: nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4'
        ' && (n%100<10 || n%100>=20) ? 1 : 2);\\n"\n\n'
        'msgid "kept"\nmsgstr ""\n\n'
        'msgid "gone"\nmsgstr "ушло"\n\n'
        'msgid "{n} cat"\nmsgid_plural "{n} cats"\nmsgstr[0] "{n} кошка"\nmsgstr[1] "{n} кошки"\n'
        'msgstr[2] ""\n',
        encoding="utf-8",
    )
    assert sorted(tool.differences(package, "ru")) == sorted(
        [
            "ru: missing 'new'",
            "ru: no longer used 'gone'",
            "ru: 'kept' is not translated",
            "ru: ('{n} cat', '{n} cats') needs 3 plural forms",
        ]
    )
    # `update` brings the catalog in line: the new text is added (empty), the old one goes.
    updated = tool.update(package, "ru")
    assert {m.id for m in updated if m.id} == {"kept", "new", ("{n} cat", "{n} cats")}
