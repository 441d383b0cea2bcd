"""Runs and findings that never lie (issue 19): every check the real run makes also runs in --dry-run, data the run
would not train on is counted and refused above a threshold, reasoning is trained or dropped by choice, replies keep
their first token, relative paths follow the config file, and every command answers broken input with exit 2 and
one sentence."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.conftest import ROOT, run_tunewise, write_yaml
from tests.trainer_fixtures import make_records, train_config, write_dataset

LORA = {"name": "lora", "lora_r": 8, "lora_alpha": 16}

# DeepSeek-R1's habit in ChatML: a reply's <think>…</think> is cut before rendering, in every assistant turn
STRIPS_THINKING = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}{% set c = m['content'] %}"
    "{% if '</think>' in c %}{% set c = c.split('</think>')[-1].lstrip() %}{% endif %}"
    "{{ '<|im_start|>assistant\\n' + c + '<|im_end|>\\n' }}"
    "{% else %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def _cfg(tmp_path, model, data=None, **data_over):
    data = data or write_dataset(tmp_path / "d.jsonl")
    c = train_config(model, data, tmp_path / "run", LORA, max_steps=2)
    c["data"].update(data_over)
    return c


def _reasoning_data(tmp_path):
    recs = []
    for r in make_records(40):
        msgs = r["messages"]
        msgs[-1]["content"] = f"<think>\nRead the name, age and city.\n</think>\n\n{msgs[-1]['content']}"
        recs.append({"messages": msgs})
    path = tmp_path / "reasoning.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path, recs


# ---- 5. reasoning the template strips is a choice: trained (rendered back) or dropped, and the dry run says which

def test_reasoning_the_template_strips_is_trained_and_the_dry_run_says_so(tmp_path, tiny_model, cli_json, cli):
    data, recs = _reasoning_data(tmp_path)
    (tmp_path / "r1.jinja").write_text(STRIPS_THINKING)
    path = write_yaml(tmp_path / "t.yaml", _cfg(tmp_path, tiny_model, data, chat_template=str(tmp_path / "r1.jinja")))
    d = cli_json("train", path, "--dry-run")
    assert d["reasoning"]["mode"] == "train" and d["reasoning"]["records"] == 40
    assert d["reasoning"]["template_drops_it"] == 40
    assert d["samples"][0]["trained"] == [recs[0]["messages"][-1]["content"] + "<|im_end|>"]
    code, out, _ = cli("train", path, "--dry-run")
    assert code == 0 and "reasoning is trained" in " ".join(out.split())

    dropped = cli_json("train", path, "data.reasoning=drop", "--dry-run")
    answer = recs[0]["messages"][-1]["content"].split("</think>\n\n")[1]
    assert dropped["reasoning"]["mode"] == "drop" and dropped["samples"][0]["trained"] == [answer + "<|im_end|>"]


def test_a_reasoning_field_is_trained_before_the_answer(tmp_path):
    """`reasoning_content` (DeepSeek/Qwen API shape) is read; a template that renders it itself (Qwen3) trains it
    from its own <think> tag, and earlier turns it strips get the block back."""
    from tests.test_chat_templates import family_tokenizer
    from trainer.data import load_conversations
    from trainer.encoding import Encoder, trained_runs
    from trainer.tiny import general_corpus

    rec = {"messages": [{"role": "user", "content": "Hi there"},
                        {"role": "assistant", "content": "Hello!", "reasoning_content": "A greeting."},
                        {"role": "user", "content": "Add 2 and 3"},
                        {"role": "assistant", "content": "It is 5.", "reasoning_content": "2 + 3 = 5."}]}
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    (index, msgs), = load_conversations(path)[0]
    tok = family_tokenizer("qwen3.jinja", general_corpus()[:200])
    tok.chat_template += "{#- a local copy trl does not recognise #}"
    enc = Encoder(tok, 4096)
    e, _ = enc.encode(index, msgs, "openai")
    assert trained_runs(e, tok) == ["<think>\nA greeting.\n</think>\n\nHello!<|im_end|>",
                                    "<think>\n2 + 3 = 5.\n</think>\n\nIt is 5.<|im_end|>"]
    assert enc.finder.reasoning_restored == 1


@pytest.mark.parametrize("name", ["deepseek_r1_distill.jinja", "qwen3.jinja", "glm4moe.jinja", "nemotron_3_nano.jinja"])
def test_reasoning_is_never_silently_lost_on_real_templates(name):
    """Families whose templates strip <think> (trl's own copies, and a local copy trl does not recognise)."""
    from tests.test_chat_templates import family_tokenizer
    from trainer.encoding import Encoder, trained_runs
    from trainer.spans import split_reasoning
    from trainer.tiny import general_corpus

    replies = ["<think>\nThey greet me.\n</think>\n\nHello!", "<think>\n2 plus 3 is 5.\n</think>\n\nIt is 5."]
    msgs = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": replies[0]},
            {"role": "user", "content": "Add 2 and 3"}, {"role": "assistant", "content": replies[1]}]
    for local_copy in (False, True):
        tok = family_tokenizer(name, general_corpus()[:200])
        if local_copy:
            tok.chat_template += "{#- local #}"
        for mode in ("train", "drop"):
            ready = [dict(m, reasoning=split_reasoning(m["content"])) if m["role"] == "assistant" else m for m in msgs]
            runs = trained_runs(Encoder(tok, 4096, reasoning=mode).encode(0, ready, "openai")[0], tok)
            assert len(runs) == 2
            for run, reply in zip(runs, replies, strict=True):
                reasoning, answer = reply.split("</think>\n\n")
                assert answer in run and ((reasoning.split("\n")[1] in run) == (mode == "train")), (name, run)


# ---- 6. records that would be skipped: counted, and refused above data.max_skipped

def _mixed_data(tmp_path, bad: int):
    good = make_records(60)
    lines = [json.dumps(r) for r in good]
    lines += [json.dumps({"instruction": f"Say {i}", "output": str(i)}) for i in range(bad)]  # another format
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_many_skipped_records_stop_the_run_with_counts(tmp_path, tiny_model, cli, cli_json):
    path = write_yaml(tmp_path / "t.yaml", _cfg(tmp_path, tiny_model, _mixed_data(tmp_path, 40)))
    for args in (["--dry-run"], ["--no-progress"]):
        code, _out, err = cli("train", path, *args)
        err = " ".join(err.split())
        assert code == 2 and "40 of 100 records (40.0%)" in err and "40 not the detected format" in err, err
        assert "data.max_skipped" in err
    assert not (tmp_path / "run").exists()
    d = cli_json("train", path, "data.max_skipped=0.5", "--dry-run")
    assert d["skipped"] == {"schema": 40} and d["records_total"] == 100


def test_a_few_skipped_records_are_said_prominently(tmp_path, tiny_model, cli):
    path = write_yaml(tmp_path / "t.yaml", _cfg(tmp_path, tiny_model, _mixed_data(tmp_path, 2)))
    code, out, _ = cli("train", path, "--dry-run")
    assert code == 0 and "skipped 2 of 62 records (3.2%): 2 not the detected format (records 60, 61)" in " ".join(
        out.split())


# ---- 7, 12, 17. the dry run runs every check; no sentinel numbers; the trained span is visible without colour

def test_the_dry_run_refuses_what_the_run_would_refuse(tmp_path, tiny_model, cli):
    path = write_yaml(tmp_path / "t.yaml", _cfg(tmp_path, tiny_model))
    code, _out, err = cli("train", path, "training.batch_size=100000000", "--dry-run")
    assert code == 2 and "GB is available" in err and "--force" in err
    code, _out, err = cli("train", path, "training.batch_size=100000000", "--dry-run", "--force")
    assert code == 0, err
    (tmp_path / "blocker").write_text("a file where a folder is needed")
    code, _out, err = cli("train", path, "output.dir=blocker/run", "--dry-run")
    assert code == 2 and "blocker" in err and "not a folder" in " ".join(err.split())


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_a_read_only_output_dir_is_refused_before_training(tmp_path, tiny_model, cli):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        path = write_yaml(tmp_path / "t.yaml", _cfg(tmp_path, tiny_model))
        for args in (["--dry-run"], ["--no-progress"]):
            code, _out, err = cli("train", path, f"output.dir={ro / 'run'}", *args)
            assert code == 2 and "read-only" in err
    finally:
        ro.chmod(0o700)


def test_dry_run_json_has_real_numbers_and_plain_output_marks_the_span(tmp_path, tiny_model, cli_json, cli):
    path = write_yaml(tmp_path / "t.yaml", _cfg(tmp_path, tiny_model))
    d = cli_json("train", path, "--dry-run")
    e = d["estimate"]
    assert e["gpu_memory_gb"] == pytest.approx(d["available_gb"], abs=0.01) and e["headroom_gb"] < 1e6
    code, out, _ = cli("train", path, "--dry-run")  # captured: not a terminal, so no colour
    first = make_records(60)
    reply = next(r for r in first if r["messages"][1]["content"] in out)["messages"][2]["content"]
    assert code == 0 and f"«{reply}<|im_end|>»" in out.replace("\n", "") and "between « and »" in out


# ---- 9. a reply that starts with a newline keeps it when the tokenizer merges it with the template's newline

def test_a_leading_newline_is_trained_when_it_merges_with_the_separator():
    from trainer.encoding import Encoder, trained_runs
    from trainer.tiny import build_tokenizer, general_corpus

    tok = build_tokenizer(general_corpus()[:200] + ["assistant\n\nHello\n\nthere\n\n" * 5] * 50, 700)
    reply = "\n\n- item one"
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": reply}]
    text = tok.apply_chat_template(msgs, tokenize=False)
    assert "ĊĊ" in tok.tokenize(text)  # the separator's newline and the reply's first merge into one token
    for template in (tok.chat_template, tok.chat_template.replace("{% generation %}", "").replace(
            "{% endgeneration %}", "")):
        tok.chat_template = template
        e, _ = Encoder(tok, 4096).encode(0, [dict(m) for m in msgs], "openai")
        assert trained_runs(e, tok) == [reply + "<|im_end|>"]
        assert tok.decode(e.input_ids) == text  # the same text, only split at the reply's edge


# ---- 15. relative paths in a config are relative to the config file

def test_relative_paths_follow_the_config_file(tmp_path, tiny_model, cli_json, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    write_dataset(project / "d.jsonl")
    shutil.copytree(tiny_model, project / "model")
    c = train_config("model", "d.jsonl", "runs/a", LORA, max_steps=2)
    path = write_yaml(project / "t.yaml", c)
    monkeypatch.chdir(tmp_path)
    d = cli_json("train", path, "--no-progress")
    assert d["output_dir"] == str(project / "runs" / "a") and (project / "runs" / "a" / "summary.json").is_file()
    assert not (tmp_path / "runs").exists()


def test_recommend_writes_paths_relative_to_the_config(tmp_path, cli_json, monkeypatch):
    import yaml

    from tests.conftest import BASE_ANSWERS

    monkeypatch.chdir(tmp_path)
    write_dataset(tmp_path / "d.jsonl")
    write_yaml(tmp_path / "answers.yaml", {**BASE_ANSWERS, "goal": "format", "prompting": "unstable",
                                           "examples": 3000})
    (tmp_path / "plan").mkdir()
    cli_json("recommend", "--answers", "answers.yaml", "--dataset", "d.jsonl", "--config-out", "plan/train.yaml")
    cfg = yaml.safe_load((tmp_path / "plan" / "train.yaml").read_text())
    assert cfg["data"]["path"] == "../d.jsonl" and cfg["output"]["dir"] == "../runs/tunewise"
    from trainer.config_file import load_config

    loaded = load_config(str(tmp_path / "plan" / "train.yaml"))
    assert loaded.data.path == str(tmp_path / "d.jsonl") and loaded.output.dir == str(tmp_path / "runs" / "tunewise")


# ---- every command: broken input is exit 2 and one sentence, never a traceback

def _broken_inputs(tmp_path, tiny_model) -> dict[str, list]:
    t = tmp_path
    good = write_dataset(t / "good.jsonl")
    (t / "utf16.jsonl").write_bytes(good.read_text().encode("utf-16"))
    (t / "latin1.jsonl").write_bytes(good.read_text().replace("Oslo", "Øslo").encode("latin-1"))
    (t / "binary.jsonl").write_bytes(bytes(range(256)) * 8)
    (t / "empty.jsonl").write_text("")
    (t / "a_file").write_text("x")
    (t / "dup.yaml").write_text("goal: format\nprompting: works\nexamples: 10\ngoal: task\n")
    (t / "tag.yaml").write_text("goal: !!python/object/apply:os.system ['true']\n")
    (t / "badkey.yaml").write_text("goal: format\nprompting: unstable\nexamples: 10\nlora_rank: 3\n")
    (t / "notyaml.yaml").write_text("goal: [format\n")

    def train_yaml(name, **over):
        c = _cfg(t, tiny_model, good)
        for k, v in over.items():
            section, key = k.split("__")
            c[section][key] = v
        return str(write_yaml(t / f"{name}.yaml", c))

    (t / "dupcfg.yaml").write_text(f"model: {{path: {tiny_model}}}\ndata: {{path: {good}}}\nmodel: {{path: x}}\n")
    extra = _issue_28_inputs(t, tiny_model, good, train_yaml)
    return {
        "audit missing": ["audit", t / "missing.jsonl"],
        "audit utf16": ["audit", t / "utf16.jsonl"],
        "audit latin1": ["audit", t / "latin1.jsonl"],
        "audit binary": ["audit", t / "binary.jsonl"],
        "audit folder": ["audit", t],
        "recommend missing": ["recommend", "--answers", t / "missing.yaml"],
        "recommend duplicate keys": ["recommend", "--answers", t / "dup.yaml"],
        "recommend yaml tag": ["recommend", "--answers", t / "tag.yaml"],
        "recommend unknown key": ["recommend", "--answers", t / "badkey.yaml"],
        "recommend not yaml": ["recommend", "--answers", t / "notyaml.yaml"],
        "recommend binary": ["recommend", "--answers", t / "binary.jsonl"],
        "estimate nan": ["estimate", "--method", "lora", "--params-b", "nan"],
        "estimate negative": ["estimate", "--method", "lora", "--params-b", "-7"],
        "estimate epochs inf": ["estimate", "--method", "lora", "--params-b", "7", "--epochs", "inf"],
        "estimate unknown method": ["estimate", "--method", "lorax", "--params-b", "7"],
        "ask missing answers": ["ask", "--answers", t / "missing.yaml", "--defaults", "--train", "no"],
        "ask bad answers": ["ask", "--answers", t / "badkey.yaml", "--defaults", "--train", "no"],
        "ask missing dataset": ["ask", "--dataset", t / "missing.jsonl", "--defaults", "--train", "no",
                                "--out", t / "ask"],
        "train missing config": ["train", t / "missing.yaml"],
        "train duplicate keys": ["train", t / "dupcfg.yaml", "--dry-run"],
        "train utf16 data": ["train", train_yaml("u16", data__path=str(t / "utf16.jsonl")), "--dry-run"],
        "train binary data": ["train", train_yaml("bin", data__path=str(t / "binary.jsonl")), "--dry-run"],
        "train empty data": ["train", train_yaml("empty", data__path=str(t / "empty.jsonl")), "--dry-run"],
        "train missing template": ["train", train_yaml("tmpl", data__chat_template="nope/t.jinja"), "--dry-run"],
        "train broken template": ["train", train_yaml("brk", data__chat_template="{% for m in messages %}"),
                                  "--dry-run"],
        "train memory": ["train", train_yaml("mem", training__batch_size=10**8), "--dry-run"],
        "train output under a file": ["train", train_yaml("out", output__dir=str(t / "a_file" / "run")), "--dry-run"],
        "train resume nothing": ["train", train_yaml("res"), "--resume"],
        "eval missing": ["eval", t / "no-run"],
        "eval not a run": ["eval", t],
        "merge missing": ["merge", t / "no-run"],
        "merge not a run": ["merge", t],
        "demo out under a file": ["demo", "--out", t / "a_file" / "demo"],
        **extra,
    }


def _model_copy(t, tiny_model, name, damage) -> str:
    folder = t / name
    shutil.copytree(tiny_model, folder)
    damage(folder)
    return str(folder)


def _fake_run(t, name, model, tiny_model) -> str:
    """A run folder (config + adapter config + tokenizer) whose base model is `model`."""
    run = t / name
    run.mkdir()
    write_yaml(run / "tunewise_config.yaml", {**_cfg(t, tiny_model, t / "good.jsonl"), "model": {"path": str(model)}})
    (run / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8, "target_modules": ["q_proj"]}))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model / f, run / f)
    return str(run)


def _issue_28_inputs(t, tiny_model, good, train_yaml) -> dict[str, list]:
    """Issue 28's raw exit-1 errors and unsafe inputs: each is exit 2 and one sentence now."""
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    (t / "bomb.yaml").write_text(bomb)
    (t / "bad_schema.json").write_text(json.dumps({"type": "object", "properties": {"name": {"type": "strin"}}}))
    (t / "empty_answers.jsonl").write_text("".join(json.dumps({"instruction": f"Name {i}", "output": ""}) + "\n"
                                                   for i in range(30)))
    (t / "copies.jsonl").write_text((json.dumps({"instruction": "Say hi", "output": "Hi!"}) + "\n") * 30)
    truncated = _model_copy(t, tiny_model, "m_trunc", lambda f: (f / "config.json").write_text(
        (f / "config.json").read_text()[:40]))
    cut = _model_copy(t, tiny_model, "m_cut", lambda f: (f / "model.safetensors").write_bytes(
        (f / "model.safetensors").read_bytes()[:5000]))
    no_tok = _model_copy(t, tiny_model, "m_notok", lambda f: [(f / n).unlink() for n in ("tokenizer.json",
                                                                                           "tokenizer_config.json")])
    bad_tok = _model_copy(t, tiny_model, "m_badtok", lambda f: (f / "tokenizer.json").write_text('{"version": "1.0", '))
    moved = _fake_run(t, "run_moved", t / "model_moved_away", tiny_model)
    present = _fake_run(t, "run_present", tiny_model, tiny_model)
    (t / "answers.yaml").write_text("# mine\n" + (t / "dup.yaml").read_text().replace("goal: task\n", ""))
    src = train_yaml("src")
    (t / "my_model").mkdir()
    (t / "my_model" / "notes.txt").write_text("mine")
    return {
        "train learning rate typo 2e4": ["train", train_yaml("lr", training__learning_rate=2e4), "--dry-run"],
        "train learning rate inf": ["train", train_yaml("lrinf", training__learning_rate=float("inf")), "--dry-run"],
        "recommend yaml alias bomb": ["recommend", "--answers", t / "bomb.yaml"],
        "train yaml alias bomb": ["train", t / "bomb.yaml", "--dry-run"],
        "train truncated config.json": ["train", train_yaml("trunc", model__path=truncated), "--dry-run"],
        "train cut safetensors": ["train", train_yaml("cut", model__path=cut), "--dry-run"],
        "train no tokenizer files": ["train", train_yaml("notok", model__path=no_tok), "--dry-run"],
        "train damaged tokenizer.json": ["train", train_yaml("badtok", model__path=bad_tok), "--dry-run"],
        "train all answers empty": ["train", train_yaml("emp", data__path=str(t / "empty_answers.jsonl")), "--dry-run"],
        "train all copies": ["train", train_yaml("cop", data__path=str(t / "copies.jsonl")), "--dry-run"],
        "eval base moved": ["eval", moved],
        "merge base moved": ["merge", moved],
        "eval cut adapter weights": ["eval", _damaged_adapter(t, present)],
        "eval invalid schema": ["eval", present, "--schema", t / "bad_schema.json"],
        "merge over a folder with files": ["merge", present, "--out", t / "my_model"],
        "merge onto the base model": ["merge", present, "--out", tiny_model],
        "export onto its source": ["export", src, "--to", "trl", "--out", src],
        "export out under a file": ["export", src, "--to", "trl", "--out", t / "a_file" / "trl.yaml"],
        "ask over its own answers file": ["ask", "--answers", t / "answers.yaml", "--defaults", "--train", "no",
                                          "--out", t],
    }


def _damaged_adapter(t, present: str) -> str:
    run = t / "run_cut_adapter"
    shutil.copytree(present, run)
    (run / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    return str(run)


def test_every_command_answers_broken_input_with_exit_2_and_one_sentence(tmp_path, tiny_model):
    failures = []
    for name, args in _broken_inputs(tmp_path, tiny_model).items():
        p = run_tunewise(*args, timeout=300)
        err = p.stderr.strip()
        # one message: ours starts with `error:` (a file with several mistakes lists each on its own line);
        # argparse's starts with the usage line
        one = (err.count("error:") == 1 and err.startswith(("error:", "usage:")) and "Traceback" not in err
               and "failed:" not in err)
        if p.returncode != 2 or not one:
            failures.append(f"{name}: exit {p.returncode}: {err[-400:]}")
    assert not failures, "\n".join(failures)


# ---- 14. a run started from `ask` and interrupted: exit 130 and the command that resumes it

def test_an_interrupted_run_started_from_ask_exits_130_with_the_resume_command(tmp_path, tiny_model, cli,
                                                                             monkeypatch):
    import trainer.run
    from tests.conftest import BASE_ANSWERS

    data = write_dataset(tmp_path / "d.jsonl", n=120)
    answers = write_yaml(tmp_path / "a.yaml", {**BASE_ANSWERS, "goal": "format", "prompting": "unstable",
                                               "examples": 120, "dataset": str(data), "model_path": str(tiny_model),
                                               "gpu_count": 0, "gpu_memory_gb": 0})
    from trainer.run_report import RunSummary

    written = json.loads((ROOT / "tests" / "data" / "run_summary" / "no_eval.summary.json").read_text())
    stopped = RunSummary.model_validate({**written, "interrupted": True, "steps": 3, "max_steps": 30,
                                         "output_dir": str(tmp_path / "plan" / "run")})
    monkeypatch.setattr(trainer.run, "train", lambda *a, **k: stopped)  # Ctrl-C during the run
    code, out, _ = cli("ask", "--answers", answers, "--defaults", "--train", "yes", "--out", tmp_path / "plan")
    assert code == 130
    assert f"tunewise train {tmp_path / 'plan' / 'train.yaml'} --resume" in " ".join(out.split())
    assert "ask --resume" not in out
