"""`tunewise probe`: the thresholds that turn measured numbers into `prompting`, the confidence intervals, the
answer-vs-measurement conflict, bad model paths, and one real probe of the tiny model."""

from __future__ import annotations

import json

import pytest

from core.probe_report import (
    Interval,
    ProbeReport,
    Variant,
    classify,
    load_probe_rules,
    probe_facts,
    summary_line,
)
from tests.conftest import answers, write_jsonl

# every threshold of rules/probe_prompting.yaml, pinned: a change to the rules file must change this table
THRESHOLDS = {
    ("probe-works", "best_low"): ("ge", 0.8),
    ("probe-works-free-text", "best_low"): ("ge", 0.6),
    ("probe-unstable", "spread"): ("ge", 0.1),
    ("probe-works-uncertain", "best_score"): ("ge", 0.8),
}
NUDGE = 1e-4


def _rule(rule_id: str):
    return next(r for r in load_probe_rules() if r.id == rule_id)


def test_every_threshold_is_pinned():
    found = {(r.id, fact): next(iter(cond.items())) for r in load_probe_rules() for fact, cond in r.when.items()
             if isinstance(cond, dict)}
    assert found == THRESHOLDS
    assert [r.id for r in load_probe_rules()][-1] == "probe-plateaued"


@pytest.mark.parametrize("rule", load_probe_rules(), ids=lambda r: r.id)
def test_example_fires_the_rule_and_counter_example_does_not(rule):
    fired, why = classify(rule.example)
    assert fired.id == rule.id and fired.sets == rule.sets
    assert "{" not in why  # the numbers are filled in
    if rule.counter_example is not None:
        assert classify(rule.counter_example)[0].id != rule.id


@pytest.mark.parametrize(("rule_id", "fact"), sorted(THRESHOLDS))
def test_both_sides_of_each_threshold(rule_id, fact):
    rule = _rule(rule_id)
    op, value = THRESHOLDS[(rule_id, fact)]
    assert op == "ge"
    at = {**rule.example, fact: value}
    below = {**rule.example, fact: round(value - NUDGE, 6)}
    assert classify(at)[0].id == rule_id, f"{fact} = {value} must fire {rule_id}"
    assert classify(below)[0].id != rule_id, f"{fact} just under {value} must not fire {rule_id}"


def test_instability_needs_a_spread_beyond_sampling_noise():
    rule = _rule("probe-unstable")
    assert classify({**rule.example, "spread_beyond_noise": True})[0].sets == "unstable"
    assert classify({**rule.example, "spread_beyond_noise": False})[0].sets == "plateaued"


def _variant(name: str, kind: str, score: float, low: float, high: float, shots: int = 5) -> Variant:
    return Variant(name=name, kind=kind, instruction="Turn the message into a ticket.", shots=shots, score=score,
                   interval=Interval(low=low, high=high, method="wilson"), metrics={"json_match": score},
                   samples=[])


def make_probe(scores: dict[str, tuple[float, float, float]], records: int = 100, metric: str = "json") -> ProbeReport:
    """A probe result from scores alone: {name: (score, low, high)}; zero-shot first, then few-shot, then rewordings."""
    kinds = {"zero-shot": "zero_shot", "few-shot": "few_shot"}
    variants = [_variant(n, kinds.get(n, "reworded"), *s, shots=0 if n == "zero-shot" else 5)
                for n, s in scores.items()]
    best = max(variants, key=lambda v: v.score)
    facts = probe_facts(metric, variants, best.name, records)
    rule, why = classify(facts)
    worded = [v for v in variants if v.kind != "zero_shot"]
    return ProbeReport(data="d.jsonl", test="d.jsonl (held out)", model="m", device="cpu", records=records,
                       test_records=list(range(records)), metric=metric, metric_why="JSON answers",
                       headline="json_match", shots=5, shots_why="5, as asked", shot_records=[1, 2, 3, 4, 5],
                       max_new_tokens=24, variants=variants, best=best.name, spread=facts["spread"],
                       spread_low=facts["spread_low"], spread_high=facts["spread_high"],
                       spread_beyond_noise=facts["spread_beyond_noise"], prompting=rule.sets, rule=rule.id,
                       rule_source=rule.source, why=why,
                       summary=summary_line("json_match", best, facts, worded, rule.sets),
                       generations=records * len(variants), generation_time_s=1.0, wall_time_s=2.0)


def test_the_issue_example_reads_unstable():
    """few-shot gets 62% valid tickets (±8) and varies 41-66% across instructions → unstable."""
    p = make_probe({"zero-shot": (0.20, 0.13, 0.29), "few-shot": (0.62, 0.52, 0.71),
                    "instruction in the user turn": (0.41, 0.32, 0.51), "answer only": (0.66, 0.56, 0.75)})
    assert (p.prompting, p.rule, p.best) == ("unstable", "probe-unstable", "answer only")
    assert p.spread == 0.25 and p.spread_beyond_noise
    assert p.summary == ("answer only gets 66% json_match (95% interval 56-75%) and varies 41%-66% across 3 "
                         "instruction wordings → unstable")


def test_the_summary_shows_an_asymmetric_interval_as_it_is():
    """0 of 30 right: the interval is 0-11%, not ±11 (a score cannot go below 0)."""
    p = make_probe({"zero-shot": (0.0, 0.0, 0.11), "few-shot": (0.0, 0.0, 0.11)})
    assert p.summary == "zero-shot gets 0% json_match (95% interval 0-11%) → plateaued"


def test_near_zero_and_flat_reads_plateaued():
    p = make_probe({"zero-shot": (0.0, 0.0, 0.1), "few-shot": (0.03, 0.01, 0.1), "answer only": (0.0, 0.0, 0.1)})
    assert (p.prompting, p.rule) == ("plateaued", "probe-plateaued")


# ---- confidence intervals on known samples ---------------------------------------------------------------------

@pytest.mark.parametrize(("k", "n", "low", "high"), [
    # Newcombe 1998, Statistics in Medicine 17:857-872, table I, method 3 (Wilson score interval, no correction)
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)])
def test_wilson_interval_matches_newcombe(k, n, low, high):
    from trainer.metrics import confidence_interval

    got = confidence_interval("json_match", [1.0] * k + [0.0] * (n - k))
    assert got[2] == "wilson"
    assert got[0] == pytest.approx(low, abs=1e-4) and got[1] == pytest.approx(high, abs=1e-4)


def test_bootstrap_interval_of_a_mean_matches_the_t_interval():
    """For a symmetric sample of 100 scores the bootstrap interval is close to the textbook t interval
    (mean 0.5, s = 0.2916, t(0.975, 99) = 1.9842: 0.4421-0.5579)."""
    from trainer.metrics import confidence_interval

    low, high, how = confidence_interval("chrf", [i / 99 for i in range(100)])
    assert how == "bootstrap"
    assert low == pytest.approx(0.4421, abs=0.006) and high == pytest.approx(0.5579, abs=0.006)
    assert confidence_interval("chrf", [0.4] * 10) == (0.4, 0.4, "bootstrap")


def test_record_values_average_to_the_eval_aggregate():
    from trainer.metrics import aggregate, record_values

    outs, exp = ['{"a": 1}', "nope", '{"a": 2}'], ['{"a": 1}', '{"a": 1}', '{"a": 1}']
    values = record_values("json", outs, exp)
    assert values["json_valid"] == [1.0, 0.0, 1.0] and values["json_match"] == [1.0, 0.0, 0.0]
    assert aggregate("json", outs, exp) == {"exact_match": 0.3333, "json_valid": 0.6667, "json_match": 0.3333}


# ---- the answer wins, the conflict is shown ----------------------------------------------------------------------

def test_an_untried_answer_takes_the_measurement():
    from advisor.recommend import recommend

    probe = make_probe({"zero-shot": (0.0, 0.0, 0.04), "few-shot": (0.02, 0.0, 0.07)})
    rec = recommend(answers(goal="format", prompting="untried", examples=500), probe=probe)
    c = next(c for c in rec.conflicts if c.key == "prompting")
    assert (c.answered, c.measured, c.used) == ("untried", "plateaued", "measured")
    assert "few-shot gets 2% json_match" in c.message
    assert rec.decided_by.rule == "prompting-at-limit" and rec.method != "prompting"
    assert rec.probe.prompting == "plateaued"
    assert any(o.key == "prompting" for o in rec.overrides)


def test_a_users_answer_overrides_the_measurement_with_the_conflict_shown():
    from advisor.cli.recommend_view import render
    from advisor.recommend import recommend

    probe = make_probe({"zero-shot": (0.85, 0.77, 0.91), "few-shot": (0.93, 0.86, 0.97)})
    assert probe.prompting == "works"
    rec = recommend(answers(goal="format", prompting="unstable", examples=500), probe=probe)
    c = next(c for c in rec.conflicts if c.key == "prompting")
    assert (c.answered, c.measured, c.used) == ("unstable", "works", "answered")
    assert rec.decided_by.rule == "prompting-at-limit"  # decided on the answer
    assert not any(o.key == "prompting" for o in rec.overrides)
    import io

    from rich.console import Console

    sink = io.StringIO()
    render(rec, con=Console(file=sink, width=300))
    shown = sink.getvalue()
    assert "prompting answered unstable · measured works → used answered" in shown
    assert "prompting measured few-shot gets 93% json_match" in shown


def test_an_agreeing_answer_is_no_conflict():
    from advisor.recommend import recommend

    probe = make_probe({"zero-shot": (0.0, 0.0, 0.04), "few-shot": (0.02, 0.0, 0.07)})
    rec = recommend(answers(goal="format", prompting="plateaued", examples=500), probe=probe)
    assert not [c for c in rec.conflicts if c.key == "prompting"]


def test_recommend_reads_a_saved_probe(cli_json, tmp_path):
    from core.files import write_model

    probe = make_probe({"zero-shot": (0.0, 0.0, 0.04), "few-shot": (0.02, 0.0, 0.07)})
    path = tmp_path / "probe.json"
    path.write_text(probe.model_dump_json())
    write_model(tmp_path / "answers.yaml", answers(goal="format", prompting="untried", examples=500))
    out = cli_json("recommend", "--answers", tmp_path / "answers.yaml", "--probe", path)
    assert out["probe"]["prompting"] == "plateaued"
    assert out["decided_by"]["rule"] == "prompting-at-limit"


def test_probe_schema_forbids_unknown_fields():
    schema = ProbeReport.model_json_schema()
    assert schema["additionalProperties"] is False
    assert {"prompting", "variants", "spread", "rule", "summary"} <= set(schema["required"])


# ---- bad input: exit 2, no traceback ---------------------------------------------------------------------------

def test_bad_model_paths_exit_2(cli, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"messages": [{"role": "user", "content": "hi"},
                                                           {"role": "assistant", "content": "a"}]}] * 12)
    (tmp_path / "file.bin").write_text("x")
    (tmp_path / "empty").mkdir()
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text(json.dumps({"model_type": "llama"}))
    for model, says in ((tmp_path / "missing", "does not exist"), (tmp_path / "file.bin", "is a file"),
                        (tmp_path / "empty", "no config.json"), (no_weights, "no .safetensors")):
        code, _out, err = cli("probe", data, "--model", model)
        assert code == 2, err
        assert says in err and "Traceback" not in err


def test_bad_data_and_flags_exit_2(cli, tmp_path, tiny_model):
    code, _o, err = cli("probe", tmp_path / "none.jsonl", "--model", tiny_model)
    assert code == 2 and "does not exist" in err
    with pytest.raises(SystemExit) as e:
        cli("probe", tmp_path / "none.jsonl", "--model", tiny_model, "--limit", "0")
    assert e.value.code == 2


# ---- one real probe of the tiny model ----------------------------------------------------------------------------

def test_probe_of_the_tiny_model(cli_json, tmp_path, tiny_model):
    from tests.trainer_fixtures import write_dataset

    data = write_dataset(tmp_path / "d.jsonl", n=80, seed=3)
    out = cli_json("probe", data, "--model", tiny_model, "--limit", "6", "--max-new-tokens", "6", "--shots", "2",
                   "--rewordings", "1", "--out", tmp_path / "probe.json")
    r = ProbeReport.model_validate(out)
    assert r == ProbeReport.model_validate_json((tmp_path / "probe.json").read_text())
    assert r.records == 6 and r.metric == "json" and r.headline == "json_match"
    assert [v.name for v in r.variants] == ["zero-shot", "few-shot", "instruction in the user turn"]
    assert [v.shots for v in r.variants] == [0, 2, 2] and r.shots == 2
    assert r.generations == 18
    assert not set(r.test_records) & set(r.shot_records)  # examples never come from the held-out records
    assert r.variant("zero-shot").instruction == "Extract a JSON record."
    assert r.variant("instruction in the user turn").instruction_in_user_turn
    for v in r.variants:
        assert v.interval.method == "wilson" and v.interval.low <= v.score <= v.interval.high
    assert r.prompting in ("works", "unstable", "plateaued") and r.rule.startswith("probe-")
    assert r.summary.endswith(f"→ {r.prompting}")


def test_few_shot_k_fits_the_context(tiny_model, tmp_path):
    """A long answer budget leaves no room for examples in the tiny model's 1,024-token context: k drops."""
    from tests.trainer_fixtures import write_dataset
    from trainer.probe import ProbeOptions, run_probe

    data = write_dataset(tmp_path / "d.jsonl", n=40, seed=4)
    r = run_probe(str(data), str(tiny_model), ProbeOptions(limit=2, max_new_tokens=990, shots=5, rewordings=0),
                  say=lambda s: None)
    assert r.shots < 5 and "context holds no more" in r.shots_why


def test_print_schema_and_missing_arguments(cli):
    code, out, _ = cli("probe", "--print-schema")
    assert code == 0 and json.loads(out) == ProbeReport.model_json_schema()
    code, _out, err = cli("probe", "data.jsonl")
    assert code == 2 and "--model PATH" in err


def test_the_held_out_records_are_those_train_holds_out(tiny_model, tmp_path):
    """The probe scores the records `tunewise train` will hold out (same seed and share) first, then more of the
    same shuffled order up to --limit, and takes examples only from the rest."""
    from transformers import AutoTokenizer

    from tests.trainer_fixtures import write_dataset
    from trainer.data import prepare
    from trainer.probe import ProbeOptions, load_cases

    data = write_dataset(tmp_path / "d.jsonl", n=60, seed=7)
    tok = AutoTokenizer.from_pretrained(tiny_model, local_files_only=True)
    val = [e.record for e in prepare(data, tok, max_seq_len=128, val_size=0.1).val]
    assert len(val) == 6
    cases, pool, source = load_cases(str(data), ProbeOptions(limit=6))
    assert [c.record for c in cases] == val and "the 6 records `tunewise train` holds out" in source
    cases, pool, source = load_cases(str(data), ProbeOptions(limit=100, shots=5))
    assert [c.record for c in cases][:6] == val and len(cases) == 40 and len(pool) == 20
    assert not {c.record for c in cases} & {c.record for c in pool}
    assert "the 6 that `tunewise train` holds out, then 34 more" in source
