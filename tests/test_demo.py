"""The demo pipeline end to end, reduced in size."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_demo_quick(tmp_path, cli, cli_json):
    code, out, err = cli("demo", "--out", tmp_path / "demo", "--quick", "--json")
    assert code == 0, err
    d = json.loads(out)
    # the probe measured the tiny base model's few-shot tickets before the advice, and the advice cites it
    probe = d["probe"]
    assert probe["metric"] == "json_match" and probe["few_shot"] <= 0.1 and probe["prompting"] == "plateaued"
    shown = " ".join(err.replace("│", " ").split())  # the recommendation panel, unwrapped
    assert f"prompting measured {probe['summary']}" in shown
    assert "prompting answered unstable · measured plateaued → used answered" in shown
    assert d["method"] in ("lora", "qlora", "full", "p_tuning")
    assert d["cleaning"] == {"records": 300, "dropped": 35, "dropped_by_finding": {
        "empty_output": 2, "placeholder": 1, "exact_duplicate": 28, "conflicting_answers": 2, "pii": 1,
        "template_leak": 1}, "kept_flagged": {"near_duplicate": 30}, "train_records": 239, "test_records": 26}
    for path in d["files"].values():
        assert (tmp_path / "demo").resolve() in __import__("pathlib").Path(path).resolve().parents
    base, tuned = d["base"], d["tuned"]
    assert tuned["eval_loss"] < base["eval_loss"]
    assert {"valid_ticket_rate", "exact_match", "general_text_loss"} <= set(tuned)
    assert json.loads((tmp_path / "demo" / "demo_summary.json").read_text())["method"] == d["method"]
    assert (tmp_path / "demo" / "audit" / "index.html").is_file() and (tmp_path / "demo" / "run" / "loss.png").is_file()
    # the second run reuses the cached base model
    again = cli_json("demo", "--out", tmp_path / "demo", "--quick")
    assert again["method"] == d["method"]


def test_demo_dataset_has_the_deliberate_defects():
    from advisor.audit import audit_file
    from advisor.cli.demo.pipeline import asset

    codes = {f.code for f in audit_file(asset("tickets.jsonl")).findings}
    assert {"exact_duplicate", "empty_output", "placeholder", "pii", "template_leak", "conflicting_answers"} <= codes


def test_demo_clean_data_holds_no_flagged_record(tmp_path):
    """What step 1 says is true: the clean training and test data hold none of the planted defects, near-copies
    stay on one side of the split, and the message names every code it dropped records for."""
    from advisor.audit import audit_file
    from advisor.cli.demo.pipeline import asset, clean_split

    train, test, cleaning = clean_split(audit_file(asset("tickets.jsonl")), asset("tickets.jsonl"), tmp_path)
    assert cleaning.describe() == (
        "dropped 35 of 300 records — empty answer: 2 · unfilled placeholder: 1 · exact duplicate: 28 (the first of "
        "each group kept) · same prompt, different answers: 2 (every side: which is right is unknown) · possible "
        "personal data or secret: 1 · chat or instruction markup inside content: 1; kept near-duplicate: 30 "
        "(reworded examples)")
    kept = train.read_text(encoding="utf-8") + test.read_text(encoding="utf-8")
    for planted in ("jordan.miles@fastmail.com", "<|im_end|>", "{{customer_name}}", '"content": ""', '"content": " "'):
        assert planted not in kept
    n_train = len(train.read_text().splitlines())
    assert (n_train, len(test.read_text().splitlines())) == (239, 26)
    both = tmp_path / "both.jsonl"
    both.write_text(kept, encoding="utf-8")
    (near,) = audit_file(both).findings  # nothing left but reworded tickets, none across the split
    assert near.code == "near_duplicate"
    assert all(max(g) < n_train or min(g) >= n_train for g in near.groups)


def test_readme_tour_matches_the_demo():
    """The README's tour quotes a real run: its cleaning line and held-out count are what the demo prints."""
    from advisor.audit import audit_file
    from advisor.cli.demo.pipeline import asset, flagged
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tour = " ".join(readme[readme.index("## A newcomer's tour"):readme.index("## Commands")].split())
    assert flagged(audit_file(asset("tickets.jsonl"))).describe() + "; held out 26 records for evaluation" in tour
    assert "demo result: lora on 26 held-out records" in tour
