"""How a reply is read and scored, shared by `tunewise eval` (trainer/evaluate.py) and `tunewise probe`
(trainer/probe.py): the expected reply of a record, a generated reply without its leading reasoning, the room
to generate, and the JSON Schema a reply is checked against."""

from __future__ import annotations


def answer_text(text: str) -> str:
    """A generated reply as it is scored: its answer, without a leading `<think>…</think>` block."""
    from trainer.spans import THINK_BLOCK

    return THINK_BLOCK.sub("", text, count=1).strip() if "</think>" in text else text.strip()


def split_reply(msgs: list[dict]) -> tuple[list[dict], str]:
    """(the conversation before the last assistant reply, that reply's answer without leading reasoning)."""
    from trainer.spans import Reasoning

    last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
    r = msgs[last].get("reasoning")
    return msgs[:last], (r.answer if isinstance(r, Reasoning) else msgs[last]["content"]).strip()


def default_new_tokens(tok, expected: list[str]) -> int:
    """Room for the longest expected answer and a margin (at most 512 tokens)."""
    longest = max(len(tok(e, add_special_tokens=False)["input_ids"]) for e in expected)
    return min(512, int(longest * 1.5) + 8)


def load_schema(path: str | None) -> dict | None:
    if path is None:
        return None
    from core.files import read_json
    from trainer.metrics import check_schema

    schema = read_json(path, "--schema")
    check_schema(schema, str(path))
    return schema
