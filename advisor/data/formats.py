"""Dataset formats → one normalised shape (a list of role/content messages).

alpaca (instruction/input/output, optional system, history), sharegpt (conversations with from/value,
optional system, tools), OpenAI chat (messages with role/content, optional name, tool_calls, weight),
prompt/completion, and plain text."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("alpaca", "sharegpt", "openai", "prompt_completion", "text")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
                  "function_call": "assistant", "observation": "tool", "tool": "tool", "function": "tool"}
OPENAI_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


@dataclass(slots=True)
class Message:
    role: str
    content: str
    trainable: bool = True  # OpenAI `weight: 0` turns a message's training off
    tool_call: bool = False


@dataclass(slots=True)
class Sample:
    messages: list[Message]
    has_tools: bool = False
    instruction: str = ""  # the task statement (alpaca instruction, else the first user message)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (code, message)

    @property
    def prompt(self) -> str:
        """Everything before the last assistant message."""
        last = self.last_assistant()
        msgs = self.messages if last is None else self.messages[:last]
        return "\n".join(m.content for m in msgs)

    @property
    def answer(self) -> str:
        last = self.last_assistant()
        return "" if last is None else self.messages[last].content

    def last_assistant(self) -> int | None:
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].role == "assistant":
                return i
        return None


def detect_format(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    if "conversations" in obj:
        return "sharegpt"
    if "messages" in obj:
        return "openai"
    if "instruction" in obj or ("output" in obj and "input" in obj):
        return "alpaca"
    if "prompt" in obj and ("completion" in obj or "response" in obj):
        return "prompt_completion"
    if "text" in obj:
        return "text"
    return None


def majority_format(objs: list[Any]) -> str | None:
    counts = Counter(f for f in map(detect_format, objs) if f)
    return counts.most_common(1)[0][0] if counts else None


def _text(value: Any, key: str, problems: list, required: bool = True) -> str:
    if value is None:
        if required:
            problems.append(("schema", f"missing field `{key}`"))
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        problems.append(("schema", f"`{key}` is a number, expected text"))
        return str(value)
    problems.append(("schema", f"`{key}` is {type(value).__name__}, expected text"))
    return ""


def _content(value: Any, key: str, problems: list) -> str:
    """OpenAI content may be a string, null (with tool_calls) or a list of typed parts."""
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, list):
        parts = [p.get("text", "") for p in value if isinstance(p, dict) and p.get("type") == "text"]
        if len(parts) != len(value):
            problems.append(("schema", f"`{key}` has non-text parts (images, audio): only text is audited"))
        return "\n".join(str(p) for p in parts)
    problems.append(("schema", f"`{key}` is {type(value).__name__}, expected text"))
    return ""


def normalise(obj: Any, fmt: str) -> Sample:
    problems: list[tuple[str, str]] = []
    if not isinstance(obj, dict):
        return Sample([], problems=[("schema", f"record is a JSON {type(obj).__name__}, expected an object")])
    if fmt == "alpaca":
        return _alpaca(obj, problems)
    if fmt == "sharegpt":
        return _sharegpt(obj, problems)
    if fmt == "openai":
        return _openai(obj, problems)
    if fmt == "prompt_completion":
        prompt = _text(obj.get("prompt"), "prompt", problems)
        comp = _text(obj.get("completion", obj.get("response")), "completion", problems)
        return Sample([Message("user", prompt), Message("assistant", comp)], instruction=prompt, problems=problems)
    text = _text(obj.get("text"), "text", problems)
    return Sample([Message("assistant", text)], problems=problems)


def _alpaca(obj: dict, problems: list) -> Sample:
    if "instruction" not in obj:
        problems.append(("schema", "missing field `instruction`"))
    instruction = _text(obj.get("instruction"), "instruction", problems, required=False)
    inp = _text(obj.get("input"), "input", problems, required=False)
    out = _text(obj.get("output"), "output", problems)
    msgs: list[Message] = []
    system = _text(obj.get("system"), "system", problems, required=False)
    if system:
        msgs.append(Message("system", system))
    history = obj.get("history") or []
    if not isinstance(history, list):
        problems.append(("schema", "`history` must be a list of [instruction, response] pairs"))
        history = []
    for j, turn in enumerate(history):
        if not (isinstance(turn, list | tuple) and len(turn) == 2 and all(isinstance(x, str) for x in turn)):
            problems.append(("schema", f"`history[{j}]` must be a pair of strings [instruction, response]"))
            continue
        msgs += [Message("user", turn[0]), Message("assistant", turn[1])]
    user = instruction + ("\n\n" + inp if inp.strip() else "")
    msgs += [Message("user", user), Message("assistant", out)]
    return Sample(msgs, instruction=instruction, problems=problems)


def _sharegpt(obj: dict, problems: list) -> Sample:
    conv = obj.get("conversations")
    msgs: list[Message] = []
    system = _text(obj.get("system"), "system", problems, required=False)
    if system:
        msgs.append(Message("system", system))
    tools = obj.get("tools")
    has_tools = bool(tools) and tools not in ("[]", "")
    if isinstance(tools, str) and tools.strip():
        try:
            json.loads(tools)
        except json.JSONDecodeError as e:
            problems.append(("schema", f"`tools` is a string that is not valid JSON ({e.msg})"))
    if not isinstance(conv, list):
        problems.append(("schema", "`conversations` must be a list of {from, value} turns"))
        return Sample(msgs, has_tools=has_tools, problems=problems)
    for j, turn in enumerate(conv):
        if not isinstance(turn, dict):
            problems.append(("schema", f"`conversations[{j}]` is not an object"))
            continue
        who = turn.get("from", turn.get("role"))
        value = _text(turn.get("value", turn.get("content")), f"conversations[{j}].value", problems)
        role = SHAREGPT_ROLES.get(str(who).lower()) if isinstance(who, str) else None
        if role is None:
            problems.append(("unknown_role", f"`conversations[{j}].from` is {who!r}; expected one of "
                                             f"{sorted(SHAREGPT_ROLES)}"))
            continue
        msgs.append(Message(role, value, tool_call=str(who).lower() == "function_call"))
    first_user = next((m.content for m in msgs if m.role == "user"), "")
    return Sample(msgs, has_tools=has_tools, instruction=first_user, problems=problems)


def _openai(obj: dict, problems: list) -> Sample:
    raw = obj.get("messages")
    msgs: list[Message] = []
    has_tools = bool(obj.get("tools") or obj.get("functions"))
    if not isinstance(raw, list):
        problems.append(("schema", "`messages` must be a list of {role, content} objects"))
        return Sample(msgs, problems=problems)
    for j, m in enumerate(raw):
        if not isinstance(m, dict):
            problems.append(("schema", f"`messages[{j}]` is not an object"))
            continue
        role = m.get("role")
        if role not in OPENAI_ROLES:
            problems.append(("unknown_role", f"`messages[{j}].role` is {role!r}; expected one of {sorted(OPENAI_ROLES)}"))
            continue
        if "content" not in m and not m.get("tool_calls") and not m.get("function_call"):
            problems.append(("schema", f"`messages[{j}]` has no `content`"))
        content = _content(m.get("content"), f"messages[{j}].content", problems)
        calls = m.get("tool_calls") or m.get("function_call")
        if calls:
            has_tools = True
            if not content:
                content = json.dumps(calls, ensure_ascii=False)
        weight = m.get("weight", 1)
        if weight not in (0, 1):
            problems.append(("schema", f"`messages[{j}].weight` must be 0 or 1, got {weight!r}"))
        msgs.append(Message("system" if role == "developer" else ("tool" if role == "function" else role),
                            content, trainable=weight != 0, tool_call=bool(calls)))
    first_user = next((x.content for x in msgs if x.role == "user"), "")
    return Sample(msgs, has_tools=has_tools, instruction=first_user, problems=problems)
