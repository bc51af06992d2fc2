"""Hard free text for the simulated observations.

Real ``species_guess`` and ``description`` values hold anything people type: separators and
quotes that break naive CSV/TSV writers, embedded newlines, surrounding spaces, emoji, CJK and
right-to-left scripts. The simulator draws from these pools so a harvester's writers meet them.
"""

from __future__ import annotations

#: Texts that survive a round trip through pandas' default CSV reader (none is a NA marker).
HARD_TEXT: tuple[str, ...] = (
    "Amanita muscaria, var. guessowii",
    'He said "maybe, maybe not"',
    '"Quoted from start to end"',
    "  leading and trailing spaces  ",
    " leading space",
    "trailing space ",
    "Tab\tseparated\tguess",
    "Line one\nline two",
    "Windows line\r\nsecond line",
    "ends with a newline\n",
    "🍄 Fly agaric 🍄",
    "🦋",
    "毒蝇伞",
    "ベニテングタケ",
    "독버섯",
    "عيش الغراب",
    "פטרייה",
    "Cèpe de Bordeaux — Bolet à pied rouge",
    "Ålandsk ørnebregne, Straße",
    "semi;colon|pipe",
    "back\\slash",
    "=1+1",
    "#hashtag",
    "'single quotes'",
    "O'Brien's mushroom",
    "mixed: עברית and English, 中文 too",
)

#: Values pandas reads back as missing with its default ``na_values`` (option ``tricky_na``).
TRICKY_NA: tuple[str, ...] = ("NA", "null", "NaN", "", "N/A", "None", "nan", "#N/A", "<NA>")

#: People's display names: accents, apostrophes, CJK; ``None`` means "no name, use the login".
NAMES: tuple[str | None, ...] = (
    None,
    None,
    "Tyler Irvin",
    "Valentin Mazzieri",
    "Zoë Ångström",
    "Seán O'Brien",
    "山田 太郎",
    "María José Núñez",
    "Jean-Luc Émond",
    "Dr. Ann Smith, PhD",
    "Łukasz Wróbel",
    "Nguyễn Thị Hoa",
)

#: Syllables for invented user logins.
LOGIN_PARTS: tuple[str, ...] = (
    "ym",
    "wang",
    "pnw",
    "jd",
    "cohen",
    "esq",
    "tyler",
    "irvin",
    "sam",
    "room",
    "myco",
    "fungi",
    "birder",
    "naturalist",
    "herp",
    "moth",
    "lichen",
    "botany",
)

#: Epithets for invented species under the template genera.
EPITHETS: tuple[str, ...] = (
    "alba",
    "rubra",
    "minor",
    "major",
    "silvatica",
    "vulgaris",
    "aurea",
    "montana",
    "borealis",
    "occidentalis",
)
