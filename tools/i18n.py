"""The message catalogs: extract the texts from the code, update each language's .po, compile.

    python tools/i18n.py extract   # print what the code uses that a catalog lacks or no longer has
    python tools/i18n.py update    # bring every .po in line with the code (new texts empty)
    python tools/i18n.py compile   # write each .mo from its .po (byte for byte reproducible)
    python tools/i18n.py add xx    # start a catalog for the language xx

Two packages have catalogs: the plugin (plugins/gamification/locales, domain "gamification")
and the host (bot/locales, domain "bot"). English is the language the code is written in: its
catalog is filled from the code by `update`, so it is complete by construction. The tests
(tests/test_catalogs.py) use the same extraction and fail when a catalog and the code differ.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
SOURCE_LANGUAGE = "en"
STABLE_DATE = datetime(2026, 1, 1, tzinfo=UTC)
# `N_` marks a text where it is written (domain errors, menu entries), translated when sent.
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


@dataclass(frozen=True)
class Package:
    source: Path
    domain: str

    @property
    def locales(self) -> Path:
        return self.source / "locales"

    def po(self, language: str) -> Path:
        return self.locales / language / "LC_MESSAGES" / f"{self.domain}.po"

    def languages(self) -> list[str]:
        return sorted(
            p.parent.parent.name for p in self.locales.glob(f"*/LC_MESSAGES/{self.domain}.po")
        )


PACKAGES = (
    Package(ROOT / "plugins" / "gamification", "gamification"),
    Package(ROOT / "bot", "bot"),
)

Message = str | tuple[str, str]


def extract(package: Package) -> dict[Message, list[str]]:
    """Every text the package's code marks, with where it is used (msgid, or singular and
    plural for ngettext)."""
    found: dict[Message, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        package.source,
        method_map=[("**/locales/**", "ignore"), ("**.py", "python")],
        keywords=KEYWORDS,
        comment_tags=(),
        strip_comment_tags=True,
    ):
        key: Message
        if isinstance(message, tuple):
            if any(part is None for part in message):
                continue  # a call with a variable: the literal is marked where it is written
            key = (message[0], message[1])
        else:
            key = message
        found.setdefault(key, []).append(f"{filename}:{lineno}")
    return found


def template(package: Package) -> Catalog:
    catalog = Catalog(domain=package.domain, project="aiogram-gamification", fuzzy=False)
    for message, places in sorted(extract(package).items(), key=lambda item: str(item[0])):
        catalog.add(
            message,
            locations=[
                (place.rsplit(":", 1)[0], int(place.rsplit(":", 1)[1])) for place in places
            ],
        )
    return catalog


def read(path: Path) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh)


def render_po(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    # No dates, no locations: a catalog changes only when its texts do.
    write_po(out, catalog, width=99, omit_header=False, no_location=True, ignore_obsolete=True)
    return out.getvalue()


def render_mo(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def _stable(catalog: Catalog) -> Catalog:
    # Dates in the header would make every run a change.
    catalog.creation_date = catalog.revision_date = STABLE_DATE
    return catalog


def update(package: Package, language: str) -> Catalog:
    path = package.po(language)
    catalog = read(path) if path.exists() else Catalog(locale=language, domain=package.domain)
    catalog.project, catalog.version = "aiogram-gamification", "1"
    catalog.msgid_bugs_address = ""
    catalog.copyright_holder = catalog.last_translator = catalog.language_team = ""
    catalog.update(template(package), no_fuzzy_matching=True)
    catalog.obsolete.clear()
    if language == SOURCE_LANGUAGE:
        for message in catalog:
            if message.id:
                message.string = message.id
    catalog.fuzzy = False
    return _stable(catalog)


def differences(package: Package, language: str) -> Iterator[str]:
    """What is wrong with one catalog: missing, unused, empty or incomplete texts."""
    used = set(extract(package))
    catalog = read(package.po(language))
    have = {message.id for message in catalog if message.id}
    for message in sorted(used - have, key=str):
        yield f"{language}: missing {message!r}"
    for message in sorted(have - used, key=str):
        yield f"{language}: no longer used {message!r}"
    forms = catalog.num_plurals
    for message in catalog:
        if not message.id:
            continue
        if message.fuzzy:
            yield f"{language}: fuzzy {message.id!r}"
        if message.pluralizable:
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            if len(strings) != forms or not all(strings):
                yield f"{language}: {message.id!r} needs {forms} plural forms"
        elif not message.string:
            yield f"{language}: {message.id!r} is not translated"


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"extract", "update", "compile", "add"}:
        print(__doc__, file=sys.stderr)
        return 2
    command = argv[0]
    problems = 0
    for package in PACKAGES:
        languages = package.languages()
        if command == "add":
            if len(argv) != 2:
                print("usage: python tools/i18n.py add LANGUAGE", file=sys.stderr)
                return 2
            languages = [argv[1]]
            package.po(argv[1]).parent.mkdir(parents=True, exist_ok=True)
        for language in languages:
            path = package.po(language)
            if command == "extract":
                for line in differences(package, language):
                    print(f"{package.domain} {line}")
                    problems += 1
            elif command in {"update", "add"}:
                path.write_bytes(render_po(update(package, language)))
                print(f"updated {path.relative_to(ROOT)}")
            else:
                path.with_suffix(".mo").write_bytes(render_mo(read(path)))
                print(f"compiled {path.with_suffix('.mo').relative_to(ROOT)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
