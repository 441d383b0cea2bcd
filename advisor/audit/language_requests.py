"""Whether a request asks for its answer's language, so that an answer in another language is right: a translation
(the translation verbs of the catalogue's `language_mismatch` patterns, about 40 languages) or the answer's
language named in the request ("Réponds en anglais", "Переведите на английский", "İngilizceye çevir", "用日语回答"),
in any of 48 languages (rules/language_names.yaml: the Unicode CLDR display names, scripts/language_names.py).

Both are matched on the request folded the same way as the names and patterns: NFKD without combining marks, so
accents, the Devanagari nukta and the Arabic hamza are optional ("traduccion", "अंग्रेजी", "الانجليزية"), and
case-insensitively. A name in an alphabet with capitals (Latin, Cyrillic, Greek) must start a word ("по-английски",
not "Thailand" inside another word); names in other scripts match anywhere (Arabic "بالإنجليزية", Korean "영어로").
The check only runs for an answer already in another language than its request, so its cost does not matter."""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from pydantic import BaseModel, ConfigDict, Field

from advisor.audit.catalog import pattern_texts
from core.files import read_structured, rules_dir, validate


class LanguageNames(BaseModel):
    """rules/language_names.yaml: names of languages in other languages, as the check matches them."""

    model_config = ConfigDict(extra="forbid")
    source: str
    names: dict[str, list[str]] = Field(description="language code → its names (lower case; stems of declined ones)")
    colloquial: dict[str, list[str]] = Field(default_factory=dict,
                                             description="names CLDR does not list (英文, 中文...), kept by hand")

    def of(self, lang: str) -> list[str]:
        return [*self.names.get(lang, ()), *self.colloquial.get(lang, ())]


@cache
def language_names() -> LanguageNames:
    path = rules_dir() / "language_names.yaml"
    data, lines = read_structured(path, "language names")
    return validate(LanguageNames, data, str(path), lines)


def fold(text: str, form: str = "NFKD") -> str:
    """`text` without combining marks (accents, nukta, hamza...), compatibility forms unfolded (NFKD: full-width
    letters are ASCII). Regular expressions are folded with NFD: NFKD would turn a full-width `（` into a group.
    ASCII is its own fold; otherwise one regex substitution drops the marks (a generator over the characters cost
    100 instructions a character, str.translate 100 ns, on requests of up to 6,000 characters)."""
    if text.isascii():
        return text
    return _combining_marks().sub("", unicodedata.normalize(form, text))


@cache
def _combining_marks() -> re.Pattern:
    """The combining marks of the Basic Multilingual Plane as one character class (built once, ~10 ms)."""
    marks = [cp for cp in range(0x300, 0x10000) if unicodedata.combining(chr(cp))]
    ranges, start = [], marks[0]
    for prev, cp in zip(marks, [*marks[1:], None], strict=True):
        if cp is None or cp != prev + 1:  # the end of a run of consecutive marks
            ranges.append(f"\\u{start:04x}-\\u{prev:04x}" if prev > start else f"\\u{start:04x}")
            start = cp
    return re.compile("[" + "".join(ranges) + "]+")


def _cased(name: str) -> bool:
    return any(c.lower() != c.upper() for c in name)


@cache
def name_pattern(lang: str) -> re.Pattern | None:
    """The names of `lang` as one pattern over folded text (None: no names known)."""
    parts = []
    for name in sorted(set(language_names().of(lang)), key=len, reverse=True):
        folded = re.escape(fold(name))
        parts.append(rf"(?<!\w){folded}" if _cased(name) else folded)
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


@cache
def translation_pattern() -> re.Pattern:
    """The translation verbs of every language (the catalogue's `language_mismatch` patterns), over folded text."""
    return re.compile("|".join(f"(?:{fold(rx, 'NFD')})" for rx in pattern_texts("language_mismatch")), re.IGNORECASE)


def asks_for_language(request: str, lang: str) -> bool:
    """The request is a translation or names `lang`, the answer's language ("answer in Spanish", "用英文回答")."""
    text = fold(request)
    if translation_pattern().search(text):
        return True
    names = name_pattern(lang)
    return bool(names and names.search(text))
