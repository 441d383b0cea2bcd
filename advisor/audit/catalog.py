"""The finding catalogue (rules/audit_findings.yaml), the single source of each finding's severity, title,
rationale, source, runnable bad and good example, known problems and, for pattern-based findings, the patterns
per language. Checks say *what* they found (code, optional variant); the severity comes from here."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator
from functools import cache
from re import _constants as sre
from re import _parser
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from advisor.audit.regex_guard import (
    MAX_GATE,
    LiteralGate,
    first_chars,
    guarded,
    literal_gate,
    needs_non_ascii,
    required_phrases,
    trie,
)
from core.errors import UserError
from core.files import read_structured, rules_dir, validate

Severity = Literal["error", "warning", "info"]


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    severity: Severity
    when: str = Field(description="what makes this case of the finding different")


class ExampleSetup(BaseModel):
    """How the catalogue's examples are audited (tests/test_catalogue_examples.py runs every one of them)."""

    model_config = ConfigDict(extra="forbid")
    suffix: str = Field(".jsonl", description="file suffix the example data is saved with")
    max_seq_len: int = 2048
    repeat: dict[Literal["example", "ok_example"], int] = Field(
        default_factory=dict, description="write each line N times, `{i}` replaced by 0..N-1 (dataset-level findings)")
    also: list[str] = Field(default_factory=list,
                            description="other codes the bad example triggers by construction (listed, not hidden)")


class SlotWords(BaseModel):
    """The words of a language's template slots (`placeholder`): a bracket of at most seven words, without sentence
    punctuation, that holds one of the `nouns` ("[Nama Perusahaan]", "[Имя получателя]", "[Ort, Datum]") or opens
    with one of the `opens` words ("[Votre adresse de livraison]") is a slot (slot_patterns)."""

    model_config = ConfigDict(extra="forbid")
    nouns: list[str] = Field(description="words that name what fills a slot (name, company, date...); a final `*` "
                                         "stands for any ending (`фамили*`: фамилия, фамилии)")
    opens: list[str] = Field(default_factory=list,
                             description="words that open a slot of any words: 'your', 'insert', 'enter'")

    @field_validator("nouns", "opens")
    @classmethod
    def _stems_end(cls, words: list[str]) -> list[str]:
        inner = [w for w in words if "*" in w[:-1]]
        if inner:
            raise ValueError(f"{inner[0]!r}: `*` (any ending) may only end a word; write the stem alone (`stron*`)")
        return words


class CatalogEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    severity: Severity
    title: str
    rationale: str
    source: str
    example: str = Field(description="runnable bad example: the content of a small dataset file that triggers it")
    ok_example: str = Field(description="runnable good example: a dataset file that does not trigger it")
    known_problems: str = Field(min_length=10, description="where the check is blind or noisy")
    variants: dict[str, Variant] = Field(default_factory=dict, description="cases with another severity")
    example_setup: ExampleSetup = Field(default_factory=ExampleSetup)
    patterns: dict[str, list[str]] | None = Field(
        None, description="regular expressions per language (ISO 639-1, or `any`), matched case-insensitively")
    intents: dict[str, dict[str, list[str]]] | None = Field(
        None, description="task intents in the order they are tried: intent → language (ISO 639-1, or `any`) → "
                          "regular expressions, matched on the lower-cased instruction head (advisor/audit/intents.py)")
    slots: dict[str, SlotWords] | None = Field(
        None, description="placeholder slot words per language, made patterns by slot_patterns (the words of all "
                          "the languages searched merged into one shape)")

    def severity_of(self, variant: str | None) -> str:
        return self.severity if variant is None else self.variants[variant].severity

    def example_data(self, which: Literal["example", "ok_example"]) -> str:
        """The example as file content, with `repeat` applied."""
        text = getattr(self, which)
        n = self.example_setup.repeat.get(which, 1)
        if n <= 1:
            return text if text.endswith("\n") else text + "\n"
        lines = [ln for ln in text.splitlines() if ln.strip()]
        return "".join(ln.replace("{i}", str(i)) + "\n" for i in range(n) for ln in lines)


@cache
def catalog() -> dict[str, CatalogEntry]:
    path = rules_dir() / "audit_findings.yaml"
    data, lines = read_structured(path, "finding catalogue")
    out = {}
    for i, item in enumerate(data):
        sub = {k[1:]: v for k, v in lines.items() if k and k[0] == i}
        entry = validate(CatalogEntry, item, str(path), sub)
        if entry.code in out:
            raise UserError(f"{path}:{lines.get((i,), 0)}: finding `{entry.code}` is in the catalogue twice; keep one")
        out[entry.code] = entry
    return out


def severity(code: str, variant: str | None = None) -> str:
    return catalog()[code].severity_of(variant)


@cache
def patterns(code: str, langs: tuple[str, ...] | None = None) -> re.Pattern:
    """A finding's patterns as one case-insensitive regex: of every language (None), or of `langs` only (a cheaper
    search when the text's language is known)."""
    return guarded(_joined(code, langs), re.IGNORECASE)


@cache
def pattern_gate(code: str, langs: tuple[str, ...] | None = None) -> LiteralGate | None:
    """The phrase gate of `patterns(code, langs)` (regex_guard.literal_gate): a text it rejects cannot match."""
    return literal_gate(_joined(code, langs), re.IGNORECASE)


FEW_LANGUAGES = 3  # a selection of this many languages is searched as one alternation (pattern_search)


@cache
def pattern_search(code: str, langs: tuple[str, ...] | None = None) -> Callable[[str], re.Match | None]:
    """`patterns(code, langs).search`, the same match. Of more than FEW_LANGUAGES languages (all of them, for a text
    of unclear language), language by language, each searched only where it can match:
    a language whose every match needs a character beyond ASCII (Chinese, Russian, Arabic...) is not searched in an
    ASCII text, and the others only where their phrase gate lets the text through (one gate for all of them first:
    most texts have none of their phrases). One gate for the whole alternation is None as soon as one language has
    none (Chinese: its phrases are 2 characters), and then every branch of every language was tried at every
    character: 26 µs an answer of unclear language (all languages are searched), 5 µs an English one (bench u20000).
    The alternation's leftmost match is the languages' match of smallest start; at equal starts the first language
    in catalogue order, whose first branch that matches there is the alternation's (its branches come first)."""
    if langs is not None and len(_languages(code, langs)) <= FEW_LANGUAGES:
        return _gated_search(pattern_gate(code, langs), patterns(code, langs).search)
    entries = []  # (phrase gate or None, search, needs a character beyond ASCII), in catalogue order
    for lang in _languages(code, langs):
        joined = _joined(code, (lang,))
        entries.append((literal_gate(joined, re.IGNORECASE), patterns(code, (lang,)).search,
                        needs_non_ascii(joined, re.IGNORECASE)))
    phrases = sorted({p for gate, _, _ in entries if gate is not None for p in gate.phrases}, key=lambda p: (len(p), p))
    any_gate = LiteralGate(phrases) if sum(gate is not None for gate, _, _ in entries) > 1 else None

    def search(text: str) -> re.Match | None:
        best = low = None
        ascii_only = text.isascii()
        gated = True  # whether a gated language's phrase may be in the text
        for gate, find, wide in entries:
            if wide and ascii_only:
                continue
            if gate is not None:
                if low is None:
                    low = text.lower()
                    gated = any_gate is None or any_gate(text, low)
                if not gated or not gate(text, low):
                    continue
            m = find(text)
            if m is not None and (best is None or m.start() < best.start()):
                best = m
        return best
    return search


@cache
def pattern_finditer(code: str) -> Callable[[str, str | None], Iterator[re.Match]]:
    """`patterns(code).finditer(text)`, the same matches, with the patterns a letter can start left out of the
    alternation when the text (`low`: lower-cased, or None) holds none of their phrases. A letter in the guard makes
    the engine try every branch at every such letter (placeholder: `lorem ipsum` and `XX公司` put `l` and `x` in
    it, 39 µs a record that has a `[` or `<`); without them the guard is brackets only. A pattern that cannot match
    changes no match of the alternation, so the matches are the same (tests/test_audit_speed.py). Two alternations,
    with and without those patterns (each costs a compile of the whole pattern)."""
    items = _items(code, None)
    # item → its phrases, for the items a letter can start. The phrases as required_phrases gives them, short ones
    # too ("xx", "某某"): literal_gate's minimum length is for a gate in front of every search; here a phrase only
    # decides which alternation runs, on texts that already passed the placeholder hints
    gates: dict[int, LiteralGate] = {}
    for i, rx in enumerate(items):
        chars = first_chars(rx, re.IGNORECASE)
        if not chars or not any(len(ch) == 1 and ch.isascii() and ch.isalpha() for ch in chars):
            continue  # no letter starts it (a bracket does): stays in both alternations
        phrases = required_phrases(rx, re.IGNORECASE)
        if phrases and len(phrases) <= MAX_GATE:
            gates[i] = LiteralGate(phrases)
    whole = patterns(code)
    if not gates:
        return lambda text, low=None: whole.finditer(text)
    without = guarded("|".join(f"(?:{rx})" for i, rx in enumerate(items) if i not in gates), re.IGNORECASE)

    def finditer(text: str, low: str | None = None) -> Iterator[re.Match]:
        low = text.lower() if low is None else low
        for gate in gates.values():
            if gate(text, low):
                return whole.finditer(text)
        return without.finditer(text)
    finditer.without = without  # type: ignore[attr-defined] - what the tests inspect
    return finditer


def _gated_search(gate: LiteralGate | None, find: Callable[[str], re.Match | None]) -> Callable[[str], re.Match | None]:
    """One alternation behind one phrase gate: cheaper than a search per language for a few languages (English
    and Chinese answers: 5.4 µs against 7.5)."""
    if gate is None:
        return find
    return lambda text: find(text) if gate(text) else None


def _languages(code: str, langs: tuple[str, ...] | None) -> list[str]:
    """The languages of a finding's patterns or slot words, in catalogue order (the order of `patterns`' branches;
    languages with slot words only after them)."""
    entry = catalog()[code]
    return [lang for lang in dict.fromkeys([*(entry.patterns or {}), *(entry.slots or {})])
            if langs is None or lang in langs]


# A slot's words: a letter first, then anything but spaces, brackets and sentence punctuation (possessive: a word
# is never given back). Separators: spaces, or a comma, slash or ampersand ("[Ort, Datum]", "[Name/Firma]").
_SLOT_WORD = r"[^\W\d_][^\s\[\]<>(){}.,!?;:\"“”«»。！？،؟।]*+"
_SLOT_SEP = r"(?:[ \t]*[,/&][ \t]*|[ \t]+)"
SLOT_WORDS_AROUND = 3  # words a slot may hold before and after its noun


def slot_patterns(*languages: SlotWords) -> list[str]:
    """Slot words (of one or several languages, merged) as patterns: `[` up to SLOT_WORDS_AROUND words, a noun, up
    to as many words `]`; `[` an opening word and 1-4 words `]`. In `<...>` too for nouns outside Latin letters
    (`<Ваше имя>`: no HTML tag looks like that; `<name>` or `<data>` would) and after an opening word (`<votre
    nom>`). The words are one trie-shaped alternation each (`_trie`): the engine reads a word once instead of trying
    hundreds of branches at every word of a bracket (27 languages as branches: +111k instructions a record)."""
    w, sep, n = _SLOT_WORD, _SLOT_SEP, SLOT_WORDS_AROUND
    nouns = [x for words in languages for x in words.nouns]
    opens = [x for words in languages for x in words.opens]
    latin = [x for x in nouns if _latin(x)]
    other = [x for x in nouns if not _latin(x)]
    out = []
    for group, brackets in ((latin, ("\\[", "\\]")), (other, ("[\\[<]", "[\\]>]"))):
        if group:
            out.append(f"{brackets[0]}(?:{w}{sep}){{0,{n}}}{_trie(group)}(?:{sep}{w}){{0,{n}}}{brackets[1]}")
    if opens:
        out.append(f"[\\[<]{_trie(opens)}[ \\t]+{w}(?:{sep}{w}){{0,3}}[\\]>]")
    return out


def _latin(word: str) -> bool:
    return word[0].isascii() or "\u00c0" <= word[0] <= "\u024f"


_STEM_TAIL = _SLOT_WORD[_SLOT_WORD.index("]") + 1:]  # what a stem (`фамили*`) is followed by: the rest of its word


def _trie(words: list[str]) -> str:
    """Slot words (lower-cased; `*`: a stem, followed by the rest of its word) as one trie-shaped alternation
    (regex_guard.trie); a space in a word is any run of spaces or tabs."""
    return trie((w.lower() for w in words), lambda ch: "[ \\t]+" if ch == " " else re.escape(ch), _STEM_TAIL)


@cache
def pattern_found(code: str) -> Callable[[str], bool]:
    """Whether any of a finding's patterns matches somewhere in a text: `patterns(code).search` as a yes or no, at
    a fraction of the cost. The patterns anchored at the start (`^(?:what|who|...)`, most of `knowledge_heavy`'s)
    are tried at the start only (`match`) instead of as branches of one alternation tried at every character; the
    others keep their first-character guard (the bench's instructions: 10.0 µs each before, 3.7 µs)."""
    anchored, floating = [], []
    for rx in _items(code, None):
        (anchored if _anchored(_parser.parse(rx, re.IGNORECASE)) else floating).append(f"(?:{rx})")
    at_start = re.compile("|".join(anchored), re.IGNORECASE).match if anchored else None
    anywhere = guarded("|".join(floating), re.IGNORECASE).search if floating else None
    return lambda text: bool(at_start and at_start(text) or anywhere and anywhere(text))


def _anchored(seq) -> bool:
    """Every match of the parsed pattern starts at the start of the text (`^` first in every branch)."""
    if not seq:
        return False
    op, av = seq[0]
    if op is sre.AT:
        return av in (sre.AT_BEGINNING, sre.AT_BEGINNING_STRING)
    if op is sre.SUBPATTERN:
        return _anchored(av[-1])
    if op is sre.BRANCH:
        return all(_anchored(alt) for alt in av[1])
    return False


def _joined(code: str, langs: tuple[str, ...] | None) -> str:
    return "|".join(f"(?:{rx})" for rx in _items(code, langs)) or r"(?!x)x"


@cache
def _items(code: str, langs: tuple[str, ...] | None) -> tuple[str, ...]:
    """A finding's patterns (of `langs`, or of every language), each checked to compile, then the slot patterns
    of those languages' slot words."""
    entry = catalog()[code]
    languages = _languages(code, langs)
    parts = []
    for lang in languages:
        parts += checked(f"{code}.patterns.{lang}", (entry.patterns or {}).get(lang, []))
    slots = [entry.slots[lang] for lang in languages if entry.slots and lang in entry.slots]
    return tuple(parts + (slot_patterns(*slots) if slots else []))


def checked(field: str, patterns: list[str]) -> list[str]:
    """`patterns`, the catalogue's `field`, each checked to compile: a broken one is a usage error that names it."""
    for j, rx in enumerate(patterns):
        try:
            re.compile(rx)
        except re.error as e:
            raise UserError(f"{rules_dir() / 'audit_findings.yaml'}: `{field}[{j}]` is not a valid regular expression "
                            f"({e}); fix the pattern") from None
    return patterns


def pattern_texts(code: str, langs: tuple[str, ...] | None = None) -> list[str]:
    """A finding's patterns as regular expressions (of `langs`, or of every language), slot patterns included."""
    return list(_items(code, langs))


class Selection:
    """Which findings an audit reports, linter style: `select` (default: all) minus `ignore`. Codes or shell-style
    patterns (`pair_*`); `ALL` selects everything. Unknown codes are a usage error that suggests the closest."""

    def __init__(self, select: list[str] | None = None, ignore: list[str] | None = None, where: str = "") -> None:
        codes = list(catalog())
        chosen = set(codes) if not select else self._expand(select, codes, where or "--select")
        self.codes = frozenset(chosen - self._expand(ignore or [], codes, where or "--ignore"))

    @staticmethod
    def _expand(items: list[str], codes: list[str], where: str) -> set[str]:
        out: set[str] = set()
        for item in items:
            item = item.strip()
            if not item:
                continue
            if item.upper() == "ALL":
                out.update(codes)
                continue
            found = fnmatch.filter(codes, item)
            if not found:
                import difflib

                close = difflib.get_close_matches(item, codes, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else "; `tunewise audit --list-checks` lists them"
                raise UserError(f"{where}: no finding code `{item}`{hint}")
            out.update(found)
        return out

    def __call__(self, code: str) -> bool:
        return code in self.codes

    def all(self) -> bool:
        return len(self.codes) == len(catalog())
