"""Linter-style selection of findings (--select/--ignore and tunewise.yaml), and the typed signals from a real
file through the audit into the decision."""

from __future__ import annotations

import json

import pytest

from advisor.audit import audit_file
from advisor.audit.catalog import Selection
from advisor.recommend import recommend
from core.errors import UserError
from tests.conftest import BASE_ANSWERS, ROOT, answers, run_tunewise, write_jsonl, write_yaml

EXTERNAL = ROOT.parent / "shared" / "data" / "external"


def dirty(tmp_path):
    recs = [{"instruction": f"Write a thank-you note to customer number {i} for order {i * 7}.", "input": "",
             "output": f"Dear {{{{name}}}}, thank you for order {i * 7}. We hope you enjoy it, and we look forward "
                       f"to serving you again soon."} for i in range(30)]
    recs.append({"instruction": "Say hi", "input": "", "output": "As an AI language model, I cannot say hi."})
    return write_jsonl(tmp_path / "d.jsonl", recs)


def codes(report) -> set[str]:
    return {f.code for f in report.findings}


def test_select_and_ignore_codes_and_patterns(tmp_path):
    p = dirty(tmp_path)
    assert {"placeholder", "refusal_boilerplate"} <= codes(audit_file(p))
    assert codes(audit_file(p, selection=Selection(select=["placeholder"]))) == {"placeholder"}
    assert "placeholder" not in codes(audit_file(p, selection=Selection(ignore=["place*"])))
    only_pairs = audit_file(p, selection=Selection(select=["pair_*"]))
    assert codes(only_pairs) == set() and only_pairs.selection and all(c.startswith("pair_") for c in only_pairs.selection)
    assert audit_file(p).selection is None


def test_unknown_code_is_a_usage_error_with_a_suggestion():
    with pytest.raises(UserError, match="did you mean placeholder"):
        Selection(select=["placeholders"])


def test_cli_select_ignore_and_exit_codes(tmp_path):
    p = dirty(tmp_path)
    r = run_tunewise("audit", p, "--select", "placeholder,refusal_boilerplate", "--json")
    assert r.returncode == 0 and {f["code"] for f in json.loads(r.stdout)["findings"]} == {"placeholder",
                                                                                         "refusal_boilerplate"}
    r = run_tunewise("audit", p, "--ignore", "placeholder", "--fail-on", "error", "--json")
    assert r.returncode == 0, "the only error-level finding was ignored"
    r = run_tunewise("audit", p, "--fail-on", "error", "--json")
    assert r.returncode == 1
    r = run_tunewise("audit", p, "--select", "nosuchcode")
    assert r.returncode == 2 and "no finding code `nosuchcode`" in r.stderr and "Traceback" not in r.stderr


def test_project_file_sets_defaults_and_flags_win(tmp_path):
    data = dirty(tmp_path)
    (tmp_path / "tunewise.yaml").write_text("audit:\n  ignore: [placeholder]\n  fail_on: error\n  samples: 1\n")
    r = run_tunewise("audit", data, "--json", cwd=tmp_path)
    found = {f["code"] for f in json.loads(r.stdout)["findings"]}
    assert "placeholder" not in found and "refusal_boilerplate" in found and r.returncode == 0
    r = run_tunewise("audit", data, "--json", "--select", "placeholder", cwd=tmp_path)
    assert {f["code"] for f in json.loads(r.stdout)["findings"]} == set(), "the file's ignore still applies"
    r = run_tunewise("audit", data, "--json", "--no-project", "--fail-on", "error", cwd=tmp_path)
    assert r.returncode == 1 and "placeholder" in r.stdout


def test_project_file_errors_name_file_field_and_line(tmp_path):
    data = dirty(tmp_path)
    proj = tmp_path / "tunewise.yaml"
    proj.write_text("audit:\n  ignore: [placeholder]\n  max_seq_lenn: 512\n")
    r = run_tunewise("audit", data, cwd=tmp_path)
    assert r.returncode == 2 and "tunewise.yaml" in r.stderr and "max_seq_lenn" in r.stderr and ":3" in r.stderr
    proj.write_text("audit:\n  select: [placehold]\n")
    r = run_tunewise("audit", data, cwd=tmp_path)
    assert r.returncode == 2 and "did you mean placeholder" in r.stderr
    schema = json.loads(run_tunewise("audit", "--print-schema", "project").stdout)
    assert schema["additionalProperties"] is False and "audit" in schema["properties"]


# ---- the typed signals reach the decision ---------------------------------------------------------------------

@pytest.mark.skipif(not EXTERNAL.is_dir(), reason="needs ../shared/data/external")
def test_a_planted_defect_moves_the_signal_the_advisor_reads(tmp_path):
    """A real file, then the same file with unfilled placeholders planted in a fifth of the answers: the audit's
    error share rises past the rule's threshold and the dirty-data rule and warning appear in the decision."""
    src = json.loads((EXTERNAL / "stanford_alpaca_sample_1727.json").read_text(encoding="utf-8"))[:400]
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps(src), encoding="utf-8")
    planted = [dict(r, output=r["output"] + " Regards, {{agent_name}}") if i % 5 == 0 else r for i, r in enumerate(src)]
    bad = tmp_path / "planted.json"
    bad.write_text(json.dumps(planted), encoding="utf-8")
    a = answers(goal="format", prompting="unstable", examples=400)
    before, after = audit_file(clean).signals, audit_file(bad).signals
    assert before.error_share < 0.05 <= after.error_share == pytest.approx(before.error_share + 0.2, abs=0.005)
    assert after.findings["placeholder"].count - before.findings["placeholder"].count == 80 and after.findings["placeholder"].severity == "error"
    rec_before, rec_after = recommend(a, before), recommend(a, after)
    assert "audit-dirty-data" not in rec_before.fired_rules and "audit-dirty-data" in rec_after.fired_rules
    assert "dirty_data" in {w.code for w in rec_after.warnings}


def test_near_identical_data_moves_low_diversity_into_the_decision(tmp_path):
    recs = [{"instruction": f"Write a one-line description for catalogue item {i}: a blue ceramic coffee mug.",
             "input": "", "output": f"Catalogue item {i}: a blue ceramic coffee mug that holds 350 ml and is "
                                    "safe in the dishwasher."} for i in range(60)]
    sig = audit_file(write_jsonl(tmp_path / "mugs.jsonl", recs)).signals
    assert sig.low_diversity and sig.diversity.near_duplicate_share >= 0.3
    rec = recommend(answers(goal="format", prompting="unstable", examples=60), sig)
    assert "audit-low-diversity" in rec.fired_rules


def test_recommend_cli_reads_the_audit_of_the_dataset(tmp_path):
    data = dirty(tmp_path)
    ans = write_yaml(tmp_path / "answers.yaml", {**BASE_ANSWERS, "goal": "format", "prompting": "unstable",
                                                 "examples": 5000})
    out = json.loads(run_tunewise("recommend", "--answers", ans, "--dataset", data, "--json").stdout)
    # 30 records carry an unfilled {{name}} (errors): one usable example is left, so prompting decides
    assert {"key": "examples", "answered": 5000, "measured": 1} in out["overrides"]
    assert out["method"] == "prompting" and out["data"]["error_records"] == 30
    notes = {n["code"]: n for n in out["audit_findings"]}
    assert notes["placeholder"]["count"] == 30 and notes["refusal_boilerplate"]["count"] == 1
