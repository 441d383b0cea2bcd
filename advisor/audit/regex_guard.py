"""A cheap first-character guard for big alternations of patterns (the catalogue's per-language patterns).

Python's regex engine tries every branch of an alternation at every position of the text. Most positions cannot
start a match at all: a placeholder starts with `{`, `[`, `<` or `【`, a refusal with one of a few letters. Prefixing
the alternation with a lookahead on the set of characters a match can start with, `(?=[...])(?:...)`, makes the
engine reject those positions with one set test; measured on real chat records it cuts the placeholder search
from 195 to 32 µs per record and the refusal search by half, with the same matches (tests/test_audit_speed.py).
The set is computed from the parsed pattern; when a branch can start with any character (`.`, `\\w`, a negated
set) or match the empty string, no guard is added."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import cache
from re import _constants as c
from re import _parser

MAX_GUARD = 400  # characters in the guard set; beyond that the set test gains little

_ZERO_WIDTH = {c.AT, c.ASSERT, c.ASSERT_NOT}
_REPEATS = {c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", c.MAX_REPEAT)}


class _Any(Exception):
    """A branch can start with (almost) any character: no guard."""


DIGITS = "\\d"  # in a first-character set: every digit the pattern's `\d` matches, written as the class itself


def _set_of(items: list) -> set[str]:
    out: set[str] = set()
    for op, av in items:
        if op is c.LITERAL:
            out.add(chr(av))
        elif op is c.RANGE and av[1] - av[0] < MAX_GUARD:
            out.update(chr(x) for x in range(av[0], av[1] + 1))
        elif op is c.CATEGORY and av is c.CATEGORY_DIGIT:
            out.add(DIGITS)  # `\d` (Unicode digits of every script: too many to list, one class test)
        else:  # NEGATE, CATEGORY (\w, \s), wide ranges
            raise _Any
    return out


def _first(seq) -> tuple[set[str], bool]:
    """The characters a match of `seq` can start with, and whether `seq` can match the empty string (then the
    match may also start with whatever follows it)."""
    out: set[str] = set()
    for op, av in seq:
        chars, nullable = _first_of(op, av)
        out |= chars
        if not nullable:
            return out, False
    return out, True


def _first_of(op, av) -> tuple[set[str], bool]:
    if op in _ZERO_WIDTH:
        return set(), True
    if op is c.LITERAL:
        return {chr(av)}, False
    if op is c.IN:
        return _set_of(av), False
    if op is c.SUBPATTERN:
        return _first(av[-1])
    if op is c.BRANCH:
        out: set[str] = set()
        nullable = False
        for alt in av[1]:
            chars, empty = _first(alt)
            out |= chars
            nullable = nullable or empty
        return out, nullable
    if op in _REPEATS:
        lo, _hi, body = av
        chars, empty = _first(body)
        return chars, empty or lo == 0
    raise _Any  # ANY, NOT_LITERAL, GROUPREF, ...


def first_chars(pattern: str, flags: int = 0) -> set[str] | None:
    """The characters every match of `pattern` starts with, or None when any could (or the empty string matches).
    `\\d` in the set stands for the digits (a `\\d` in the pattern)."""
    try:
        chars, nullable = _first(_parser.parse(pattern, flags))
    except _Any:
        return None
    return None if nullable else chars


def guarded(pattern: str, flags: int = 0) -> re.Pattern:
    """`pattern` compiled with a first-character lookahead when one exists (same matches, fewer attempts)."""
    return guard(pattern, first_chars(pattern, flags), flags)


def guard(pattern: str, chars: Iterable[str] | None, flags: int = 0) -> re.Pattern:
    """`pattern` compiled behind a lookahead for `chars`, the characters every match starts with (first_chars, or
    the union of its alternatives' sets); without one where there are none or too many to pay off."""
    chars = set(chars) if chars is not None else set()
    if not chars or len(chars) > MAX_GUARD:
        return re.compile(pattern, flags)
    charset = "".join(sorted(ch if ch == DIGITS else re.escape(ch) for ch in chars))
    return re.compile(f"(?=[{charset}])(?:{pattern})", flags)


def trie(words: Iterable[str], piece: Callable[[str], str] = re.escape, stem_tail: str | None = None) -> str:
    """Words as one regular expression that shares their prefixes: `(?:a(?:dres|...)|...)`. A node's longer
    continuations come first and a word's end last, so a search gives the longest word at a position. `piece`
    writes a character; with `stem_tail`, a word ending in `*` is a stem, followed by `stem_tail`."""
    root: dict = {}
    for word in words:
        stem = stem_tail is not None and word.endswith("*")
        node = root
        for ch in word[:-1] if stem else word:
            node = node.setdefault(ch, {})
        node[_STEM if stem else _END] = {}

    def render(node: dict) -> str:
        branches = [piece(ch) + render(node[ch])
                    for ch in sorted((k for k in node if k not in (_END, _STEM)), key=lambda k: -len(node[k]))]
        if _STEM in node:
            branches.append(stem_tail)
        if _END in node:
            branches.append("")
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return render(root)


_END, _STEM = "", None  # trie keys that end a word and a stem (a character key is never empty or None)


# ---- required literals: a substring gate in front of the regex ------------------------------------------------
# Even guarded, a big case-insensitive alternation costs ~25 ns a character on English prose, where most letters
# can start a branch. But nearly every branch of a catalogue pattern needs a fixed phrase ("as an ai", "language
# model", "i cannot"): when none of those phrases is in the lower-cased text, no branch can match. Python finds a
# substring at C speed, so `LiteralGate` tests the phrases first and runs the regex only on texts that have one.
GATE_MIN_CHARS = 4  # every phrase at least this long, or the gate rejects too few texts to pay for itself
MAX_GATE = 32  # phrases at most (each is one substring search)
MAX_RUN = 8  # spellings a phrase may have (`i(?:'m| am) sorry` is 2) before it is cut
LONG_ENOUGH = 8  # characters from which a longer phrase rejects no more texts: fewer spellings count more
# the only characters beyond ASCII that a case-insensitive ASCII letter matches (re's case folding): where the
# text has one, str.lower() would not show the phrase, so the gate lets the text through
_FOLDS_TO_ASCII = re.compile("[\u0130\u0131\u017f\u212a]")


def _safe_char(ch: str) -> bool:
    """Characters whose lower case is what the case-insensitive regex compares: ASCII, and scripts without case."""
    return ch.isascii() or ch.lower() == ch.upper()


def _cross(a: set[str] | None, b: set[str] | None, limit: int = MAX_RUN) -> set[str] | None:
    if a is None or b is None or len(a) * len(b) > limit:
        return None
    return {x + y for x in a for y in b}


def _folds(seq) -> bool:
    """Whether the pattern `seq` belongs to matches case-insensitively: then only characters whose lower case is
    what the regex compares make phrases (_safe_char); matched as written, every character does (the lower case of
    a character is in the lower-cased text wherever the character is in the text)."""
    return bool(seq.state.flags & re.IGNORECASE)


def _strings(seq) -> set[str] | None:
    """Every string `seq` can match, lower-cased, when that is a small finite set (zero-width assertions ignored)."""
    out: set[str] | None = {""}
    for op, av in seq:
        out = _cross(out, _element_strings(op, av, _folds(seq)), MAX_GATE)
        if out is None:
            return None
    return out


def _element_strings(op, av, fold: bool = True) -> set[str] | None:
    if op in _ZERO_WIDTH:
        return {""}
    if op is c.LITERAL:
        ch = chr(av)
        return {ch.lower()} if not fold or _safe_char(ch) else None
    if op is c.IN:
        chars = {chr(a).lower() for o, a in av if o is c.LITERAL and (not fold or _safe_char(chr(a)))}
        return chars if len(chars) == len(av) and len(chars) <= 4 else None
    if op is c.SUBPATTERN:
        return _strings(av[-1])
    if op is c.BRANCH:
        out = _union(av[1], _strings)
        return out if out is not None and len(out) <= MAX_GATE else None
    if op in _REPEATS and av[1] == 1 and av[0] <= 1:  # `x?` or `x{1}`
        s = _strings(av[2])
        return None if s is None else (s | {""} if av[0] == 0 else s)
    return None


def _union(alternatives: list, of) -> set[str] | None:
    """`of(alternative)` of every branch of an alternation together; None when one branch has none."""
    out: set[str] = set()
    for alt in alternatives:
        found = of(alt)
        if found is None:
            return None
        out |= found
    return out


def _score(phrases: set[str]) -> tuple[int, int, int]:
    """Better: long enough phrases first, then fewer of them, then longer."""
    shortest = min(map(len, phrases))
    return min(shortest, LONG_ENOUGH), -len(phrases), shortest


def _required(seq) -> set[str] | None:
    """A set of phrases one of which every match of `seq` contains (the best of the candidates), or None."""
    best: set[str] | None = None

    def consider(phrases: set[str] | None) -> None:
        nonlocal best
        if phrases and min(map(len, phrases)) > 0 and (best is None or _score(phrases) > _score(best)):
            best = phrases

    run: set[str] = {""}  # the spellings of the consecutive literal elements so far
    plain = ""  # the single-spelling part of them since the last element with several
    for op, av in seq:
        s = _element_strings(op, av, _folds(seq))
        if s is not None and len(s) == 1:
            plain += next(iter(s))
        else:
            consider({plain})
            plain = ""
            consider(s)
        grown = _cross(run, s) if s is not None else None
        if grown is not None:
            run = grown
            consider(run)  # every prefix of the run is required too: a shorter one may have fewer spellings
            continue
        consider(run)
        run = s if s is not None else {""}
        if s is None:
            consider(_inner_required(op, av))
    consider(run)
    consider({plain})
    return best


def _inner_required(op, av) -> set[str] | None:
    if op is c.SUBPATTERN:
        return _required(av[-1])
    if op is c.BRANCH:
        return _union(av[1], _required)
    if op in _REPEATS and av[0] >= 1:
        return _required(av[2])
    return None


def required_phrases(pattern: str, flags: int = 0) -> list[str] | None:
    """Lower-case phrases one of which every match of `pattern` contains, shortest first (a phrase that contains
    another is left out: the shorter decides), or None when a match needs no fixed phrase."""
    try:
        found = _required(_parser.parse(pattern, flags))
    except _Any:  # pragma: no cover - raised by first_chars only
        return None
    if found is None:
        return None
    out: list[str] = []
    for phrase in sorted(found, key=lambda p: (len(p), p)):
        if not any(kept in phrase for kept in out):
            out.append(phrase)
    return out


class LiteralGate:
    """`gate(text, low)`: False when `text` cannot match the pattern (it has none of the required phrases)."""

    __slots__ = ("phrases",)

    def __init__(self, phrases: list[str]) -> None:
        self.phrases = tuple(phrases)

    def __call__(self, text: str, low: str | None = None) -> bool:
        if not text.isascii() and _FOLDS_TO_ASCII.search(text):
            return True
        low = text.lower() if low is None else low
        for phrase in self.phrases:  # noqa: SIM110 - a plain loop: any() over a generator costs twice as much here
            if phrase in low:
                return True
        return False


def literal_gate(pattern: str, flags: int = 0) -> LiteralGate | None:
    """A gate for `pattern` when its required phrases are few and long enough to reject most texts, else None."""
    phrases = required_phrases(pattern, flags)
    if not phrases or len(phrases) > MAX_GATE or min(map(len, phrases)) < GATE_MIN_CHARS:
        return None
    return LiteralGate(phrases)


# ---- patterns an ASCII text cannot match ------------------------------------------------------------------------
# A language's patterns in a script other than Latin (Chinese, Japanese, Korean, Russian, Arabic, Hindi) need a
# character of that script in every match: on an ASCII text (most texts) they are not run at all.
_ASCII = "".join(map(chr, range(128)))


@cache
def _range_matches_ascii(lo: int, hi: int, flags: int) -> bool:
    """Whether a character from `lo` to `hi` in a pattern matches an ASCII character, case folding (`flags`)
    included: asked of the regex engine itself."""
    return lo < 128 or re.compile(f"[{re.escape(chr(lo))}-{re.escape(chr(hi))}]", flags).search(_ASCII) is not None


def _class_needs_non_ascii(items: list, flags: int) -> bool:
    """A character class whose members are all beyond ASCII and fold to no ASCII character."""
    for op, av in items:
        if op is c.LITERAL:
            lo = hi = av
        elif op is c.RANGE:
            lo, hi = av
        else:  # NEGATE, CATEGORY (\w, \s, \d)
            return False
        if _range_matches_ascii(lo, hi, flags):
            return False
    return True


def _seq_needs_non_ascii(seq, flags: int) -> bool:
    """Some element every match of `seq` goes through holds only characters beyond ASCII."""
    return any(_element_needs_non_ascii(op, av, flags) for op, av in seq)


def _element_needs_non_ascii(op, av, flags: int) -> bool:
    if op is c.LITERAL:
        return not _range_matches_ascii(av, av, flags)
    if op is c.IN:
        return _class_needs_non_ascii(av, flags)
    if op is c.SUBPATTERN:
        return _seq_needs_non_ascii(av[-1], flags)
    if op is getattr(c, "ATOMIC_GROUP", None):
        return _seq_needs_non_ascii(av, flags)
    if op is c.BRANCH:
        return all(_seq_needs_non_ascii(alt, flags) for alt in av[1])
    if op in _REPEATS:
        return av[0] >= 1 and _seq_needs_non_ascii(av[2], flags)
    return False  # assertions, anchors, `.`, back-references: nothing required (the safe answer)


def needs_non_ascii(pattern: str, flags: int = 0) -> bool:
    """Every match of `pattern` holds a character beyond ASCII: an ASCII text cannot match. False when unsure."""
    return _seq_needs_non_ascii(_parser.parse(pattern, flags), flags)


def top_level_branches(pattern: str) -> list[str]:
    """The alternatives of `pattern`'s outermost alternation, as pattern texts (`a|(?:b|c)|[|]` gives `a`,
    `(?:b|c)` and `[|]`): each can be gated or anchored on its own."""
    out, start, depth, i, in_class = [], 0, 0, 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            i += 1 + (pattern[i + 1:i + 2] == "^")  # `[]...]` and `[^]...]`: the first `]` is a member
            i += pattern[i:i + 1] == "]"
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            out.append(pattern[start:i])
            start = i + 1
        i += 1
    return out + [pattern[start:]]
