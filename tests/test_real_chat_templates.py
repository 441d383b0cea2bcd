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
    from advisor.errors import UserError
    from trainer.data import Encoder, load_conversations, trained_runs

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
    assert len(refused) == 13, refused
