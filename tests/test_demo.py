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
    from trainer.demo.pipeline import asset

    codes = {f.code for f in audit_file(asset("tickets.jsonl")).findings}
    assert {"exact_duplicate", "empty_output", "placeholder", "pii", "template_leak", "conflicting_answers"} <= codes
