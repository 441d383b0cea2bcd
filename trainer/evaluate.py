"""`tunewise eval RUN_DIR`: did the fine-tune work, and what did it cost? The base model and the run's output
(adapter or full model) on the same held-out records: loss on the answers, a task metric (trainer/metrics.py) on
greedy answers generated with the model's own template, and the forgetting check (loss on general text)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError
from core.eval_report import EvalReport, Example, Scores
from core.files import atomic_write
from core.train_config import TrainConfig
from trainer.checkpoints import RESOLVED
from trainer.config_file import load_config
from trainer.quiet import quiet_libraries
from trainer.replies import answer_text, default_new_tokens, load_schema, split_reply  # noqa: F401 - named here as before

FORGETTING_SHARE = 0.05  # general-text loss up by more than this share: the tuned model forgot general text
EXAMPLES_SHOWN = 5


class AnswerProgress:
    """A progress bar over the answers generated (base, then tuned), on the given rich console."""

    def __init__(self, console, enabled: bool = True) -> None:
        self.console = console.real() if hasattr(console, "real") else console  # the CLI's lazily created console
        self.enabled = enabled and console is not None
        self.bar = None
        self.task = None

    def start(self, total: int) -> None:
        if not self.enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("eval: generating answers"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=self.console, transient=True)
        self.bar.start()
        self.task = self.bar.add_task("eval", total=total)

    def tick(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


@dataclass
class TestSet:
    source: str
    records: list[int]
    prompts: list[list[dict]]  # the conversation before the last assistant reply
    expected: list[str]  # the last reply (its answer, without leading reasoning)
    encoded: list  # trainer.data.Encoded of the whole conversation, for the answer loss


@dataclass
class ModelRun:
    answer_loss: float | None
    outputs: list[str]
    general_loss: float | None


def open_run(run_dir: str | Path) -> tuple[TrainConfig, str]:
    """(the run's resolved config, "adapter" or "full"); exit 2 when the folder holds neither."""
    out = Path(run_dir)
    if not out.is_dir():
        raise UserError(f"`{out}` is not a folder: give the output.dir of a tunewise run")
    if not (out / RESOLVED).is_file():
        raise UserError(f"`{out}` is not a tunewise run (no {RESOLVED}): give the output.dir of a run")
    cfg = load_config(str(out / RESOLVED))
    from trainer.model import check_run_base

    check_run_base(out, cfg)
    if (out / "adapter_config.json").is_file():
        return cfg, "adapter"
    if (out / "config.json").is_file() and any(out.glob("*.safetensors")):
        return cfg, "full"
    raise UserError(f"`{out}` holds no adapter or model yet: the run has not finished (continue it with "
                    "`tunewise train CONFIG --resume`)")


def test_set(cfg: TrainConfig, tok, data: str | None, limit: int) -> TestSet:
    """The records to evaluate: `data`, or the run's own held-out split (the same seed and share as training)."""
    from trainer.data import load_conversations, prepare_for
    from trainer.encoding import Encoder

    held_out: dict = {}
    if data is not None:
        if not Path(data).is_file():
            raise UserError(f"--data `{data}` does not exist")
        from core.data.layout import DataLayout

        same_columns = DataLayout(columns=cfg.data.columns, tags=cfg.data.tags)  # a test file laid out as training's
        convs, fmt, _skipped, _total = load_conversations(data, "auto", cfg.data.system_prompt, same_columns)
        source = data
    else:
        d = cfg.data
        prepared = prepare_for(cfg, tok, drop_untrainable=True)
        held_out = {e.record: e for e in prepared.val}  # already encoded as training encoded them
        if not held_out:
            raise UserError("the run kept no held-out records (data.val_size 0): pass --data TEST")
        convs, fmt, _skipped, _total = load_conversations(d.path, d.format, d.system_prompt, d.layout(),
                                                          d.columns_origin)
        convs = [c for c in convs if c[0] in held_out]
        source = f"{d.path} (the run's held-out split)"
    if fmt == "text":
        raise UserError(f"{source}: plain text has no answers to compare; give conversations or instruction data")
    convs = convs[:limit]
    if not convs:
        raise UserError(f"{source}: no records with an assistant answer to evaluate")
    return _split_answers(convs, Encoder(tok, cfg.data.max_seq_len, cfg.data.assistant_only_loss, cfg.model.path,
                                         cfg.data.reasoning), fmt, source, held_out)


def _split_answers(convs, enc, fmt: str, source: str, encoded: dict) -> TestSet:
    """Prompts, expected answers and encodings (`encoded`: the records the run already encoded)."""
    ts = TestSet(source, [], [], [], [])
    for index, msgs in convs:
        prompt, expected = split_reply(msgs)
        ts.records.append(index)
        ts.prompts.append(prompt)
        ts.expected.append(expected)
        ts.encoded.append(encoded[index] if index in encoded else enc.encode(index, msgs, fmt)[0])
    return ts


def general_texts(path: str | None, limit: int = 200) -> tuple[list[str], str]:
    if path is None:
        from trainer.tiny import general_corpus

        return general_corpus()[:limit], "tunewise's general-text sample"
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--general `{path}` does not exist")
    try:
        lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except UnicodeDecodeError:
        raise UserError(f"--general `{path}` is not UTF-8 text") from None
    if not lines:
        raise UserError(f"--general `{path}` is empty")
    return lines[:limit], str(p)


def answer_loss(model, tok, ts: TestSet) -> float | None:
    """Cross-entropy per answer token, over all records (token-weighted)."""
    import torch

    from trainer.data import Collator

    collate = Collator(tok.pad_token_id)
    total, tokens = 0.0, 0
    with torch.no_grad():
        for e in ts.encoded:
            n = sum(lab != -100 for lab in e.labels[1:])
            if not n:
                continue
            batch = collate([{"input_ids": e.input_ids, "labels": e.labels}])
            batch = {k: v.to(model.device) for k, v in batch.items()}
            total += float(model(**batch).loss) * n
            tokens += n
    return round(total / tokens, 4) if tokens else None


def general_loss(model, tok, texts: list[str]) -> float | None:
    import torch

    total, tokens = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = tok(text + tok.eos_token, add_special_tokens=False)["input_ids"][:512]
            if len(ids) < 2:
                continue
            t = torch.tensor([ids], device=model.device)
            total += float(model(input_ids=t, labels=t).loss) * (len(ids) - 1)
            tokens += len(ids) - 1
    return round(total / tokens, 4) if tokens else None


def generate(model, tok, ts: TestSet, stop_ids: list[int], max_new_tokens: int, tick=None) -> list[str]:
    """Greedy answers, each prompt rendered with the model's template and its generation prompt."""
    import torch

    from trainer.spans import split_tools

    outputs = []
    with torch.no_grad():
        for msgs in ts.prompts:
            plain, tools = split_tools(msgs)
            prompt = tok.apply_chat_template(plain, tokenize=False, add_generation_prompt=True, tools=tools)
            ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]], device=model.device)
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=stop_ids, pad_token_id=tok.pad_token_id)
            outputs.append(answer_text(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)))
            if tick:
                tick()
    return outputs


def run_model(model, tok, ts: TestSet, general: list[str], stop_ids: list[int], max_new_tokens: int,
              tick=None) -> ModelRun:
    model.eval()
    return ModelRun(answer_loss(model, tok, ts), generate(model, tok, ts, stop_ids, max_new_tokens, tick),
                    general_loss(model, tok, general))


def evaluate_run(run_dir: str, *, data: str | None = None, general: str | None = None, metric: str | None = None,
                 schema_path: str | None = None, limit: int = 100, max_new_tokens: int | None = None,
                 progress=None, write: bool = True, prompting: bool = True,
                 probe_path: str | None = None) -> EvalReport:
    """Base vs tuned on the same records; writes eval.json and eval.png into the run folder. `prompting`: also the
    base model with the best prompting baseline (the probe's best prompt from `probe_path`, else few-shot)."""
    from trainer.metrics import choose_metric

    t0 = time.time()
    cfg, kind = open_run(run_dir)
    schema = load_schema(schema_path)
    quiet_libraries()
    from trainer.model import open_tokenizer

    tok = open_tokenizer(run_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    ts = test_set(cfg, tok, data, limit)
    choice = choose_metric(ts.expected, metric)
    if schema is not None and choice.name != "json":
        raise UserError(f"--schema applies to JSON answers, but the metric is {choice.name} ({choice.why})")
    texts, general_name = general_texts(general)
    budget = max_new_tokens or default_new_tokens(tok, ts.expected)
    baseline = None
    if prompting:
        from core.probe_report import load_probe

        baseline = Baseline(choice.name, set(ts.records) if data is None else set(),
                            load_probe(probe_path) if probe_path else None)
    base_run, tuned_run = score_both(cfg, kind, run_dir, tok, ts, texts, budget, progress, baseline)
    report = build_report(cfg, run_dir, ts, choice, schema, general_name, base_run, tuned_run, time.time() - t0)
    if baseline is not None and baseline.outputs is not None:
        add_prompting(report, baseline, ts, choice.name, schema)
    if write:
        from trainer.plots import plot_eval

        name = report_name(data)
        png = plot_eval(report, Path(run_dir) / f"{name}.png")
        report.plot = str(png) if png else None
        report.report = str(Path(run_dir) / f"{name}.json")
        atomic_write(report.report, report.model_dump_json(indent=2) + "\n")
    return report


def report_name(data: str | None) -> str:
    """`eval` for the run's own held-out split (what training's evaluation writes too); `eval-STEM` for other
    test data, so an evaluation on other records lands beside the first instead of over it."""
    if data is None:
        return "eval"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(data).name.split(".")[0]).strip("._") or "data"
    return f"eval-{stem}"


@dataclass
class Baseline:
    """The prompting baseline eval also scores: the metric, the records evaluated that came from the training file
    (never used as examples), a probe result whose best prompt to use, and what it produced."""
    metric: str
    held_out: set[int]
    probe: object | None = None
    outputs: list[str] | None = None
    prompt: str | None = None


def add_prompting(report: EvalReport, baseline: Baseline, ts: TestSet, metric: str, schema) -> None:
    from trainer.metrics import aggregate

    scores = Scores(answer_loss=None, metrics=aggregate(metric, baseline.outputs, ts.expected, schema),
                    general_loss=None)
    report.prompting = scores
    report.prompting_prompt = baseline.prompt
    report.diff_prompting = {k: round(report.tuned.metrics[k] - v, 4) for k, v in scores.metrics.items()}


def score_both(cfg: TrainConfig, kind: str, run_dir: str, tok, ts: TestSet, texts: list[str], budget: int,
               progress=None, baseline: Baseline | None = None) -> tuple[ModelRun, ModelRun]:
    """The base model first (and, with `baseline`, the base model prompted with worked examples), then the run's
    output (the adapter loaded onto that same base, or the full model)."""
    from core.methods import method
    from trainer.model import device_kind, load_base, resolve_precision, trust_remote_code_for
    from trainer.preflight import eos_ids

    stop_ids = sorted(eos_ids(tok, cfg.model.path))
    tick = progress.tick if progress else None
    if progress:
        progress.start((3 if baseline is not None else 2) * len(ts.prompts))
    device = device_kind()
    plan = resolve_precision(cfg, device)  # the run's dtype (a 4-bit base is placed on the GPU by its loader)
    movable = not method(cfg.method.name).quantized_base
    base = load_base(cfg, tok, plan)
    if movable:
        base.to(device)
    base_run = run_model(base, tok, ts, texts, stop_ids, budget, tick)
    if baseline is not None:
        from trainer.probe import prompting_baseline

        d = cfg.data
        baseline.outputs, baseline.prompt = prompting_baseline(
            base, tok, ts.prompts, ts.records, ts.expected, baseline.metric, (d.path, d.format, d.system_prompt),
            baseline.held_out, stop_ids, budget, baseline.probe, tick)
    if kind == "adapter":
        from peft import PeftModel

        tuned = PeftModel.from_pretrained(base, run_dir, local_files_only=True)
    else:
        from transformers import AutoModelForCausalLM

        del base
        tuned = AutoModelForCausalLM.from_pretrained(run_dir, local_files_only=True, use_safetensors=True,
                                                     dtype=plan.load_dtype,
                                                     trust_remote_code=trust_remote_code_for(
                                                         run_dir, cfg.model.trust_remote_code)).to(device)
    return base_run, run_model(tuned, tok, ts, texts, stop_ids, budget, tick)


def build_report(cfg: TrainConfig, run_dir: str, ts: TestSet, choice, schema, general_name: str, base: ModelRun,
                 tuned: ModelRun, wall: float) -> EvalReport:
    from trainer.metrics import aggregate, record_score

    def scores(r: ModelRun) -> Scores:
        return Scores(answer_loss=r.answer_loss, metrics=aggregate(choice.name, r.outputs, ts.expected, schema),
                      general_loss=r.general_loss)

    b, t = scores(base), scores(tuned)
    diff = {k: round(t.metrics[k] - b.metrics[k], 4) for k in b.metrics}
    for k in ("answer_loss", "general_loss"):
        if getattr(b, k) is not None and getattr(t, k) is not None:
            diff[k] = round(getattr(t, k) - getattr(b, k), 4)
    examples = [Example(record=ts.records[i], prompt=_last_user(ts.prompts[i]), expected=ts.expected[i],
                        base=base.outputs[i], tuned=tuned.outputs[i],
                        base_score=round(record_score(choice.name, base.outputs[i], ts.expected[i], schema), 4),
                        tuned_score=round(record_score(choice.name, tuned.outputs[i], ts.expected[i], schema), 4))
                for i in range(len(ts.records))]
    ranked = sorted(examples, key=lambda e: (e.tuned_score - e.base_score, e.record))
    forgot = bool(b.general_loss and t.general_loss and t.general_loss > b.general_loss * (1 + FORGETTING_SHARE))
    return EvalReport(run_dir=str(run_dir), method=cfg.method.name, base_model=cfg.model.path, data=ts.source,
                      records=len(ts.records), metric=choice.name, metric_why=choice.why, general_text=general_name,
                      base=b, tuned=t, diff=diff, forgetting=forgot,
                      regressions=[e for e in ranked if e.tuned_score < e.base_score][:EXAMPLES_SHOWN],
                      wins=[e for e in reversed(ranked) if e.tuned_score > e.base_score][:EXAMPLES_SHOWN],
                      wall_time_s=round(wall, 1))


def _last_user(msgs: list[dict]) -> str:
    return next((m["content"] for m in reversed(msgs) if m["role"] == "user"), "")


def after_training(cfg: TrainConfig, out: Path, console=None, progress: bool = True) -> EvalReport | None:
    """`eval.enabled`: the run's result against its base on the held-out split, as `tunewise eval` would (the
    report is written to eval.json); None when the run kept no held-out records."""
    e = cfg.eval
    if not e.enabled or cfg.data.val_size == 0:
        return None
    bar = AnswerProgress(console, enabled=progress)
    try:
        return evaluate_run(str(out), metric=e.metric, schema_path=e.json_schema, general=e.general_text,
                            limit=e.max_records, max_new_tokens=e.max_new_tokens, progress=bar)
    finally:
        bar.stop()
