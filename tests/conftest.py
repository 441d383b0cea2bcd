from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXTERNAL = ROOT.parent / "shared" / "data" / "external"
LABELLED = Path(__file__).parent / "labelled"  # the labelled sets the audit is measured on

BASE_ANSWERS = dict(tasks=1, needs_citations=False, private_data=False, requests_per_day=1000,
                    gpu_memory_gb=24, gpu_count=1, model_params_b=7)


@pytest.fixture(autouse=True)
def _own_data_cache(tmp_path_factory, monkeypatch):
    """Each test its own tokenised-data cache (trainer/data_cache.py): no test reads another's entries, and none
    writes to the user's ~/.cache."""
    monkeypatch.setenv("TUNEWISE_CACHE", str(tmp_path_factory.mktemp("tunewise-cache")))


@pytest.fixture
def cli(capsys):
    """Run `tunewise ARGS` in-process; returns (exit code, stdout, stderr)."""
    from advisor.cli.main import main

    def run(*args: str):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def cli_json(cli):
    def run(*args: str):
        code, out, err = cli(*args, "--json")
        assert code == 0, err
        return json.loads(out)

    return run


def run_tunewise(*args: str, **kw) -> subprocess.CompletedProcess:
    """Run the real console entry point in a subprocess (for tests about imports, tracebacks, exit codes)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "advisor.cli.main", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=kw.pop("cwd", ROOT), **kw)


def write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def answers(**over):
    from advisor.answers import Answers

    return Answers(**{**BASE_ANSWERS, **over})


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny Llama with a fast BPE tokenizer and ChatML template, pre-trained briefly (no download)."""
    from tests.trainer_fixtures import make_records
    from trainer.tiny import build_tiny_model

    texts = [m["content"] for r in make_records(200, seed=1) for m in r["messages"]]
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", texts, pretrain_steps=150)


def load_labelled(name: str):
    """A labelled set of tests/labelled/ (YAML)."""
    return yaml.safe_load((LABELLED / name).read_text(encoding="utf-8"))


def by_code(report) -> dict:
    """An audit report's findings by code."""
    return {f.code: f for f in report.findings}
