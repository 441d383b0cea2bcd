"""Audit v2: the failure classes of issue 12, each with bad records and near-miss good ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from advisor.audit import audit_file
from advisor.audit.checks import find_placeholder, refusal_in
from advisor.audit.pii import find_pii
from advisor.errors import UserError
from tests.conftest import write_jsonl
from tests.test_audit_findings import chat, filler

LABELLED = Path(__file__).parent / "labelled"


def load(name: str):
    return yaml.safe_load((LABELLED / name).read_text(encoding="utf-8"))


def by_code(report) -> dict:
    return {f.code: f for f in report.findings}


# ---- 1. exact duplicates: the whole normalised record, independent of order ------------------------------------

def test_same_answer_to_different_questions_is_not_a_copy(tmp_path):
    recs = [chat("Who are you?", a) for a in "ABC"] + [chat("What is your name?", a) for a in "DEC"]
    recs = [chat(r["messages"][0]["content"], f"I am answer {r['messages'][1]['content']}") for r in recs]
    f = by_code(audit_file(write_jsonl(tmp_path / "d.jsonl", [*filler(), *recs])))
    assert "exact_duplicate" not in f
    assert f["conflicting_answers"].groups == [[12, 13, 14], [15, 16, 17]]


def test_identical_records_form_one_group_and_skip_nothing(tmp_path):
    rec = chat("Who are you?", "I am Aria.")
    report = audit_file(write_jsonl(tmp_path / "d.jsonl", [rec] * 4 + filler()))
    f = by_code(report)
    assert f["exact_duplicate"].groups == [[0, 1, 2, 3]] and f["exact_duplicate"].records == [1, 2, 3]
    assert "conflicting_answers" not in f
    assert report.signals.examples == 13


def test_signs_and_operators_keep_prompts_apart(tmp_path):
    recs = [chat("Weather in Tunis, -18 C?", "Freezing."), chat("Weather in Tunis, 18 C?", "Mild."),
            chat("What is 3 - 5?", "-2"), chat("What is 3 + 5?", "8")]
    f = by_code(audit_file(write_jsonl(tmp_path / "d.jsonl", [*filler(), *recs])))
    assert "conflicting_answers" not in f and "exact_duplicate" not in f


# ---- 2. near-duplicate groups do not chain ---------------------------------------------------------------------

def test_near_duplicate_groups_do_not_chain(tmp_path):
    base = ("The delivery of your order number 4471 was delayed because the courier could not reach the warehouse "
            "during the storm; we will ship it again on Monday and refund the shipping fee to your card.")
    words = base.split()
    chain = [" ".join(words[:i] + [w.upper() + "x" for w in words[i:i + 4]] + words[i + 4:]) for i in range(0, 32, 4)]
    recs = [chat("Write the customer update", t) for t in chain]
    report = audit_file(write_jsonl(tmp_path / "d.jsonl", [*filler(), *recs]), near_dup_threshold=0.6)
    near = by_code(report).get("near_duplicate")
    assert near is not None and near.similarity and len(near.similarity) == len(near.groups)
    assert min(near.similarity) >= 0.5  # every pair in every group, not only neighbours in a chain
    assert not any(12 in g and 19 in g for g in near.groups)  # the ends of the chain share little


# ---- 3. formats read rightly -----------------------------------------------------------------------------------

def test_single_json_object_and_wrapper(tmp_path):
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"instruction": "Name a colour", "input": "", "output": "Blue"}, indent=2))
    r = audit_file(one)
    assert r.records == 1 and r.format == "alpaca" and r.detection["container"] == "json_object"
    wrapped = tmp_path / "w.json"
    wrapped.write_text(json.dumps({"version": 2, "data": [json.loads(json.dumps(x)) for x in filler()]}, indent=2))
    r = audit_file(wrapped)
    assert r.records == 12 and r.format == "openai" and "`data`" in r.detection["reason"]
    assert not [f for f in r.findings if f.code in ("invalid_json", "schema")]


@pytest.mark.parametrize("text,unit,records", [
    ("The first sample line.\nThe second sample line.\nA third one here.\n", "line", 3),
    ("First paragraph, line one.\nline two of it.\n\nSecond paragraph here.\nand more of it.\n", "paragraph", 2),
    ("This is a document that was\nwrapped at a fixed width so\nits lines break in the middle\nof sentences.\n",
     "document", 1),
])
def test_text_files(tmp_path, text, unit, records):
    p = tmp_path / "corpus.txt"
    p.write_text(text)
    r = audit_file(p)
    assert (r.format, r.detection["text_unit"], r.records) == ("text", unit, records)
    assert not [f for f in r.findings if f.code == "invalid_json"]


@pytest.mark.parametrize("key", ["text", "value"])
def test_typed_content_parts(tmp_path, key):
    recs = [{"messages": [{"role": "user", "content": [{"type": "text", key: f"question {i} about cats"}]},
                          {"role": "assistant", "content": [{"type": "text", key: f"answer {i}: cats purr"}]}]}
            for i in range(12)]
    r = audit_file(write_jsonl(tmp_path / "d.jsonl", recs))
    assert not {"empty_output", "exact_duplicate", "schema"} & set(by_code(r))
    assert r.valid_records == 12


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"instruction": f"Name colour {i}", "input": "", "output": f"Blue {i}"} for i in range(12)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    r = audit_file(tmp_path / "d.parquet")
    assert (r.format, r.records, r.detection["container"]) == ("alpaca", 12, "parquet")


@pytest.mark.parametrize("blob,needle", [
    ("[".encode("utf-16") + json.dumps([{"text": "é"}]).encode("utf-16-le"), "UTF-16"),
    (json.dumps([{"text": "café"}], ensure_ascii=False).encode("latin-1"), "not UTF-8"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    (b"instruction,output\nhello", None),
])
def test_unreadable_files_are_refused_once(tmp_path, blob, needle):
    p = tmp_path / ("d.csv" if needle is None else "d.jsonl")
    p.write_bytes(blob)
    if needle is None:
        assert audit_file(p).format == "alpaca"
        return
    with pytest.raises(UserError, match=needle):
        audit_file(p)


def test_jsonl_that_is_not_json_is_one_error(tmp_path, cli):
    p = tmp_path / "d.jsonl"
    p.write_text("this is\nnot json\nat all\n")
    code, out, err = cli("audit", p)
    assert code == 2 and "not JSON" in err and err.count("\n") <= 3


# ---- 4. preference data ----------------------------------------------------------------------------------------

PREFERENCE = [
    ("dpo", {"prompt": "Greet the user", "chosen": "Hello! How can I help?", "rejected": "What do you want."}),
    ("dpo", {"prompt": [{"role": "user", "content": "Greet the user"}],
             "chosen": [{"role": "assistant", "content": "Hello! How can I help?"}],
             "rejected": [{"role": "assistant", "content": "What do you want."}]}),
    ("dpo", {"conversations": [{"from": "human", "value": "Greet the user"}],
             "chosen": {"from": "gpt", "value": "Hello! How can I help?"},
             "rejected": {"from": "gpt", "value": "What do you want."}}),
    ("dpo", {"instruction": "Greet the user", "input": "", "chosen": "Hello! How can I help?",
             "rejected": "What do you want."}),
    ("dpo", {"chosen": "\n\nHuman: Greet the user\n\nAssistant: Hello! How can I help?",
             "rejected": "\n\nHuman: Greet the user\n\nAssistant: What do you want."}),
    ("openai_preference", {"input": {"messages": [{"role": "user", "content": "Greet the user"}]},
                           "preferred_output": [{"role": "assistant", "content": "Hello! How can I help?"}],
                           "non_preferred_output": [{"role": "assistant", "content": "What do you want."}]}),
    ("kto", {"messages": [{"role": "user", "content": "Greet the user"},
                          {"role": "assistant", "content": "Hello! How can I help?"}], "label": True}),
    ("kto", {"prompt": "Greet the user", "completion": "Hello! How can I help?", "label": False}),
]


def _variants(rec: dict, n: int = 12) -> list[dict]:
    text = json.dumps(rec)
    return [json.loads(text.replace("Greet the user", f"Greet user number {i}")) for i in range(n)]


@pytest.mark.parametrize("fmt,rec", PREFERENCE)
def test_preference_formats_are_detected_and_clean(tmp_path, fmt, rec):
    r = audit_file(write_jsonl(tmp_path / "p.jsonl", _variants(rec)))
    assert r.format == fmt and r.detection["kind"] == "preference" and r.valid_records == 12
    assert not {"no_assistant", "no_user", "empty_output", "schema", "pair_identical"} & set(by_code(r)), r.findings


def test_pair_checks(tmp_path):
    good = _variants(PREFERENCE[0][1])
    bad = [{"prompt": "Name a colour", "chosen": "Blue.", "rejected": "blue"},
           {"prompt": "Name a fruit", "chosen": "An apple.", "rejected": ""},
           {"prompt": "Describe the water cycle for a child",
            "chosen": "Water rises from the sea, makes clouds and falls again as rain on the land.",
            "rejected": "El agua sube del mar, forma nubes y vuelve a caer como lluvia sobre la tierra."},
           {"prompt": "Greet me", "chosen": "Hello there, friend!", "rejected": "Go away, I am busy."},
           {"prompt": "Greet me", "chosen": "Go away, I am busy.", "rejected": "Hello there, friend!"},
           {"prompt": "Say hi", "chosen": "Hi!", "rejected": "As an AI language model, I cannot greet you."},
           {"prompt": "Sign it", "chosen": "Regards, Ann", "rejected": "Regards, [Your Name]"}]
    f = by_code(audit_file(write_jsonl(tmp_path / "p.jsonl", good + bad)))
    assert f["pair_identical"].records == [12]
    assert f["pair_empty_side"].records == [13]
    assert f["pair_language_mismatch"].records == [14]
    assert f["pair_contradiction"].groups == [[15, 16]]
    assert "refusal_boilerplate" not in f  # a refusal is what a rejected answer often is
    assert f["placeholder"].records == [18] and "rejected side" in f["placeholder"].details[18]


def test_kto_contradicting_labels(tmp_path):
    recs = _variants(PREFERENCE[7][1]) + [{"prompt": "Greet me", "completion": "Hi!", "label": True},
                                          {"prompt": "Greet me", "completion": "Hi!", "label": False}]
    r = audit_file(write_jsonl(tmp_path / "k.jsonl", recs))
    assert by_code(r)["pair_contradiction"].groups == [[12, 13]]
    assert r.stats["labels"] == {"desirable": 1, "undesirable": 13}


# ---- 5. turn-level gaps ----------------------------------------------------------------------------------------

def test_empty_user_and_intermediate_assistant_turns(tmp_path):
    def convo(u2: str, a1: str) -> dict:
        return {"messages": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": a1},
                             {"role": "user", "content": u2}, {"role": "assistant", "content": "Anything else?"}]}
    recs = [*filler(), convo("", "Hello!"), convo("thanks", ""), convo("thanks", "Hello!")]
    f = by_code(audit_file(write_jsonl(tmp_path / "d.jsonl", recs)))
    assert f["empty_turn"].records == [12]
    assert f["empty_output"].records == [13] and "assistant turn(s) [1]" in f["empty_output"].details[13]


# ---- 6. language -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("user,answer,expected", load("language.yaml"))
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


# ---- 7. refusals, 8. PII, 9. placeholders: labelled sets -------------------------------------------------------

@pytest.mark.parametrize("lang", ["en", "zh", "es", "fr", "de", "pt", "ja", "ko", "ru"])
def test_refusals_per_language(lang):
    for bad, good in load("refusal.yaml")[lang]:
        assert refusal_in(bad), bad
        assert not refusal_in(good), good


def test_pii_labelled_set():
    data = load("pii.yaml")
    for kind, text in data["positive"]:
        assert kind in {h.kind for h in find_pii(text)}, text
    for text in data["negative"]:
        assert find_pii(text) == [], (text, find_pii(text))


def test_pii_confidence_and_validation():
    hits = find_pii("IBAN DE44 5001 0517 5407 3249 31 and DE44 5001 0517 5407 3249 32")
    assert [h.value for h in hits] == ["DE44 5001 0517 5407 3249 31"] and hits[0].confidence == 0.95
    assert find_pii("SSN 123-45-6789")[0].confidence > find_pii("ref 123-45-6789")[0].confidence


def test_placeholder_labelled_set():
    data = load("placeholder.yaml")
    for text in data["positive"]:
        assert find_placeholder(text), text
    for text in data["negative"]:
        assert find_placeholder(text) is None, (text, find_placeholder(text))


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


# ---- the real files keep their known findings, with no false exact duplicates ----------------------------------

@pytest.mark.skipif(not (Path(__file__).resolve().parents[2] / "shared" / "data" / "external").is_dir(),
                    reason="shared/data/external not beside the checkout")
@pytest.mark.parametrize("name", ["llamafactory_alpaca_en_demo.json", "llamafactory_alpaca_zh_demo.json",
                                  "llamafactory_glaive_toolcall_en_demo.json", "llamafactory_identity.json",
                                  "stanford_alpaca_sample_1727.json"])
def test_every_exact_group_in_real_files_is_identical_after_normalising(name):
    from advisor.audit.text import normalise
    from advisor.data import iter_raw
    from advisor.data import normalise as to_sample

    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "external" / name
    r = audit_file(path)
    records = {x.index: to_sample(x.obj, r.format) for x in iter_raw(path)}

    def key(i: int) -> str:
        return normalise("\n".join(f"{m.role}:{m.content}" for m in records[i].messages))

    for group in (by_code(r).get("exact_duplicate").groups if "exact_duplicate" in by_code(r) else []):
        assert len({key(i) for i in group}) == 1, group


def test_template_leak_knows_the_special_tokens_of_every_template_trl_ships():
    """Every turn and special token written in trl/chat_templates/*.jinja, pasted into an answer, is a leak."""
    import re
    from pathlib import Path

    import trl

    from advisor.audit.checks import RecordView, template_leak
    from advisor.data.formats import Message, Sample

    folder = Path(trl.__file__).parent / "chat_templates"
    markers = set()
    for f in folder.glob("*.jinja"):
        markers.update(re.findall(r"<\|[^|'\"\s]{1,30}\|>|<｜[^｜]{1,30}｜>|<(?:start|end)_of_turn>|\[/?INST\]|"
                                  r"<\|[A-Za-z_][\w.-]{0,30}>|<[A-Za-z_][\w.-]{0,30}\|>",  # Gemma 4: <|turn> <turn|>
                                  f.read_text(encoding="utf-8")))
    assert len(markers) >= 40 and {"<|turn>", "<turn|>"} <= markers, sorted(markers)
    for m in sorted(markers):
        s = Sample([Message("user", "Say hi"), Message("assistant", f"Hi there{m} how can I help?")])
        assert list(template_leak(RecordView(s, "openai"))), m
    clean = Sample([Message("user", "What does a | b mean?"), Message("assistant", "In Python, <a|b> is not valid; "
                                                                                     "a | b is bitwise or.")])
    assert not list(template_leak(RecordView(clean, "openai")))
