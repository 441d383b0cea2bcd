"""The advisor: public cases from the issue, every rule exercised, monotonicity, traceability, CLI."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from advisor.answers import Answers
from advisor.audit.report import Diversity, FindingSignal, Signals, TokenSignal
from advisor.recommend import recommend
from advisor.rules.loader import load_rules, load_rules_from
from advisor.rules.schema import DERIVED_FACTS
from core.errors import UserError
from tests.conftest import BASE_ANSWERS, answers, write_jsonl, write_yaml

PUBLIC = [
    (dict(goal="knowledge", knowledge_freshness="daily", prompting="works", examples=500), {"rag"}, None),
    (dict(goal="format", prompting="unstable", examples=3000), {"lora", "qlora"}, None),
    (dict(goal="reasoning", prompting="plateaued", examples=10000), {"prompting"}, "reasoning_goal"),
    (dict(goal="style", prompting="unstable", examples=15), {"prompting"}, "few_examples"),
    (dict(goal="style", prompting="plateaued", examples=2000, model_params_b=70, gpu_memory_gb=40), {"qlora"}, None),
    (dict(goal="task", prompting="unstable", examples=4000, tasks=6), {"lora", "qlora"}, "mixed_tasks"),
    (dict(goal="domain_language", prompting="plateaued", examples=3_000_000, gpu_count=16, gpu_memory_gb=80,
          budget_gpu_hours=8000), {"full"}, "forgetting_risk"),
    (dict(goal="style", prompting="unstable", examples=900, gpu_count=0, gpu_memory_gb=0, model_params_b=0.3),
     {"lora", "full"}, "cpu_training"),
]


@pytest.mark.parametrize("over,expected,warning", PUBLIC, ids=[f"case{i + 1}" for i in range(len(PUBLIC))])
def test_public_cases(over, expected, warning):
    rec = recommend(answers(**over))
    assert rec.method in expected, [(r.method, r.score, r.feasible) for r in rec.ranking]
    if warning:
        assert warning in {w.code for w in rec.warnings}
    assert rec.ranking[0].feasible


AUDIT_KEYS = {"audit_content": "content", "audit_low_diversity": "low_diversity", "audit_error_share": "error_share",
              "audit_knowledge_share": "knowledge_share"}


def _split(example: dict) -> tuple[dict, Signals | None]:
    """Rule examples may name audit facts (audit_*, finding_CODE); turn those into audit signals."""
    ans, sig, found = {}, {}, {}
    for k, v in example.items():
        if k in AUDIT_KEYS:
            sig[AUDIT_KEYS[k]] = v
        elif k.startswith("finding_"):
            found[k.removeprefix("finding_")] = v
        else:
            ans[k] = v
    if ans.get("goal") == "knowledge":
        ans.setdefault("knowledge_freshness", "static")
    ans = {"goal": "format", "prompting": "unstable", "examples": 1000, **ans}
    if not sig and not found:
        return {**BASE_ANSWERS, **ans}, None
    n = ans["examples"]
    findings = {code: FindingSignal(severity="warning", count=c, share=round(c / n, 4)) for code, c in found.items()}
    return {**BASE_ANSWERS, **ans}, measured(records=n, valid_records=n, examples=n, findings=findings, **sig)


def measured(**over) -> Signals:
    """Audit signals of a clean, varied behaviour dataset, with `over` changed."""
    base = dict(records=1000, valid_records=1000, examples=1000, estimated_tasks=1, content="behaviour",
                knowledge_share=0.0, low_diversity=False, error_share=0.0,
                diversity=Diversity(unique_prompt_ratio=1.0, near_duplicate_share=0.0, mean_similarity=0.1,
                                    distinct_2gram_answers=0.6),
                tokens=TokenSignal(p90_total=0, mean_total=0.0))
    return Signals(**{**base, **over})


RULES = load_rules()


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_every_rule_fires_on_its_example_and_not_on_its_counter_example(rule):
    ans, sig = _split(rule.example)
    rec = recommend(Answers(**ans), sig)
    assert rule.id in rec.fired_rules, f"{rule.id} did not fire for {ans} {sig}"
    if rule.stage == "decisive":  # on its example a decisive rule is the one that decides
        chosen = rec.ranked(rec.method)
        assert any(r.rule == rule.id and r.effect == "decides" for r in chosen.reasons), (rule.id, rec.decided_by)
    if not rule.when:
        assert rule.counter_example is None, f"{rule.id} applies always: it cannot have a counter_example"
        return
    assert rule.counter_example is not None, f"{rule.id} needs a counter_example"
    ans, sig = _split(rule.counter_example)
    assert rule.id not in recommend(Answers(**ans), sig).fired_rules


def test_every_reason_and_warning_traces_to_an_existing_rule_with_a_source():
    ids = {r.id: r for r in RULES}
    for over, _exp, _w in PUBLIC:
        rec = recommend(answers(**over))
        for ranked in rec.ranking:
            for reason in ranked.reasons:
                assert reason.rule in ids and reason.source == ids[reason.rule].source and reason.source
        for w in rec.warnings:
            assert w.rule in ids and w.source


answers_strategy = st.builds(
    dict,
    goal=st.sampled_from(["knowledge", "format", "task", "reasoning", "style", "identity", "domain_language"]),
    knowledge_freshness=st.sampled_from(["static", "yearly", "monthly", "weekly", "daily"]),
    prompting=st.sampled_from(["untried", "works", "unstable", "plateaued"]),
    examples=st.integers(0, 5_000_000),
    tasks=st.integers(1, 12),
    needs_citations=st.booleans(),
    private_data=st.booleans(),
    requests_per_day=st.integers(0, 10_000_000),
    gpu_count=st.integers(0, 16),
    model_params_b=st.sampled_from([0.1, 0.5, 1, 3, 7, 8, 13, 34, 70, 180]),
    budget_gpu_hours=st.one_of(st.none(), st.floats(0, 100_000)),
)


@settings(max_examples=60, deadline=None)
@given(a=answers_strategy, mem=st.floats(1, 120), extra=st.floats(1, 200))
def test_more_gpu_memory_never_makes_a_feasible_method_infeasible(a, mem, extra):
    gpus = a["gpu_count"]
    low = Answers(**{**a, "gpu_memory_gb": mem if gpus else 0})
    high = low.model_copy(update={"gpu_memory_gb": (mem + extra) if gpus else 0})
    f_low = {r.method: r.feasible for r in recommend(low).ranking}
    f_high = {r.method: r.feasible for r in recommend(high).ranking}
    for m, ok in f_low.items():
        assert not ok or f_high[m], f"{m} feasible at {low.gpu_memory_gb} GB but not at {high.gpu_memory_gb} GB"


def test_answers_validation_names_keys():
    with pytest.raises(ValueError, match="knowledge_freshness"):
        answers(goal="knowledge", prompting="works", examples=1)
    with pytest.raises(ValueError, match="gpu_memory_gb"):
        answers(goal="format", prompting="works", examples=1, gpu_count=0, gpu_memory_gb=24)


def test_malformed_rule_file_names_file_and_line(tmp_path):
    (tmp_path / "decide_x.yaml").write_text(
        "- id: ok-rule\n  when: {goal: format}\n  effect: {score: {lora: 1}}\n  rationale: a fine reason here\n"
        "  source: somewhere\n- id: bad-rule\n  when: {gaol: format}\n  effect: {score: {lora: 1}}\n"
        "  rationale: a fine reason here\n  source: somewhere\n")
    with pytest.raises(UserError) as e:
        load_rules_from(tmp_path)
    assert "decide_x.yaml:7" in str(e.value) and "did you mean `goal`" in str(e.value)
    (tmp_path / "decide_x.yaml").write_text("- id: r\n  when: {}\n  effect: {score: {lorra: 1}}\n  rationale: x\n  source: s\n")
    with pytest.raises(UserError, match="decide_x.yaml"):
        load_rules_from(tmp_path)


def test_a_user_can_add_a_rule_without_python(tmp_path):
    from advisor.rules.loader import rules_dir

    for f in rules_dir().glob("decide_*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    (tmp_path / "decide_99_mine.yaml").write_text(yaml.safe_dump([{
        "id": "house-policy-no-full", "when": {}, "effect": {"veto": ["full"]},
        "rationale": "Our company never trains all weights.", "source": "internal policy 2026-01"}]))
    rules = tuple(load_rules_from(tmp_path))
    over = PUBLIC[6][0]
    rec = recommend(answers(**over), rules=rules)
    assert rec.method != "full"
    full = next(r for r in rec.ranking if r.method == "full")
    assert not full.feasible and any(x.rule == "house-policy-no-full" for x in full.reasons)


def test_derived_facts_documented():
    assert {"fits_full", "daily_prompt_tokens", "audit_content"} <= set(DERIVED_FACTS)


def _answers_file(tmp_path, **over):
    return write_yaml(tmp_path / "answers.yaml", {**BASE_ANSWERS, **over})


def test_cli_json_contract_and_config_out(cli_json, tmp_path):
    f = _answers_file(tmp_path, goal="format", prompting="unstable", examples=3000)
    cfg = tmp_path / "train.yaml"
    d = cli_json("recommend", "--answers", f, "--config-out", cfg)
    assert d["method"] == "lora"
    assert set(d) >= {"method", "ranking", "warnings", "next_steps", "estimate"}
    assert {"method", "score", "feasible", "reasons"} <= set(d["ranking"][0])
    assert {"rule", "text", "source"} <= set(d["ranking"][0]["reasons"][0])
    assert set(d["estimate"]) == {"full", "lora", "qlora", "p_tuning", "dora"}  # every registered fine-tune
    from core.files import load_model_file
    from core.train_config import TrainConfig

    tc = load_model_file(TrainConfig, cfg)
    assert tc.method.name == "lora" and tc.data.max_seq_len == 512 and tc.training.learning_rate == 2e-4
    lines = cfg.read_text().splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.strip().startswith("batch_size:"))
    assert lines[at - 1].strip().startswith("# the largest per-device batch (16 at most) the memory estimate fits")
    assert any("prompting-at-limit decided it" in ln for ln in lines)


def test_cli_no_config_for_prompting(cli_json, tmp_path):
    f = _answers_file(tmp_path, goal="style", prompting="unstable", examples=15)
    d = cli_json("recommend", "--answers", f, "--config-out", tmp_path / "train.yaml")
    assert d["method"] == "prompting" and d["config_written"] is None
    assert not (tmp_path / "train.yaml").exists()
    assert d["plan_written"] == str(tmp_path / "prompt.md") and "decision is prompting" in d["config_note"]
    assert "Few-shot" in (tmp_path / "prompt.md").read_text() or (tmp_path / "prompt.md").stat().st_size > 100


def test_dataset_overrides_answers(cli_json, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [
        {"messages": [{"role": "user", "content": f"Ticket {i}: my parcel {i} is late"},
                      {"role": "assistant", "content": json.dumps({"id": i, "category": "shipping"})}]}
        for i in range(20)])
    f = _answers_file(tmp_path, goal="format", prompting="unstable", examples=3000)
    d = cli_json("recommend", "--answers", f, "--dataset", data)
    assert {"key": "examples", "answered": 3000, "measured": 20} in d["overrides"]
    assert d["method"] == "prompting" and "few_examples" in {w["code"] for w in d["warnings"]}


def test_human_view_shows_answer_reasons_and_next_steps(cli, tmp_path):
    f = _answers_file(tmp_path, goal="knowledge", knowledge_freshness="daily", prompting="works", examples=500)
    code, out, _ = cli("recommend", "--answers", f)
    assert code == 0
    assert "RAG" in out and "knowledge-goal-rag" in out and "next steps" in out


def _without_sources(d):
    """The JSON without the rules' `source` citations (they name the articles since the seeds/ paths went)."""
    if isinstance(d, dict):
        return {k: _without_sources(v) for k, v in d.items() if k != "source"}
    if isinstance(d, list):
        return [_without_sources(v) for v in d]
    return d


def _without_dora(d: dict) -> dict:
    """The JSON without what registering DoRA added (after these files were written): its estimate, its ranking
    entry (last, never a candidate) and the next step that offers it beside LoRA, with that step's sentence."""
    offer = "Option: DoRA"
    return {**d, "estimate": {k: v for k, v in d["estimate"].items() if k != "dora"},
            "ranking": [r for r in d["ranking"] if r["method"] != "dora"],
            "next_steps": [s for s in d["next_steps"] if not s.startswith(offer)],
            "sentences": [s for s in d["sentences"] if not (s["where"] == "next_step" and s["text"].startswith(offer))]}


@pytest.mark.parametrize("case", ["format_lora", "cpu_training"])
def test_recommend_json_is_what_it_was_before_the_estimate_was_typed(case, cli):
    """tests/data/recommend_json/CASE.json was written by `recommend --json` while `estimate` was a dict of dicts:
    the typed MethodEstimate writes the same keys, in the same order, with the same values; DoRA, registered
    since, only adds its own entries (both cases choose LoRA, so DoRA is offered beside it)."""
    from pathlib import Path

    folder = Path(__file__).parent / "data" / "recommend_json"
    code, out, _err = cli("recommend", "--answers", folder / f"{case}.answers.yaml", "--json")
    before = json.loads((folder / f"{case}.json").read_text())
    after = json.loads(out)
    assert code == 0 and list(after) == list(before)
    assert list(after["estimate"]) == [*before["estimate"], "dora"] and after["ranking"][-1]["method"] == "dora"
    assert sum(s.startswith("Option: DoRA") for s in after["next_steps"]) == 1
    after = _without_dora(after)
    assert json.dumps(after["estimate"]) == json.dumps(before["estimate"])  # key order included
    assert _without_sources(after) == _without_sources(before)


def test_human_view_shows_dora_as_an_option_beside_lora(cli):
    """DoRA is never a candidate of its own: the table says what it is instead of a bare `feasible`."""
    from pathlib import Path

    folder = Path(__file__).parent / "data" / "recommend_json"
    code, out, _ = cli("recommend", "--answers", folder / "format_lora.answers.yaml")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("│ DoRA"))
    assert "an option beside" in row and "feasible" not in row
