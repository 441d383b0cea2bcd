"""Task intents in 17 languages (advisor/audit/intents.py, the catalogue's `mixed_tasks.intents`): the labelled
sets per language, which cues an instruction is read with, and what a user sees: free-form data in French split
into its tasks, a Spanish translation request that is not a fact lookup."""

from __future__ import annotations

from collections import Counter

import pytest
import yaml

from advisor.audit import audit_file
from advisor.audit.intents import BASE, OTHER, head, intent, languages, searched
from advisor.audit.language import UND, detect
from advisor.audit.text import carries_facts
from tests.conftest import ROOT, by_code, write_jsonl

LABELLED = ROOT / "tests" / "labelled"


def alpaca(instruction: str, input_text: str, output: str) -> dict:
    return {"instruction": instruction, "input": input_text, "output": output}
CLAIMED = ("en", "zh", "fr", "es", "pt", "it", "de", "nl", "ru", "pl", "tr", "vi", "id", "ar", "hi", "ja", "ko")


def _language(item: dict) -> str:
    """As the audit reads an instruction: in its detected language, or where that is unclear in its record's (the
    answer's; the sets have no answers: the language the item is written in)."""
    lang = detect(item["text"])
    return lang if lang != UND else item["lang"]


def _scores(name: str) -> tuple[Counter, Counter, list[tuple]]:
    items = yaml.safe_load((LABELLED / name).read_text(encoding="utf-8"))["items"]
    right, total, wrong = Counter(), Counter(), []
    for item in items:
        got = intent(item["text"], (_language(item),))
        total[item["lang"]] += 1
        right[item["lang"]] += got == item["intent"]
        if got != item["intent"]:
            wrong.append((item["lang"], item["intent"], got, item["text"]))
    return right, total, wrong


def test_the_cue_languages_are_the_claimed_ones():
    assert set(languages()) == set(CLAIMED) and len(languages()) == 17


@pytest.mark.parametrize("name, items, right, per_language", [
    # development sets: the cues were written on A, then corrected on A and B
    ("task_intents.yaml", 578, 571, 32),  # English and Chinese cues alone: 168 (29%)
    ("task_intents_b.yaml", 714, 675, 37),  # before it was used: 537 (75%); English and Chinese cues alone: 219
    # held out: written by a third helper, measured once, after the cues were final; nothing was changed for it
    ("task_intents_c.yaml", 544, 469, 25),  # 86%; English and Chinese cues alone: 176 (32%)
])
def test_task_intents_of_the_labelled_sets_per_language(name, items, right, per_language):
    """Three sets of instructions in the 17 languages, each written by a helper that had seen neither the cues nor
    the other sets: 34, 42 and 32 an language, every intent and `other`."""
    got, total, wrong = _scores(name)
    assert sum(total.values()) == items and set(total) == set(CLAIMED)
    assert sum(got.values()) >= right, wrong
    assert min(got[lang] for lang in CLAIMED) >= per_language, wrong


def test_a_named_task_is_right_on_the_held_out_set():
    """Where the held-out set's instruction is read as a task (not `qa` or `other`), the task is right in at least
    97 cases in 100 (measured: 8 wrong of 395): a miss falls back to a question or no task rather than to another
    task."""
    _, _, wrong = _scores("task_intents_c.yaml")
    items = yaml.safe_load((LABELLED / "task_intents_c.yaml").read_text(encoding="utf-8"))["items"]
    named = sum(1 for item in items if intent(item["text"], (_language(item),)) not in ("qa", OTHER))
    misnamed = sum(1 for _, _, got, _ in wrong if got not in ("qa", OTHER))
    assert named >= 395 and misnamed <= 8, wrong


def test_which_cues_an_instruction_is_read_with():
    assert BASE == ("any", "en", "zh")
    assert searched(("en",)) == (BASE,) == searched(("zh",)) == searched(("und",))
    assert searched(("fr",)) == (BASE, ("fr",))
    assert searched(("ms",)) == (BASE, ("id",))  # Malay, which detection confuses with Indonesian
    assert searched(("sv",)) == (BASE,)  # no Swedish cues: the neutral, English and Chinese ones


def test_a_short_instruction_is_read_with_the_language_of_its_record(tmp_path):
    """"Streść: kot śpi." is too short for its language to be told (`und`): the audit reads it with the cues of
    the record's language, that of its answer."""
    assert intent("Streść: kot śpi.", ("und",)) == OTHER  # read as English and Chinese: the Polish verb means nothing
    assert intent("Streść: kot śpi.", ("pl",)) == "summarisation"
    answer = "Kot śpi spokojnie na kanapie w salonie, a za oknem pada deszcz i wieje zimny wiatr."
    recs = [{"instruction": f"Streść: kot śpi ({i}).", "input": "", "output": answer} for i in range(3)]
    r = audit_file(write_jsonl(tmp_path / "pl.jsonl", recs))
    assert [c["label"] for c in r.stats["task_clusters"]] == ["summarisation"]


def test_turkish_capital_i_and_arabic_vowel_marks_do_not_hide_a_cue():
    assert head("İngilizceye çevir: Bugün hava güzel.") == "ingilizceye çevir: bugün hava güzel."
    assert intent("İngilizceye çevir: Bugün hava güzel.", ("tr",)) == "translation"
    assert intent("لخّص النص التالي: ذهب الولد إلى المدرسة.", ("ar",)) == "summarisation"  # لخّص with a shadda


def test_who_translated_is_a_question_not_a_translation():
    assert intent("Who translated the Iliad into English?", ("en",)) == "qa"
    assert intent("Translate into English: Le chat dort.", ("en",)) == "translation"
    assert intent("Qui a traduit la Bible en français ?", ("fr",)) == "qa"
    assert intent("Traduis en anglais : le chat dort.", ("fr",)) == "translation"


def test_a_greeting_is_no_task_even_with_a_question_mark():
    assert intent("Hi, how are you doing today?", ("en",)) == OTHER
    assert intent("Hola, ¿qué tal estás?", ("es",)) == OTHER
    assert intent("¿Qué tal el clima en Madrid en abril?", ("es",)) == "qa"  # not a greeting at the start


FRENCH = {
    "translation": ["Traduisez en anglais : Le train part à huit heures.", "Traduis cette phrase en espagnol : j'aime le pain.",
                    "Peux-tu traduire « bonne nuit » en allemand ?", "Traduire en italien : la mer est calme.",
                    "Comment dit-on « merci beaucoup » en japonais ?", "Traduction en anglais : il pleut depuis hier."],
    "summarisation": ["Résume ce paragraphe en une phrase : La ville a ouvert trois bibliothèques cette année.",
                      "Fais un résumé de l'article suivant : Les abeilles disparaissent à cause des pesticides.",
                      "Quelle est l'idée principale de ce texte ? Le sport améliore le sommeil.",
                      "Synthétise ce rapport : les ventes ont baissé au deuxième trimestre.",
                      "Résumez le dialogue suivant en deux lignes : — Tu viens ? — Non, je suis fatigué.",
                      "Donne les points clés de ce discours : nous devons investir dans l'école."],
    "code": ["Écris une fonction Python qui inverse une chaîne.", "Explique ce code JavaScript : let x = [1, 2].map(f);",
             "Comment trier une liste en Python ?", "Écris une requête SQL qui compte les clients par ville.",
             "Quel algorithme utiliser pour trouver le plus court chemin ?", "Écris un script bash qui sauvegarde un dossier."],
    "generation": ["Écris un poème sur l'automne à Paris.", "Rédige un e-mail pour annuler une réservation.",
                   "Compose une chanson pour l'anniversaire de ma sœur.", "Invente une histoire courte sur un dragon timide.",
                   "Crée un slogan pour une boulangerie de quartier.", "Écris une lettre de motivation pour un poste de vendeur."],
    "qa": ["Pourquoi le ciel est-il bleu ?", "Qui a peint la Joconde ?", "Quand la tour Eiffel a-t-elle été construite ?",
           "Explique la photosynthèse simplement.", "Où se trouve le mont Blanc ?", "Comment fonctionne un vaccin ?"],
}


def test_free_form_french_data_is_split_into_its_tasks(tmp_path):
    """Free-form French instructions (no shared templates) were one task before the cues in 17 languages: now the
    five tasks they mix, each with its share."""
    recs = [alpaca(text, "", "Réponse.") for texts in FRENCH.values() for text in texts]
    r = audit_file(write_jsonl(tmp_path / "fr.jsonl", recs))
    assert r.signals.estimated_tasks == 5
    assert "task intents in 17 languages" in r.stats["task_method"]
    assert {c["label"]: c["size"] for c in r.stats["task_clusters"]} == {k: 6 for k in FRENCH}
    assert "mixed_tasks" in by_code(r)


QUESTIONS = FRENCH["qa"] + [
    "Pourquoi les feuilles tombent-elles en automne ?", "Qui a écrit Les Misérables ?", "Quelle est la capitale du Canada ?",
    "Combien de temps faut-il pour cuire un œuf dur ?", "Comment se forme un arc-en-ciel ?", "Où vivent les manchots ?",
    "Quand a eu lieu la Révolution française ?", "Pourquoi la mer est-elle salée ?", "Qu'est-ce qu'un trou noir ?",
    "Quel est le plus long fleuve de France ?", "Comment les oiseaux migrent-ils ?", "Qui a inventé l'imprimerie ?",
    "Explique le cycle de l'eau.", "Décris le fonctionnement d'un moulin à vent.", "Quelle langue parle-t-on au Brésil ?",
    "Pourquoi dort-on la nuit ?", "Qu'est-ce que la démocratie ?", "Comment fonctionne une boussole ?"]


def test_one_task_in_french_is_still_one_task(tmp_path):
    recs = [alpaca(text, "", "Réponse.") for text in QUESTIONS]
    r = audit_file(write_jsonl(tmp_path / "fr1.jsonl", recs))
    assert r.signals.estimated_tasks == 1 and "mixed_tasks" not in by_code(r)


def test_a_translation_request_about_a_named_thing_is_not_a_fact_lookup():
    """The intent keeps a transformation out of the knowledge share in every language it has cues for: before,
    the Spanish request (a question about a named thing, answered with names and a year) counted as a fact."""
    question = "¿Puedes traducir al inglés «El Museo del Prado abrió en 1819 en Madrid»?"
    answer = "The Prado Museum opened in 1819 in Madrid, Spain."
    assert intent(question) == "translation"
    assert not carries_facts(question, answer, intent(question))
    assert carries_facts("¿Cuándo abrió el Museo del Prado?", answer, intent("¿Cuándo abrió el Museo del Prado?"))


@pytest.mark.parametrize("lang, text, want", [
    ("de", "Fasse den folgenden Text in drei Sätzen zusammen: Die Stadt wächst.", "summarisation"),
    ("ru", "Переведи на английский: Я люблю читать книги.", "translation"),
    ("ru", "Как перевести строку в число в JavaScript?", "code"),  # перевести: convert, not translate
    ("ja", "次の文を英語に翻訳してください：今日は雨です。", "translation"),
    ("ko", "다음 문장을 영어로 번역해 주세요: 오늘은 비가 옵니다.", "translation"),
    ("hi", "इस अनुच्छेद का सारांश लिखिए: दिल्ली भारत की राजधानी है।", "summarisation"),
    ("id", "Bisakah kamu menerjemahkan kalimat ini ke bahasa Jepang?", "translation"),  # me-N-: terjemah → nerjemah
    ("vi", "Viết một bài thơ về mùa thu Hà Nội.", "generation"),
    ("tr", "Bu e-posta spam mı?", "classification"),
    ("pl", "Rozwiąż równanie: 5x - 8 = 17", "math"),
])
def test_one_instruction_per_language_family(lang, text, want):
    assert intent(text, (lang,)) == want


def test_a_broken_cue_is_a_usage_error_that_names_it(monkeypatch):
    from advisor.audit import intents
    from advisor.audit.catalog import catalog
    from core.errors import UserError

    entry = catalog()["mixed_tasks"]
    broken = entry.model_copy(update={"intents": {**entry.intents, "translation": {"fr": [r"\btradu(?:"]}}})
    monkeypatch.setattr(intents, "catalog", lambda: {**catalog(), "mixed_tasks": broken})
    with pytest.raises(UserError, match=r"audit_findings\.yaml: `mixed_tasks\.intents\.translation\.fr\[0\]` is not a "
                                        r"valid regular expression \(missing \), unterminated subpattern"):
        intents.rules.__wrapped__(("any", "en", "fr"))
