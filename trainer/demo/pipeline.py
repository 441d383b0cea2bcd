"""`tunewise demo`: audit → recommend → config → train → evaluate base vs tuned, on the built-in example."""

from __future__ import annotations

import json
import random
import time
from importlib import resources
from pathlib import Path

from advisor.files import atomic_write, write_model

CATEGORIES = {"billing", "shipping", "refund", "technical", "account"}
PRIORITIES = {"low", "medium", "high"}
BASE = dict(hidden=128, layers=4, heads=4, kv_heads=2, intermediate=344, vocab_size=1024, pretrain_steps=400)
DEMO_TRAINING = {"lora": dict(learning_rate=3e-3, epochs=12), "qlora": dict(learning_rate=3e-3, epochs=12),
                 "full": dict(learning_rate=1e-3, epochs=8), "p_tuning": dict(learning_rate=1e-2, epochs=20)}


def asset(name: str) -> Path:
    return Path(str(resources.files("trainer.demo").joinpath(f"assets/{name}")))


def build_base(out: Path, texts: list[str], say, size: dict | None = None) -> Path:
    """The tiny base model, cached: rebuilt only when its recipe changes."""
    from trainer.tiny import build_tiny_model

    size = {**BASE, **(size or {})}
    marker = out / "tunewise_base.json"
    if marker.is_file() and json.loads(marker.read_text()) == size:
        say(f"base model: reusing [bold]{out}[/] (cached)")
        return out
    say(f"base model: building a {size['layers']}-layer Llama (hidden {size['hidden']}) and pre-training it "
        f"{size['pretrain_steps']} steps on the general-text corpus …")
    t = time.time()
    build_tiny_model(out, texts, **size, log=lambda s, loss: say(f"  pre-train step {s:4d}  loss {loss:.3f}")
                     if s % 100 == 0 else None)
    atomic_write(marker, json.dumps(size))
    say(f"  done in {time.time() - t:.0f} s")
    return out


def clean_split(report, src: Path, out: Path, test_share: float = 0.1, seed: int = 0) -> tuple[Path, Path, int]:
    """Drop records with error-level findings and duplicate copies; hold out a test set."""
    bad = {i for f in report.findings if f.severity == "error" or f.code in ("exact_duplicate", "conflicting_answers")
           for i in f.records}
    rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
    keep = [r for i, r in enumerate(rows) if i not in bad]
    random.Random(seed).shuffle(keep)
    n_test = max(10, int(len(keep) * test_share))
    out.mkdir(parents=True, exist_ok=True)
    train, test = out / "train.jsonl", out / "test.jsonl"
    atomic_write(train, "".join(json.dumps(r) + "\n" for r in keep[n_test:]))
    atomic_write(test, "".join(json.dumps(r) + "\n" for r in keep[:n_test]))
    return train, test, len(rows) - len(keep)


def ticket_ok(text: str) -> tuple[bool, dict | None]:
    try:
        d = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return False, None
    ok = isinstance(d, dict) and set(d) == {"category", "priority"} and d["category"] in CATEGORIES \
        and d["priority"] in PRIORITIES
    return ok, d if ok else None


def evaluate(model, tok, test_path: Path, general: list[str], max_new_tokens: int = 24) -> dict:
    """Held-out loss on answers, the task metric (valid tickets, exact field match) and general-text loss."""
    import torch

    from trainer.data import Collator, prepare

    model.eval()
    prepared = prepare(test_path, tok, max_seq_len=256, val_size=0, drop_untrainable=True)
    collate = Collator(tok.pad_token_id)
    with torch.no_grad():
        losses = [float(model(**collate([{"input_ids": e.input_ids, "labels": e.labels}])).loss) for e in prepared.train]
        gen_losses = []
        for text in general:
            ids = torch.tensor([tok(text + tok.eos_token, add_special_tokens=False)["input_ids"]])
            gen_losses.append(float(model(input_ids=ids, labels=ids).loss))
        valid = exact = 0
        rows = [json.loads(x) for x in test_path.read_text().splitlines() if x.strip()]
        samples = []
        for r in rows:
            msgs = [m for m in r["messages"] if m["role"] != "assistant"]
            prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
            text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
            ok, d = ticket_ok(text)
            valid += ok
            expected = json.loads(r["messages"][-1]["content"])
            exact += bool(ok and d == expected)
            if len(samples) < 3:
                samples.append({"message": msgs[-1]["content"], "output": text, "expected": expected})
    n = max(1, len(rows))
    return {"eval_loss": sum(losses) / max(1, len(losses)), "valid_ticket_rate": valid / n, "exact_match": exact / n,
            "general_text_loss": sum(gen_losses) / max(1, len(gen_losses)), "test_records": len(rows), "samples": samples}


def run_demo(out: Path, say, console=None, progress: bool = True, quick: bool = False) -> dict:
    """The whole product on the built-in example. `quick` shrinks everything (for tests)."""
    from advisor.answers import Answers
    from advisor.audit import audit_file
    from advisor.audit.html import write_report
    from advisor.configgen import build_config
    from advisor.files import load_model_file
    from advisor.recommend import recommend
    from trainer.run import fit, quiet_libraries
    from trainer.tiny import general_corpus

    quiet_libraries()
    t0 = time.time()
    out = out.resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".tunewise-write-test").touch()
        (out / ".tunewise-write-test").unlink()
    except OSError as e:
        from advisor.errors import UserError

        raise UserError(f"--out: cannot write to `{out}` ({e.strerror}); choose another folder") from None
    data_src = asset("tickets.jsonl")
    general = general_corpus()

    say("\n[bold]1. audit[/] the built-in dataset (support messages → JSON tickets)")
    report = audit_file(data_src)
    from advisor.cli.audit_cmd import render as render_audit

    render_audit(report, str(write_report(report, out / "audit")), con=console)
    train_path, test_path, dropped = clean_split(report, data_src, out / "data")
    say(f"dropped {dropped} records with errors, duplicate copies or conflicting labels; "
        f"held out {sum(1 for _ in test_path.open())} records for evaluation")

    ticket_texts = [m["content"] for line in data_src.read_text().splitlines() if line.strip()
                    for m in json.loads(line)["messages"]]
    size = dict(pretrain_steps=120, hidden=64, layers=2, intermediate=176) if quick else {}
    say("\n[bold]2. base model[/] (local, no download)")
    base = build_base(out / "base-model", ticket_texts, say, size)

    say("\n[bold]3. recommend[/]")
    answers = load_model_file(Answers, asset("answers.yaml"), "demo answers")
    answers = answers.model_copy(update={"model_path": str(base), "dataset": str(train_path)})
    signals = audit_file(train_path).signals
    rec = recommend(answers, signals)
    from advisor.cli.recommend_cmd import render as render_rec

    render_rec(rec, con=console)
    write_model(out / "answers.yaml", answers, header="tunewise demo answers")
    if rec.method not in DEMO_TRAINING:
        say(f"[red]the recommendation is {rec.method}: the demo stops here[/]")
        return {"method": rec.method}

    say("\n[bold]4. training config[/]")
    cfg = build_config(rec, answers, str(train_path), str(base), str(out / "run"))
    demo = DEMO_TRAINING[rec.method]
    cfg = cfg.model_copy(update={
        "data": cfg.data.model_copy(update={"max_seq_len": 160, "val_size": 0.1}),
        "training": cfg.training.model_copy(update={**demo, "epochs": 2 if quick else demo["epochs"],
                                                    "early_stopping_patience": None, "logging_steps": 5,
                                                    "save_total_limit": 1})})
    write_model(out / "train.yaml", cfg, header="written by tunewise demo: the recommended method, with a learning "
                "rate and epochs raised for a tiny model")
    say(f"wrote {out / 'train.yaml'} ({rec.method}; learning rate {demo['learning_rate']:g} and "
        f"{cfg.training.epochs:g} epochs, raised from the defaults because the base model is tiny)")
    import shutil

    shutil.rmtree(out / "run", ignore_errors=True)  # a fresh run each time the demo runs

    say("\n[bold]5. train[/]")
    result = fit(str(out / "train.yaml"), cfg=cfg, console=console, progress=progress)
    summary = result["summary"]
    from advisor.cli.train_cmd import render_summary

    render_summary(summary, con=console)

    say("\n[bold]6. evaluate[/] base vs tuned on held-out records")
    from transformers import AutoModelForCausalLM

    tok = result["tokenizer"]
    base_model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, use_safetensors=True)
    before = evaluate(base_model, tok, test_path, general, max_new_tokens=8 if quick else 24)
    after = evaluate(result["trainer"].model, tok, test_path, general, max_new_tokens=8 if quick else 24)
    report_out = {"method": rec.method, "base": before, "tuned": after, "training": summary,
                  "wall_time_s": round(time.time() - t0, 1),
                  "files": {"audit_report": str(out / "audit" / "index.html"), "clean_train_data": str(train_path),
                            "held_out_test_data": str(test_path), "answers": str(out / "answers.yaml"),
                            "train_config": str(out / "train.yaml"), "base_model": str(base),
                            "tuned_output": str(out / "run"), "loss_plot": str(out / "run" / "loss.png"),
                            "summary": str(out / "demo_summary.json")}}
    atomic_write(out / "demo_summary.json", json.dumps(report_out, indent=2) + "\n")
    return report_out
