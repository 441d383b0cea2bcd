"""Task intents: what an instruction asks for (translation, summarisation, classification, extraction, rewriting,
code, math, generation, brainstorming, a question; else `other`), from the cues of the catalogue's
`mixed_tasks.intents` in 17 languages. They split free-form instruction data into tasks (advisor/audit/tasks.py)
and tell a transformation of the prompt (translation, rewriting, classification) from a question whose answer is a
fact (text.carries_facts).

An instruction is read with the language-neutral cues (`any`: a question mark at the end, `3 + 4`,
programming-language names), the English ones (tasks named in English inside other languages' instructions) and the
Chinese ones (they need Chinese characters), and with those of its own language. The intents are tried in the
catalogue's order: the first that matches names the task.

The cues of each language are compiled once a process (_Cues: 20-60 ms a language) and shared by every instruction
in it; an instruction's cues are two such pieces at most (BASE, and its own language)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache, lru_cache
from re import _parser
from typing import NamedTuple

from advisor.audit.catalog import _anchored, catalog, checked
from advisor.audit.language import CLOSE_LANGUAGES, detect
from advisor.audit.regex_guard import (
    DIGITS,
    first_chars,
    guard,
    required_phrases,
    top_level_branches,
    trie,
)
from advisor.audit.text import _OPENING

CODE = "mixed_tasks"  # the finding whose catalogue entry holds the intents
OTHER = "other"
INTENT_CHARS = 160  # the instruction head the cues are searched in
BASE = ("any", "en", "zh")  # the cues read for every instruction
# Arabic vowel marks (fatha … sukun, shadda among them) and the tatweel: "لخّص" is "لخص" to the cues
_ARABIC_MARKS = dict.fromkeys([*range(0x064B, 0x0653), 0x0640])
_DIGIT = re.compile(r"\d")
READ_CHARS = 400  # the instruction's characters read for its head (the quoted texts in them taken out)
# A quoted text: between typographic quotes, between straight double quotes, or between single quotes that are not
# apostrophes (a non-word character before the opening one and after the closing one: not "l'essentiel", "don't")
_QUOTED = re.compile(r"«[^»]{1,400}»|“[^”]{1,400}[”“]|„[^“”]{1,400}[“”]|\"[^\"]{1,400}\"|「[^」]{1,400}」|『[^』]{1,400}』|"
                     r"‘[^’]{1,400}’|(?<!\w)'[^'\n]{3,400}'(?!\w)")
_QUOTE_OPENERS = re.compile("[«“„\"「『‘']")

Search = Callable[[str], object]


class _Branch(NamedTuple):
    """One alternative of a cue (regex_guard.top_level_branches): how it is gated and searched."""

    gate: str  # "phrase": every match holds one of `phrases`; "digit": it starts with one; "always": neither
    phrases: tuple[str, ...]
    anchored: bool  # every match starts at the start of the text: tried there only
    first: frozenset[str] | None  # the characters a match starts with (regex_guard.first_chars), None: any


@lru_cache(maxsize=8192)
def _branch(branch: str) -> _Branch:
    found = required_phrases(branch)
    first = first_chars(branch)
    gate = "phrase" if found else "digit" if first == {DIGITS} else "always"
    return _Branch(gate, tuple(found or ()), _anchored(_parser.parse(branch)), frozenset(first) if first else None)


class _Alternatives:
    """Alternatives of one kind of gate as one search: those anchored at the start tried there only, the others
    behind the first-character guard their first characters make (regex_guard.guard, from each alternative's
    characters worked out once, not from a parse of the whole alternation)."""

    __slots__ = ("anywhere", "at_start")

    def __init__(self, branches: list[str]) -> None:
        anchored = [f"(?:{b})" for b in branches if _branch(b).anchored]
        floating = [b for b in branches if not _branch(b).anchored]
        self.at_start: Search | None = re.compile("|".join(anchored)).match if anchored else None
        self.anywhere: Search | None = _guarded(floating).search if floating else None

    def __call__(self, low: str) -> bool:
        return bool(self.at_start and self.at_start(low) or self.anywhere and self.anywhere(low))


def _guarded(branches: list[str]) -> re.Pattern:
    firsts = [_branch(b).first for b in branches]
    chars = None if any(f is None for f in firsts) else frozenset().union(*firsts)
    return guard("|".join(f"(?:{b})" for b in branches), chars)


class _Intent:
    """One intent's cues in some languages, searched by their gate: the alternatives whose every match holds one of
    a few phrases only where one is (found for all intents at once: _Cues), those that start with a digit
    (`\\d+\\s*[-+*/×÷]\\s*\\d+`) only where there is a digit, the rest always."""

    __slots__ = ("always", "by_digit", "by_phrase", "phrases")

    def __init__(self, patterns: list[str]) -> None:
        phrases: set[str] = set()
        groups: dict[str, list[str]] = {"phrase": [], "digit": [], "always": []}
        for branch in (b for rx in patterns for b in top_level_branches(rx)):
            kind = _branch(branch)
            phrases.update(kind.phrases)
            groups[kind.gate].append(branch)
        self.phrases = frozenset(phrases)
        self.by_phrase, self.by_digit, self.always = (_Alternatives(groups[k]) if groups[k] else None
                                                      for k in ("phrase", "digit", "always"))

    def __call__(self, low: str, phrase_found: bool) -> bool:
        """Whether the cues match `low`; `phrase_found`: one of the phrases is in it."""
        if self.always is not None and self.always(low):
            return True
        if self.by_digit is not None and _DIGIT.search(low) is not None and self.by_digit(low):
            return True
        return phrase_found and self.by_phrase is not None and self.by_phrase(low)


class _Cues:
    """The intents of some languages (one slot per catalogue intent, None where they have no cues for it), and one
    search that finds which of their phrases a text holds: every phrase in one trie-shaped alternation, tried at
    each position inside a lookahead (so that phrases may overlap). At a position it gives the longest phrase
    there, and every phrase found there is a prefix of it: `opens` maps it to the intents of all of them, as a bit
    mask. Measured on the instructions of the bench (unique messages): 5.2 µs a text, against 15 µs for a
    substring test per phrase."""

    __slots__ = ("finders", "intents", "opens", "unconditional")

    def __init__(self, intents: list[_Intent | None]) -> None:
        self.intents = tuple(intents)
        owners: dict[str, int] = {}
        for i, rule in enumerate(intents):
            for phrase in rule.phrases if rule is not None else ():
                owners[phrase] = owners.get(phrase, 0) | 1 << i
        self.opens = {p: _prefix_owners(p, owners) for p in owners}
        # the intents searched whatever the phrases: those with alternatives gated by a digit, or not gated
        self.unconditional = sum(1 << i for i, rule in enumerate(intents)
                                 if rule is not None and (rule.by_digit is not None or rule.always is not None))
        # two searches: the phrases that start with an ASCII character, and the others (run on a text beyond ASCII
        # only). One trie of both tried the ~150 Chinese first characters at every letter of an English text:
        # 21 against 12 µs an instruction of the bench
        self.finders = tuple(_finder([p for p in owners if p[0].isascii() == wide]) for wide in (True, False))

    def opened(self, low: str) -> int:
        """The intents (a bit mask) one of whose phrases `low` holds."""
        mask = 0
        for finder in self.finders if not low.isascii() else self.finders[:1]:
            if finder is not None:
                for found in set(finder(low)):
                    mask |= self.opens[found]
        return mask


def _finder(phrases: list[str]) -> Callable[[str], list[str]] | None:
    """A search for every position where one of `phrases` starts, giving the longest one there (see _Cues)."""
    if not phrases:
        return None
    return guard(f"(?=({trie(phrases)}))", {p[0] for p in phrases}).findall


def _prefix_owners(phrase: str, owners: dict[str, int]) -> int:
    """The intents (a bit mask) of `phrase` and of every phrase that is a prefix of it."""
    mask = 0
    for end in range(1, len(phrase) + 1):
        mask |= owners.get(phrase[:end], 0)
    return mask


@cache
def names() -> tuple[str, ...]:
    """The intents, in the order they are tried."""
    return tuple(catalog()[CODE].intents or {})


@cache
def languages() -> tuple[str, ...]:
    """The languages with cues of their own (ISO 639-1), in catalogue order."""
    entry = catalog()[CODE]
    return tuple(lang for lang in dict.fromkeys(lang for cues in (entry.intents or {}).values() for lang in cues)
                 if lang != "any")


@lru_cache(maxsize=256)
def searched(instruction_languages: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """The cues an instruction of these detected languages is read with: BASE, and its own language's (or those
    of a language detection confuses it with: `ms` is read with `id`); BASE alone for an unclear language (`und`:
    the audit passes the record's language for an instruction too short to tell, "Oblicz 18% z 350.") and one
    without cues."""
    own = tuple(dict.fromkeys(lang for lang in map(_with_cues, instruction_languages)
                              if lang is not None and lang not in BASE))
    return (BASE, *((lang,) for lang in own))


@cache
def _with_cues(lang: str) -> str | None:
    """The language whose cues a text in `lang` is read with: its own, or those of a language detection confuses it
    with (language.CLOSE_LANGUAGES: Malay is read with the Indonesian cues); None when no such language has cues."""
    covered = languages()
    if lang in covered:
        return lang
    return next((other for group in CLOSE_LANGUAGES if lang in group for other in covered if other in group), None)


@cache
def rules(langs: tuple[str, ...]) -> _Cues:
    """The cues of `langs`, one slot per intent in catalogue order; each pattern is checked to compile."""
    entry = catalog()[CODE]
    out: list[_Intent | None] = []
    for name, cues in (entry.intents or {}).items():
        patterns = [rx for lang in langs for rx in checked(f"{CODE}.intents.{name}.{lang}", cues.get(lang, []))]
        out.append(_Intent(patterns) if patterns else None)
    return _Cues(out)


def first_intent(low: str, pieces: tuple[_Cues, ...]) -> str:
    """The first intent, in catalogue order, that one of the pieces' cues matches in `low`, else `other`."""
    opened = [piece.opened(low) for piece in pieces]
    candidates = 0
    for piece, mask in zip(pieces, opened, strict=True):
        candidates |= mask | piece.unconditional
    while candidates:
        i = (candidates & -candidates).bit_length() - 1  # the first intent left, in catalogue order
        for piece, mask in zip(pieces, opened, strict=True):
            rule = piece.intents[i]
            if rule is not None and rule(low, bool(mask >> i & 1)):
                return names()[i]
        candidates &= candidates - 1
    return OTHER


def head(instruction: str, arabic: bool = False) -> str:
    """What the cues are matched on: the first INTENT_CHARS characters, stripped, without an opening ¿, ¡ or quote,
    without the texts quoted in it (the input a task is about: "Is this a complete sentence? 'Although she
    translated…'" asks for no translation), lower-cased (and, with `arabic`, without Arabic vowel marks)."""
    low = instruction[:READ_CHARS].strip().lstrip(_OPENING)
    if _QUOTE_OPENERS.search(low):
        low = _QUOTED.sub(" ", low)
    low = low[:INTENT_CHARS].lower()
    if low.isascii():
        return low
    if "\u0307" in low:  # "İ".lower() is "i" and a combining dot: Turkish "İngilizceye" is "ingilizceye" to the cues
        low = low.replace("\u0307", "")
    return low.translate(_ARABIC_MARKS) if arabic else low


def intent(instruction: str, instruction_languages: tuple[str, ...] | None = None) -> str:
    """The first intent, in catalogue order, whose cues match the instruction; `other` when none does. The
    instruction's language is detected when it is not given."""
    sets = searched(instruction_languages if instruction_languages is not None else (detect(instruction),))
    low = head(instruction, ("ar",) in sets)
    return first_intent(low, tuple(map(rules, sets)))
