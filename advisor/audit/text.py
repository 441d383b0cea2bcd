"""Cheap text measures used by the audit: normalisation, script units, knowledge-vs-behaviour cues."""

from __future__ import annotations

import re
import string
from hashlib import blake2b

# Characters that change meaning are kept: signs and operators ("-18" is not "18", "3 - 5" is not "3 + 5"),
# comparison, percent and currency; so is a decimal point or separator between digits (3.5 is not 35). Case,
# whitespace and other punctuation are dropped.
_MEANINGFUL = "+-*/=<>%$€£¥^×÷"
_PUNCT = "".join(c for c in string.punctuation if c not in _MEANINGFUL) + "，。！？、；：「」『』（）《》〈〉【】“”‘’…～．«»¿¡"
_ASCII_DROP = bytes(c for c in range(128) if chr(c) in _PUNCT or chr(c).isspace())


def runs(charset: str) -> re.Pattern:
    """The pattern `charset+` written `charset charset*`: the same matches, but a pattern whose first element is a
    set lets the regex engine skip to the next character of the set in a tight loop, while one that starts with a
    repeat (`[...]+`, `\\d+`) is tried in full at every character: 2.5x slower (`\\d+` searched in a 300-character
    text: 8 µs, `\\d\\d*`: 3)."""
    return re.compile(f"{charset}{charset}*")


_NON_ASCII_DROP = runs("[" + re.escape("".join(c for c in _PUNCT if ord(c) > 127) + "".join(
    chr(c) for c in range(128, 0x3001) if chr(c).isspace())) + "]")
# the mark first, the digit before it checked behind: the engine skips to each `.` and `,` (a pattern that starts
# with a digit or a lookbehind is tried at every character: 2x slower)
_DECIMAL = re.compile(r"[.,](?<=\d[.,])(?=\d)")
_DECIMAL_MARK = "\u00b7"
# The decimal gate, on the UTF-8 bytes: ASCII digits and every non-ASCII byte (a non-ASCII character may be a
# Unicode digit, which `\d` matches) → "d", "." and "," → "p". A `_DECIMAL` match leaves "dpd" in this shape,
# so a text without it has no decimal mark; translate + find costs a third of the regex search (2 against 6.6 µs
# a record of the bench, where 84% of the records have no decimal).
_DECIMAL_SHAPE = bytes(100 if 48 <= c <= 57 or c >= 128 else 112 if c in b".," else 120 for c in range(256))


def normalise(text: str) -> str:
    """The comparison key of a text: lower case, without whitespace and punctuation, keeping signs, operators
    and decimal points. ASCII bytes never occur inside a multi-byte UTF-8 character, so the ASCII part is removed
    on the UTF-8 bytes (C speed); the few non-ASCII punctuation marks and spaces by one regex."""
    return _normalise_lowered(text.lower())


def _normalise_lowered(t: str) -> str:
    """`normalise` of a text already lower-cased."""
    raw = t.encode("utf-8", "surrogatepass")
    if ("." in t or "," in t) and _may_have_decimal(raw):
        t = _DECIMAL.sub(_DECIMAL_MARK, t)
        raw = t.encode("utf-8", "surrogatepass")
    out = raw.translate(None, _ASCII_DROP).decode("utf-8", "surrogatepass")
    if out.isascii():
        return out
    return _NON_ASCII_DROP.sub("", out.replace("—", "-"))


def _may_have_decimal(raw: bytes) -> bool:
    """False when the text (its UTF-8 bytes) has no `.` or `,` between two digits: `_DECIMAL` cannot match."""
    return raw.translate(_DECIMAL_SHAPE).find(b"dpd") >= 0


def normalise_many(texts: list[str], lowered: str | None = None) -> list[str]:
    """`normalise` of each text, done once on the texts joined by NUL (kept by normalise, never part of a decimal
    or a case rule), then split: the same results with one pass instead of one per message. `lowered`: that joined
    text lower-cased, when the caller has it already."""
    if lowered is not None:
        return _normalise_lowered(lowered).split("\x00")
    if len(texts) < 2 or any("\x00" in t for t in texts):
        return [normalise(t) for t in texts]
    return normalise("\x00".join(texts)).split("\x00")


def char_count(runs: re.Pattern, text: str) -> int:
    """How many characters of `text` a run pattern (`[...]+`) covers: the runs are removed in C and the lengths
    compared, 3x faster than `len(findall)` of single characters, which makes a string per character."""
    return len(text) - len(runs.sub("", text))


def key(text: str) -> int:
    """A stable 64-bit key of a (normalised) text: the same in every process and on every run (Python's hash()
    is salted per process, and the audit's worker processes must agree). The empty text's key is kept: most
    records have no system prompt."""
    if not text:
        return _EMPTY_KEY
    return int.from_bytes(blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


_EMPTY_KEY = int.from_bytes(blake2b(b"", digest_size=8).digest(), "little")
_NOT_UNIT = runs("[\\s" + re.escape(_PUNCT) + "]")
_CJK = runs(r"[\u4e00-\u9fff\u3040-\u30ff]")


def script_units(text: str) -> list[str]:
    """Words for space-separated text, characters for CJK (for repetition and diversity measures)."""
    if text.isascii():
        return text.lower().split()
    if char_count(_CJK, text[:500]) > 20:
        return list(_NOT_UNIT.sub("", text))  # every character but spaces and punctuation
    return text.lower().split()


_NUMBER = runs(r"\d")
_LOWER = "a-zà-öø-ÿа-яёα-ω"
_UPPER = "A-ZÀ-ÖØ-ÞА-ЯЁΑ-Ω"
# The name patterns consume the capital first and then look behind it (`[A-Z](?<=, [A-Z])` is `(?<=, )[A-Z]`):
# a pattern that starts with a character set lets the engine skip to the next capital (text.runs); one that starts
# with a lookbehind or `\b` is tried at every character (3-6x slower on a 200-character instruction)
_PROPER = re.compile(f"[{_UPPER}](?<=[{_LOWER},;:] [{_UPPER}])[{_LOWER}]{{2,}}")
_STRUCTURED = re.compile(r"^\s*[\[{<]|```")
_CODE_FIRST = re.compile(r"(?:def|class|function|import|#include|public|private|static|const|let|var|select|create|"
                         r"insert|update)\b[^\n]*[(){}=;:]|from [\w.]+ import |[A-Za-z_]\w* ?= ?[\[{(\d'\"]",
                         re.IGNORECASE)
_OPENING = "¿¡\"'“«「 \t\n"
_ENTITY = re.compile(f"[{_UPPER}](?:(?<=\\b[{_UPPER}])[{_UPPER}0-9]{{1,}}[{_LOWER}]*\\b|"
                     f"(?<=[{_LOWER},] [{_UPPER}])[{_LOWER}]{{2,}})")
# a question: a question word first (tried at the start only: `match`), or a question mark at the end
_QUESTION_WORD = re.compile(r"(?:how|what|who|where|when|which|why|can|could|do|does|is|are|should)\b", re.IGNORECASE)
_QUESTION_MARK = re.compile(r"[?？؟]\s*$")
_CJK_TEXT = runs(r"[\u4e00-\u9fff\u3040-\u30ff]")
# A question that asks the assistant to do something ("Can you generate a password?") is a request, not a
# question about the world: its answer's numbers are output, not facts. Request forms per language.
_REQUEST = re.compile(
    r"\b(?:can|could|would|will) you\b|\bplease\b|"  # en
    r"\b(?:puedes|podrías|podría usted|puede usted)\b|"  # es
    r"\b(?:peux-tu|pouvez-vous|pourriez-vous|pourrais-tu)\b|"  # fr
    r"\b(?:kannst du|können sie|könntest du|könnten sie|bitte)\b|"  # de
    r"\b(?:você pode|pode me|poderia)\b|\b(?:puoi|potresti|può)\b|"  # pt, it
    r"\b(?:kun je|kunt u|zou je)\b|\b(?:можете|можешь|не могли бы)\b|\b(?:czy możesz|czy mógłbyś|proszę)\b|"  # nl ru pl
    r"\b(?:bisakah|tolong)\b|bạn có thể|\b(?:misin|mısın|misiniz|mısınız)\b|"  # id vi tr
    r"请|能不能|能否|可以帮|帮我|把|できますか|ください|주세요|줄 수 있|해줘")
STATEMENT_WORDS = 8
SPECIFIC_ANSWER = 6.0  # numbers and names per 100 words that make the answer to any question a fact


def is_factual_question(instruction: str) -> bool:
    """A question that asks for a fact, by the question words of the catalogue's `knowledge_heavy` patterns (17
    languages)."""
    from advisor.audit.catalog import pattern_found

    return pattern_found("knowledge_heavy")(instruction[:200].strip().lstrip(_OPENING).lower())


def is_question(instruction: str) -> bool:
    """Any question: an English question word first, or a question mark (Latin, full-width or Arabic) at the end
    (of the first 200 characters), or Spanish ¿ first."""
    t = instruction[:200].strip()
    return t[:1] == "¿" or bool(_QUESTION_WORD.match(t) or _QUESTION_MARK.search(t))


def asks_about_entity(instruction: str) -> bool:
    """A question about a named thing (an acronym such as SMBX, or a capitalised name mid-sentence):
    its answer is a fact about that thing, e.g. a company FAQ."""
    t = instruction[:200].strip()
    return is_question(t) and bool(_ENTITY.search(t))


def fact_density(answer: str) -> float:
    """Numbers and mid-sentence capitalised names per 100 words (or per 100 CJK characters; words in any script
    with spaces, not characters: an accent does not make a Spanish answer CJK)."""
    if answer.isascii():
        units = len(answer.split())
    else:
        cjk = char_count(_CJK_TEXT, answer)
        units = len(answer) // 2 if 3 * cjk >= len(answer) else len(answer.split()) + cjk // 2
    facts = char_count(_NUMBER, answer) / 2 + len(_PROPER.findall(answer))
    return 100.0 * facts / max(1, units)


TRANSFORMATIONS = ("translation", "rewriting", "classification")  # tasks whose answer is made from the prompt


def carries_facts(instruction: str, answer: str, task: str) -> bool:
    """The answer states facts: a factual question answered with specifics, a question about a named thing, or
    any question answered densely with numbers and names. Structured answers (JSON, code) are a form, and so are
    the answers of a translation, rewriting or classification task (`task`: the instruction's intent,
    advisor.audit.intents.intent)."""
    return _states_facts(instruction, answer) and not is_structured(answer) and task not in TRANSFORMATIONS


def _states_facts(instruction: str, answer: str) -> bool:
    """The cheap tests on the instruction (its first 200 characters) first; the answer is measured only for a
    question."""
    question = is_question(instruction)  # what asks_about_entity asks first, asked once
    if question and _ENTITY.search(instruction[:200].strip()):
        return True
    factual = is_factual_question(instruction)
    # any other question counts when it neither asks for a task nor supplies numbers of its own (a word problem's
    # answer is computed from them, not known) and is answered by a statement dense in specifics
    other = not factual and question and not _REQUEST.search(instruction[:200].lower()) and \
        not _NUMBER.search(instruction)
    if not (factual or other):
        return False
    density = fact_density(answer)
    return density >= 3 if factual else density >= SPECIFIC_ANSWER and _statement(answer)


def _statement(answer: str) -> bool:
    """An answer that states something: a sentence of at least STATEMENT_WORDS words (or 16 CJK characters), not a
    bare contact line or a number."""
    return len(answer.split()) >= STATEMENT_WORDS or char_count(_CJK_TEXT, answer) >= 2 * STATEMENT_WORDS


def is_structured(answer: str) -> bool:
    """JSON, markup, a code block, or code from the first line (`def f(x):`, `SELECT …;`): a form, not facts."""
    if _STRUCTURED.search(answer[:200]):
        return True
    return bool(_CODE_FIRST.match(answer.lstrip()[:200]))
