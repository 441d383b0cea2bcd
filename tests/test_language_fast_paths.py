"""The language identifier's fast forms give what their plain forms give: counts done on bytes equal the regex
counts over every code point, whole-text searches equal the line-by-line and four-search tests, the identifier
strip equals the plain substitution, and the stop-word counters equal counting per language in a dict. Random texts
are drawn (seeded) from the characters each pattern cares about, and the labelled texts are added."""

from __future__ import annotations

import random
import re

import pytest
import yaml

from advisor.audit import language as lid
from advisor.audit.text import char_count
from tests.conftest import ROOT

# the characters and pieces the patterns turn on: separators, triggers, spaces of every kind, case-folding oddities
# (U+0345 folds to a word character, K and ſ to ASCII letters), code words, scripts
PIECES = list("ab_Z9 .:/\\()$<>{}[]=;`@~\n\t\r\x0b\x1c\u00a0\u2028é中ー-–+*#,!?·、，\u0345\u212a\u017f") + [
    "if", "def ", "return", "int", "x = 1", "console.log", "www.", "http://a", "```", "~~~", " - ", "İmport", "ıf",
    "\nRETURN", "\n  x.y[0] += 1", "\n}", "Ω", "я", "ب", "ก", "한", "の", "Paris", "García", " the ", " de ", " y "]


def _random_texts(n: int, seed: int, longest: int = 40) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randrange(longest))) for _ in range(n)]


def _labelled() -> list[str]:
    out: list[str] = []
    for path in sorted((ROOT / "tests" / "labelled").glob("*.yaml")):
        stack = [yaml.safe_load(path.read_text(encoding="utf-8"))]
        while stack:
            x = stack.pop()
            if isinstance(x, str):
                out.append(x)
            elif isinstance(x, dict):
                stack += x.values()
            elif isinstance(x, list):
                stack += x
    return out


TEXTS = _random_texts(20_000, 1) + _labelled()
EVERY_CHARACTER = "".join(map(chr, range(0x110000)))  # lone surrogates too


def test_script_counts_on_bytes_are_the_regex_counts_over_every_code_point():
    han = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]+")
    cyrillic, arabic = re.compile(r"[\u0400-\u04ff]+"), re.compile(r"[\u0600-\u06ff]+")
    for t in [EVERY_CHARACTER, "", "\u4dbf\u4dc0\u4d00\u33ff\U00020000\ud800", *TEXTS[:2000]]:
        assert lid._han_count(t) == char_count(han, t)
        assert lid._cyrillic_or_arabic(t) == char_count(cyrillic, t) + char_count(arabic, t)
    assert lid._han_count(EVERY_CHARACTER) == 0x9fff - 0x4e00 + 1 + 0x4dbf - 0x3400 + 1


def test_latin_words_are_the_words_of_two_letters_or_more():
    plain = re.compile(r"[A-Za-z\u00c0-\u024f\u1e00-\u1eff]{2,}")
    for t in TEXTS:
        assert lid._LATIN_WORD.findall(t) == plain.findall(t)


def test_code_lines_over_the_whole_text_are_the_lines_one_by_one():
    texts = TEXTS + _random_texts(20_000, 2, longest=12)
    for t in texts:
        assert lid._has_code_line(t) == any(map(lid._is_code_line, t.split("\n"))), t
    assert 1000 < sum(map(lid._has_code_line, texts)) < len(texts) - 1000


def test_one_trigger_search_is_the_four_searches_it_replaced():
    def plain_identifiers(t: str) -> bool:
        return bool(re.search(r"[$<>{}\[\]=;]", t) or re.search(r"[._/\\:](?=\w)", t) or re.search(r"\w\(", t))

    for t in TEXTS:
        assert (lid._IDENT_TRIGGER.search(t) is not None) == plain_identifiers(t), t
        assert lid._strippable(t) == (bool(re.search(r"[`@]", t)) or plain_identifiers(t) or
                                      any(s in t for s in ("~~~", "://", "www.")) or any(map(lid._is_code_line, t.split("\n"))) and "\n" in t), t


def test_a_text_with_nothing_strippable_is_left_as_it_is():
    """What the glance and the long-text pass rely on: where `_strippable` finds nothing, strip_non_language
    changes nothing (a `~~~` fence included, or a URL a trigger character does not announce: `www.)`)."""
    texts = TEXTS + ["intro\n~~~\nplain words in a fence\n~~~\nend", "see www.example.org now", "x ```y``` z"]
    kept = [t for t in texts if not lid._strippable(t)]
    assert all(lid.strip_non_language(t) == t for t in kept)
    assert len(kept) > 2000 and lid._strippable(texts[-3])


def test_long_text_in_another_script_with_nothing_to_strip_skips_only_a_pass_that_finds_nothing():
    """A long text whose first characters are not ASCII and have nothing to strip: the glance found them not
    plain Chinese, and the quick pass (strip, then plain English or Chinese) would find nothing either."""
    texts = [t for t in TEXTS + [p * 12 for p in _labelled()] if len(t.strip()) > lid.QUICK_CHARS]
    checked = 0
    for t in texts:
        first = t[:lid.HEAD_CHARS].strip()[:lid.QUICK_CHARS]
        if not first.isascii() and not lid._strippable(first) and lid._glance(first, True) is None:
            assert lid._quick(lid.strip_non_language(first)) is None, t
            checked += 1
    assert checked > 50


def test_identifiers_stripped_from_their_triggers_on_are_the_plain_substitution():
    texts = TEXTS + _random_texts(20_000, 3, longest=80) + ["see file.py and f(x) or a.b.c(d e) then $v <b>x</b>"]
    for t in texts:
        assert lid._strip_identifiers(t) == lid._IDENT.sub(" ", t), t
    assert sum(lid._strip_identifiers(t) != t for t in texts) > 5000


@pytest.mark.parametrize("seed", [4, 5])
def test_stop_word_counters_are_the_counts_per_language(seed):
    rng = random.Random(seed)
    vocabulary = sorted(lid._STOP_LOOKUP) + ["house", "paris", "xx"]
    for _ in range(5000):
        pool = rng.sample(vocabulary, rng.randrange(1, 10))  # few words: ties between languages are common
        words = [rng.choice(pool) for _ in range(rng.choice([0, 1, 3, 8, 40, 199, 200, 260]))]
        hits, foreign = dict.fromkeys(lid._STOPWORDS, 0), dict.fromkeys(lid._STOPWORDS, 0)
        for w in words[:200]:
            for lang in lid._STOP_LOOKUP.get(w, ()):
                hits[lang] += 1
                foreign[lang] += w not in lid._ENGLISH
        counts = lid._stopword_counts(words)
        n = len(lid._LANGS)
        assert list(counts[:n]) == list(hits.values()) and list(counts[n:]) == list(foreign.values())
        assert lid._LANGS[counts.index(max(counts[:n]))] == max(hits, key=hits.get)  # the first of the most


def test_shouting_counts_letters_as_str_methods_do():
    for t in TEXTS + [t.upper() for t in TEXTS[:5000]] + ["ÉCOLE NORMALE", "ABC def", "123", ""]:
        letters = sum(map(str.isalpha, t))
        assert lid._shouting(t) == (bool(letters) and sum(map(str.isupper, t)) > 0.8 * letters), t


def test_word_list_and_name_keep_their_plain_definitions():
    def plain_word_list(t: str) -> bool:
        if lid._SENTENCE_END.search(t):
            return False
        items = [i for i in (lid._BULLET.sub("", i).strip(" .!?") for i in lid._ITEM_SEP.split(t)) if i]
        sizes = [len(i.split()) for i in items]
        return len(items) >= lid.LIST_ITEMS and max(sizes) <= lid.LIST_LONGEST and \
            sum(1 for n in sizes if n <= 2) >= lid.LIST_SHORT * len(items)

    def plain_name(t: str) -> bool:
        raw = lid._LATIN_WORD.findall(t)
        if not raw or len(raw) > lid.NAME_WORDS or lid._SENTENCE_END.search(t):
            return False
        return all(w.lower() in lid._STOP_LOOKUP or lid._CAPITALISED.fullmatch(w) for w in raw) and \
            sum(1 for w in raw if lid._CAPITALISED.fullmatch(w)) >= 2

    for t in TEXTS:
        assert lid.is_word_list(t) is plain_word_list(t), t
        assert (not lid._SENTENCE_END.search(t) and lid._name_words(lid._LATIN_WORD.findall(t))) == plain_name(t), t
        ascii_words = lid._LATIN_WORD.findall(t.lower()) if t.isascii() else None
        assert lid._no_sentence(t, ascii_words) == (plain_word_list(t) or plain_name(t)), t
