"""Assistant-only loss over the real chat templates trl ships (trl/chat_templates/): for every text-model family,
the trained text is exactly each trainable assistant reply plus the token the model ends its turn with."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

trl = pytest.importorskip("trl")
TEMPLATES = Path(trl.__file__).parent / "chat_templates"

# family template → (tokenizer EOS, the end of a non-final turn, the end of the final turn)
FAMILIES = {
    "cohere.jinja": ("<|END_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>"),
    "cohere2.jinja": ("<|END_OF_TURN_TOKEN|>", "<|END_RESPONSE|><|END_OF_TURN_TOKEN|>",
                      "<|END_RESPONSE|><|END_OF_TURN_TOKEN|>"),
    "deepseek_r1_distill.jinja": ("<｜end▁of▁sentence｜>",) * 3,
    "deepseekv3.jinja": ("<｜end▁of▁sentence｜>",) * 3,
    "gemma.jinja": ("<eos>", "<end_of_turn>", "<end_of_turn>"),
    "gemma3.jinja": ("<eos>", "<end_of_turn>", "<end_of_turn>"),
    "glm4moe.jinja": ("<|endoftext|>", "<|user|>", "<|user|>"),  # the next role token ends a GLM turn
    "gptoss.jinja": ("<|return|>", "<|end|>", "<|return|>"),
    "lfm2.jinja": ("<|im_end|>",) * 3,
    "llama3.jinja": ("<|eot_id|>",) * 3,
    "llama3_1.jinja": ("<|eot_id|>",) * 3,
    "llama3_2.jinja": ("<|eot_id|>",) * 3,
    "nemotron_3_nano.jinja": ("<|im_end|>",) * 3,
    "phi3.jinja": ("<|endoftext|>", "<|end|>", "<|end|>"),
    "phi3_5.jinja": ("<|endoftext|>", "<|end|>", "<|end|>"),
    "qwen2_5.jinja": ("<|im_end|>",) * 3,
    "qwen3.jinja": ("<|im_end|>",) * 3,
    "qwen3_instruct_2507.jinja": ("<|im_end|>",) * 3,
    "qwen3_5_nothink.jinja": ("<|im_end|>",) * 3,
    "qwen3_5_think.jinja": ("<|im_end|>",) * 3,
    "qwen3_6.jinja": ("<|im_end|>",) * 3,
    "qwen3_8.jinja": ("<|im_end|>",) * 3,
    "lfm2_v2.jinja": ("<|im_end|>",) * 3,
    "lfm2_2_5.jinja": ("<|im_end|>",) * 3,
    "lfm2_2_5_v2.jinja": ("<|im_end|>",) * 3,
    "nemotron_3_5_lightning.jinja": ("<|im_end|>",) * 3,
    "nemotron_3_super.jinja": ("<|im_end|>",) * 3,
    "nemotron_3_ultra.jinja": ("<|im_end|>",) * 3,
    "muse_glimmer.jinja": ("<|eot|>",) * 3,
    **{f"gemma4{v}.jinja": ("<eos>", "<turn|>", "<turn|>") for v in ("", "_v2", "_v3", "_v4", "_v5")},
}
TEXT_TEMPLATES = sorted(f.name for f in TEMPLATES.glob("*.jinja") if "training" not in f.name and not any(
    k in f.name for k in ("vl", "llava", "idefics", "smolvlm", "diffusion")))
SPECIAL = re.compile(r"<\|[^|<>{}\s']{1,40}\|>|<｜[^｜]{1,40}｜>|<[a-z_]{2,20}>|<\|?[a-z_]+\|?>")
SHAPES = {
    "single": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"}],
    "multi_system": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
                     {"role": "assistant", "content": "Hello! How can I help?"},
                     {"role": "user", "content": "Add 2 and 3"}, {"role": "assistant", "content": "It is 5."}],
    "multi": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"},
              {"role": "user", "content": "Add 2 and 3"}, {"role": "assistant", "content": "It is 5."}],
    "weight_0": [{"role": "user", "content": "Hi there"},
                 {"role": "assistant", "content": "Hello! How can I help?", "train": False},
                 {"role": "user", "content": "Add 2 and 3"}, {"role": "assistant", "content": "It is 5."}],
}


@pytest.fixture(scope="module")
def base_texts():
    from trainer.tiny import general_corpus

    return general_corpus()[:200]


def family_tokenizer(name: str, texts: list[str]):
    from trainer.tiny import build_tokenizer

    src = (TEMPLATES / name).read_text(encoding="utf-8")
    eos = FAMILIES[name][0]
    tok = build_tokenizer(texts, 600)
    specials = sorted({t for t in SPECIAL.findall(src) if len(t) > 3} | {eos})
    tok.add_special_tokens({"additional_special_tokens": specials})
    tok.eos_token = eos
    tok.chat_template = src
    return tok


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_trained_text_is_each_reply_and_its_end_token(name, shape, base_texts):
    from trainer.encoding import Encoder, trained_runs

    tok = family_tokenizer(name, base_texts)
    _eos, mid_end, last_end = FAMILIES[name]
    msgs = [dict(m) for m in SHAPES[shape]]
    enc = Encoder(tok, 4096)
    e, _ = enc.encode(0, msgs, "openai")
    replies = [i for i, m in enumerate(msgs) if m["role"] == "assistant"]
    expected = [msgs[i]["content"] + (last_end if i == replies[-1] else mid_end)
                for i in replies if msgs[i].get("train", True)]
    assert trained_runs(e, tok) == expected, (enc.finder.plan.mode, tok.decode(e.input_ids))


def test_templates_without_a_system_role_get_it_in_the_first_user_turn(base_texts):
    from trainer.encoding import Encoder

    tok = family_tokenizer("gemma.jinja", base_texts)
    enc = Encoder(tok, 4096)
    e, _ = enc.encode(0, [dict(m) for m in SHAPES["multi_system"]], "openai")
    assert enc.system_merged == 1 and "Be brief.\n\nHi there" in tok.decode(e.input_ids)


def test_a_template_that_closes_no_turn_gets_eos_after_each_reply(base_texts):
    from trainer.encoding import Encoder, trained_runs
    from trainer.tiny import build_tokenizer

    tok = build_tokenizer(base_texts, 600)
    tok.chat_template = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '\\n' }}"
                         "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    e, _ = Encoder(tok, 4096).encode(0, [dict(m) for m in SHAPES["multi"]], "openai")
    assert trained_runs(e, tok) == ["Hello! How can I help?<|im_end|>", "It is 5.<|im_end|>"]


def test_the_plan_names_trls_training_variant(base_texts):
    from trainer.spans import plan_template

    plan = plan_template(family_tokenizer("qwen3.jinja", base_texts))
    assert plan.mode == "trl_training" and plan.family == "qwen3"
    assert plan_template(family_tokenizer("llama3_1.jinja", base_texts)).mode == "prefix"


MISTRAL_LIKE = (  # Mistral v0.3's shape: the system text goes into the last user turn, [INST] markers, </s> ends
    "{%- set ns = namespace(last_user=-1, system='') %}"
    "{%- for m in messages %}{%- if m['role'] == 'user' %}{%- set ns.last_user = loop.index0 %}{%- endif %}"
    "{%- if m['role'] == 'system' %}{%- set ns.system = m['content'] %}{%- endif %}{%- endfor %}"
    "{{- bos_token }}{%- for m in messages %}{%- if m['role'] == 'user' %}"
    "{%- if loop.index0 == ns.last_user and ns.system %}{{- '[INST] ' + ns.system + '\\n\\n' + m['content'] + '[/INST]' }}"
    "{%- else %}{{- '[INST] ' + m['content'] + '[/INST]' }}{%- endif %}"
    "{%- elif m['role'] == 'assistant' %}{{- ' ' + m['content'] + eos_token }}{%- endif %}{%- endfor %}")


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_templates_that_rerender_earlier_turns_are_anchored_on_the_replies(shape, base_texts):
    from trainer.encoding import Encoder, trained_runs
    from trainer.tiny import build_tokenizer

    tok = build_tokenizer(base_texts, 600)
    tok.add_special_tokens({"additional_special_tokens": ["[INST]", "[/INST]", "</s>", "<s>"]})
    tok.eos_token, tok.bos_token = "</s>", "<s>"
    tok.chat_template = MISTRAL_LIKE
    msgs = [dict(m) for m in SHAPES[shape]]
    enc = Encoder(tok, 4096)
    e, _ = enc.encode(0, msgs, "openai")
    expected = [m["content"] + "</s>" for m in msgs if m["role"] == "assistant" and m.get("train", True)]
    assert trained_runs(e, tok) == expected


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]


@pytest.mark.parametrize("name,call_marker", [("qwen2_5.jinja", "<tool_call>"), ("qwen3.jinja", "<tool_call>"),
                                              ("llama3_1.jinja", '"name": "get_weather"')])
def test_tool_calls_are_rendered_natively_and_trained(name, call_marker, base_texts, tmp_path):
    """OpenAI tool_calls stay structured, tool results are `tool` messages, and `tools` reach the template."""
    import json

    from trainer.data import load_conversations
    from trainer.encoding import Encoder, trained_runs

    rec = {"tools": TOOLS, "messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "4 degrees, rain"},
        {"role": "assistant", "content": "It is 4 degrees and raining in Oslo."}]}
    path = tmp_path / "tools.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    (index, msgs), = load_conversations(path)[0]
    assert msgs[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"} and msgs[1]["content"] == ""
    tok = family_tokenizer(name, base_texts)
    enc = Encoder(tok, 4096)
    e, _ = enc.encode(index, msgs, "openai")
    text = tok.decode(e.input_ids)
    assert "get_weather" in text.split("Weather in Oslo?")[0] or "Weather in a city" in text  # tools rendered
    runs = trained_runs(e, tok)
    end = FAMILIES[name][1]
    assert len(runs) == 2 and call_marker in runs[0] and runs[0].endswith(end) and "4 degrees, rain" not in runs[0]
    assert runs[1] == "It is 4 degrees and raining in Oslo." + end


def family_model(tmp_path, template: str, arch: str, texts: list[str]):
    """A tiny random model of an architecture, with a tokenizer carrying a family's template and special tokens."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = family_tokenizer(template, texts)
    tok.pad_token = tok.pad_token or "<|pad|>"
    cfg = AutoConfig.for_model(arch, vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                               tie_word_embeddings=False, pad_token_id=tok.pad_token_id,
                               eos_token_id=tok.eos_token_id, bos_token_id=None)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    out = tmp_path / f"{arch}-model"
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("template,arch", [("qwen2_5.jinja", "qwen2"), ("phi3.jinja", "phi3"),
                                           ("llama3.jinja", "llama")])
def test_lora_learns_on_real_family_templates_and_reloads(tmp_path, template, arch, base_texts):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tests.conftest import write_yaml
    from tests.trainer_fixtures import train_config, write_dataset
    from trainer.data import Collator
    from trainer.run import fit

    model_dir = family_model(tmp_path, template, arch, base_texts)
    data = write_dataset(tmp_path / "d.jsonl")
    out = tmp_path / "out"
    cfg = train_config(model_dir, data, out, {"name": "lora", "r": 8}, max_steps=40, learning_rate=1e-2)
    r = fit(str(write_yaml(tmp_path / "train.yaml", cfg)), progress=False)
    s = r.summary
    assert s.eval_loss_last < 0.9 * s.eval_loss_first, s  # a random base: the adapter alone learns
    val = r.prepared.val
    batch = Collator(r.tokenizer.pad_token_id)([{"input_ids": e.input_ids, "labels": e.labels} for e in val[:4]])
    import torch

    with torch.no_grad():
        model = r.trainer.model.eval()
        before = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        base = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
        reloaded = PeftModel.from_pretrained(base, out, local_files_only=True).eval()
        after = reloaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert (before - after).abs().max().item() < 1e-4


# templates that refuse a `tool` message (roles must alternate): such records stop with the record and the reason
REFUSE_TOOLS = {"gemma.jinja", "gemma3.jinja", "cohere.jinja", "cohere2.jinja"}
NO_TOOLS = REFUSE_TOOLS | {"deepseek_r1_distill.jinja"}  # the R1 distill template drops tool calls with content


@pytest.mark.parametrize("name", sorted(set(FAMILIES) - NO_TOOLS))
def test_tool_call_turns_in_every_family_that_renders_tools(name, base_texts):
    from trainer.encoding import Encoder, trained_runs

    msgs = [{"role": "user", "content": "Weather in Oslo?", "tools": TOOLS},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
            {"role": "tool", "name": "get_weather", "content": "4 degrees, rain"},
            {"role": "assistant", "content": "It is 4 degrees and raining in Oslo."}]
    tok = family_tokenizer(name, base_texts)
    e, _ = Encoder(tok, 4096).encode(0, msgs, "openai")
    runs = trained_runs(e, tok)
    assert len(runs) == 2 and "Oslo" in runs[0] and "4 degrees, rain" not in runs[0], runs
    assert runs[1] == "It is 4 degrees and raining in Oslo." + FAMILIES[name][2], runs


@pytest.mark.parametrize("name", sorted(REFUSE_TOOLS))
def test_templates_that_refuse_tool_messages_name_the_record(name, base_texts):
    from core.errors import UserError
    from trainer.encoding import Encoder

    msgs = [{"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
            {"role": "tool", "name": "get_weather", "content": "4 degrees, rain"},
            {"role": "assistant", "content": "It is 4 degrees."}]
    with pytest.raises(UserError, match="record 7: the chat template refuses this conversation"):
        Encoder(family_tokenizer(name, base_texts), 4096).encode(7, msgs, "openai")


def test_every_text_template_trl_ships_is_covered():
    assert sorted(FAMILIES) == TEXT_TEMPLATES


# multimodal templates that read `content` as typed parts ([{"type": "text", "text": ...}]): text records still
# train exactly each reply and its end token (the text goes in as one part)
VISION = {"smolvlm.jinja": "<end_of_utterance>", "idefics3.jinja": "<end_of_utterance>",
          "llava_next.jinja": "</s>", "qwen2_5_vl.jinja": "<|im_end|>"}


@pytest.mark.parametrize("shape", ["multi_system", "weight_0"])
@pytest.mark.parametrize("name", sorted(VISION))
def test_templates_that_read_content_parts(name, shape, base_texts):
    from trainer.encoding import Encoder, trained_runs
    from trainer.tiny import build_tokenizer

    src = (TEMPLATES / name).read_text(encoding="utf-8")
    tok = build_tokenizer(base_texts, 600)
    end = VISION[name]
    tok.add_special_tokens({"additional_special_tokens": sorted({t for t in SPECIAL.findall(src) if len(t) > 3}
                                                                | {end})})
    tok.eos_token, tok.chat_template = end, src
    msgs = [dict(m) for m in SHAPES[shape]]
    e, _ = Encoder(tok, 4096).encode(0, msgs, "openai")
    assert trained_runs(e, tok) == [m["content"] + end for m in msgs
                                    if m["role"] == "assistant" and m.get("train", True)]


def test_a_template_that_drops_the_reply_text_is_refused(base_texts):
    from core.errors import UserError
    from trainer.encoding import Encoder
    from trainer.tiny import build_tokenizer

    tok = build_tokenizer(base_texts, 600)
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'assistant' %}{% generation %}{{ 'OK<|im_end|>' }}"
                         "{% endgeneration %}{% else %}{{ m['content'] }}{% endif %}{% endfor %}")
    with pytest.raises(UserError, match="does not render the assistant replies as they are written"):
        Encoder(tok, 4096).encode(0, [dict(m) for m in SHAPES["single"]], "openai")
