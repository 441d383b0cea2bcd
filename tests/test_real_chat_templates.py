"""Assistant-only loss over 70 real chat templates that trl does not ship (tests/data/chat_templates/, vendored
from llama-cpp-python's copy of llama.cpp's models/templates; SOURCES.md there), in five shapes: one turn,
several turns with and without a system prompt, a tool-call conversation and a reasoning answer. The trained
text of each is pinned exactly (expected.json); no shape crashes, and a refusal names the record and the reason."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

DIR = Path(__file__).parent / "data" / "chat_templates"
EXPECTED = json.loads((DIR / "expected.json").read_text(encoding="utf-8"))
# the tokens a template writes as markers: made special tokens of the test tokenizer, as a model's are
SPECIAL = re.compile(r"<[A-Z][A-Z_0-9]{2,20}>|\[e~\[|\]~b\]|\]~!b\[|<seed:[a-z_]+>|<\|[^|<>{}\s']{1,40}\|>|"
                     r"<｜[^｜]{1,40}｜>|<[a-z_]{2,20}>|<\|?[a-z_]+\|?>|\[/?[A-Z_]{2,20}\]|<[a-z_:]+\|>|<\|[a-z_]+>|"
                     r"</?[a-z_:]+>")
# the model's EOS: the first of these the template writes
EOS = ["<|im_end|>", "<|eot_id|>", "<｜end▁of▁sentence｜>", "<|END_OF_TURN_TOKEN|>", "<end_of_turn>", "<turn|>",
       "<|end|>", "<|return|>", "</s>", "<|endoftext|>", "<|end_of_text|>", "<|eot|>", "<eos>"]
# models whose EOS is their own turn-closing marker (from their tokenizer configs)
OWN_EOS = {"<|assistant_end|>": "<|assistant_end|>", "</assistant>": "</assistant>", "<seed:eos>": "<seed:eos>",
           "<end_of_sentence>": "<end_of_sentence>", "[e~[": "[e~[", "<SPECIAL_12>": "<SPECIAL_12>",
           "hy_eos:opensource": "<｜hy_eos:opensource｜>", "<|role_end|>": "<|role_end|>",
           "<|end_of_msg|>": "<|end_of_msg|>"}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
SHAPES = {
    "single": {"messages": [{"role": "user", "content": "Hi there"},
                            {"role": "assistant", "content": "Hello! How can I help?"}]},
    "multi": {"messages": [{"role": "user", "content": "Hi there"},
                           {"role": "assistant", "content": "Hello! How can I help?"},
                           {"role": "user", "content": "Add 2 and 3"}, {"role": "assistant", "content": "It is 5."}]},
    "multi_system": {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
                                  {"role": "assistant", "content": "Hello! How can I help?"},
                                  {"role": "user", "content": "Add 2 and 3"},
                                  {"role": "assistant", "content": "It is 5."}]},
    "tool": {"tools": TOOLS, "messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "a1b2c3d4e", "type": "function", "function": {
            "name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "a1b2c3d4e", "name": "get_weather", "content": "4 degrees, rain"},
        {"role": "assistant", "content": "It is 4 degrees and raining in Oslo."}]},
    "reasoning": {"messages": [{"role": "user", "content": "Add 2 and 3"}, {"role": "assistant", "content": "It is 5.",
                                                                            "reasoning_content": "Two plus three makes five."}]},
}
TEMPLATES = sorted(p.stem for p in DIR.glob("*.jinja"))


@pytest.fixture(scope="module")
def base_tokenizer():
    from trainer.tiny import build_tokenizer, general_corpus

    return build_tokenizer(general_corpus()[:200], 600)


def template_tokenizer(base, src: str):
    tok = copy.deepcopy(base)
    eos = next((e for e in EOS if e in src), "</s>")
    eos = next((v for k, v in OWN_EOS.items() if k in src), eos)
    tok.add_special_tokens({"additional_special_tokens": sorted({t for t in SPECIAL.findall(src) if len(t) > 3}
                                                                | {eos})})
    tok.eos_token = eos
    if "bos_token" in src:
        tok.add_special_tokens({"bos_token": "<|begin_of_text|>" if "<|begin_of_text|>" in src else "<s>"})
    tok.chat_template = src
    return tok


def outcome(tok, shape: str, tmp_path) -> dict:
    from core.errors import UserError
    from trainer.data import load_conversations
    from trainer.encoding import Encoder, trained_runs

    path = tmp_path / f"{shape}.jsonl"
    path.write_text(json.dumps(SHAPES[shape]) + "\n", encoding="utf-8")
    (index, msgs), = load_conversations(path)[0]
    try:
        e, _ = Encoder(tok, 8192).encode(index, msgs, "openai")
    except UserError as err:
        return {"refused": str(err)}
    return {"trained": trained_runs(e, tok)}


def test_the_corpus_is_all_there():
    assert len(TEMPLATES) == 70 and sorted(EXPECTED) == TEMPLATES
    sources = (DIR / "SOURCES.md").read_text(encoding="utf-8")
    assert all(f"{t}.jinja" in sources for t in TEMPLATES)


@pytest.mark.parametrize("name", TEMPLATES)
def test_trained_text_on_real_templates(name, base_tokenizer, tmp_path):
    """Every shape: exactly the pinned trained text, or a refusal that names the record (never a crash)."""
    tok = template_tokenizer(base_tokenizer, (DIR / f"{name}.jinja").read_text(encoding="utf-8"))
    for shape in SHAPES:
        got, want = outcome(tok, shape, tmp_path), EXPECTED[name][shape]
        if "refused" in want:
            assert "refused" in got and got["refused"].startswith("record 0: ") and want["refused"] in got["refused"]
        else:
            assert got == want, (name, shape)
            replies = [m for m in SHAPES[shape]["messages"] if m["role"] == "assistant"]
            runs = got["trained"]
            assert len(runs) == len(replies)
            for m, run in zip(replies, runs, strict=True):  # the reply (or call) and nothing of the prompt
                assert (m["content"] or "get_weather") in run and m.get("reasoning_content", "") in run
                assert not any(x in run for x in ("Hi there", "Weather in Oslo?", "4 degrees, rain", "Add 2 and 3"))
                assert not run.endswith("\n") and (shape == "reasoning" or run.count(tok.eos_token) <= 1)


def test_counts():
    """What the corpus shows today: shapes trained exactly, and refusals where the template cannot render."""
    refused = sorted(f"{t}:{s}" for t, v in EXPECTED.items() for s, o in v.items() if "refused" in o)
    assert len(refused) == 11, refused


def test_a_template_that_drops_the_system_prompt_gets_it_in_the_first_user_turn(base_tokenizer, tmp_path):
    """Mistral-Nemo writes the system text only into a final user turn: a conversation that ends with a reply
    would lose it; it opens the first user turn instead, and is counted."""
    from trainer.data import load_conversations
    from trainer.encoding import Encoder

    tok = template_tokenizer(base_tokenizer, (DIR / "mistralai-Mistral-Nemo-Instruct-2407.jinja").read_text())
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(SHAPES["multi_system"]) + "\n")
    (index, msgs), = load_conversations(path)[0]
    enc = Encoder(tok, 8192)
    plain = [{k: v for k, v in m.items() if k != "train"} for m in msgs]
    assert "Be brief." not in tok.apply_chat_template(plain, tokenize=False)  # what the template does alone
    e, _ = enc.encode(index, msgs, "openai")
    assert "Be brief.\n\nHi there" in tok.decode(e.input_ids) and enc.system_merged == 1


def test_a_reply_cut_at_max_seq_len_is_counted_and_skipped_when_asked(base_tokenizer, tmp_path):
    from trainer.data import prepare

    tok = template_tokenizer(base_tokenizer, (DIR / "Qwen-Qwen3-0.6B.jinja").read_text())
    long = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "word " * 80}]}
    short = SHAPES["single"]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [long, short, short, short]))
    kept = prepare(path, tok, max_seq_len=40, val_size=0, cache=False)
    assert kept.cut_replies == 1 and kept.truncated == 1 and len(kept.train) == 4
    skipped = prepare(path, tok, max_seq_len=40, val_size=0, cache=False, truncated_replies="skip")
    assert skipped.cut_replies == 1 and skipped.skipped == {"cut_reply": [0]} and len(skipped.train) == 3


def test_the_dry_run_sample_shows_every_trained_piece_after_a_long_system_prompt():
    from types import SimpleNamespace

    from trainer.encoding import Encoded
    from trainer.samples import render_sample

    class Tok:
        def decode(self, ids):
            return "".join(chr(i) for i in ids)

    text = "S" * 5000 + "answer"
    ids = [ord(c) for c in text]
    labels = [-100] * 5000 + ids[5000:]
    sample = render_sample(SimpleNamespace(train=[Encoded(ids, labels, 3)]), Tok())
    assert sample.marked.endswith("«answer»") and "[… 4400 characters …]" in sample.marked


LORA_DATA = [
    {"tools": TOOLS, "messages": [
        {"role": "user", "content": f"Weather in {city}?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": f"c{k:08d}", "type": "function", "function": {
            "name": "get_weather", "arguments": json.dumps({"city": city})}}]},
        {"role": "tool", "tool_call_id": f"c{k:08d}", "name": "get_weather", "content": f"{k} degrees"},
        {"role": "assistant", "content": f"It is {k} degrees in {city}."}]}
    for k, city in enumerate(["Oslo", "Bergen", "Paris", "Rome"])
] + [
    {"messages": [{"role": "user", "content": f"Add {a} and {b}"},
                  {"role": "assistant", "content": f"It is {a + b}.", "reasoning_content": f"{a} plus {b} is {a + b}."}]}
    for a in range(2) for b in range(4)
]


@pytest.mark.parametrize("name", ["Qwen-Qwen3-0.6B", "GLM-4.6", "google-gemma-4-31B-it"])
def test_lora_on_real_templates_with_tools_and_reasoning_reloads(name, base_tokenizer, tmp_path):
    """A short LoRA run on tool-call and reasoning records through a real template (not prefix-stable for tool
    conversations); the adapter reloads with plain PeftModel.from_pretrained and gives the same logits."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, LlamaConfig

    from tests.conftest import write_yaml
    from tests.trainer_fixtures import train_config
    from trainer.data import Collator
    from trainer.run import fit

    tok = template_tokenizer(base_tokenizer, (DIR / f"{name}.jinja").read_text(encoding="utf-8"))
    tok.pad_token = tok.pad_token or tok.eos_token
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id))
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir, safe_serialization=True)
    tok.save_pretrained(model_dir)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in LORA_DATA))
    cfg = train_config(model_dir, data, tmp_path / "out", {"name": "lora", "r": 8}, max_steps=6, batch_size=2,
                       learning_rate=1e-2, eval_steps=3)
    cfg["data"]["max_seq_len"] = 2048
    r = fit(str(write_yaml(tmp_path / "train.yaml", cfg)), progress=False)
    s, prepared = r.summary, r.prepared
    assert prepared.total == len(LORA_DATA) and not prepared.skipped and prepared.reasoning.records == 8
    assert s.eval_loss_last < s.eval_loss_first, s
    batch = Collator(r.tokenizer.pad_token_id)([{"input_ids": e.input_ids, "labels": e.labels}
                                                   for e in prepared.val[:2]])
    with torch.no_grad():
        before = r.trainer.model.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        base = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
        reloaded = PeftModel.from_pretrained(base, tmp_path / "out", local_files_only=True).eval()
        after = reloaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert (before - after).abs().max().item() < 1e-4


def test_a_generation_block_with_the_role_header_trains_the_call_not_the_header(base_tokenizer):
    from trainer.encoding import Encoder, trained_runs

    tok = copy.deepcopy(base_tokenizer)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"]})
    tok.eos_token = "<|im_end|>"
    tok.chat_template = (
        "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ '<|im_start|>assistant\\n' }}"
        "{% if m.tool_calls %}{% for c in m.tool_calls %}{{ '<tool_call>' + c.function.name + '</tool_call>' }}"
        "{% endfor %}{% else %}{{ m.content }}{% endif %}{{ '<|im_end|>\\n' }}{% endgeneration %}"
        "{% else %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    msgs = [{"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
            {"role": "tool", "content": "4 degrees"}, {"role": "assistant", "content": "It is 4 degrees."}]
    e, _ = Encoder(tok, 4096).encode(0, msgs, "openai")
    assert trained_runs(e, tok) == ["<tool_call>get_weather</tool_call><|im_end|>", "It is 4 degrees.<|im_end|>"]


def test_a_type_error_inside_the_template_is_a_refusal_naming_the_record(base_tokenizer):
    from core.errors import UserError
    from trainer.encoding import Encoder

    tok = copy.deepcopy(base_tokenizer)
    tok.chat_template = "{% for m in messages %}{{ m.content + 1 }}{% endfor %}"
    with pytest.raises(UserError, match=r"^record 5: the chat template refuses this conversation \(TypeError: .*"
                                        r"set data.chat_template"):
        Encoder(tok, 4096).encode(5, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
                                  "openai")
