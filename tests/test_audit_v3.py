"""Audit v3 (issue 30): right in every language. Language identification on a labelled set of 17 languages (word
lists and names are `und`), knowledge vs behaviour in any language, refusals in every claimed language, false
alarms of PII / placeholders / near-duplicates, template leaks inside a line, and preference counts in records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from advisor.audit import audit_file
from advisor.audit import language as lid
from advisor.audit import text as facts
from advisor.audit.checks import (
    TEMPLATE_LEAK,
    _template_hint,
    find_placeholder,
    language_mismatch,
    refusal_in,
)
from advisor.audit.pii import find_pii
from advisor.data.formats import Message, Sample
from advisor.recommend import recommend
from tests.conftest import answers, write_jsonl
from tests.test_audit_findings import chat

LABELLED = Path(__file__).parent / "labelled"


def load(name: str):
    return yaml.safe_load((LABELLED / name).read_text(encoding="utf-8"))


def by_code(report) -> dict:
    return {f.code: f for f in report.findings}


# ---- class 1: language identification ----------------------------------------------------------------------------

def _language_cases():
    for lang, groups in load("language_id.yaml").items():
        if lang == "und":
            yield from ((lang, t) for t in groups)
        else:
            yield from ((lang, t) for texts in groups.values() for t in texts)


# The texts tunewise leaves `und` (short, and fastText below 0.5): never a wrong language. Pinned: a change that
# reads one more text right (or one less) must update this list and the closing note's table.
KNOWN_UND = {"A entrega demora cerca de cinco dias úteis.", "Bagaimana cara mengganti kata sandi saya?",
             "I can't log in to my account."}


def test_language_id_labelled_set_per_language():
    cases = list(_language_cases())
    langs = {lang for lang, _ in cases}
    assert len(langs - {"und"}) == 17 and len(cases) == 177
    wrong = {t: (lang, lid.detect(t)) for lang, t in cases if lid.detect(t) != lang}
    assert set(wrong) == KNOWN_UND and all(got == "und" for _, got in wrong.values()), wrong


def test_the_model_decides_over_stop_words_when_it_is_sure():
    # Spanish full of words Dutch and French share ("de", "en", "la"): the old vote said Dutch
    text = "Para cambiar la contraseña, abre la aplicación, entra en la sección de seguridad y pulsa en el botón de restablecer."
    assert lid._fasttext(text)[1] >= lid.MIN_CONFIDENCE and lid.detect(text) == "es"
    assert lid.detect("Oui, en fin de mois, sur votre compte.") == "fr"
    # English prose that quotes another language stays English (its function words lead two to one)
    assert lid.detect('The translation of your sentence in Spanish is: "Estoy muy feliz de conocerte".') == "en"


@pytest.mark.parametrize("text,expected", [
    ("idiot, moron, jerk, loser, dumbass", True),
    ("stupid\nugly\ndumb\nlame", True),
    ("- apple\n- banana\n- cherry", True),
    ("red, green", False),  # LIST_ITEMS = 3
    ("new york city, los angeles, san francisco bay area", False),  # most items longer than two words
    ("Add the flour, then the eggs, then the milk. Stir well.", False),  # sentences
])
def test_word_lists(text, expected):
    assert (lid.LIST_ITEMS, lid.LIST_SHORT) == (3, 0.8)
    assert lid.is_word_list(text) is expected


def test_words_without_a_function_word_or_a_full_stop_are_und():
    assert lid.detect("idiot moron jerk loser dumbass scumbag") == lid.UND  # fastText: en 0.72
    assert lid.detect("Pengiriman biasanya memakan waktu tiga hari kerja.") == "id"  # a sentence without one


def test_names_and_short_texts_are_und():
    assert lid.NAME_WORDS == 6 and lid.MIN_LETTERS == 20
    assert lid.detect("Gabriel García Márquez") == lid.UND
    assert lid.detect("Cien Años de Soledad") == lid.UND
    assert lid.detect("The Old Man and the Sea Was Written by Ernest Miller Hemingway") != lid.UND  # 11 words
    assert lid.detect("Merci beaucoup") == lid.UND  # Latin script under MIN_LETTERS


def test_cyrillic_and_arabic_read_shorter_when_the_model_is_sure():
    assert (lid.SCRIPT_LETTERS, lid.SURE) == (12, 0.9)
    assert lid.detect("شكرا لك على ردك السريع.") == "ar"  # 17 Arabic letters
    assert lid.detect("Офис закрыт.") == lid.UND  # 10 letters


def test_language_mismatch_labelled_set():
    for user, answer, want in load("language.yaml"):
        got = language_mismatch(Sample([Message("user", user), Message("assistant", answer)])) is not None
        assert got is want, (user, answer)


def test_french_faq_file_has_no_mismatch(tmp_path):
    recs = [chat(q, a) for q, a in [
        ("Quand est versé le salaire ?", "Le salaire est versé en fin de mois, sur le compte de votre choix."),
        ("Comment déclarer une absence ?", "Déclarez-la dans l'application RH avant 10 heures, avec le justificatif."),
        ("Combien de jours de congés ai-je ?", "Vous avez 25 jours ouvrés de congés payés par an, plus les RTT."),
        ("Où trouver ma fiche de paie ?", "Elle est en ligne dans l'espace salarié, rubrique Documents, dès le 28."),
    ] * 6]
    report = audit_file(write_jsonl(tmp_path / "fr.jsonl", recs))
    assert "language_mismatch" not in by_code(report)
    assert report.stats["languages"] == {"fr": 24}


# ---- class 2: knowledge vs behaviour in any language -------------------------------------------------------------

KNOWLEDGE_MISSES = {"Quando é pago o salário?"}  # a fact without a number or a name ("no quinto dia útil")


def test_knowledge_labelled_set_per_language():
    data = load("knowledge.yaml")
    assert set(data) == {"en", "es", "fr", "de", "pt", "it", "ru", "zh", "ja", "ko"}
    wrong = {q for v in data.values() for q, a, want in v if facts.carries_facts(q, a) is not want}
    assert wrong == KNOWLEDGE_MISSES


def test_knowledge_constants_are_pinned():
    assert (facts.SPECIFIC_ANSWER, facts.STATEMENT_WORDS) == (6.0, 8)
    # any question answered densely with specifics, in a sentence: a fact
    assert facts.carries_facts("Tiene la empresa aparcamiento?",
                               "Sí, hay 40 plazas en el sótano de la calle Alcalá 120, con tarjeta de acceso.")
    # a request ("can you …") or a word problem (its numbers come from the prompt) is not
    assert not facts.carries_facts("Can you generate a password for me?",
                                   "Here is your new password: aB3#fG7!kL9@. Please keep it in a safe place.")
    assert not facts.carries_facts("A dress costs $200 with 20% off. How much will it cost?",
                                   "The dress will now cost you $160 after the 20% discount is taken off.")
    assert not facts.carries_facts("How can customers reach the sales team?", "Call (415) 867-5309.")  # no statement
    assert facts.is_structured("def f(x):\n    return x") and not facts.is_structured("If it rains, stay in.")


def test_recommend_reads_a_spanish_faq_as_knowledge(tmp_path):
    recs = [chat(q, a) for q, a in load("faq_es.yaml")]
    report = audit_file(write_jsonl(tmp_path / "faq_es.jsonl", recs))
    assert report.signals.content == "knowledge" and report.signals.knowledge_share >= 0.8
    assert "knowledge_heavy" in by_code(report) and "language_mismatch" not in by_code(report)
    rec = recommend(answers(goal="format", prompting="unstable", examples=3000), report.signals)
    assert rec.method == "rag"


# ---- class 3: refusals in every claimed language -----------------------------------------------------------------

REFUSAL_LANGUAGES = ["en", "zh", "es", "fr", "de", "pt", "ja", "ko", "ru", "it", "nl", "pl", "tr", "vi", "id", "ar", "hi"]


@pytest.mark.parametrize("lang", REFUSAL_LANGUAGES)
def test_refusals_in_every_claimed_language(lang):
    pairs = load("refusal.yaml")[lang]
    for bad, good in pairs:
        assert refusal_in(bad), bad
        assert not refusal_in(good), good


def test_refusal_languages_are_those_of_the_catalogue():
    from advisor.audit.catalog import catalog

    assert set(catalog()["refusal_boilerplate"].patterns) == set(REFUSAL_LANGUAGES) == set(load("refusal.yaml"))


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
    data = load("template_leak.yaml")
    found = lambda t: bool(_template_hint(t) and TEMPLATE_LEAK.search(t))  # noqa: E731
    assert all(found(t) for t in data["positive"]), [t for t in data["positive"] if not found(t)]
    assert not any(found(t) for t in data["negative"]), [t for t in data["negative"] if found(t)]


# ---- class 6: counts on preference data are records --------------------------------------------------------------

def test_preference_findings_count_records_not_sides(tmp_path):
    recs = [{"prompt": f"Question {i}: how do I reach the team?",
             "chosen": f"Mail jane.doe{i}@acme-mail.io.  Human: thanks",
             "rejected": f"Mail john.roe{i}@acme-mail.io.  Human: ok"} for i in range(13)]
    report = audit_file(write_jsonl(tmp_path / "dpo.jsonl", recs))
    found = by_code(report)
    assert found["pii"].count == 13 and found["pii"].records == list(range(13))
    assert found["template_leak"].count == 13
    assert "rejected side" in found["pii"].details[0]
    assert report.signals.findings["pii"].share == 1.0


def test_report_json_is_unchanged_in_shape(tmp_path):
    recs = [chat("¿Cuántos días de vacaciones tengo?", "Tienes 22 días hábiles al año.")] * 3
    report = audit_file(write_jsonl(tmp_path / "x.jsonl", recs))
    assert json.loads(report.model_dump_json())["signals"]["content"] in ("knowledge", "behaviour", "mixed")
