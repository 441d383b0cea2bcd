"""The audit's checks of what records say: turn-level gaps, refusals (in every claimed language), PII, placeholders, template
leaks inside a line, and their false alarms, each with labelled sets or near-miss good records."""


from __future__ import annotations

import re

import pytest

from advisor.audit import audit_file
from advisor.audit.catalog import SLOT_WORDS_AROUND, SlotWords, slot_patterns
from advisor.audit.checks import (
    TEMPLATE_LEAK,
    _template_hint,
    find_placeholder,
    refusal_in,
)
from advisor.audit.pii import find_pii
from tests.conftest import by_code, load_labelled, write_jsonl
from tests.test_audit_findings import chat, filler

# ---- 5. turn-level gaps ----------------------------------------------------------------------------------------

def test_empty_user_and_intermediate_assistant_turns(tmp_path):
    def convo(u2: str, a1: str) -> dict:
        return {"messages": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": a1},
                             {"role": "user", "content": u2}, {"role": "assistant", "content": "Anything else?"}]}
    recs = [*filler(), convo("", "Hello!"), convo("thanks", ""), convo("thanks", "Hello!")]
    f = by_code(audit_file(write_jsonl(tmp_path / "d.jsonl", recs)))
    assert f["empty_turn"].records == [12]
    assert f["empty_output"].records == [13] and "assistant turn(s) [1]" in f["empty_output"].details[13]


# ---- 7. refusals, 8. PII, 9. placeholders: labelled sets -------------------------------------------------------

@pytest.mark.parametrize("lang", ["en", "zh", "es", "fr", "de", "pt", "ja", "ko", "ru"])
def test_refusals_per_language(lang):
    for bad, good in load_labelled("refusal.yaml")[lang]:
        assert refusal_in(bad), bad
        assert not refusal_in(good), good


def test_pii_labelled_set():
    data = load_labelled("pii.yaml")
    for kind, text in data["positive"]:
        assert kind in {h.kind for h in find_pii(text)}, text
    for text in data["negative"]:
        assert find_pii(text) == [], (text, find_pii(text))


def test_pii_confidence_and_validation():
    hits = find_pii("IBAN DE44 5001 0517 5407 3249 31 and DE44 5001 0517 5407 3249 32")
    assert [h.value for h in hits] == ["DE44 5001 0517 5407 3249 31"] and hits[0].confidence == 0.95
    assert find_pii("SSN 123-45-6789")[0].confidence > find_pii("ref 123-45-6789")[0].confidence


def test_placeholder_labelled_set():
    data = load_labelled("placeholder.yaml")
    for text in data["positive"]:
        assert find_placeholder(text), text
    for text in data["negative"]:
        assert find_placeholder(text) is None, (text, find_placeholder(text))


PLACEHOLDERS = load_labelled("placeholder_languages.yaml")


@pytest.mark.parametrize("lang", sorted(PLACEHOLDERS))
def test_placeholders_in_every_language(lang):
    """Slots in 27 languages' own words are found and their bracketed look-alikes are not (a helper's set)."""
    for text in PLACEHOLDERS[lang]["positive"]:
        assert find_placeholder(text), text
    for text in PLACEHOLDERS[lang]["negative"]:
        assert find_placeholder(text) is None, (text, find_placeholder(text))


def test_a_slot_word_takes_any_ending_at_its_end_only():
    """`фамили*` is a stem; a `*` inside a phrase ("stron* internetow*") was read as if the phrase ended there, so
    the catalogue refuses it and names it."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"'stron\* internetow\*': `\*` \(any ending\) may only end a word"):
        SlotWords(nouns=["stron* internetow*"])
    (shape,) = slot_patterns(SlotWords(nouns=["фамили*"]))
    assert re.fullmatch(shape, "[фамилия]", re.IGNORECASE) and re.fullmatch(shape, "[фамилии клиента]", re.IGNORECASE)
    assert not re.fullmatch(shape, "[фами]", re.IGNORECASE)


def test_slot_shape():
    """A slot is a bracket of at most SLOT_WORDS_AROUND words on each side of a noun, without sentence punctuation
    or a word that starts with a digit; `<...>` only for nouns outside Latin letters or after an opening word."""
    assert SLOT_WORDS_AROUND == 3
    find = re.compile("|".join(slot_patterns(SlotWords(nouns=["nama", "nomor telepon", "perusahaa*"],
                                                       opens=["masukkan"]))), re.IGNORECASE).search
    assert find("Hormat kami, [Nama]") and find("[Nomor  Telepon kantor]") and find("[PERUSAHAAN]")
    assert find("[satu dua tiga nama empat lima enam]") and not find("[satu dua tiga empat nama]")
    assert find("[Nama, Jabatan]") and not find("[Nama lengkap.]") and not find("[2019 nama]")
    assert not find("[namanya]") and find("[Perusahaan Anda]")  # a noun is a whole word unless it is a stem
    assert not find("<nama>") and find("<Masukkan nama Anda>") and find("[masukkan apa saja di sini]")
    cyrillic = re.compile(slot_patterns(SlotWords(nouns=["имя"]))[0], re.IGNORECASE).search
    assert cyrillic("<Ваше имя>") and cyrillic("[имя]") and not cyrillic("[Мое имя — Анна.]")


# ---- class 3: refusals in every claimed language -----------------------------------------------------------------

REFUSAL_LANGUAGES = ["en", "zh", "es", "fr", "de", "pt", "ja", "ko", "ru", "it", "nl", "pl", "tr", "vi", "id", "ar", "hi",
                     "sv", "da", "no", "fi", "cs", "el", "he", "uk", "ro", "hu", "th", "fa"]


@pytest.mark.parametrize("lang", REFUSAL_LANGUAGES)
def test_refusals_in_every_claimed_language(lang):
    from advisor.audit.catalog import patterns

    own = patterns("refusal_boilerplate", (lang,))
    pairs = load_labelled("refusal.yaml")[lang]
    for bad, good in pairs:
        assert refusal_in(bad), bad
        assert own.search(bad), bad  # by the language's own patterns, not another language's that happens to match
        assert not refusal_in(good), good


def test_refusal_languages_are_those_of_the_catalogue():
    from advisor.audit.catalog import catalog

    assert set(catalog()["refusal_boilerplate"].patterns) == set(REFUSAL_LANGUAGES) == set(load_labelled("refusal.yaml"))


# ---- class 4: false alarms ---------------------------------------------------------------------------------------

def test_arithmetic_is_not_a_card():
    assert find_pii("What is 472547338 + 960397912423686?\n960398384971024") == []
    assert find_pii("What is 123456789 + 4532015112830366?\nThe answer is 4532015236286155.") == []
    assert [h.kind for h in find_pii("card 4556737586899103 and 4532015112830366 on file")] == ["card", "card"]


@pytest.mark.parametrize("address", ["security@example.co.uk", "a@example.com.au", "b@mail.example.jp", "c@beispiel.de",
                                     "d@exemple.fr", "e@ejemplo.es", "f@esempio.it", "g@voorbeeld.nl",
                                     "h@exemplo.com.br", "i@host.test", "j@example.org"])
def test_documentation_domains_of_every_registry(address):
    assert find_pii(f"e.g. {address}") == []


def test_real_domains_are_still_reported():
    assert [h.kind for h in find_pii("jane@barclays.co.uk")] == ["email"]
    assert [h.kind for h in find_pii("ops@examplebank-support.net.evil.io")] == ["email"]


def test_placeholder_false_alarms_and_the_backticked_noinput():
    assert find_placeholder("【人体器官衰老时间】\n大脑：20岁开始衰老。") is None
    assert find_placeholder("【活动时间】：2024年5月1日") is None
    assert find_placeholder("[Your legs have been replaced with buns.]") is None
    assert find_placeholder("`<noinput>`") == "<noinput>"
    assert find_placeholder("会议将于【会议时间】举行") == "【会议时间】"
    assert find_placeholder("Regards, [Your company's website URL]") is not None


def test_near_duplicates_that_differ_in_the_numbers_they_are_about(tmp_path):
    def convert(bits: str) -> dict:
        return chat(f"Convert the binary number {bits} to decimal and show the result.",
                    f"The binary number {bits} equals {int(bits, 2)} in decimal.")

    recs = [convert(format(i, "08b")) for i in range(130, 160)]
    report = audit_file(write_jsonl(tmp_path / "bin.jsonl", recs))
    assert "near_duplicate" not in by_code(report)
    # the same wording and an answer that only repeats the number: templated copies, still near-duplicates
    echo = [chat(f"Describe catalogue item {i}: a blue ceramic coffee mug.",
                 f"Item {i} is a blue ceramic coffee mug that holds 350 ml and is safe in the dishwasher.")
            for i in range(30)]
    report = audit_file(write_jsonl(tmp_path / "echo.jsonl", echo))
    assert by_code(report)["near_duplicate"].count >= 20  # 23 of the 30 (MinHash estimates)


# ---- class 5: template leaks inside a line -----------------------------------------------------------------------

def test_template_leak_labelled_set():
    data = load_labelled("template_leak.yaml")
    found = lambda t: bool(_template_hint(t) and TEMPLATE_LEAK.search(t))  # noqa: E731
    assert all(found(t) for t in data["positive"]), [t for t in data["positive"] if not found(t)]
    assert not any(found(t) for t in data["negative"]), [t for t in data["negative"] if found(t)]
