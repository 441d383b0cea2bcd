"""`tunewise probe DATA --model PATH`: does prompting already work on the user's own records? On a held-out sample
(the split `tunewise train` holds out: same seed and share), the base model answers zero-shot (the data's own
system prompt, if any), few-shot (k worked examples from the training side, k chosen to fit the context) and with
the instruction reworded a few ways; each is scored with the metric `tunewise eval` would choose
(trainer/metrics.py) and a 95% confidence interval, and the numbers set `prompting` by the rules of
rules/probe_prompting.yaml (core/probe_report.py). torch is imported only here, lazily."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UserError
from core.probe_report import (
    Interval,
    ProbeReport,
    Sample,
    Variant,
    classify,
    instruction_variants,
    probe_facts,
    summary_line,
)
from trainer.probe_plan import DEFAULT_LIMIT, DEFAULT_SHOTS, REWORDINGS, Rewording

SAMPLES_SHOWN = 3
POOL_MIN = 20  # records always left on the training side to take examples from


@dataclass
class Case:
    record: int
    prompt: list[dict]  # the conversation before the last reply, without the system message
    expected: str
    instruction: str | None  # the record's own system message


@dataclass
class Plan:
    """One prompt: how the messages of each case are put together."""
    name: str
    kind: str
    rewording: Rewording | None = None  # None: the record's own instruction as it is
    shots: list[tuple[str, str]] = field(default_factory=list)  # (request, answer) pairs

    def instruction(self, original: str | None) -> str | None:
        return self.rewording.instruction(original) if self.rewording else original


@dataclass
class ProbeOptions:
    test: str | None = None
    limit: int = DEFAULT_LIMIT
    max_new_tokens: int | None = None
    shots: int = DEFAULT_SHOTS
    rewordings: int = len(REWORDINGS)
    metric: str | None = None
    schema_path: str | None = None
    batch_size: int | None = None
    seed: int = 42
    val_size: float = 0.1
    chat_template: str | None = None
    trust_remote_code: bool = False


# ---- 1. the records: held-out cases and the training side --------------------------------------------------------

def _split(convs: list, opts: ProbeOptions) -> tuple[list, list, str]:
    """(training side, held-out, in words): the usable records shuffled as `tunewise train` shuffles them
    (trainer/data_cache.py), its held-out records first; when they are fewer than --limit, more of the shuffled
    records are scored too (the probe trains nothing), always leaving POOL_MIN records for the examples."""
    from trainer.data_cache import _val_count

    order = list(range(len(convs)))
    random.Random(opts.seed).shuffle(order)
    n_val = _val_count(opts.val_size, len(convs))
    pool_min = max(POOL_MIN, 4 * opts.shots)
    n_test = min(opts.limit, max(n_val, len(convs) - pool_min))
    how = (f"the {n_test} records `tunewise train` holds out (seed {opts.seed})" if n_test <= n_val else
           f"{n_test} records shuffled with seed {opts.seed}: the {n_val} that `tunewise train` holds out, then "
           f"{n_test - n_val} more")
    return [convs[i] for i in order[n_test:]], [convs[i] for i in order[:n_test]], how


def _case(index: int, msgs: list[dict]) -> Case | None:
    from trainer.replies import split_reply

    prompt, expected = split_reply(msgs)
    system = next((m["content"] for m in prompt if m["role"] == "system"), None)
    rest = [m for m in prompt if m["role"] != "system"]
    if not expected or not any(m["role"] == "user" for m in rest):
        return None
    return Case(index, rest, expected, system)


def load_cases(data: str, opts: ProbeOptions) -> tuple[list[Case], list[Case], str]:
    """(held-out cases, training-side cases, where the held-out ones came from)."""
    from trainer.data import load_conversations

    convs, fmt, _skipped, _total = load_conversations(data, "auto")
    if fmt == "text":
        raise UserError(f"{data}: plain text has no answers to compare; give conversations or instruction data")
    if opts.test:
        test_convs, _f, _s, _t = load_conversations(opts.test, "auto")
        train_side, held, source = convs, test_convs, opts.test
    else:
        train_side, held, how = _split(convs, opts)
        source = f"{data} ({how})"
    cases = [c for c in (_case(i, m) for i, m in held) if c is not None][:opts.limit]
    pool = [c for c in (_case(i, m) for i, m in train_side) if c is not None]
    if not cases:
        raise UserError(f"{source}: no held-out records with a user request and an answer to probe")
    return cases, pool, source


# ---- 2. the prompts ----------------------------------------------------------------------------------------------

def common_instruction(cases: list[Case]) -> str | None:
    """The data's own system prompt: the one most records carry (None when most carry none)."""
    counts = Counter(c.instruction for c in cases)
    return counts.most_common(1)[0][0] if counts else None


def messages(plan: Plan, case: Case) -> list[dict]:
    """The conversation sent for `case`: instruction, worked examples, then the request."""
    instruction = plan.instruction(case.instruction)
    turns = [m for q, a in plan.shots for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]
    turns += [dict(m) for m in case.prompt]
    if instruction and plan.rewording and plan.rewording.in_user_turn:
        first = next(i for i, m in enumerate(turns) if m["role"] == "user")
        turns[first] = {**turns[first], "content": f"{instruction}\n\n{turns[first]['content']}"}
    elif instruction:
        turns.insert(0, {"role": "system", "content": instruction})
    return turns


def render(tok, msgs: list[dict]) -> str:
    """The prompt in the model's own template, ending in its generation prompt (a template without a system role
    gets the instruction at the start of the first user turn, as trainer/data.merge_system does for training)."""
    from jinja2.exceptions import TemplateError

    from trainer.spans import split_tools

    plain, tools = split_tools(msgs)
    try:
        return tok.apply_chat_template(plain, tokenize=False, add_generation_prompt=True, tools=tools)
    except TemplateError:
        if not any(m["role"] == "system" for m in plain):
            raise
        from trainer.encoding import merge_system

        plain, tools = split_tools(merge_system(msgs))
        return tok.apply_chat_template(plain, tokenize=False, add_generation_prompt=True, tools=tools)


def context_length(model_cfg, tok) -> int:
    cfg = getattr(model_cfg, "text_config", None) or model_cfg
    n = getattr(cfg, "max_position_embeddings", None) or 2048
    limit = getattr(tok, "model_max_length", None)
    return min(n, limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else n


def pick_examples(pool: list[Case], metric: str, seed: int) -> list[Case]:
    """The training-side records in the order examples are taken: shuffled by the seed, single-request records
    first, and for labels one of each label in turn (the examples should show the answers' variety)."""
    from trainer.metrics import as_label

    order = list(pool)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda c: len(c.prompt) != 1)  # one user turn: a clean request → answer example
    if metric != "classification":
        return order
    by_label: dict[str, list[Case]] = {}
    for c in order:
        by_label.setdefault(as_label(c.expected), []).append(c)
    out, queues = [], list(by_label.values())
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def choose_shots(tok, pool: list[Case], cases: list[Case], metric: str, opts: ProbeOptions, context: int,
                 budget: int) -> tuple[list[Case], str]:
    """k worked examples: as many as asked (opts.shots) that fit the context with the longest request and its
    answer budget."""
    if opts.shots == 0:
        return [], "no examples asked (--shots 0)"
    if not pool:
        return [], "no training-side records to take examples from"
    longest = max(len(tok(render(tok, messages(Plan("x", "zero_shot"), c)), add_special_tokens=False)
                      ["input_ids"]) for c in cases)
    room = context - budget - longest
    chosen, used, too_long = [], 0, 0
    for c in pick_examples(pool, metric, opts.seed):
        if len(chosen) == opts.shots:
            break
        cost = len(tok(c.prompt[-1]["content"] + c.expected, add_special_tokens=False)["input_ids"]) + 16
        if used + cost > room:
            too_long += 1
            continue  # a shorter example may still fit
        chosen.append(c)
        used += cost
    if len(chosen) == opts.shots:
        why = f"{len(chosen)}, as asked (--shots); they take about {used:,} of the {context:,}-token context"
    elif not too_long:
        why = f"{len(chosen)}: all the training-side records there are"
    else:
        why = (f"{len(chosen)}: the {context:,}-token context holds no more beside the longest request "
               f"({longest:,} tokens) and {budget} answer tokens")
    return chosen, why


def plans(shots: list[Case], rewordings: int) -> list[Plan]:
    pairs = [(c.prompt[-1]["content"], c.expected) for c in shots]
    return [Plan("zero-shot", "zero_shot"), Plan("few-shot", "few_shot", shots=pairs),
            *(Plan(r.name, "reworded", r, shots=pairs) for r in REWORDINGS[:rewordings])]


# ---- 3. generation -----------------------------------------------------------------------------------------------

class Progress:
    """A progress bar over the answers generated, on the given rich console (None: no bar)."""

    def __init__(self, console=None) -> None:
        self.console = console
        self.bar = None
        self.task = None

    def start(self, total: int) -> None:
        if self.console is None:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("probe: {task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=self.console, transient=True)
        self.bar.start()
        self.task = self.bar.add_task("generating", total=total)

    def step(self, name: str, n: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=n, description=name)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def generate_batched(model, tok, prompts: list[str], stop_ids: list[int], max_new_tokens: int, batch_size: int,
                     on_batch: Callable[[int], None] | None = None) -> list[str]:
    """Greedy answers, `batch_size` prompts at a time (left-padded, similar lengths together)."""
    import torch

    from trainer.replies import answer_text

    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    outputs: list[str] = [""] * len(ids)
    pad = tok.pad_token_id if tok.pad_token_id is not None else stop_ids[0]
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            width = max(len(ids[i]) for i in batch)
            rows = [[pad] * (width - len(ids[i])) + ids[i] for i in batch]
            mask = [[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i in batch]
            x = torch.tensor(rows, device=model.device)
            out = model.generate(input_ids=x, attention_mask=torch.tensor(mask, device=model.device),
                                 max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop_ids,
                                 pad_token_id=pad)
            for row, i in enumerate(batch):
                outputs[i] = answer_text(tok.decode(out[row, width:], skip_special_tokens=True))
            if on_batch:
                on_batch(len(batch))
    return outputs


# ---- 4. scoring --------------------------------------------------------------------------------------------------

def score_variant(plan: Plan, cases: list[Case], outputs: list[str], metric: str, schema) -> Variant:
    from trainer.metrics import HEADLINE, aggregate, confidence_interval, record_values

    expected = [c.expected for c in cases]
    key = HEADLINE[metric]
    values = record_values(metric, outputs, expected, schema)[key]
    low, high, how = confidence_interval(key, values)
    samples = [Sample(record=c.record, prompt=c.prompt[-1]["content"], expected=c.expected, output=o,
                      score=round(v, 4)) for c, o, v in list(zip(cases, outputs, values, strict=True))[:SAMPLES_SHOWN]]
    return Variant(name=plan.name, kind=plan.kind, instruction=plan.instruction(common_instruction(cases)),
                   instruction_in_user_turn=bool(plan.rewording and plan.rewording.in_user_turn),
                   shots=len(plan.shots), score=round(sum(values) / len(values), 4),
                   interval=Interval(low=low, high=high, method=how), metrics=aggregate(metric, outputs, expected,
                                                                                          schema), samples=samples)


# ---- 5. the whole probe ------------------------------------------------------------------------------------------

def check_model_path(path: str) -> None:
    """A bad model path is the user's input: exit 2 with what to give instead."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"--model `{path}` does not exist: give a local model folder (config.json, *.safetensors, "
                        "tokenizer files); tunewise never downloads models")
    if not p.is_dir():
        raise UserError(f"--model `{path}` is a file, not a model folder (config.json, *.safetensors, tokenizer)")
    from trainer.model import check_model_folder

    check_model_folder(str(p))


def load(model_path: str, opts: ProbeOptions):
    """(model, tokenizer, device) from a local folder: never downloads, safetensors only."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.model import device_kind, read_chat_template

    device = device_kind()
    tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True, trust_remote_code=opts.trust_remote_code)
    if opts.chat_template:
        tok.chat_template = read_chat_template(opts.chat_template)
    if not tok.chat_template:
        raise UserError(f"the tokenizer in `{model_path}` has no chat template: pass --chat-template (inline Jinja "
                        "or a .jinja file) with the template the model was trained with")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True, use_safetensors=True, dtype=dtype,
                                                 trust_remote_code=opts.trust_remote_code).to(device)
    model.eval()
    return model, tok, device


def run_probe(data: str, model_path: str, opts: ProbeOptions | None = None, *, say: Callable[[str], None] = print,
              progress: Progress | None = None) -> ProbeReport:
    from trainer.metrics import HEADLINE, choose_metric
    from trainer.preflight import eos_ids
    from trainer.quiet import quiet_libraries
    from trainer.replies import default_new_tokens, load_schema

    opts = opts or ProbeOptions()
    t0 = time.time()
    if not Path(data).is_file():
        raise UserError(f"DATA `{data}` does not exist (or is not a file)")
    if opts.test and not Path(opts.test).is_file():
        raise UserError(f"--test `{opts.test}` does not exist (or is not a file)")
    check_model_path(model_path)
    schema = load_schema(opts.schema_path)
    cases, pool, source = load_cases(data, opts)
    choice = choose_metric([c.expected for c in cases], opts.metric)
    if schema is not None and choice.name != "json":
        raise UserError(f"--schema applies to JSON answers, but the metric is {choice.name} ({choice.why})")
    quiet_libraries()
    model, tok, device = load(model_path, opts)
    tok.padding_side = "left"
    budget = opts.max_new_tokens or default_new_tokens(tok, [c.expected for c in cases])
    shots, shots_why = choose_shots(tok, pool, cases, choice.name, opts, context_length(model.config, tok), budget)
    prompts = plans(shots, opts.rewordings)
    stop_ids = sorted(eos_ids(tok, model_path))
    batch = opts.batch_size or (32 if device == "cuda" else 16)
    total = len(prompts) * len(cases)
    say(f"probe: {len(cases)} held-out records × {len(prompts)} prompts = {total} answers of up to {budget} tokens "
        f"on {device} (batches of {batch}); metric {choice.name} ({choice.why})")
    variants, gen_time = [], 0.0
    bar = progress or Progress(None)
    bar.start(total)
    try:
        for i, plan in enumerate(prompts):
            texts = [render(tok, messages(plan, c)) for c in cases]
            t = time.time()
            outputs = generate_batched(model, tok, texts, stop_ids, budget, batch,
                                       lambda n, name=plan.name: bar.step(name, n))
            gen_time += time.time() - t
            if i == 0 and len(prompts) > 1:
                say(f"probe: about {gen_time * (len(prompts) - 1) * 1.5:.0f} s more for the other prompts "
                    f"(zero-shot took {gen_time:.1f} s; examples make the others longer)")
            variants.append(score_variant(plan, cases, outputs, choice.name, schema))
    finally:
        bar.stop()
    best = max(variants, key=lambda v: v.score)
    facts = probe_facts(choice.name, variants, best.name, len(cases))
    rule, why = classify(facts)
    return ProbeReport(
        data=str(data), test=source, model=str(model_path), device=device, records=len(cases),
        test_records=[c.record for c in cases], metric=choice.name, metric_why=choice.why,
        headline=HEADLINE[choice.name], shots=len(shots), shots_why=shots_why,
        shot_records=[c.record for c in shots], max_new_tokens=budget, variants=variants, best=best.name,
        spread=facts["spread"], spread_low=facts["spread_low"], spread_high=facts["spread_high"],
        spread_beyond_noise=facts["spread_beyond_noise"], prompting=rule.sets, rule=rule.id,
        rule_source=rule.source, why=why,
        summary=summary_line(HEADLINE[choice.name], best, facts, instruction_variants(variants), rule.sets),
        generations=total, generation_time_s=round(gen_time, 1), wall_time_s=round(time.time() - t0, 1))


# ---- 6. the prompting baseline of `tunewise eval` ----------------------------------------------------------------

def baseline_plan(probe, shots: int = DEFAULT_SHOTS) -> tuple[str | None, int]:
    """(the rewording's name or None, k) of the prompt eval compares against: the probe's best prompt when a
    probe result is given, else few-shot with the data's own instruction."""
    if probe is None:
        return None, shots
    best = probe.variant(probe.best)
    return (best.name if best.kind == "reworded" else None), best.shots


def prompting_baseline(model, tok, prompts: list[list[dict]], records: list[int], expected: list[str], metric: str,
                       train_data: tuple[str, str, str | None], held_out: set[int], stop_ids: list[int], budget: int,
                       probe=None, tick=None) -> tuple[list[str], str]:
    """The base model's answers with the best prompting baseline on eval's own records: k worked examples from
    the run's training side (none of the evaluated records) and the probe's best instruction wording."""
    from trainer.data import load_conversations

    path, fmt, system_prompt = train_data
    convs, _f, _s, _t = load_conversations(path, fmt, system_prompt)
    pool = [c for c in (_case(i, m) for i, m in convs if i not in held_out) if c is not None]
    cases = []
    for r, p, e in zip(records, prompts, expected, strict=True):
        system = next((m["content"] for m in p if m["role"] == "system"), None)
        cases.append(Case(r, [m for m in p if m["role"] != "system"], e, system))
    wording, k = baseline_plan(probe)
    opts = ProbeOptions(shots=k)
    shots, _why = choose_shots(tok, pool, cases, metric, opts, context_length(model.config, tok), budget)
    rewording = next((r for r in REWORDINGS if r.name == wording), None)
    pairs = [(c.prompt[-1]["content"], c.expected) for c in shots]
    plan = Plan(wording or ("few-shot" if pairs else "zero-shot"), "reworded" if rewording else "few_shot",
                rewording, pairs)
    texts = [render(tok, messages(plan, c)) for c in cases]
    outputs = generate_batched(model, tok, texts, stop_ids, budget, 32 if str(model.device).startswith("cuda") else 16,
                               (lambda n: [tick() for _ in range(n)]) if tick else None)
    source = "the probe's best prompt" if probe is not None else "few-shot with the data's own instruction"
    return outputs, f"{plan.name} (k={len(pairs)}), {source}"
