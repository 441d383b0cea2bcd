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
}
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
    from trainer.data import Encoder, trained_runs

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
    from trainer.data import Encoder

    tok = family_tokenizer("gemma.jinja", base_texts)
    enc = Encoder(tok, 4096)
    e, _ = enc.encode(0, [dict(m) for m in SHAPES["multi_system"]], "openai")
    assert enc.system_merged == 1 and "Be brief.\n\nHi there" in tok.decode(e.input_ids)


def test_a_template_that_closes_no_turn_gets_eos_after_each_reply(base_texts):
    from trainer.data import Encoder, trained_runs
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
