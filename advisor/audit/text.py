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
_NON_ASCII_DROP = re.compile("[" + re.escape("".join(c for c in _PUNCT if ord(c) > 127) + "".join(
    chr(c) for c in range(128, 0x3001) if chr(c).isspace())) + "]+")
# the mark first, the digit before it checked behind: the engine skips to each `.` and `,` (a pattern that starts
# with a digit or a lookbehind is tried at every character: 2x slower)
_DECIMAL = re.compile(r"[.,](?<=\d[.,])(?=\d)")
_DECIMAL_MARK = "\u00b7"


def normalise(text: str) -> str:
    """The comparison key of a text: lower case, without whitespace and punctuation, keeping signs, operators
    and decimal points. ASCII bytes never occur inside a multi-byte UTF-8 character, so the ASCII part is removed
    on the UTF-8 bytes (C speed); the few non-ASCII punctuation marks and spaces by one regex."""
    t = text.lower()
    if ("." in t or "," in t) and _DECIMAL.search(t):
        t = _DECIMAL.sub(_DECIMAL_MARK, t)
    out = t.encode("utf-8", "surrogatepass").translate(None, _ASCII_DROP).decode("utf-8", "surrogatepass")
    if out.isascii():
        return out
    return _NON_ASCII_DROP.sub("", out.replace("—", "-"))


def normalise_many(texts: list[str]) -> list[str]:
    """`normalise` of each text, done once on the texts joined by NUL (kept by normalise, never part of a decimal
    or a case rule), then split: the same results with one pass instead of one per message."""
    if len(texts) < 2 or any("\x00" in t for t in texts):
        return [normalise(t) for t in texts]
    return normalise("\x00".join(texts)).split("\x00")


def char_count(runs: re.Pattern, text: str) -> int:
    """How many characters of `text` a run pattern (`[...]+`) covers: the runs are removed in C and the lengths
    compared, 3x faster than `len(findall)` of single characters, which makes a string per character."""
    return len(text) - len(runs.sub("", text))


def key(text: str) -> int:
    """A stable 64-bit key of a (normalised) text: the same in every process and on every run (Python's hash()
    is salted per process, and the audit's worker processes must agree)."""
    return int.from_bytes(blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


_NOT_UNIT = re.compile("[\\s" + re.escape(_PUNCT) + "]+")
_CJK = re.compile(r"[\u4e00-\u9fff\u3040-\u30ff]+")


def script_units(text: str) -> list[str]:
    """Words for space-separated text, characters for CJK (for repetition and diversity measures)."""
    if text.isascii():
        return text.lower().split()
    if char_count(_CJK, text[:500]) > 20:
        return list(_NOT_UNIT.sub("", text))  # every character but spaces and punctuation
    return text.lower().split()


# English and Chinese task intents: the fallback for free-form instructions (advisor/audit/tasks.py)
INTENTS: list[tuple[str, re.Pattern]] = [
    ("translation", re.compile(r"\btranslat|翻译|译成|译为|翻譯")),
    ("summarisation", re.compile(r"\bsummar|\btl;?dr\b|总结|概括|摘要|归纳")),
    ("classification", re.compile(r"\bclassif|\bcategori[sz]|\bwhich category|\bsentiment|\blabel (?:the|this|each)|"
                                  r"\bis (?:this|the following) (?:a |an )?(?:positive|negative|spam|true|false)|分类|情感|类别|判断")),
    ("extraction", re.compile(r"\bextract|\bidentify (?:the|all)|\bfind (?:all|the)\b|\bpull out|提取|找出|抽取")),
    ("rewriting", re.compile(r"\brewrite|\bparaphrase|\brephrase|\bedit (?:the|this)|\bcorrect (?:the|this)|"
                             r"\bproofread|\bsimplify|\bconvert (?:the|this)|\bmake (?:the|this) .{0,30}more|改写|润色|改成|修改")),
    ("code", re.compile(r"\bcode\b|\bfunction\b|\bpython|\bjavascript|\bsql\b|\bprogram\b|\balgorithm|\bregex|"
                        r"\bhtml\b|\bjava\b|\bc\+\+|代码|编程|函数|程序")),
    ("math", re.compile(r"\bcalculate|\bcompute|\bsolve|\bequation|\bhow many\b|\bwhat is \d|\d+\s*[-+*/×÷]\s*\d+|"
                        r"计算|求解|方程|等于多少")),
    ("generation", re.compile(r"\b(?:write|compose|draft|create|generate) (?:a|an|me|some|\d+|two|three|five)\b|"
                              r"\b(?:story|poem|essay|haiku|slogan|tweet|song|lyrics|blog post)\b|写一|创作|作一首|写出")),
    ("brainstorming", re.compile(r"^(?:list|name|give|suggest|brainstorm|come up)\b|\bideas?\b|\btips\b|列出|建议|给出|举出")),
    ("qa", re.compile(r"^(?:what|who|when|where|why|how|which|is|are|do|does|can|explain|describe|define|tell)\b|\?\s*$|"
                      r"什么|为什么|如何|怎么|怎样|谁|哪|吗|解释|描述|介绍")),
]


# Substrings that must occur for a category's pattern to match at all: a C-speed gate before the regex.
_HINTS: dict[str, tuple[str, ...]] = {
    "translation": ("translat", "翻译", "译成", "译为", "翻譯"),
    "summarisation": ("summar", "tl", "总结", "概括", "摘要", "归纳"),
    "classification": ("classif", "categor", "sentiment", "label", "is this", "is the following", "分类", "情感", "类别", "判断"),
    "extraction": ("extract", "identify", "find", "pull out", "提取", "找出", "抽取"),
    "rewriting": ("rewrite", "paraphrase", "rephrase", "edit", "correct", "proofread", "simplify", "convert", "make",
                  "改写", "润色", "改成", "修改"),
    "code": ("code", "function", "python", "javascript", "sql", "program", "algorithm", "regex", "html", "java", "c++",
             "代码", "编程", "函数", "程序"),
    "math": ("calculate", "compute", "solve", "equation", "how many", "what is", "+", "-", "*", "/", "×", "÷",
             "计算", "求解", "方程", "等于多少"),
    "generation": ("write", "compose", "draft", "create", "generate", "story", "poem", "essay", "haiku", "slogan", "tweet",
                   "song", "lyrics", "blog", "写", "创作", "作一首"),
    "brainstorming": ("list", "name", "give", "suggest", "brainstorm", "come up", "idea", "tips", "列出", "建议", "给出", "举出"),
    "qa": ("",),
}


def intent(instruction: str) -> str:
    """The first category in INTENTS order whose pattern matches the start of the instruction."""
    t = instruction[:160].strip().lower()
    for name, rx in INTENTS:
        if any(h in t for h in _HINTS[name]) and rx.search(t):
            return name
    return "other"



_FACT_Q = re.compile(r"^(?:what|who|when|where|which|how (?:many|much|old|long|far)|name the|list the|tell me about|"
                     r"what's|whats)\b|什么是|是什么|谁|何时|哪|多少|几|什么时候|介绍一下")
_NUMBER = re.compile(r"\d+")
_PROPER = re.compile(r"(?<=[a-z,;:] )[A-Z][a-z]{2,}")
_STRUCTURED = re.compile(r"^\s*[\[{<]|```")


_QUESTION = re.compile(r"^(?:how|what|who|where|when|which|why|can|could|do|does|is|are|should)\b|\?\s*$", re.IGNORECASE)
_ENTITY = re.compile(r"\b[A-Z][A-Z0-9]{1,}[a-z]*\b|(?<=[a-z,] )[A-Z][a-z]{2,}")


def is_factual_question(instruction: str) -> bool:
    return bool(_FACT_Q.search(instruction[:200].strip().lower()))


def asks_about_entity(instruction: str) -> bool:
    """A question about a named thing (an acronym such as SMBX, or a capitalised name mid-sentence):
    its answer is a fact about that thing, e.g. a company FAQ."""
    t = instruction[:200].strip()
    return bool(_QUESTION.search(t)) and bool(_ENTITY.search(t))


def fact_density(answer: str) -> float:
    """Numbers and mid-sentence capitalised names per 100 words (or per 100 CJK characters)."""
    units = max(1, len(answer.split()) if answer.isascii() else len(answer) // 2)
    facts = char_count(_NUMBER, answer) / 2 + len(_PROPER.findall(answer))
    return 100.0 * facts / units


def is_structured(answer: str) -> bool:
    return bool(_STRUCTURED.search(answer[:200]))
