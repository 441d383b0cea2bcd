"""Every audit finding: records that trigger it, and close records that must not."""

from __future__ import annotations

import json

import pytest

from advisor.audit import audit_file
from advisor.audit.catalog import catalog
from advisor.audit.pii import luhn, pii_kinds
from tests.conftest import write_jsonl

FILLER = [
    ("Sort these numbers: 3 1 2", "1 2 3"),
    ("Write a haiku about rain on the roof", "Soft rain on the roof / a quiet drum all night long / morning smells of earth"),
    ("Classify the sentiment: I loved the film", "positive"),
    ("Translate to French: good morning", "bonjour"),
    ("Explain why the sky is blue in one sentence", "Air scatters short blue wavelengths of sunlight more than red ones."),
    ("Give three tips for better sleep", "Keep a fixed schedule, avoid screens late, and keep the room cool."),
    ("Summarize: The meeting moved to Friday because the room was booked.", "The meeting is now on Friday."),
    ("Convert 5 km to miles", "About 3.1 miles."),
    ("Rewrite formally: gonna be late", "I will be arriving late."),
    ("Name a prime number above 10", "11"),
    ("What is the opposite of cold?", "Hot."),
    ("Extract the year: She was born in 1990.", "1990"),
]


def chat(user: str, assistant: str, system: str | None = None) -> dict:
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"messages": msgs}


def filler(n: int = 12) -> list[dict]:
    return [chat(f"{u} (case {i})", a) for i, (u, a) in enumerate(FILLER[:n])]


def run(tmp_path, records, **kw):
    path = write_jsonl(tmp_path / "d.jsonl", records)
    report = audit_file(path, **kw)
    return report, {(f.code, f.severity): f for f in report.findings}, {f.code for f in report.findings}


def codes_for(tmp_path, record, **kw) -> set[str]:
    """Codes reported for the one extra record (index 12) among clean filler."""
    _r, by, _codes = run(tmp_path, [*filler(), record], **kw)
    return {code for (code, _sev), f in by.items() if 12 in f.records}


@pytest.mark.parametrize("code,bad,good", [
    ("schema", {"messages": "hello"}, chat("hi there", "hello")),
    ("schema", {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "x"}]},
     chat("five", "5")),
    ("unknown_role", {"messages": [{"role": "customer", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
     {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}),
    ("no_assistant", {"messages": [{"role": "user", "content": "only a question"}]},
     chat("only a question", "and an answer")),
    ("no_user", {"messages": [{"role": "system", "content": "be kind"}, {"role": "assistant", "content": "Hi!"}]},
     {"messages": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hey"},
                   {"role": "assistant", "content": "Hi!"}]}),
    ("role_order", {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                                 {"role": "assistant", "content": "c"}]},
     {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                   {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}),
    ("role_order", {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"},
                                 {"role": "assistant", "content": "c"}]},
     {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"},
                   {"role": "assistant", "content": "c"}]}),
    ("empty_output", chat("Name a colour", "   "), chat("Name a colour", "Blue")),
    ("placeholder", chat("Who are you?", "I am {{name}}, built by {{author}}."), chat("Who are you?", "I am Aria, built by Acme {name} team.")),
    ("placeholder", chat("Write a letter", "Dear [Your Name], ..."), chat("Write a list", "Items: [1, 2, 3]")),
    ("placeholder", chat("Describe a cat <noinput>", "Cats purr."), chat("Describe a cat (no input)", "Cats purr.")),
    ("template_leak", chat("Say hi", "Hi!<|im_end|>"), chat("Say hi", "Hi! I am here.")),
    ("template_leak", chat("[INST] Say hi [/INST]", "Hi"), chat("Say [hi] please", "Hi")),
    ("template_leak", chat("Tell me", "### Response: it is done"), chat("Tell me", "### Results\nit is done")),
    ("refusal_boilerplate", chat("Your favourite colour?", "As an AI language model, I do not have preferences."),
     chat("Your favourite colour?", "Many people like blue; it is calm.")),
    ("degenerate_repetition", chat("Describe it", " ".join(["it is good"] * 30)),
     chat("Describe it", "It is good, light and cheap; the battery lasts two days and the screen is sharp in sunlight. "
                         "Reviewers praise the keyboard, though the speakers are thin and the camera is average.")),
    ("degenerate_repetition", chat("Shout", "A" * 40), chat("Draw a line", "-" * 40)),
    ("pii", chat("Contact", "Write to jane.doe@acme-mail.io"), chat("Contact", "Write to jane.doe@example.com")),
    # 4111 1111 1111 1111 and 555-01xx are documented test/fictional values: look-alikes, not personal data
    ("pii", chat("Card", "Charge 4556 7375 8689 9103 today"), chat("Card", "Charge 4111 1111 1111 1111 today")),
    ("pii", chat("Call", "Call (415) 867-5309 now"), chat("Call", "Call (415) 555-0134 now")),
    ("pii", chat("Key", "use sk-proj-abcdefghijklmnopqrstuvwx12"), chat("Key", "use the sk- prefix for keys")),
    ("pii", chat("ID", "SSN 123-45-6789 on file"), chat("ID", "Ticket 123-45-67890 on file")),
    ("pii", chat("ID", "身份证 11010519491231002X"), chat("ID", "订单 110105194912310021")),
    ("language_mismatch", chat("Describe the water cycle in two short sentences for a child please",
                               "El agua se evapora del mar, forma nubes y vuelve a caer como lluvia sobre la tierra, y es muy bonito para todos."),
     chat("Describe the water cycle in Spanish, in two short sentences for a child please",
          "El agua se evapora del mar, forma nubes y vuelve a caer como lluvia sobre la tierra, y es muy bonito para todos.")),
    ("language_mismatch", chat("请用两句话描述水循环的过程，适合小朋友理解。",
                               "Water evaporates from the sea, forms clouds and falls back as rain on the land for all of us."),
     chat("请把下面的句子翻译成英文：水从海里蒸发，形成云，然后变成雨落下来。",
          "Water evaporates from the sea, forms clouds and falls back as rain on the land for all of us.")),
])
def test_record_finding(tmp_path, code, bad, good):
    assert code in codes_for(tmp_path, bad), f"{code} not found for {bad}"
    assert code not in codes_for(tmp_path, good), f"{code} wrongly found for {good}"


def test_invalid_json_line_is_a_finding_and_audit_goes_on(tmp_path):
    p = tmp_path / "d.jsonl"
    lines = [json.dumps(r) for r in filler()]
    lines.insert(3, '{"messages": [{"role": "user", "content": "broken"}')
    p.write_text("\n".join(lines) + "\n\n")
    report = audit_file(p)
    f = next(x for x in report.findings if x.code == "invalid_json")
    assert f.records == [3] and f.line == [4] and f.severity == "error"
    assert report.records == 13 and report.valid_records == 12


def test_exact_duplicates_after_normalisation(tmp_path):
    recs = [*filler(), chat("What is 2+2?", "4"), chat("what is 2 + 2", "4."), chat("WHAT IS 2+2 ?", "4")]
    _r, by, _ = run(tmp_path, recs)
    f = by[("exact_duplicate", "warning")]
    assert f.records == [13, 14] and f.groups == [[12, 13, 14]]
    _r, _by, codes = run(tmp_path, [*filler(), chat("What is 2+2?", "4"), chat("What is 2+3?", "5")])
    assert "exact_duplicate" not in codes


def test_near_duplicates_english_and_chinese(tmp_path):
    base_en = ("My order 1234 arrived damaged and the box was wet, the screen has a crack across the corner, "
               "please send a replacement as soon as possible")
    en2 = base_en.replace("1234", "1243")
    base_zh = "我的订单昨天到了，但是包装盒是湿的，屏幕的角落有一道裂痕，请尽快给我寄一个新的替换品，谢谢你们的帮助"
    zh2 = base_zh.replace("昨天", "今天")
    recs = [*filler(), chat(base_en, "Sorry! A replacement is on its way."), chat(en2, "Sorry! A replacement is on its way."),
            chat(base_zh, "抱歉！替换品已经寄出。"), chat(zh2, "抱歉！替换品已经寄出。")]
    _r, by, _ = run(tmp_path, recs)
    groups = by[("near_duplicate", "warning")].groups
    assert [12, 13] in groups and [14, 15] in groups
    # different content with the same template does not group
    other = chat("My laptop will not turn on after the update, the light blinks orange twice",
                 "Hold the power button for 30 seconds, then plug in the charger.")
    _r, by, codes = run(tmp_path, [*filler(), chat(base_en, "Sorry! A replacement is on its way."), other])
    assert "near_duplicate" not in codes


def test_conflicting_answers(tmp_path):
    recs = [*filler(), chat("Is this spam? WIN A PRIZE NOW", "yes"), chat("Is this spam? WIN A PRIZE NOW", "no")]
    _r, by, _ = run(tmp_path, recs)
    assert by[("conflicting_answers", "warning")].groups == [[12, 13]]
    _r, _by, codes = run(tmp_path, [*filler(), chat("Is this spam? WIN A PRIZE NOW", "yes"),
                                    chat("Is this spam? Meeting at 3pm", "no")])
    assert "conflicting_answers" not in codes


def test_too_long_and_nothing_trainable(tmp_path):
    long_answer = chat("Summarise", "word " * 400)
    long_prompt = chat("word " * 400, "short")
    _r, by, _ = run(tmp_path, [*filler(), long_answer, long_prompt], max_seq_len=256)
    assert 12 in by[("too_long", "warning")].records
    assert by[("too_long", "error")].records == [13]
    _r, _by, codes = run(tmp_path, [*filler(), long_answer], max_seq_len=1024)
    assert "too_long" not in codes


def test_too_few_examples_thresholds(tmp_path):
    _r, by, _ = run(tmp_path, filler(8))
    assert ("too_few_examples", "error") in by
    _r, by, _ = run(tmp_path, filler(12))
    assert ("too_few_examples", "warning") in by
    many = [chat(f"{u} (variant {i}-{j})", a) for j in range(5) for i, (u, a) in enumerate(FILLER)]
    _r, _by, codes = run(tmp_path, many)
    assert "too_few_examples" not in codes


def test_low_diversity(tmp_path):
    clustered = [chat(f"Reset the password for user {i}", f"The password for user {i} has been reset.") for i in range(40)]
    _r, _by, codes = run(tmp_path, clustered)
    assert "low_diversity" in codes
    _r, _by, codes = run(tmp_path, [chat(f"{k}: " + FILLER[k % 12][0] + " " + "xyz" * (k % 5), FILLER[k % 12][1])
                                    for k in range(12)])
    assert "low_diversity" not in codes


def test_mixed_tasks_and_single_task(tmp_path):
    report, _by, codes = run(tmp_path, [chat(f"{u} (case {i}-{j})", a) for j in range(4) for i, (u, a) in enumerate(FILLER)])
    assert "mixed_tasks" in codes and report.signals.estimated_tasks >= 3
    one = [chat(f"My parcel {i} is late, order {i * 7}", json.dumps({"category": "shipping", "id": i}),
                system="Turn the customer message into a JSON ticket.") for i in range(40)]
    report, _by, codes = run(tmp_path, one)
    assert "mixed_tasks" not in codes and report.signals.estimated_tasks == 1


def test_knowledge_heavy(tmp_path):
    facts = [chat(q, a) for q, a in [
        ("When was the Eiffel Tower completed?", "It was completed in 1889 for the World Fair in Paris, France."),
        ("Who founded Acme Robotics?", "Acme Robotics was founded in 2011 by Maria Lopez and Tom Chen in Austin."),
        ("What is the population of Lisbon?", "About 545,000 people live in Lisbon, Portugal, as of 2021."),
        ("Where is the headquarters of Globex?", "Globex has its headquarters in Springfield, Oregon, since 1996."),
        ("How many moons does Mars have?", "Mars has 2 moons, Phobos and Deimos, found in 1877 by Asaph Hall."),
    ] * 4]
    report, _by, codes = run(tmp_path, facts)
    assert "knowledge_heavy" in codes and report.signals.content == "knowledge"
    behaviour = [chat(f"Turn into a ticket: parcel {i} late", json.dumps({"category": "shipping", "id": i})) for i in range(20)]
    report, _by, codes = run(tmp_path, behaviour)
    assert "knowledge_heavy" not in codes and report.signals.content == "behaviour"


def test_every_code_is_in_the_catalogue_with_source_and_example():
    import re
    from pathlib import Path

    src = "".join(p.read_text() for p in (Path(__file__).parent.parent / "advisor" / "audit").glob("*.py"))
    used = set(re.findall(r'"([a-z_]+)", "(?:error|warning|info)"', src)) | set(re.findall(r'code="([a-z_]+)"', src))
    used -= {"error", "warning", "info"}
    used |= {"exact_duplicate", "near_duplicate", "conflicting_answers", "invalid_json", "unknown_role", "schema"}
    cat = catalog()
    assert used <= set(cat), used - set(cat)
    for e in cat.values():
        assert e.rationale and e.source and e.example


def test_luhn_and_pii_helpers():
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    assert pii_kinds("reach me: +44 20 7946 0958") == ["phone"]
    assert pii_kinds("version 1.2.3, 2024-01-01, 10,000 users") == []


def test_company_faq_counts_as_knowledge(tmp_path):
    faq = [chat(q, a) for q, a in [
        ("What is ACME Pay?", "ACME Pay is a wallet for small shops to take card payments."),
        ("Who can open an account on ACME Pay?", "Anyone with a bank account in the EU can open one."),
        ("How do I close my ACME Pay account?", "Write to support from the app and we close it within a week."),
        ("Does ACME Pay charge a monthly fee?", "There is no monthly fee; you pay a small fee per payment."),
    ] * 5]
    report, _by, codes = run(tmp_path, faq)
    assert report.signals.content == "knowledge" and "knowledge_heavy" in codes
    general = [chat(q, a) for q, a in [
        ("How can we reduce air pollution?", "Use cleaner energy, walk or cycle more, and plant trees."),
        ("Why do leaves change colour in autumn?", "Chlorophyll breaks down and other pigments show through."),
    ] * 10]
    report, _by, codes = run(tmp_path, general)
    assert "knowledge_heavy" not in codes
