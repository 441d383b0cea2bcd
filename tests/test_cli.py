"""The CLI spine: help, version, exit codes, no traceback for bad input, torch-free start-up."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from advisor.cli.main import COMMANDS
from tests.conftest import run_tunewise

ROOT = Path(__file__).resolve().parent.parent


def test_version_and_help(cli):
    with pytest.raises(SystemExit) as e:
        cli("--version")
    assert e.value.code == 0
    code, out, _ = cli()
    assert code == 2 and "COMMAND" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command):
    p = run_tunewise(command, "--help")
    assert p.returncode == 0, p.stderr
    assert "examples:" in p.stdout and f"tunewise {command}" in p.stdout


def test_importing_the_cli_does_not_import_heavy_libraries():
    code = ("import sys, advisor.cli.main as m; m.build_parser(); "
            "import advisor.recommend, advisor.audit, core.estimate, advisor.configgen, advisor.export.read; "
            "import advisor.export.axolotl, advisor.export.llamafactory, advisor.export.trl_sft, trainer.metrics; "
            "bad = [x for x in ('torch', 'transformers', 'peft', 'sklearn', 'accelerate') if x in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_building_the_command_line_imports_neither_the_probe_runner_nor_scipy():
    """Every start builds the whole parser: the probe's flag defaults come from trainer/probe_plan.py, not the probe
    runner and its report models (0.15 s); scipy is the audit's, imported with it."""
    code = ("import sys, advisor.cli.main as m; m.build_parser(); "
            "print(sorted(x for x in ('trainer.probe', 'core.probe_report', 'scipy') if x in sys.modules))")
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert p.stdout.strip() == "[]"


def test_bad_input_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "answers.yaml"
    bad.write_text("goal: format\nprompting: unstable\nexamples: 10\nlora_rank: 3\n")
    p = run_tunewise("recommend", "--answers", bad)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert "lora_rank" in p.stderr and "answers.yaml:4" in p.stderr


def test_debug_shows_traceback(tmp_path):
    p = run_tunewise("--debug", "recommend", "--answers", tmp_path / "missing.yaml")
    assert p.returncode == 2 and "Traceback" in p.stderr


def test_unknown_command_is_usage_error():
    p = run_tunewise("frobnicate")
    assert p.returncode == 2


@pytest.mark.parametrize("args", [["--params-b", "nan"], ["--params-b", "inf"], ["--params-b", "7", "--epochs", "nan"],
                                  ["--params-b", "1e999"]])
def test_estimate_refuses_non_finite_numbers_in_one_sentence(args):
    p = run_tunewise("estimate", "--method", "lora", *args)
    last = p.stderr.strip().splitlines()[-1]
    assert p.returncode == 2 and "must be a finite number" in last and "Traceback" not in p.stderr


def test_duplicate_yaml_keys_name_both_lines(tmp_path):
    f = tmp_path / "answers.yaml"
    f.write_text("goal: format\nprompting: works\nexamples: 10\ngoal: task\n")
    p = run_tunewise("recommend", "--answers", f)
    err = " ".join(p.stderr.split())
    assert p.returncode == 2 and "answers.yaml:4" in err and "lines 1 and 4" in err


def test_the_library_never_imports_the_cli():
    """Layers point one way: CLI modules render and call the library; nothing outside advisor/cli imports it."""
    import ast

    from tests.conftest import ROOT

    offenders = []
    for path in [*(ROOT / "advisor").rglob("*.py"), *(ROOT / "trainer").rglob("*.py")]:
        if "cli" in path.relative_to(ROOT).parts[:2]:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith("advisor.cli")]
    assert not offenders, offenders


def test_a_reader_that_closes_the_pipe_gets_no_error():
    """`tunewise … | head`: the reader stops early; the command stops quietly with SIGPIPE's status, no `failed:`."""
    import fcntl
    import os
    import subprocess

    read_end, write_end = os.pipe()
    fcntl.fcntl(read_end, fcntl.F_SETPIPE_SZ, 4096)  # a one-page pipe: the 35 KB schema cannot fit in it
    proc = subprocess.Popen([sys.executable, "-m", "advisor.cli.main", "train", "--print-schema"],
                            stdout=write_end, stderr=subprocess.PIPE, cwd=ROOT)
    os.close(write_end)
    assert os.read(read_end, 16)
    os.close(read_end)  # what `head -c 16` does
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err.decode()) == (141, "")


def test_finding_samples_read_as_text_not_dicts():
    from advisor.cli.audit_cmd import sample_text

    assert sample_text({"group": [3, 17, 42]}) == "records 3, 17, 42"
    assert sample_text({"user": "Hi?", "assistant": "Hello."}) == "user: Hi? · assistant: Hello."
    assert sample_text({"raw": "{not json"}) == "raw: {not json"
    assert sample_text("plain") == "plain"


def test_the_audit_view_prints_a_duplicate_group_as_its_records(cli, tmp_path):
    import json

    rec = {"messages": [{"role": "user", "content": "What is the capital of France?"},
                        {"role": "assistant", "content": "Paris."}]}
    path = tmp_path / "dup.jsonl"
    path.write_text("".join(json.dumps(rec) + "\n" for _ in range(3)), encoding="utf-8")
    code, out, _ = cli("audit", path)
    assert code == 0 and "records 0, 1, 2" in out and "{'group'" not in out
