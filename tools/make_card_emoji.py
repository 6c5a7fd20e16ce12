"""Builds the rank cards' emoji sheet from Noto Color Emoji: every emoji drawn once, scaled
down, in one PNG, with an index of which sequence sits in which cell.

Run it where Debian's fonts-noto-color-emoji is unpacked (apt-get download + dpkg -x):
    .venv/bin/python tools/make_card_emoji.py /path/to/NotoColorEmoji.ttf

Noto Color Emoji is a bitmap font whose one strike is 109 pixels, 11 MB in all; a card
draws emoji at about 40 pixels, so the sheet keeps them at CELL pixels (single code points,
flags and keycaps; skin tones and ZWJ sequences fall back to their parts) in about 630 KB.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parents[1] / "plugins" / "gamification" / "cards" / "fonts"
CELL = 36
STRIKE = 109
COLUMNS = 64


def sequences(font: TTFont) -> list[str]:
    cmap = font.getBestCmap()
    names = {name: chr(code) for code, name in cmap.items()}
    # Below U+2000 (digits, #, *, ©, ®) the text font draws them; joiners are no emoji.
    glue = {0x200D, 0x20E3, 0xFE0F}
    found = {chr(code) for code in cmap if code >= 0x2000 and code not in glue}
    for lookup in font["GSUB"].table.LookupList.Lookup:
        for sub in lookup.SubTable:
            for first, ligatures in getattr(sub, "ligatures", {}).items():
                for ligature in ligatures:
                    parts = [first, *ligature.Component]
                    if not all(p in names for p in parts):
                        continue
                    text = "".join(names[p] for p in parts).replace("\ufe0f", "")
                    flag = len(text) == 2 and all(0x1F1E6 <= ord(c) <= 0x1F1FF for c in text)
                    keycap = len(text) == 2 and text[1] == "\u20e3"
                    if flag or keycap:
                        found.add(text)
    return sorted(found)


def main(source: str) -> None:
    font = TTFont(source)
    texts = sequences(font)
    emoji = ImageFont.truetype(source, STRIKE)
    cells: list[tuple[str, Image.Image]] = []
    for text in texts:
        drawn = Image.new("RGBA", (STRIKE * 2, STRIKE * 2))
        ImageDraw.Draw(drawn).text((0, 0), text, font=emoji, embedded_color=True)
        box = drawn.getbbox()
        if box is None:
            continue
        width = box[2] - box[0]
        if width > STRIKE * 1.3 or width < STRIKE * 0.3:  # not one glyph: a fallback box
            continue
        side = max(width, box[3] - box[1])
        square = drawn.crop((box[0], box[1], box[0] + side, box[1] + side))
        cells.append((text, square.resize((CELL, CELL), Image.Resampling.LANCZOS)))
    rows = math.ceil(len(cells) / COLUMNS)
    sheet = Image.new("RGBA", (COLUMNS * CELL, rows * CELL))
    index: dict[str, int] = {}
    for i, (text, image) in enumerate(cells):
        sheet.paste(image, ((i % COLUMNS) * CELL, (i // COLUMNS) * CELL))
        index[text] = i
    OUT.mkdir(parents=True, exist_ok=True)
    # A palette of 256 colours with alpha: a third of the bytes, no visible loss at 36 px.
    sheet.quantize(256, method=Image.Quantize.FASTOCTREE).save(OUT / "emoji.png", optimize=True)
    meta = {"cell": CELL, "columns": COLUMNS, "index": index}
    (OUT / "emoji.json").write_text(json.dumps(meta, ensure_ascii=False, separators=(",", ":")))
    print(f"{len(cells)} emoji, {(OUT / 'emoji.png').stat().st_size:,} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        sys.exit(0 if sys.argv[1:] in (["-h"], ["--help"]) else 2)
    main(sys.argv[1])
