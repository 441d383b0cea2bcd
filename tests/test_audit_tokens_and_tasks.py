"""The audit's token counts (the approximation's pinned constants, the tokenizer flag) and its task mixture in any language."""


from __future__ import annotations

import json

from advisor.audit import audit_file
from tests.conftest import by_code, write_jsonl
from tests.test_audit_findings import chat

# ---- 10. token counts ------------------------------------------------------------------------------------------

def test_token_approximation_constants_are_pinned():
    from advisor.audit import tokens

    assert (tokens.PER_ASCII_WORD, tokens.PER_ASCII_LETTER, tokens.PER_DIGIT, tokens.PER_PUNCT, tokens.PER_NEWLINE,
            tokens.PER_CJK, tokens.PER_OTHER) == (1.035, 0.011, 1.0, 0.652, 1.793, 1.038, 0.454)
    # counts measured with the real Mistral SentencePiece-32k / Tekken-131k tokenizers (bench/token_calibration.py)
    for text, sp, tekken in [("The meeting moved to Friday because the room was booked.", 12, 11),
                             ("355909190063 - 746 = 355909189317; 12.5 * 48 = 600", 37, 25),
                             ("会议改到周五了，因为会议室被预订了。", 19, 15)]:
        est = tokens.approx_tokens(text)
        assert 0.75 * min(sp, tekken) <= est <= 1.3 * max(sp, tekken), (text, est)


def test_tokenizer_flag_counts_exactly(tmp_path, cli):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tok.json"))
    p = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "hello world hello", "completion": "world"}] * 3)
    code, out, _err = cli("audit", p, "--tokenizer", tmp_path / "tok.json", "--json")
    d = json.loads(out)
    assert code == 0 and d["stats"]["tokens"]["answer"]["max"] == 1 + 4 and "exact" in d["stats"]["token_counting"]
    code, _out, err = cli("audit", p, "--tokenizer", tmp_path / "missing.json")
    assert code == 2 and "--tokenizer" in err


# ---- 11. task mixture, any language ----------------------------------------------------------------------------

GERMAN_TASKS = {  # task head → (inputs, answers in the task's own form)
    "Übersetze den folgenden Satz ins Englische: ": (
        ["Ich gehe heute ins Kino.", "Das Wetter ist schön.", "Mein Bruder wohnt in Berlin."],
        ["I am going to the cinema today.", "The weather is nice.", "My brother lives in Berlin."]),
    "Fasse den folgenden Text in einem Satz zusammen: ": (
        ["Die Firma hat ihren Umsatz verdoppelt.", "Die Parteien einigten sich auf einen Kompromiss."],
        ["Umsatz verdoppelt.", "Kompromiss gefunden."]),
    "Klassifiziere die Stimmung dieser Bewertung: ": (
        ["Das Essen war kalt.", "Tolles Hotel, sehr freundlich!"], ["negativ", "positiv"]),
    "Schreibe eine SQL-Abfrage, die ": (
        ["alle Kunden aus München auflistet.", "die zehn teuersten Produkte zeigt."],
        ["SELECT * FROM kunden WHERE stadt = 'München';", "SELECT * FROM produkte ORDER BY preis DESC LIMIT 10;"]),
    "Schreibe ein kurzes Gedicht über ": (
        ["den Herbst.", "das Meer.", "eine Katze am Fenster."],
        ["Bunte Blätter fallen leis,\nder Wind singt seine Weis.", "Wellen rauschen, weit und blau,\nam Horizont ein Grau.",
         "Sie schaut hinaus ins Licht,\nund rührt sich lange nicht."]),
}


def test_five_planted_german_tasks(tmp_path):
    recs = [chat(head + items[i % len(items)] + f" (Nr. {i})", answers[i % len(items)])
            for head, (items, answers) in GERMAN_TASKS.items() for i in range(20)]
    r = audit_file(write_jsonl(tmp_path / "de.jsonl", recs))
    assert r.signals.estimated_tasks == 5
    clusters = r.stats["task_clusters"]
    assert [c["size"] for c in clusters] == [20] * 5 and all(len(c["examples"]) == 2 for c in clusters)
    assert {c["examples"][0].split()[0] for c in clusters} == {"Übersetze", "Fasse", "Klassifiziere", "Schreibe"}


def test_one_task_in_german_is_one_task(tmp_path):
    import random

    rng = random.Random(3)
    who = ["Hallo", "Guten Tag", "Moin", "Servus", "Sehr geehrte Damen und Herren", "Hi", "Liebes Team", ""]
    what = ["mein Paket ist nicht angekommen", "die Rechnung ist falsch", "die App stürzt beim Start ab",
            "wie kündige ich mein Abo", "ich wurde doppelt belastet", "der Artikel kam beschädigt an",
            "wann kommt meine Lieferung", "ich kann mich nicht anmelden", "mein Gutschein funktioniert nicht",
            "bitte ändern Sie meine Adresse", "das Passwort wird nicht akzeptiert", "die Größe passt leider nicht"]
    when = ["seit gestern", "schon wieder", "leider", "seit einer Woche", "heute morgen", "nach dem Update",
            "trotz zwei Anrufen", "wie schon gemeldet", "ganz plötzlich", "zum dritten Mal"]
    combos = rng.sample([(a, b, c) for a in who for b in when for c in what], 60)
    recs = [chat(f"{a}, {b} {c} (Bestellung {1000 + i * 7})".lstrip(", "), json.dumps({"kategorie": i % 4}))
            for i, (a, b, c) in enumerate(combos)]
    r = audit_file(write_jsonl(tmp_path / "de1.jsonl", recs))
    assert r.signals.estimated_tasks == 1 and "mixed_tasks" not in by_code(r)
