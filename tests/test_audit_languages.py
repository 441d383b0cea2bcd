"""The audit in every language: language identification on a labelled set of 17 languages (word lists and names are
`und`), language mismatch per answer, knowledge vs behaviour in any language."""


from __future__ import annotations

from collections import Counter

import pytest

from advisor.audit import audit_file
from advisor.audit import language as lid
from advisor.audit import text as facts
from advisor.audit.checks import (
    language_mismatch,
    pair_language_mismatch,
)
from advisor.audit.intents import intent
from advisor.audit.language_requests import asks_for_language, language_names
from advisor.recommend import recommend
from core.data.formats import Message, Sample
from tests.conftest import answers, by_code, load_labelled, write_jsonl
from tests.test_audit_findings import chat, filler

# ---- 6. language -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("user,answer,expected", load_labelled("language.yaml"))
def test_language_mismatch_per_language(tmp_path, user, answer, expected):
    r = audit_file(write_jsonl(tmp_path / "d.jsonl", [*filler(), chat(user, answer)]))
    f = by_code(r).get("language_mismatch")
    assert (f is not None and 12 in f.records) == expected


def test_language_compares_each_answer_with_its_own_question(tmp_path):
    rec = {"messages": [{"role": "user", "content": "Can you help me with my order from last week?"},
                        {"role": "assistant", "content": "Of course, please tell me the order number first."},
                        {"role": "user", "content": "我想用中文继续，我的订单号是多少我忘记了。"},
                        {"role": "assistant", "content": "没问题，请告诉我您的邮箱地址，我帮您查询订单号。"}]}
    f = by_code(audit_file(write_jsonl(tmp_path / "d.jsonl", [*filler(), rec])))
    assert "language_mismatch" not in f


# ---- class 1: language identification ----------------------------------------------------------------------------

def _language_cases():
    for lang, groups in load_labelled("language_id.yaml").items():
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
    for user, answer, want in load_labelled("language.yaml"):
        got = language_mismatch(Sample([Message("user", user), Message("assistant", answer)])) is not None
        assert got is want, (user, answer)


REQUESTS = load_labelled("language_requests.yaml")


@pytest.mark.parametrize("lang", sorted(REQUESTS))
def test_requests_for_another_language_in_every_language(lang):
    """A translation or an answer in the language asked for is no mismatch, in 31 languages (a helper's set); an
    answer in another language than the question still is."""
    for user, answer, want in REQUESTS[lang]:
        got = language_mismatch(Sample([Message("user", user), Message("assistant", answer)]))
        assert (got is not None) is want, (user, answer, got)


def test_language_names_from_cldr_match_inflected_and_unaccented_forms():
    names = language_names()
    assert set(names.names) >= {"en", "zh", "ja", "ko", "fr", "es", "de", "pt", "it", "nl", "ru", "uk", "pl", "cs",
                                "tr", "vi", "id", "ar", "fa", "he", "hi", "th", "el", "no"}  # `no`: a string key
    en = names.of("en")
    # declined names by their stem, the Czech adverb, Finnish -nt- → -nn-, the Chinese 文 form, colloquial names
    assert {"английск", "англійськ", "angielsk", "angličtin", "anglick", "englan", "英文", "영어", "inggris"} <= set(en)
    assert "spagnol" in names.of("es") and "německ" in names.of("de")
    for request, lang in [("Переведите на английский", "en"), ("Odpověz anglicky, prosím", "en"),
                          ("Käännä englanniksi", "en"), ("İngilizceye çevir", "en"), ("ترجم بالانجليزية", "en"),
                          ("हिंदी में जवाब दो", "hi"), ("अंग्रेजी में बताओ", "en"), ("Dame la versión inglesa", "en"),
                          ("Mi dai la versione spagnola?", "es"), ("trả lời bằng tieng anh", "en"), ("日本語で答えて", "ja"),
                          ("영어로 답해 주세요", "en"), ("用英文回答", "en"), ("Antworte auf Englisch", "en"),
                          ("Responde em português", "pt"), ("Dịch câu này", "fr")]:
        assert asks_for_language(request, lang), request
    for request, lang in [("Wie kann ich mein Passwort ändern?", "en"), ("Bake these muffins", "fi"),
                          ("dịch vụ khách hàng tốt nhất ở đâu?", "en"), ("¿Cómo cambio la contraseña?", "en"),
                          ("Как добраться до аэропорта?", "en")]:
        assert not asks_for_language(request, lang), request  # "fins" (Finnish in Dutch) inside "muffins" starts no word


def test_languages_the_model_confuses_are_no_mismatch():
    """A Norwegian question the model reads as Danish, answered in Norwegian, is no mismatch (nor Malay read as
    Indonesian, Croatian as Serbian); Danish against German still is."""
    assert ({"da", "no", "nb", "nn"}, {"id", "ms"}, {"hr", "sr", "bs", "sh"}, set(lid.DEVANAGARI)) == lid.CLOSE_LANGUAGES
    question = "Hvordan bytter jeg passord i appen?"
    answer = "Gå til innstillinger, velg konto og trykk på endre passord."
    assert (lid.detect(question), lid.detect(answer)) == ("da", "no")  # what makes the case
    assert language_mismatch(Sample([Message("user", question), Message("assistant", answer)])) is None
    german = "Öffne die Einstellungen, wähle dein Konto und tippe auf Passwort ändern."
    assert language_mismatch(Sample([Message("user", question), Message("assistant", german)])) is not None
    assert lid.same_language("ms", "id") and lid.same_language("sr", "hr") and not lid.same_language("da", "sv")
    side = lambda text: Sample([Message("user", "Spørsmål"), Message("assistant", text)])  # noqa: E731
    assert list(pair_language_mismatch(side(answer), side(question))) == []  # chosen `no`, rejected `da`
    assert list(pair_language_mismatch(side(answer), side(german)))


def test_devanagari_is_hindi_unless_the_model_is_sure_of_another_language():
    """tests/labelled/devanagari.yaml (a helper's 126 texts: Hindi, Marathi and Nepali questions and answers, a few
    Sanskrit lines): the script alone read all as Hindi. The model now tells Marathi and Nepali apart where it is
    sure; a short question it reads as Hindi is still the same language as its Marathi answer to the mismatch
    check."""
    items = load_labelled("devanagari.yaml")["items"]
    got = Counter((i["lang"], lid.detect_uncached(i["text"])) for i in items)
    assert got[("hi", "hi")] == 40 and got[("mr", "mr")] >= 36 and got[("ne", "ne")] >= 25 and got[("sa", "sa")] >= 2
    assert sum(n for (want, lang), n in got.items() if lang not in (want, "hi")) == 0  # a miss is read as Hindi
    question, answer = "रेशन कार्डसाठी ऑनलाइन अर्ज कसा करायचा?", next(
        i["text"] for i in items if i["lang"] == "mr" and i["kind"] == "long")
    assert (lid.detect(question), lid.detect(answer)) == ("hi", "mr")  # what makes the case
    assert language_mismatch(Sample([Message("user", question), Message("assistant", answer)])) is None
    # asked in English for Marathi, answered in Marathi: the answer's language is the one asked for (it read as
    # Hindi before, a mismatch); not asked for, it is one
    ask = "How do I apply for a ration card online? Please answer in Marathi."
    assert language_mismatch(Sample([Message("user", ask), Message("assistant", answer)])) is None
    assert language_mismatch(Sample([Message("user", ask.replace(" Please answer in Marathi.", "")),
                                     Message("assistant", answer)])) is not None


def test_scripts_of_one_language_decide_it():
    texts = {"bn": "বর্ষাকালে ঘরের দেয়ালে স্যাঁতসেঁতে ভাব আর ছত্রাক জমা রোধ করার সহজ উপায় কী?",
             "ta": "மழைக்காலத்தில் வீட்டுச் சுவர்களில் ஈரப்பதம் சேராமல் தடுப்பது எப்படி?",
             "gu": "ચોમાસામાં ઘરની દીવાલોમાં ભેજ કેવી રીતે રોકવો તે જણાવો",
             "kn": "ಮಳೆಗಾಲದಲ್ಲಿ ಮನೆಯ ಗೋಡೆಗಳಲ್ಲಿ ತೇವಾಂಶ ತಡೆಯುವುದು ಹೇಗೆ ಎಂದು ತಿಳಿಸಿ",
             "ka": "ქართული ენა ძალიან ლამაზია და საინტერესო", "hy": "Հայերենը շատ գեղեցիկ լեզու է և հետաքրքիր",
             "pa": "ਪੰਜਾਬੀ ਭਾਸ਼ਾ ਬਹੁਤ ਸੁੰਦਰ ਹੈ ਅਤੇ ਦਿਲਚਸਪ ਵੀ ਹੈ", "si": "සිංහල භාෂාව ඉතා ලස්සන සහ රසවත් වේ",
             "km": "ភាសាខ្មែរ គឺជាភាសាដ៏ស្រស់ស្អាត", "am": "አማርኛ በጣም ቆንጆ ቋንቋ ነው እና አስደሳች ነው",
             "my": "ဘာသာစကား မြန်မာ စာသား ဥပမာ ရေးသားထားသည်"}
    assert {lang: lid.detect_uncached(t) for lang, t in texts.items()} == {lang: lang for lang in texts}
    assert lid.detect_uncached("Hello, this is a sentence about the word ভাষা in English.") == "en"


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


def carries_facts(question: str, answer: str) -> bool:
    """As the audit asks: with the question's task intent."""
    return facts.carries_facts(question, answer, intent(question))


def test_knowledge_labelled_set_per_language():
    data = load_labelled("knowledge.yaml")
    assert set(data) == {"en", "es", "fr", "de", "pt", "it", "ru", "zh", "ja", "ko"}
    wrong = {q for v in data.values() for q, a, want in v if carries_facts(q, a) is not want}
    assert wrong == KNOWLEDGE_MISSES


def test_knowledge_constants_are_pinned():
    assert (facts.SPECIFIC_ANSWER, facts.STATEMENT_WORDS) == (6.0, 8)
    # any question answered densely with specifics, in a sentence: a fact
    assert carries_facts("Tiene la empresa aparcamiento?",
                               "Sí, hay 40 plazas en el sótano de la calle Alcalá 120, con tarjeta de acceso.")
    # a request ("can you …") or a word problem (its numbers come from the prompt) is not
    assert not carries_facts("Can you generate a password for me?",
                                   "Here is your new password: aB3#fG7!kL9@. Please keep it in a safe place.")
    assert not carries_facts("A dress costs $200 with 20% off. How much will it cost?",
                                   "The dress will now cost you $160 after the 20% discount is taken off.")
    assert not carries_facts("How can customers reach the sales team?", "Call (415) 867-5309.")  # no statement
    assert facts.is_structured("def f(x):\n    return x") and not facts.is_structured("If it rains, stay in.")


def test_recommend_reads_a_spanish_faq_as_knowledge(tmp_path):
    recs = [chat(q, a) for q, a in load_labelled("faq_es.yaml")]
    report = audit_file(write_jsonl(tmp_path / "faq_es.jsonl", recs))
    assert report.signals.content == "knowledge" and report.signals.knowledge_share >= 0.8
    assert "knowledge_heavy" in by_code(report) and "language_mismatch" not in by_code(report)
    rec = recommend(answers(goal="format", prompting="unstable", examples=3000), report.signals)
    assert rec.method == "rag"
