"""Cheap text measures used by the audit: normalisation, token approximation, language, task intent."""

from __future__ import annotations

import re
import string
import unicodedata

_PUNCT = "".join(string.punctuation) + "，。！？、；：「」『』（）《》〈〉【】“”‘’…—～·．"
_STRIP = str.maketrans(_PUNCT, " " * len(_PUNCT))


def normalise(text: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed: the key for exact duplicates."""
    return " ".join(text.lower().translate(_STRIP).split())


def approx_tokens(text: str) -> int:
    """Approximation used without --model: one token per 4 ASCII characters, one per other character
    (CJK characters are about one token each in common BPE vocabularies)."""
    n_ascii = len(text.encode("ascii", "ignore"))
    return (n_ascii + 3) // 4 + (len(text) - n_ascii)


_SCRIPTS = [
    ("zh", re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]")),
    ("ja", re.compile(r"[\u3040-\u30ff]")),
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
]
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_WORD = re.compile(r"[a-zà-ÿ]+")
_STOPWORDS = {
    "en": set(["the", "and", "of", "to", "is", "in", "that", "it", "for", "you", "with", "are", "this", "be", "on", "as", "have", "not", "what", "can", "how"]),
    # words that are also common English words (a, o, e, do, no, as, die, once...) are left out
    "es": set(["el", "los", "las", "que", "y", "una", "por", "para", "con", "es", "del", "como", "más", "pero", "muy", "también", "está"]),
    "fr": set(["le", "les", "des", "et", "est", "une", "du", "que", "pour", "dans", "pas", "ce", "qui", "sur", "avec", "au", "il", "vous", "nous"]),
    "de": set(["der", "das", "und", "ist", "nicht", "ein", "eine", "zu", "den", "mit", "von", "sie", "es", "auf", "für", "ich", "auch"]),
    "pt": set(["os", "que", "da", "em", "um", "uma", "para", "com", "não", "é", "na", "ao", "mais", "também", "muito", "você"]),
    "it": set(["il", "di", "che", "è", "una", "per", "non", "con", "sono", "del", "della", "gli", "anche", "più", "questo"]),
}


_STOP_LOOKUP = {w: lang for lang, ws in reversed(list(_STOPWORDS.items())) for w in ws}


def language(text: str, sample: int = 2000) -> str:
    """Dominant language by script, and for Latin script by stop words; 'und' when unsure."""
    t = text[:sample]
    if not t.isascii():
        counts = {name: len(rx.findall(t)) for name, rx in _SCRIPTS}
        latin = len(_LATIN.findall(t))
        best = max(counts, key=counts.get)
        # a CJK character carries about as much as a 3-letter Latin word
        if counts[best] * 3 >= latin and counts[best] >= 5:
            if best == "zh" and counts["ja"] >= 5:
                return "ja"
            return best
        if latin < 15:
            return "und"
    hits = dict.fromkeys(_STOPWORDS, 0)
    words = _WORD.findall(t[:1200].lower())
    if len(words) < 3:
        return "und"
    for w in words[:200]:
        lang = _STOP_LOOKUP.get(w)
        if lang:
            hits[lang] += 1
    lang = max(hits, key=hits.get)
    if lang != "en" and hits[lang] < max(3, 2 * hits["en"]):
        lang = "en"  # English loan words and names must not flip a language
    return lang if hits[lang] >= 2 else "und"


_CJK = re.compile(r"[\u4e00-\u9fff\u3040-\u30ff]")


def script_units(text: str) -> list[str]:
    """Words for space-separated text, characters for CJK (for repetition and diversity measures)."""
    if text.isascii():
        return text.lower().split()
    if len(_CJK.findall(text[:500])) > 20:
        return [c for c in text if not c.isspace() and unicodedata.category(c)[0] != "P"]
    return text.lower().split()


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
_NUMBER = re.compile(r"\d")
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
    facts = len(_NUMBER.findall(answer)) / 2 + len(_PROPER.findall(answer))
    return 100.0 * facts / units


def is_structured(answer: str) -> bool:
    return bool(_STRUCTURED.search(answer[:200]))
