"""Task intents: what an instruction asks for (translation, summarisation, classification, extraction, rewriting,
code, math, generation, brainstorming, a question; else `other`), from the cues of the catalogue's
`mixed_tasks.intents` in 17 languages. They split free-form instruction data into tasks (advisor/audit/tasks.py)
and tell a transformation of the prompt (translation, rewriting, classification) from a question whose answer is a
fact (text.carries_facts).

An instruction is read with the cues of its own language, the language-neutral ones (`any`: a question mark at the
end, `3 + 4`, programming-language names) and English (tasks named in English inside other languages' instructions);
Chinese and an instruction of unclear or uncovered language are read with English and Chinese, as before the other
languages were added. The intents are tried in the catalogue's order: the first that matches names the task."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache, lru_cache
from re import _parser
from typing import NamedTuple

from advisor.audit.catalog import _anchored, catalog
from advisor.audit.language import CLOSE_LANGUAGES, detect
from advisor.audit.regex_guard import (
    DIGITS,
    first_chars,
    guarded,
    needs_non_ascii,
    required_phrases,
    top_level_branches,
)
from advisor.audit.text import _OPENING
from core.errors import UserError
from core.files import rules_dir

CODE = "mixed_tasks"  # the finding whose catalogue entry holds the intents
OTHER = "other"
INTENT_CHARS = 160  # the instruction head the cues are searched in
ALWAYS = ("any", "en")  # read for every instruction
DEFAULT = ("zh",)  # and for Chinese, or an instruction whose language is unclear or has no cues of its own
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


class _Alternatives:
    """Alternatives of one kind of gate as one search: those anchored at the start tried there only, the others
    behind their first-character guard."""

    __slots__ = ("anywhere", "at_start")

    def __init__(self, branches: list[str]) -> None:
        anchored = [f"(?:{b})" for b in branches if _branch(b, False).anchored]
        floating = [f"(?:{b})" for b in branches if not _branch(b, False).anchored]
        self.at_start: Search | None = re.compile("|".join(anchored)).match if anchored else None
        self.anywhere: Search | None = guarded("|".join(floating)).search if floating else None

    def __call__(self, low: str) -> bool:
        return bool(self.at_start and self.at_start(low) or self.anywhere and self.anywhere(low))


class _Branch(NamedTuple):
    gate: str  # "phrase", "digit" or "always"; "never": an ASCII text cannot match it
    phrases: tuple[str, ...]
    anchored: bool


@lru_cache(maxsize=4096)
def _branch(branch: str, ascii_only: bool) -> _Branch:
    """How one alternative is gated (with `ascii_only`: on an ASCII text) and whether it is anchored at the start;
    worked out once a process (every set of languages shares the English and language-neutral alternatives)."""
    parsed = _parser.parse(branch)
    found = required_phrases(branch)
    if ascii_only:
        found = [p for p in found if p.isascii()] if found else found
        if found == [] or needs_non_ascii(branch):
            return _Branch("never", (), False)
    if found:
        gate = "phrase"
    else:
        gate = "digit" if first_chars(branch) == {DIGITS} else "always"
    return _Branch(gate, tuple(found or ()), _anchored(parsed))


class _Intent:
    """One intent's cues for a set of languages, split into their alternatives (regex_guard.top_level_branches)
    and searched by their gate: those whose every match holds one of a few phrases only where one is (found for
    all intents at once: _Cues), those that start with a digit (`\\d+\\s*[-+*/×÷]\\s*\\d+`) only where there is a
    digit, the rest always. Most texts open no gate of most intents. With `ascii_only`, the alternatives an ASCII
    text cannot match are left out, and so are the phrases beyond ASCII: the same answers on ASCII texts."""

    __slots__ = ("always", "by_digit", "by_phrase", "name", "phrases")

    def __init__(self, name: str, patterns: list[str], ascii_only: bool) -> None:
        self.name = name
        phrases: set[str] = set()
        groups: dict[str, list[str]] = {"phrase": [], "digit": [], "always": [], "never": []}
        for branch in (b for rx in patterns for b in top_level_branches(rx)):
            kind = _branch(branch, ascii_only)
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
    """The intents of a set of languages, and one search that finds which of their phrases a text holds: every
    phrase of every intent in one trie-shaped alternation, tried at each position inside a lookahead (so that
    phrases may overlap). At a position it gives the longest phrase there, and every phrase found there is a
    prefix of it: `opens` maps it to the intents of all of them, as a bit mask. Measured on the instructions of
    the bench (unique messages): 5.2 µs a text, against 15 µs for a substring test per phrase."""

    __slots__ = ("finder", "intents", "opens", "unconditional")

    def __init__(self, intents: list[_Intent]) -> None:
        self.intents = tuple(intents)
        owners: dict[str, int] = {}
        for i, rule in enumerate(intents):
            for phrase in rule.phrases:
                owners[phrase] = owners.get(phrase, 0) | 1 << i
        self.opens = {p: _prefix_owners(p, owners) for p in owners}
        # the intents searched whatever the phrases: those with alternatives gated by a digit, or not gated
        self.unconditional = sum(1 << i for i, rule in enumerate(intents)
                                 if rule.by_digit is not None or rule.always is not None)
        if owners:
            first = "".join(sorted({re.escape(p[0]) for p in owners}))
            self.finder: Callable[[str], list[str]] | None = re.compile(
                f"(?=[{first}])(?=({_literal_trie(list(owners))}))").findall
        else:
            self.finder = None

    def first(self, low: str) -> str:
        """The first intent whose cues match `low`, else `other`."""
        opened = 0
        if self.finder is not None:
            for found in set(self.finder(low)):
                opened |= self.opens[found]
        candidates = opened | self.unconditional
        while candidates:
            i = (candidates & -candidates).bit_length() - 1  # the first intent left, in catalogue order
            if self.intents[i](low, bool(opened >> i & 1)):
                return self.intents[i].name
            candidates &= candidates - 1
        return OTHER


def _prefix_owners(phrase: str, owners: dict[str, int]) -> int:
    """The intents (a bit mask) of `phrase` and of every phrase that is a prefix of it."""
    mask = 0
    for end in range(1, len(phrase) + 1):
        mask |= owners.get(phrase[:end], 0)
    return mask


def _literal_trie(phrases: list[str]) -> str:
    """Literal phrases as one alternation that shares their prefixes, longer continuations first (so that a
    search gives the longest phrase at a position)."""
    root: dict = {}
    for phrase in phrases:
        node = root
        for ch in phrase:
            node = node.setdefault(ch, {})
        node[""] = {}

    def render(node: dict) -> str:
        branches = [re.escape(ch) + render(child) for ch, child in node.items() if ch]
        if "" in node:
            branches.append("")
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return render(root)


@cache
def languages() -> tuple[str, ...]:
    """The languages with cues of their own (ISO 639-1), in catalogue order."""
    entry = catalog()[CODE]
    return tuple(lang for lang in dict.fromkeys(lang for cues in (entry.intents or {}).values() for lang in cues)
                 if lang != "any")


@lru_cache(maxsize=256)
def searched(instruction_languages: tuple[str, ...]) -> tuple[str, ...]:
    """The cue languages an instruction of these detected languages is read with: ALWAYS, then its own (Chinese:
    DEFAULT); DEFAULT for English, a language without cues and an unclear one (`und`: the audit passes the
    record's language for an instruction too short to tell, "Oblicz 18% z 350.")."""
    given = tuple(dict.fromkeys(instruction_languages))
    own = tuple(lang for lang in map(_with_cues, given) if lang is not None and lang not in ALWAYS + DEFAULT)
    return ALWAYS + (own if own and DEFAULT[0] not in given else DEFAULT + own)


@cache
def _with_cues(lang: str) -> str | None:
    """The language whose cues a text in `lang` is read with: its own, or those of a language detection confuses it
    with (language.CLOSE_LANGUAGES: Malay is read with the Indonesian cues); None when no such language has cues."""
    covered = languages()
    if lang in covered:
        return lang
    return next((other for group in CLOSE_LANGUAGES if lang in group for other in covered if other in group), None)


@cache
def rules(langs: tuple[str, ...], ascii_only: bool = False) -> _Cues:
    """The intents, in catalogue order, with the cues of `langs` (for an ASCII text: see _Intent); each pattern is
    checked to compile."""
    entry = catalog()[CODE]
    out = []
    for name, cues in (entry.intents or {}).items():
        patterns = []
        for lang in langs:
            for j, rx in enumerate(cues.get(lang, [])):
                try:
                    re.compile(rx)
                except re.error as e:
                    raise UserError(f"{rules_dir() / 'audit_findings.yaml'}: `{CODE}.intents.{name}.{lang}[{j}]` is "
                                    f"not a valid regular expression ({e}); fix the pattern") from None
                patterns.append(rx)
        if patterns:
            out.append(_Intent(name, patterns, ascii_only))
    return _Cues(out)


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
    langs = searched(instruction_languages if instruction_languages is not None else (detect(instruction),))
    low = head(instruction, "ar" in langs)
    return rules(langs, low.isascii()).first(low)
