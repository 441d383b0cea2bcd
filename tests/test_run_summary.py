"""The run's reports are typed (trainer/run_report.py): summary.json written by the version before the types loads
into RunSummary and writes back the same keys, in the same order, with the same values; `train --json`,
`--resume --json` and `--dry-run --json` print what they printed; `--print-schema summary` publishes the schema; and
the trainer's modules import one another without a circle."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, write_yaml
from tests.trainer_fixtures import train_config, write_dataset
from trainer.run_report import DryRunReport, EvalEntry, EvalSkipped, RunSummary

BEFORE = ROOT / "tests" / "data" / "run_summary"  # written by `tunewise train` before the reports were typed


def _read(name: str) -> dict:
    return json.loads((BEFORE / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["with_eval.summary.json", "no_eval.summary.json"])
def test_a_summary_json_of_the_previous_version_loads_and_writes_back_the_same(name):
    before = _read(name)
    summary = RunSummary.model_validate(before)
    assert json.dumps(summary.file_json()) == json.dumps(before)  # keys, order and values
    assert (summary.eval is not None) == ("eval" in before) and summary.loss_plot is None


def test_the_eval_entry_is_typed():
    summary = RunSummary.model_validate(_read("with_eval.summary.json"))
    assert isinstance(summary.eval, EvalEntry) and summary.eval.records == 4 and summary.eval.forgetting
    assert summary.eval.base.metrics == {"exact_match": 0.0, "json_valid": 0.0, "json_match": 0.0}
    skipped = RunSummary.model_validate({**_read("no_eval.summary.json"), "eval": {"skipped": "no answers"}})
    assert skipped.eval == EvalSkipped(skipped="no answers") and skipped.file_json()["eval"] == {"skipped": "no answers"}


@pytest.mark.parametrize("name", ["with_eval.train_json_output.json", "already_finished.train_json_output.json"])
def test_train_json_output_of_the_previous_version_round_trips(name):
    before = _read(name)
    assert json.dumps(RunSummary.model_validate(before).output_json()) == json.dumps(before)


def test_the_dry_run_report_of_the_previous_version_round_trips():
    before = _read("dry_run.train_json_output.json")
    assert json.dumps(DryRunReport.model_validate(before).output_json()) == json.dumps(before)


def test_an_unknown_key_is_refused():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="extra_forbidden"):
        RunSummary.model_validate({**_read("no_eval.summary.json"), "steps_done": 3})


def test_print_schema_prints_the_config_or_the_summary(cli):
    from core.train_config import TrainConfig

    for args, schema in ((["--print-schema"], TrainConfig.model_json_schema()),
                         (["--print-schema", "config"], TrainConfig.model_json_schema()),
                         (["--print-schema", "summary"], RunSummary.model_json_schema())):
        code, out, _err = cli("train", *args)
        assert code == 0 and json.loads(out) == schema
    props = RunSummary.model_json_schema()["properties"]
    assert set(props) == {*_read("with_eval.train_json_output.json"), "already_finished"}
    code, _out, err = cli("train", "--print-schema", "eval")
    assert code == 2 and "--print-schema takes config or summary, not `eval`" in err
    # written before the flag took a value: a config file after it still prints the config's schema
    code, out, _err = cli("train", "--print-schema", "train.yaml")
    assert code == 0 and json.loads(out) == TrainConfig.model_json_schema()


def test_a_run_writes_and_prints_the_keys_it_wrote_before(tmp_path, tiny_model, cli):
    data = write_dataset(tmp_path / "d.jsonl", n=30)
    cfg = train_config(tiny_model, data, tmp_path / "run", {"name": "lora", "lora_r": 4}, max_steps=2, eval_steps=2)
    path = write_yaml(tmp_path / "t.yaml", cfg)
    code, out, err = cli("train", path, "--dry-run", "--json")
    assert code == 0, err
    assert list(json.loads(out)) == list(_read("dry_run.train_json_output.json"))
    code, out, err = cli("train", path, "--no-progress", "--json")
    assert code == 0, err
    printed, written = json.loads(out), json.loads((tmp_path / "run" / "summary.json").read_text())
    assert list(written) == list(_read("no_eval.summary.json"))
    assert list(printed) == [*_read("no_eval.summary.json"), "loss_plot"]
    assert {k: v for k, v in printed.items() if k != "loss_plot"} == written
    code, out, err = cli("train", path, "--resume", "--no-progress", "--json")
    assert code == 0, err
    assert list(json.loads(out)) == list(_read("already_finished.train_json_output.json"))


def _imports(module: Path) -> set[str]:
    """The trainer modules `module` imports, at its top or inside its functions."""
    found = set()
    for n in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("trainer."):
            found.add(n.module)
        elif isinstance(n, ast.Import):
            found |= {a.name for a in n.names if a.name.startswith("trainer.")}
    return found


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m == goal:
            return True
        if m not in seen:
            seen.add(m)
            todo += graph.get(m, ())
    return False


@pytest.mark.parametrize("a,b", [("trainer.run", "trainer.evaluate"), ("trainer.data", "trainer.data_cache")])
def test_no_import_circle(a, b):
    graph = {"trainer." + ".".join(f.relative_to(ROOT / "trainer").with_suffix("").parts): _imports(f)
             for f in (ROOT / "trainer").rglob("*.py")}
    assert _reaches(graph, a, b) and not _reaches(graph, b, a)
